"""A synthetic benchmark in OTB's folder format, for trying, meta-training and comparing trackers.

The package face; the parts live in:

- :mod:`.benchmark`: ``generate(out_dir, n_sequences, seed, split)``, the folder layout, seeds,
  attribute labels and atomic writing (its docstring describes the files);
- :mod:`.planning`: what happens in one sequence, decided per nuisance from its seed (motion,
  nuisance schedule, textures, attributes);
- :mod:`.rendering`: drawing a planned sequence frame by frame, with its exact boxes;
- :mod:`.sources`: the photographs and procedural textures, partitioned between the splits;
- :mod:`.library`: folders of real images (``--objects`` cut-outs, ``--backgrounds``), split by
  source image; :mod:`.packages`: the Debian packages they come from;
- :mod:`.footage`: the profiles and footage-like dynamics; :mod:`.codec`: the video-codec pass.
"""
from .benchmark import (
                        DEFAULT_FRAMES,
                        DEFAULT_SIZE,
                        VERSION,
                        generate,
                        label,
                        measure,
                        plan,
                        render,
                        sequence_name,
                        sequence_seed,
                        write_sequence,
)
from .planning import DEFINITIONS, OTB_ATTRIBUTES
from .rendering import iter_frames
from .sources import SPLITS

__all__ = ["generate", "plan", "render", "write_sequence", "sequence_name", "sequence_seed", "measure",
           "label", "iter_frames", "OTB_ATTRIBUTES", "SPLITS", "DEFINITIONS", "VERSION", "DEFAULT_FRAMES",
           "DEFAULT_SIZE"]
