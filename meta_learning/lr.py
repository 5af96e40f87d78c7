"""Meta-SGD inner learning rates: scalar, per tensor, or element-wise; learned or fixed."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["LR_MODES", "InnerLR"]

LR_MODES = ("scalar", "per_tensor", "elementwise")


def _key(name: str) -> str:
    # ParameterDict keys may not contain "."; "__" never occurs in torch's generated names.
    return name.replace(".", "__")


class InnerLR(nn.Module):
    """Holds the inner-loop learning rates for a set of parameter tensors.

    ``mode="scalar"`` is one rate shared by all tensors (MAML when fixed), ``"per_tensor"`` one
    per tensor, ``"elementwise"`` one per parameter element (Meta-SGD; MetaSDNet/MetaCREST).
    ``learn=False`` keeps them as buffers so they are saved but never meta-updated.
    """

    def __init__(self, shapes: Mapping[str, Sequence[int]], mode: str = "scalar",
                 init: float = 0.01, learn: bool = False, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if mode not in LR_MODES:
            raise ValueError(f"learning-rate mode must be one of {LR_MODES}, got {mode!r}")
        self.mode = mode
        self.learn = learn
        self.names = list(shapes)
        if mode == "scalar":
            tensors = {"all": torch.full((), float(init), dtype=dtype)}
        elif mode == "per_tensor":
            tensors = {_key(n): torch.full((), float(init), dtype=dtype) for n in self.names}
        else:
            tensors = {_key(n): torch.full(tuple(s), float(init), dtype=dtype) for n, s in shapes.items()}
        for k, t in tensors.items():
            if learn:
                self.register_parameter("lr_" + k, nn.Parameter(t))
            else:
                self.register_buffer("lr_" + k, t)

    def rates(self) -> Dict[str, Tensor]:
        """name -> rate tensor (0-d, or the parameter's shape for element-wise)."""
        if self.mode == "scalar":
            lr = getattr(self, "lr_all")
            return {n: lr for n in self.names}
        return {n: getattr(self, "lr_" + _key(n)) for n in self.names}

    def load_rates(self, rates: Mapping[str, Tensor], strict: bool = False) -> None:
        """Copy rates (name -> tensor, e.g. from a checkpoint) into the held ones; names this
        module does not adapt are ignored unless ``strict``."""
        if self.mode == "scalar":
            raise ValueError("load_rates needs per-tensor or element-wise rates")
        with torch.no_grad():
            for name, rate in rates.items():
                if name not in self.names:
                    if strict:
                        raise KeyError(f"no inner rate for {name!r}")
                    continue
                getattr(self, "lr_" + _key(name)).copy_(torch.as_tensor(rate))

    def forward(self) -> Dict[str, Tensor]:  # pragma: no cover - alias
        return self.rates()

    def extra_repr(self) -> str:
        return f"mode={self.mode}, learn={self.learn}, tensors={len(self.names)}"
