"""What a MetaSDNet network is: its shape (:class:`ModelConfig`) and its input convention.

Its own module because both the network (:mod:`.model`) and the box geometry of fast mode
(:mod:`.roi_align`) read it, and the network's exact-mode forward pools through that geometry.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping, Tuple

__all__ = ["ModelConfig", "MODEL_NAMES", "BACKBONES", "MEAN_PIXEL"]

MODEL_NAMES = ("small", "vgg-m", "tiny", "efficientnet")  # ModelConfig.named
BACKBONES = ("sdnet", "efficientnet-lite0")
MEAN_PIXEL = 128.0  # preprocessing: pixel - 128, no std scaling; out-of-image pixels are 128


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the network; the defaults are VGG-M's / MetaSDNet's."""

    channels: Tuple[int, int, int] = (96, 256, 512)
    fc_dim: int = 512
    input_size: int = 107        # crop side; conv3 gives 3 x 3 on it
    padding: float = 16.0        # context per side, in crop pixels (16/107 of the box per side)
    lrn: bool = True             # MatConvNet's LRN after conv1 and conv2
    backbone: str = "sdnet"      # sdnet: conv1-3 above | efficientnet-lite0: frozen ImageNet blocks
    backbone_blocks: int = 11    # efficientnet-lite0: blocks read (6-11 end at stride 16)

    def __post_init__(self) -> None:
        from foundation.errors import UserError

        if self.backbone not in BACKBONES:
            raise UserError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.backbone != "sdnet" and not 6 <= self.backbone_blocks <= 11:
            raise UserError(f"efficientnet-lite0 backbone: blocks must be 6-11 (stride 16), "
                            f"got {self.backbone_blocks}")

    @classmethod
    def small(cls) -> "ModelConfig":
        """Our CPU configuration: the same layers, strides and 107 x 107 input (so every sampler,
        the 3 x 3 grid and RoIAlign are unchanged) with 1/4 of VGG-M's conv1/conv2 channels, 3/16
        of its conv3 channels and 1/4 of its fc width: about 14x fewer conv multiply-adds per pixel
        and 21x fewer fc4 weights (864 -> 128), which is what lets the online updates (fc4-6 on
        hundreds of mined negatives, 10-15 times per update) run at 10+ fps on a CPU."""
        return cls(channels=(24, 64, 96), fc_dim=128)

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """A very small network for tests (seconds to run a sequence)."""
        return cls(channels=(8, 16, 32), fc_dim=64)

    @classmethod
    def efficientnet(cls, blocks: int = 11) -> "ModelConfig":
        """EfficientNet-Lite0's ImageNet blocks (frozen) under fc4-6 of the small width: block 11
        gives 112 channels at stride 16, conv3's stride, so the 3 x 3 cells of a box are one
        cell apart as in MDNet (``channels`` and ``lrn`` do not apply)."""
        return cls(fc_dim=128, lrn=False, backbone="efficientnet-lite0", backbone_blocks=blocks)

    @property
    def learned_conv(self) -> bool:
        """Whether the conv layers are parameters of the network (else a frozen backbone)."""
        return self.backbone == "sdnet"

    @property
    def feature_channels(self) -> int:
        """Channels of the map boxes are pooled from (conv3's, or the EfficientNet block's)."""
        if self.learned_conv:
            return self.channels[2]
        from ..efficientnet import channels_after

        return channels_after(self.backbone_blocks)

    @property
    def feature_dim(self) -> int:
        return self.feature_channels * 9

    @property
    def crop_scale(self) -> float:
        """Crop side / box side: the box enlarged by ``padding / input_size`` of its size per side."""
        return 1.0 + 2.0 * self.padding / self.input_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def named(cls, name: str) -> "ModelConfig":
        """The configuration a CLI names: ``small`` (CPU), ``vgg-m`` (official weights), ``tiny``,
        ``efficientnet`` (ImageNet features, frozen)."""
        return {"small": cls.small, "vgg-m": cls, "tiny": cls.tiny, "efficientnet": cls.efficientnet}[name]()

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "channels" in kw:
            kw["channels"] = tuple(int(c) for c in kw["channels"])
        return cls(**kw)
