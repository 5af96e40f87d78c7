"""Few-shot classification on the one engine: the embedded glyph benchmark, loaders of real data sets
on disk, N-way K-shot episodes, the seed's 4-conv and ResNet12, meta-training with the top-k
validation ensemble, and the settings of the seed's Tables A and B.  See docs/classification.md."""
from .backbones import Conv4, ResNet12, make_backbone
from .datasets import DATASETS, load_pools
from .episodes import ArrayPool, Episode, sample_episode
from .train import ClassificationConfig, evaluate, evaluate_checkpoint, run, train

__all__ = ["Conv4", "ResNet12", "make_backbone", "DATASETS", "load_pools", "ArrayPool", "Episode",
           "sample_episode", "ClassificationConfig", "train", "evaluate", "evaluate_checkpoint", "run"]
