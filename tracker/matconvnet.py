"""The one reader of MatConvNet ``simplenn`` models (``imagenet-vgg-m.mat``, ``imagenet-vgg-verydeep-16.mat``).

Such a file holds ``layers``, a cell array of structs with ``name``, ``type`` and ``weights =
{filters [kh, kw, in, out], biases}`` (older "beta" files: ``filters`` / ``biases`` fields).
:func:`read_conv_layers` returns the convolutions in file order, in MATLAB's layout; each tracker
family picks its layers and checks their shapes (:mod:`tracker.sdnet.weights` takes VGG-M's
first three, :mod:`tracker.crest.features` VGG-16's conv1_1..conv4_3 by name), and
:func:`to_torch` turns a filter into torch's ``[out, in, kh, kw]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

import numpy as np

from foundation.errors import UserError

__all__ = ["ConvLayer", "read_conv_layers", "to_torch"]


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of the file: filters ``[kh, kw, in, out]`` (4-D), biases 1-D."""

    name: str
    filters: np.ndarray
    biases: np.ndarray


def _text(value: Any) -> str:
    """A MATLAB char array as loadmat returns it (possibly wrapped in object arrays) -> str."""
    while isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        if value.dtype.kind in "US":
            return str(value.ravel()[0]) if value.ndim == 0 or value.size == 1 else "".join(value.ravel())
        value = value.ravel()[0]
    return "" if value is None else str(value)


def _unwrap(value: Any) -> Any:
    """Strip the 1x1 object-array wrappers loadmat puts around cells and structs."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.ravel()[0]
    return value


def read_conv_layers(path: str) -> List[ConvLayer]:
    """Every layer of type ``conv`` (or without a type but with weights), in file order.

    A missing, unreadable or non-MatConvNet file, or a conv layer without filters and biases,
    is a one-line :class:`UserError`.
    """
    import scipy.io  # lazy: only this file format needs it

    path = str(path)
    try:
        mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False)
    except FileNotFoundError:
        raise UserError(f"weights file {path} does not exist") from None
    except Exception as err:  # noqa: BLE001 - scipy raises several types for a corrupt file
        raise UserError(f"cannot read {path} as a MATLAB .mat file: {str(err)[:200]}") from None
    if "layers" not in mat:
        raise UserError(f"{path}: no 'layers' cell array (is this a MatConvNet model?)")
    convs = []
    for cell in np.asarray(mat["layers"], dtype=object).ravel():
        layer = _unwrap(cell)
        name, kind = _text(getattr(layer, "name", "")), _text(getattr(layer, "type", ""))
        weights = getattr(layer, "weights", None)
        if weights is not None and np.asarray(weights).size >= 2:
            filters, biases = (np.asarray(_unwrap(w)) for w in np.asarray(weights, dtype=object).ravel()[:2])
        elif hasattr(layer, "filters") and hasattr(layer, "biases"):   # MatConvNet beta layout
            filters, biases = np.asarray(layer.filters), np.asarray(layer.biases)
        elif kind == "conv":
            raise UserError(f"{path}: conv layer {name} lacks filters or biases")
        else:
            continue
        if kind not in ("", "conv"):
            continue
        if not 2 <= filters.ndim <= 4:
            raise UserError(f"{path}: layer {name} has filters of shape {filters.shape}, "
                            "expected [kh, kw, in, out]")
        filters = filters.reshape(filters.shape + (1,) * (4 - filters.ndim))  # MATLAB drops trailing 1s
        convs.append(ConvLayer(name, filters, biases.reshape(-1)))
    return convs


def to_torch(filters: np.ndarray) -> Any:
    """MATLAB ``[kh, kw, in, out]`` filters -> a float32 torch tensor ``[out, in, kh, kw]``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(filters.transpose(3, 2, 0, 1), dtype=np.float32))
