"""The seed's few-shot backbones: 4-conv and ResNet12 (L2F appendix C.1).

Batch norm as the engine documents for the MAML family (``functional.prepare_batch_norm``): no
running statistics (``track_running_stats=False``, i.e. the statistics of the batch at hand in
training and testing, transductive as in MAML); its affine parameters are meta-learned but neither
adapted in the inner loop nor attenuated (``MetaConfig(adapt="no_norm")``).  Convolutions have no
bias (batch norm follows each), so the 4-conv's adapted tensors are 4 conv weights plus the linear
weight and bias: 6, what L2F's attenuator sees; ResNet12's are 16 conv weights plus the head: 18.

On the CPU the 4-conv computes each batch norm -> LeakyReLU -> max-pool as one op
(:func:`.fused.bn_lrelu_pool`) on channels-last tensors, and its convolutions with a leaner double
backward (:func:`.fused.conv2d`): the same function, about twice as fast for a second-order
meta-update (``docs/results/engine_speed.md``); the modules and their state-dict keys are the standard ones,
and ``Conv4(..., fused=False)`` runs them one by one.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from ...functional import in_functorch_transform
from .fused import bn_lrelu_pool, conv2d

__all__ = ["Conv4", "ResNet12", "make_backbone", "BACKBONES"]

BACKBONES = ("conv4", "resnet12")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, track_running_stats=False)


class Conv4(nn.Module):
    """4 x [3x3 conv (``filters``, no bias), batch norm, LeakyReLU, 2x2 max-pool], flatten, linear.

    ``fused`` (default): on the CPU, outside ``torch.func`` transforms and ``torch.compile``, each
    block is :func:`.fused.conv2d` then :func:`.fused.bn_lrelu_pool` in channels-last (same results to
    float rounding); elsewhere, or if the layers were changed, the layers run one by one.  Subclasses
    of the layers (e.g. ``higher``'s patched copies) are taken to compute what the layers do."""

    def __init__(self, ways: int, in_channels: int = 3, image_size: int = 84, filters: int = 48,
                 negative_slope: float = 0.01, fused: bool = True) -> None:
        super().__init__()
        self.fused = fused
        layers: List[nn.Module] = []
        cin, side = in_channels, image_size
        for _ in range(4):
            layers += [nn.Conv2d(cin, filters, 3, padding=1, bias=False), _bn(filters),
                       nn.LeakyReLU(negative_slope), nn.MaxPool2d(2)]
            cin, side = filters, side // 2
        if side < 1:
            raise ValueError(f"the 4-conv needs images of at least 16 pixels, got {image_size}")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(filters * side * side, ways)

    def forward(self, x: Tensor) -> Tensor:
        blocks = self._fusable(x) if getattr(self, "fused", True) else None
        if blocks is None:
            return self.classifier(self.features(x).flatten(1))
        x = x.contiguous(memory_format=torch.channels_last)
        for conv, bn, act in blocks:
            x = bn_lrelu_pool(conv2d(x, conv.weight, conv.padding[0]), bn.weight, bn.bias, bn.eps,
                              act.negative_slope, consume_input=True)
        return self.classifier(x.flatten(1))

    def _fusable(self, x: Tensor) -> Optional[List[tuple]]:
        """(conv, bn, act) per block if the fused path computes what the layers do, else None."""
        layers = list(self.features)
        if (x.device.type != "cpu" or x.dim() != 4 or x.dtype not in (torch.float32, torch.float64)
                or len(layers) % 4 or torch.compiler.is_compiling()):
            return None
        blocks = []
        for conv, bn, act, pool in zip(*[iter(layers)] * 4):
            ok = (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.LeakyReLU)
                  and isinstance(pool, nn.MaxPool2d) and conv.bias is None and conv.stride == (1, 1)
                  and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
                  and isinstance(conv.padding, tuple) and conv.padding[0] == conv.padding[1]
                  and conv.kernel_size[0] == conv.kernel_size[1] and bn.running_mean is None and bn.running_var is None
                  and bn.weight is not None and act.negative_slope >= 0
                  and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
                  and pool.padding in (0, (0, 0)) and pool.dilation in (1, (1, 1))
                  and not pool.ceil_mode and not pool.return_indices)
            if not ok:
                return None
            blocks.append((conv, bn, act))
        if in_functorch_transform([x] + [t for c, b, _ in blocks for t in (c.weight, b.weight, b.bias)]):
            return None
        return blocks


class _Block(nn.Module):
    """Three 3x3 convs (BN + LeakyReLU after the first two, BN after the third), a 1x1 conv + BN
    shortcut, LeakyReLU, 2x2 max-pool."""

    def __init__(self, cin: int, cout: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), _bn(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn(cout)
        self.conv3, self.bn3 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))
        self.act = nn.LeakyReLU(negative_slope)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.pool(self.act(out + self.shortcut(x)))


class ResNet12(nn.Module):
    """4 residual blocks (64-128-256-512 by default), global average pooling, linear head."""

    def __init__(self, ways: int, in_channels: int = 3, channels: tuple = (64, 128, 256, 512),
                 negative_slope: float = 0.1) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for cout in channels:
            blocks.append(_Block(cin, cout, negative_slope))
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(cin, ways)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def make_backbone(name: str, ways: int, in_channels: int, image_size: int) -> nn.Module:
    """``conv4`` or ``resnet12`` for ``ways`` classes."""
    if name == "conv4":
        return Conv4(ways, in_channels, image_size)
    if name == "resnet12":
        if image_size < 16:
            raise ValueError(f"ResNet12 needs images of at least 16 pixels, got {image_size}")
        return ResNet12(ways, in_channels)
    raise ValueError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
