"""The MetaSDNet network (MDNet's layout with one 2-way head), written functionally.

Parameters travel as a ``name -> tensor`` dict keyed like :meth:`nn.Module.named_parameters`
(``features.conv1.weight`` ... ``fc.fc6.bias``, the official Meta-Tracker checkpoint keys), so the
meta_learning engine can evaluate the network anywhere in parameter space and the tracker can split
the forward pass: :func:`conv_forward` once per frame (fast mode), :func:`fc_forward` on pooled
``C x 3 x 3`` features of many boxes.

Layers (``ModelConfig()`` of :mod:`.config`, re-exported here; VGG-M's shape so the official
weights load)::

    conv1 3->96 k7 s2, ReLU, LRN, maxpool 3/2
    conv2 96->256 k5 s2, ReLU, LRN, maxpool 3/2
    conv3 256->512 k3 s1, ReLU                   -> 512 x 3 x 3 on a 107 x 107 crop
    fc4 4608->512 ReLU, fc5 512->512 ReLU, fc6 512->2

``ModelConfig.small()`` is the CPU configuration with conv layers trained here (docs/tracker.md);
``ModelConfig.efficientnet()`` replaces conv1-3 by EfficientNet-Lite0's frozen ImageNet blocks
(:mod:`tracker.efficientnet`, weights from their package): the parameter dict then holds fc4-6
only, and boxes are pooled from the block's map at the same 3 x 3 places of their crops.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MEAN_PIXEL, MODEL_NAMES, ModelConfig
from .roi_align import crop_cells

__all__ = ["ModelConfig", "MetaSDNet", "lrn", "conv_forward", "conv_forward_dense", "fc_forward", "forward",
           "binary_loss", "init_params", "param_shapes", "CONV_NAMES", "FC_NAMES", "MEAN_PIXEL", "MODEL_NAMES"]

CONV_NAMES = ("conv1", "conv2", "conv3")
FC_NAMES = ("fc4", "fc5", "fc6")


def param_shapes(config: ModelConfig) -> Dict[str, Tuple[int, ...]]:
    """name -> shape of every parameter, in forward order (fc4-6 only on a frozen backbone)."""
    c1, c2, c3 = config.channels
    d = config.fc_dim
    conv = {
        "features.conv1.weight": (c1, 3, 7, 7), "features.conv1.bias": (c1,),
        "features.conv2.weight": (c2, c1, 5, 5), "features.conv2.bias": (c2,),
        "features.conv3.weight": (c3, c2, 3, 3), "features.conv3.bias": (c3,),
    } if config.learned_conv else {}
    return {
        **conv,
        "fc.fc4.weight": (d, config.feature_dim), "fc.fc4.bias": (d,),
        "fc.fc5.weight": (d, d), "fc.fc5.bias": (d,),
        "fc.fc6.weight": (2, d), "fc.fc6.bias": (2,),
    }


def lrn(x: Tensor) -> Tensor:
    """MatConvNet's VGG-M LRN: ``x / (2 + 1e-4 * sum_{5 neighbouring channels} x^2) ^ 0.75``.

    (torch's ``LocalResponseNorm`` divides alpha by the window size and uses k = 1 by default.)
    """
    sq = F.pad(x * x, (0, 0, 0, 0, 2, 2))                      # zero channels at both ends
    c = x.shape[1]
    summed = sq[:, 0:c] + sq[:, 1:c + 1] + sq[:, 2:c + 2] + sq[:, 3:c + 3] + sq[:, 4:c + 4]
    r = torch.rsqrt(2.0 + 1e-4 * summed)                        # d^-0.75 = d^-0.5 * (d^-0.5)^0.5
    return x * r * torch.sqrt(r)


def conv_forward(params: Mapping[str, Tensor], x: Tensor, config: ModelConfig,
                 dense: Union[bool, int] = False, last: str = "conv3") -> Tensor:
    """conv1-conv3 on a batch ``N x 3 x H x W`` of (pixel - 128) images -> ``N x C x h x w``.

    ``dense``: a grid 2x (``True`` or 2: stride 8 instead of 16 input pixels) or 4x (4: stride 4,
    MetaCREST's feature map) as dense, computed "a trous": every stride-2 layer after the
    requested density runs with stride 1 and every later layer dilates by the skipped factor, so
    output ``[f*i, f*j]`` is exactly the plain output ``[i, j]`` and the positions in between are
    the same network evaluated 16/f input pixels further. Density 2 costs conv3 and pool2 4x,
    density 4 also conv2 4x and conv3 16x; conv1 never changes. ``last="conv2"`` stops after
    conv2 (and its LRN): stride 8, or 4 at density 4, receptive field 27 pixels.
    """
    if last not in ("conv2", "conv3"):
        raise ValueError(f"last must be conv2 or conv3, got {last!r}")
    f = 2 if dense is True else (1 if dense is False else int(dense))
    if f not in (1, 2, 4):
        raise ValueError(f"dense must be False/True or a density of 1, 2 or 4, got {dense!r}")
    if not config.learned_conv:
        if f == 4 or last != "conv3":
            raise ValueError("an efficientnet-lite0 backbone gives its last block at density 1 or 2 only")
        return imagenet_forward(x, config, dense=f == 2)
    p = params
    x = F.relu(F.conv2d(x, p["features.conv1.weight"], p["features.conv1.bias"], stride=2))
    if config.lrn:
        x = lrn(x)
    x = F.max_pool2d(x, 3, 2)
    x = F.relu(F.conv2d(x, p["features.conv2.weight"], p["features.conv2.bias"], stride=2 if f < 4 else 1))
    if config.lrn:
        x = lrn(x)
    if last == "conv2":
        return x
    x = F.max_pool2d(x, 3, 2 if f == 1 else 1, dilation=1 if f < 4 else 2)
    return F.relu(F.conv2d(x, p["features.conv3.weight"], p["features.conv3.bias"], dilation=f))


_IMAGENET: Dict[Tuple[int, str], Dict[str, Tensor]] = {}


def imagenet_forward(x: Tensor, config: ModelConfig, dense: bool = False) -> Tensor:
    """The frozen EfficientNet-Lite0 blocks of ``config`` on (pixel - 128) images, stride 16 (8
    with ``dense``: the last strided layer a trous). Its folded ImageNet weights are read from
    their package once per process and device."""
    from .. import efficientnet as E

    key = (config.backbone_blocks, str(x.device))
    if key not in _IMAGENET:
        folded = E.fold_batch_norm(E.load_imagenet(), config.backbone_blocks)
        _IMAGENET[key] = {k: v.to(x.device) for k, v in folded.items()}
    dilate = E.dilate_for_stride(config.backbone_blocks, 8) if dense else None
    return E.features(_IMAGENET[key], (x + (MEAN_PIXEL - 127.0)) / 128.0, config.backbone_blocks, dilate)


def conv_forward_dense(params: Mapping[str, Tensor], x: Tensor, config: ModelConfig) -> Tensor:
    """:func:`conv_forward` with ``dense=True`` (the fast tracker's stride-8 feature map)."""
    return conv_forward(params, x, config, dense=True)


def fc_forward(params: Mapping[str, Tensor], feats: Tensor) -> Tensor:
    """fc4-fc6 on ``N x C x 3 x 3`` (or ``N x 9C`` flattened) pooled features -> ``N x 2`` logits."""
    p = params
    x = feats.reshape(feats.shape[0], -1)
    x = F.relu(F.linear(x, p["fc.fc4.weight"], p["fc.fc4.bias"]))
    x = F.relu(F.linear(x, p["fc.fc5.weight"], p["fc.fc5.bias"]))
    return F.linear(x, p["fc.fc6.weight"], p["fc.fc6.bias"])


def forward(params: Mapping[str, Tensor], crops: Tensor, config: ModelConfig) -> Tensor:
    """Logits of ``N x 3 x 107 x 107`` crops (exact mode)."""
    return fc_forward(params, crop_cells(conv_forward(params, crops, config), config))


def binary_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Summed (not mean) binary cross entropy: -sum log softmax[pos, 1] - sum log softmax[neg, 0]."""
    return F.cross_entropy(logits, labels.long(), reduction="sum")


def init_params(config: ModelConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> Dict[str, Tensor]:
    """A deterministic start that needs no ImageNet: He-normal conv filters and fc layers
    (MDNet initialises fc layers with N(0, 0.01), which is too small for random conv features),
    biases 0.1 for conv (so ReLUs are alive) and 0 for fc. Seeded; independent of global RNGs.
    Made on the CPU (a CPU generator draws the same numbers for every device); users move it."""
    g = torch.Generator().manual_seed(int(seed))
    out: Dict[str, Tensor] = {}
    for name, shape in param_shapes(config).items():
        if name.endswith("bias"):
            out[name] = torch.full(shape, 0.1 if name.startswith("features") else 0.0,  # device: CPU start
                                   dtype=dtype)
            continue
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        std = (2.0 / fan_in) ** 0.5
        if name == "features.conv1.weight":
            std /= MEAN_PIXEL / 2  # inputs span +-128: keep conv1 outputs O(1) before LRN
        if name == "fc.fc6.weight":
            std = 0.01
        out[name] = torch.randn(shape, generator=g, dtype=torch.float64).mul_(std).to(dtype)  # device: CPU start
    return out


class MetaSDNet(nn.Module):
    """The network as a module (``features.conv1`` ... ``fc.fc6``): what the engine's
    :class:`~meta_learning.MetaLearner` holds as the start; the maths is in the functions above."""

    def __init__(self, config: Optional[ModelConfig] = None,
                 params: Optional[Mapping[str, Tensor]] = None, seed: int = 0) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c1, c2, c3 = self.config.channels
        d = self.config.fc_dim
        if self.config.learned_conv:
            self.features = nn.Module()
            self.features.conv1 = nn.Conv2d(3, c1, 7, stride=2)
            self.features.conv2 = nn.Conv2d(c1, c2, 5, stride=2)
            self.features.conv3 = nn.Conv2d(c2, c3, 3, stride=1)
        self.fc = nn.Module()
        self.fc.fc4 = nn.Linear(self.config.feature_dim, d)
        self.fc.fc5 = nn.Linear(d, d)
        self.fc.fc6 = nn.Linear(d, 2)
        self.load_params(params if params is not None else init_params(self.config, seed))

    def load_params(self, params: Mapping[str, Tensor]) -> None:
        shapes = param_shapes(self.config)
        missing = sorted(set(shapes) - set(params))
        if missing:
            raise ValueError(f"parameters missing: {missing}")
        with torch.no_grad():
            for name, p in self.named_parameters():
                src = torch.as_tensor(params[name])   # device: the source's; copy_ moves it into p
                if tuple(src.shape) != tuple(p.shape):
                    raise ValueError(f"{name}: expected shape {tuple(p.shape)}, got {tuple(src.shape)}")
                p.copy_(src)

    def params(self) -> Dict[str, Tensor]:
        return dict(self.named_parameters())

    def conv(self, x: Tensor) -> Tensor:
        return conv_forward(self.params(), x, self.config)

    def head(self, feats: Tensor) -> Tensor:
        return fc_forward(self.params(), feats)

    def forward(self, crops: Tensor) -> Tensor:
        return forward(self.params(), crops, self.config)
