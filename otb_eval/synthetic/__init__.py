"""A synthetic benchmark in OTB's folder format, for trying, meta-training and comparing trackers.

The package face; the parts live in:

- :mod:`.benchmark`: ``generate(out_dir, n_sequences, seed, split)``, the folder layout, seeds,
  attribute labels and atomic writing (its docstring describes the files);
- :mod:`.scene`: one sequence planned per nuisance from its seed, and rendered frame by frame;
- :mod:`.sources`: the photographs and procedural textures, partitioned between the splits.
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
from .scene import DEFINITIONS, OTB_ATTRIBUTES, iter_frames
from .sources import SPLITS

__all__ = ["generate", "plan", "render", "write_sequence", "sequence_name", "sequence_seed", "measure",
           "label", "iter_frames", "OTB_ATTRIBUTES", "SPLITS", "DEFINITIONS", "VERSION", "DEFAULT_FRAMES",
           "DEFAULT_SIZE"]
