"""The seed's few-shot backbones: 4-conv and ResNet12 (L2F appendix C.1).

Batch norm as the engine documents for the MAML family (``functional.prepare_batch_norm``): no
running statistics (``track_running_stats=False``, i.e. the statistics of the batch at hand in
training and testing, transductive as in MAML); its affine parameters are meta-learned but neither
adapted in the inner loop nor attenuated (``MetaConfig(adapt="no_norm")``).  Convolutions have no
bias (batch norm follows each), so the 4-conv's adapted tensors are 4 conv weights plus the linear
weight and bias: 6, what L2F's attenuator sees; ResNet12's are 16 conv weights plus the head: 18.
"""
from __future__ import annotations

from typing import List

from torch import Tensor, nn

__all__ = ["Conv4", "ResNet12", "make_backbone", "BACKBONES"]

BACKBONES = ("conv4", "resnet12")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, track_running_stats=False)


class Conv4(nn.Module):
    """4 x [3x3 conv (``filters``, no bias), batch norm, LeakyReLU, 2x2 max-pool], flatten, linear."""

    def __init__(self, ways: int, in_channels: int = 3, image_size: int = 84, filters: int = 48,
                 negative_slope: float = 0.01) -> None:
        super().__init__()
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
        return self.classifier(self.features(x).flatten(1))


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
