"""VGG-16 conv1_1..conv4_3 as a functional feature extractor (MetaCREST's frozen backbone).

Parameters travel as a ``name -> tensor`` dict (``conv1_1.weight`` ... ``conv4_3.bias``) so the
same code runs VGG-16's real weights and a compact CPU backbone of the same shape family.

Layers (``FeatureConfig()`` is VGG-16's shape so the published weights load)::

    conv1_1 3->64, conv1_2 64->64, maxpool 2/2
    conv2_1 64->128, conv2_2 128->128, maxpool 2/2
    conv3_1..conv3_3 128->256->256->256          (no pool3: CREST keeps stride 4)
    conv4_1..conv4_3 256->512->512->512           -> 512 channels at stride 4

Every conv is 3x3, padding 1, followed by ReLU. Input: RGB pixels minus (123.68, 116.779, 103.939).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from foundation.errors import UserError

__all__ = ["FeatureConfig", "LAYER_NAMES", "TORCHVISION_INDEX", "MEAN_RGB", "STRIDE", "param_shapes",
           "init_params", "preprocess", "extract", "load_vgg16_mat", "load_vgg16_state_dict"]

LAYER_NAMES: Tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                "conv3_3", "conv4_1", "conv4_2", "conv4_3")
# torchvision's vgg16().features indices of the same convolutions (ReLU/pool layers in between).
TORCHVISION_INDEX: Dict[str, int] = dict(zip(LAYER_NAMES, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)))
MEAN_RGB: Tuple[float, float, float] = (123.68, 116.779, 103.939)
STRIDE = 4                                  # two 2x2 pools; pool3 is dropped on purpose
_POOL_AFTER = ("conv1_2", "conv2_2")


@dataclass(frozen=True)
class FeatureConfig:
    """Output channels of the four VGG blocks; the default is VGG-16's. Fewer channels give a
    compact backbone with the same layers and stride (cheap enough for 2 CPU cores)."""

    channels: Tuple[int, int, int, int] = (64, 128, 256, 512)

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"FeatureConfig.channels needs 4 positive ints, got {self.channels}")

    @property
    def out_channels(self) -> int:
        return int(self.channels[3])


def param_shapes(config: FeatureConfig = FeatureConfig()) -> Dict[str, Tuple[int, ...]]:
    """name -> torch shape (``out x in x 3 x 3`` and ``out``) of every parameter, in forward order."""
    c1, c2, c3, c4 = (int(c) for c in config.channels)
    io = [(3, c1), (c1, c1), (c1, c2), (c2, c2), (c2, c3), (c3, c3), (c3, c3), (c3, c4), (c4, c4), (c4, c4)]
    shapes: Dict[str, Tuple[int, ...]] = {}
    for name, (cin, cout) in zip(LAYER_NAMES, io):
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    return shapes


def init_params(config: FeatureConfig = FeatureConfig(),
                generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """He-normal weights and zero biases: a starting point for training our compact backbone
    (on the CPU, where a seeded generator draws the same numbers for every device)."""
    params: Dict[str, Tensor] = {}
    for key, shape in param_shapes(config).items():
        if key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            params[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5  # device: CPU start
        else:
            params[key] = torch.zeros(shape)   # device: CPU start
    return params


def preprocess(image: Union[np.ndarray, Tensor]) -> Tensor:
    """RGB ``H x W x 3`` (or ``N x H x W x 3``) pixels in [0, 255] -> ``N x 3 x H x W`` minus the
    ImageNet mean, the only normalisation VGG-16 was trained with (no std scaling). A tensor
    stays on its device (the backbone's); numpy pixels give a CPU tensor."""
    x = (image.float() if isinstance(image, Tensor)
         else torch.from_numpy(np.array(image, dtype=np.float32)))   # device: numpy in, CPU out
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 or N x H x W x 3 RGB, got {tuple(x.shape)}")
    mean = torch.tensor(MEAN_RGB, dtype=x.dtype, device=x.device)
    return (x - mean).permute(0, 3, 1, 2).contiguous()


def extract(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """conv1_1..conv4_3 (+ReLU each) on preprocessed ``N x 3 x H x W`` -> ``N x C x H/4 x W/4``
    (floor division per pool). Channel counts come from the weights, so any FeatureConfig runs."""
    for name in LAYER_NAMES:
        x = F.relu(F.conv2d(x, params[f"{name}.weight"], params[f"{name}.bias"], padding=1))
        if name in _POOL_AFTER:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
    return x


def _check_shapes(params: Mapping[str, Tensor], config: FeatureConfig, source: str) -> None:
    for key, shape in param_shapes(config).items():
        layer = key.split(".")[0]
        if key not in params:
            raise UserError(f"{source}: layer {layer} is missing ({key})")
        got = tuple(params[key].shape)
        if got != shape:
            raise UserError(f"{source}: layer {layer} has {key.split('.')[1]} shape {got}, expected {shape}")


def load_vgg16_mat(path: Union[str, Path], config: FeatureConfig = FeatureConfig()) -> Dict[str, Tensor]:
    """MatConvNet's ``imagenet-vgg-verydeep-16.mat`` (read by :mod:`tracker.matconvnet`) -> our
    params dict: conv1_1..conv4_3 by name, later layers ignored. A missing layer or a shape that
    does not match ``config`` raises UserError naming the layer, so a wrong file fails at load."""
    from ..matconvnet import read_conv_layers, to_torch

    found = {layer.name: layer for layer in read_conv_layers(str(path))}
    params: Dict[str, Tensor] = {}
    for name in LAYER_NAMES:
        if name not in found:
            raise UserError(f"{path}: layer {name} is missing")
        params[f"{name}.weight"] = to_torch(found[name].filters)
        params[f"{name}.bias"] = torch.from_numpy(  # device: CPU, as read; the tracker moves the backbone
            np.ascontiguousarray(found[name].biases, dtype=np.float32))
    _check_shapes(params, config, str(path))
    return params


def load_vgg16_state_dict(obj: Mapping[str, Any], config: FeatureConfig = FeatureConfig()) -> Dict[str, Tensor]:
    """A torchvision-style VGG-16 state dict (``features.{0,2,5,...,21}.weight/bias``; extra keys
    such as the classifier are ignored; a ``{'state_dict': ...}`` wrapper is accepted) -> our params."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise UserError(f"VGG-16 state dict: expected a mapping, got {type(obj).__name__}")
    params: Dict[str, Tensor] = {}
    for name, idx in TORCHVISION_INDEX.items():
        for part in ("weight", "bias"):
            key = f"features.{idx}.{part}"
            if key not in obj:
                raise UserError(f"VGG-16 state dict: layer {name} is missing ({key})")
            params[f"{name}.{part}"] = torch.as_tensor(obj[key]).detach().float().clone()  # device: obj's
    _check_shapes(params, config, "VGG-16 state dict")
    return params
