"""MetaCREST's frozen backbone: a feature map of a square window, whatever the network.

Three kinds share one interface (:class:`Backbone`):

- ``vgg16``: VGG-16 conv1_1..conv4_3 (:mod:`tracker.crest.features`), the reference backbone,
  loaded from MatConvNet's ``imagenet-vgg-verydeep-16.mat`` or a torchvision-style state dict.
  "Same" padding: cell ``i`` is centred on window pixel ``4 i + 1.5``.
- ``sdnet``: the conv layers of a MetaSDNet checkpoint up to conv2 (our default) or conv3,
  evaluated densely at stride 4 (:func:`tracker.sdnet.model.conv_forward` with ``dense=4``). The
  shipped MetaSDNet conv layers were trained here (multi-domain pretraining on the synthetic train
  split); the MetaCREST weights shipped before the EfficientNet ones read them. Valid convolutions: cell ``i`` is centred on input
  pixel ``4 i + 13`` (conv2; ``4 i + 37`` for conv3), so the window is cropped with that border and
  its cells line up with the window's pixels ``4 i``.

- ``efficientnet``: EfficientNet-Lite0's ImageNet weights (:mod:`tracker.efficientnet`) after its
  first ``blocks`` blocks, the later strided layers evaluated a trous from block ``dilate_from``
  (config keys). The weights come from the installed package, not the weights file (a file stores
  only the config, so it stays small). TensorFlow "same" padding: the cell centres follow from the
  window size (:meth:`Backbone.cell_centre`).

``feature_scale`` multiplies every feature so that a typical window has unit RMS features: the
correlation filter's rates and update learning rates then mean the same for any backbone
(the reference's 1e-6 / 7e-6 are VGG-16's raw scale, ``feature_scale = 1``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

import numpy as np
import torch
from torch import Tensor

from foundation.errors import UserError

__all__ = ["KINDS", "STRIDE", "DEFAULT_SDNET_LAYER", "Backbone"]

KINDS = ("vgg16", "sdnet", "efficientnet")
# MetaSDNet layer our CPU MetaCREST reads: conv2's 27-pixel receptive field suits targets
# normalised to 32 pixels (conv3's 75 pixels sees mostly background there: measured in docs/metacrest.md)
DEFAULT_SDNET_LAYER = "conv2"
STRIDE = 4
# centre of dense-4 cell 0 in input pixels: conv1 k7 s2 (3) and pool 3/2 (+2 = 5), conv2 k5 (+8 = 13),
# pool 3 dilation 2 (+8) and conv3 k3 dilation 4 (+16 = 37)
_SDNET_OFFSET = {"conv2": 13.0, "conv3": 37.0}


@dataclass
class Backbone:
    """A frozen feature extractor with its geometry.

    ``config`` is the architecture as a dict: :class:`~tracker.crest.features.FeatureConfig`'s
    ``channels`` for ``vgg16``, :class:`~tracker.sdnet.model.ModelConfig`'s fields for ``sdnet``.
    """

    kind: str
    params: Dict[str, Tensor]
    config: Dict[str, Any] = field(default_factory=dict)
    feature_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"backbone kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self.params = {k: v.detach().float() for k, v in self.params.items()}
        if self.kind == "sdnet":
            from ..sdnet.model import ModelConfig

            self._model = ModelConfig.from_dict(self.config)
            self.layer = str(self.config.get("layer", "conv3"))
            if self.layer not in _SDNET_OFFSET:
                raise UserError(f"sdnet backbone layer must be conv2 or conv3, got {self.layer!r}")
            self.out_channels = int(self._model.channels[1 if self.layer == "conv2" else 2])
            self.offset = _SDNET_OFFSET[self.layer]   # input pixel of cell 0's centre
            self.border = int(self.offset)            # pixels cropped around the window on each side
        elif self.kind == "efficientnet":
            from .. import efficientnet

            self.blocks = int(self.config.get("blocks", 11))
            dilate = self.config.get("dilate_from")
            self.dilate_from = None if dilate is None else int(dilate)
            if not 1 <= self.blocks <= len(efficientnet.BLOCKS):
                raise UserError(f"efficientnet backbone: blocks must be 1..{len(efficientnet.BLOCKS)}, "
                                f"got {self.blocks}")
            if not self.params:
                self.params = efficientnet.fold_batch_norm(efficientnet.load_imagenet(), self.blocks)
            self.out_channels = efficientnet.channels_after(self.blocks)
            self.stride = efficientnet.stride_after(self.blocks, self.dilate_from)
            self.border = 0
            self.offset = 0.0
        else:
            from .features import FeatureConfig

            self._features = FeatureConfig(tuple(self.config.get("channels", FeatureConfig().channels)))
            self.out_channels = self._features.out_channels
            self.border = 0
            self.offset = (STRIDE - 1) / 2.0

    stride = STRIDE

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        """Where the weights live, and so where patches are sent and features come out."""
        first = next(iter(self.params.values()), None)
        return first.device if first is not None else torch.get_default_device()

    def to(self, device: Any) -> "Backbone":
        """This backbone with its weights on ``device``: itself when they are there already (so
        the CPU path shares the weights' tensors as before), else a moved copy, leaving the
        weights object it came from untouched."""
        moved = {k: v.to(device) for k, v in self.params.items()}
        if all(moved[k] is v for k, v in self.params.items()):
            return self
        return Backbone(self.kind, moved, dict(self.config), self.feature_scale)

    def _same_grid(self, window: int) -> tuple[int, float]:
        """EfficientNet's map size and the window pixel of cell 0's centre (both follow the size)."""
        from .. import efficientnet

        return efficientnet.same_grid(window + 2 * self.border, self.blocks, self.dilate_from)

    # ------------------------------------------------------------------ geometry
    def map_size(self, window: int) -> int:
        """Feature cells along a window side of ``window`` pixels (cropped with the border)."""
        if self.kind == "efficientnet":
            return self._same_grid(window)[0]
        n = window + 2 * self.border
        if self.kind == "vgg16":
            return n // 2 // 2
        n = (n - 7) // 2 + 1          # conv1
        n = (n - 3) // 2 + 1          # pool1
        # conv2 (k5), then pool2 (k3 dilation 2) and conv3 (k3 dilation 4), all stride 1
        return n - 4 if self.layer == "conv2" else n - 4 - 4 - 8

    def cell_centre(self, index: float, window: int | None = None) -> float:
        """Window pixel (0 = the window's first pixel) on which feature cell ``index`` is centred
        (``efficientnet`` needs the window's side; the others do not depend on it)."""
        offset = self.offset
        if self.kind == "efficientnet":
            if window is None:
                raise ValueError("an efficientnet backbone's cell centres depend on the window size")
            offset = self._same_grid(window)[1]
        return offset + self.stride * float(index) - self.border

    # ------------------------------------------------------------------ features
    def __call__(self, patches: Any) -> Tensor:
        """``N x P x P x 3`` RGB uint8 patches (window plus border) -> ``N x C x n x n`` features,
        multiplied by ``feature_scale``. Runs without autograd: the backbone is frozen. The patches
        go to the backbone's device as uint8 (a quarter of the bytes of floats)."""
        x = (torch.from_numpy(np.ascontiguousarray(patches)).to(self.device) if isinstance(patches, np.ndarray)
             else patches.to(self.device))
        if x.dim() == 3:
            x = x.unsqueeze(0)
        with torch.no_grad():
            if self.kind == "sdnet":
                from ..sdnet.model import MEAN_PIXEL, conv_forward

                inp = x.permute(0, 3, 1, 2).float().sub_(MEAN_PIXEL)
                out = conv_forward(self.params, inp, self._model, dense=4, last=self.layer)
            elif self.kind == "efficientnet":
                from .. import efficientnet

                out = efficientnet.features(self.params, efficientnet.preprocess(x), self.blocks, self.dilate_from)
            else:
                from .features import extract, preprocess

                out = extract(self.params, preprocess(x))
        return out * self.feature_scale if self.feature_scale != 1.0 else out

    def calibrate(self, patches: Any) -> float:
        """Set ``feature_scale`` so these patches' features have unit RMS; returns the scale.
        ``patches``: one ``N x P x P x 3`` array, or a list of them (windows of several sizes)."""
        batches = patches if isinstance(patches, (list, tuple)) else [patches]
        self.feature_scale = 1.0
        mean_square = float(np.mean([float(self(p).pow(2).mean()) for p in batches]))
        self.feature_scale = 1.0 / max(mean_square ** 0.5, 1e-8)
        return self.feature_scale

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """What a weights file stores (tensors on the CPU, whatever device the backbone ran on)."""
        # EfficientNet's ImageNet weights come from their package: the file keeps only the config
        params = {} if self.kind == "efficientnet" else {k: v.detach().cpu().clone() for k, v in self.params.items()}
        return {"kind": self.kind, "params": params, "config": dict(self.config),
                "feature_scale": float(self.feature_scale)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Backbone":
        try:
            return cls(str(state["kind"]), dict(state["params"]), dict(state.get("config", {})),
                       float(state.get("feature_scale", 1.0)))
        except KeyError as missing:
            raise UserError(f"MetaCREST weights: backbone lacks {missing}") from None

    @classmethod
    def from_sdnet(cls, weights: Any, layer: str = DEFAULT_SDNET_LAYER) -> "Backbone":
        """The conv layers of MetaSDNet weights (:class:`~tracker.sdnet.weights.SDNetWeights`) up to
        ``layer`` (conv3, or conv2: a receptive field of 27 pixels for small normalised targets)."""
        if not weights.config.learned_conv:
            raise UserError("these MetaSDNet weights have no conv layers of their own (a frozen "
                            "EfficientNet backbone): use --backbone efficientnet-lite0")
        params = {k: v for k, v in weights.params.items() if k.startswith("features.")}
        return cls("sdnet", params, {**weights.config.to_dict(), "layer": layer})

    @classmethod
    def efficientnet(cls, blocks: int = 5, dilate_from: int | None = 3) -> "Backbone":
        """EfficientNet-Lite0's ImageNet weights after ``blocks`` blocks (default: block 5's 40
        channels, a trous from block 3 so the map keeps stride 4: the best of
        benchmarks/crest_backbone.py for 32-pixel targets)."""
        return cls("efficientnet", {}, {"blocks": int(blocks), "dilate_from": dilate_from})

    @classmethod
    def vgg16(cls, path_or_obj: Any) -> "Backbone":
        """VGG-16 from ``imagenet-vgg-verydeep-16.mat`` (a path ending in .mat) or a state dict
        (a mapping, or a path to a torch file holding one)."""
        from .features import FeatureConfig, load_vgg16_mat, load_vgg16_state_dict

        if isinstance(path_or_obj, Mapping):
            params = load_vgg16_state_dict(path_or_obj)
        elif str(path_or_obj).lower().endswith(".mat"):
            params = load_vgg16_mat(path_or_obj)
        else:
            from foundation.checkpoint import torch_load

            params = load_vgg16_state_dict(torch_load(str(path_or_obj)))
        return cls("vgg16", params, {"channels": list(FeatureConfig().channels)})
