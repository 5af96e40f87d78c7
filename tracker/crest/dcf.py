"""MetaCREST's target model: CREST's discriminative correlation filter written as two convolutions.

``conv1`` (1x1, C -> 64 by default) reduces the frozen backbone features; ``cf`` (64 -> 1, kernel of
about the target's size in cells, odd, "same" padding) is the correlation filter, so the response map
has the search window's size and its arg-max is the target's shift. Parameters travel as a dict
(``conv1.weight``, ``conv1.bias``, ``cf.weight``, ``cf.bias``), the official MetaCREST checkpoint keys,
so the meta_learning engine can take a Meta-SGD step on them.

Also here: the Gaussian label, the masked loss, the 2-D Hann window, resizing the meta-learned filter
template (and its element-wise rates) to a target's kernel size, and reading the peak's shift.
Reference: ``shared/reference/tracking.md``, section MetaCREST.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.errors import UserError

__all__ = ["PARAM_NAMES", "REDUCED_CHANNELS", "LABEL_A", "LABEL_SIGMA", "MASK_THRESHOLD", "odd",
           "kernel_size", "param_shapes", "init_params", "forward", "gaussian_label", "masked_loss",
           "hann2d", "resize_template", "response_peak", "load_official_crest", "TargetModel", "sized_start",
           "response_loss", "RESIDUAL_BRANCHES", "residual_params", "residual_forward", "one_map_conv", "peak_to_sidelobe"]

PARAM_NAMES: Tuple[str, ...] = ("conv1.weight", "conv1.bias", "cf.weight", "cf.bias")
REDUCED_CHANNELS = 64      # 1x1 reduction width (Meta-Tracker: 512 -> 64)
LABEL_A = 0.3              # label: exp(-a (x^2/sx^2 + y^2/sy^2))
LABEL_SIGMA = 0.1          # s = 0.1 x target size in cells
MASK_THRESHOLD = 0.1       # loss mask m = [|X - C| >= 0.1]


def odd(n: float) -> int:
    """``n`` rounded, bumped up to odd (at least 1): "same" padding needs an odd kernel so the
    response stays centred on the window."""
    k = max(1, int(round(n)))
    return k if k % 2 == 1 else k + 1


def kernel_size(target_hw_cells: Tuple[float, float]) -> Tuple[int, int]:
    """Correlation-filter kernel (h, w) for a target of that size in feature cells: about the
    target's size, odd."""
    return odd(target_hw_cells[0]), odd(target_hw_cells[1])


def param_shapes(in_channels: int, kernel_hw: Tuple[int, int],
                 reduced: int = REDUCED_CHANNELS) -> Dict[str, Tuple[int, ...]]:
    """name -> shape of the four parameters."""
    kh, kw = kernel_hw
    return {"conv1.weight": (reduced, in_channels, 1, 1), "conv1.bias": (reduced,),
            "cf.weight": (1, reduced, kh, kw), "cf.bias": (1,)}


def init_params(in_channels: int, kernel_hw: Tuple[int, int], reduced: int = REDUCED_CHANNELS,
                generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """Small random weights (zero biases): the start of meta-training, or of the ordinary
    N-iteration CREST start, before any learning. Drawn on the CPU, where a seeded generator gives
    the same numbers for every device; the caller moves them."""
    shapes = param_shapes(in_channels, kernel_hw, reduced)
    p = {k: torch.zeros(s) for k, s in shapes.items()}   # device: CPU start, see above
    p["conv1.weight"] = (torch.randn(shapes["conv1.weight"], generator=generator)  # device: CPU start
                         * (1.0 / in_channels) ** 0.5)
    p["cf.weight"] = torch.randn(shapes["cf.weight"], generator=generator) * 1e-3  # device: CPU start
    return p


def forward(params: Mapping[str, Tensor], features: Tensor) -> Tensor:
    """``N x C x H x W`` features -> ``N x 1 x H x W`` response (1x1 reduction, then the filter
    with "same" padding). The kernel must be odd so output cell ``i`` is centred on input ``i``.
    Residual branches present in ``params`` (``res_s.*``, ``res_t.*``) add their outputs."""
    kh, kw = params["cf.weight"].shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"correlation-filter kernel must be odd, got {kh} x {kw}")
    x = F.conv2d(features, params["conv1.weight"], params["conv1.bias"])
    out = one_map_conv(x, params["cf.weight"], params["cf.bias"], (kh // 2, kw // 2))
    for branch in RESIDUAL_BRANCHES:
        if f"{branch}.conv1.weight" in params:
            out = out + residual_forward(params, branch, features)
    return out


# CREST's residual branches: "res_s" (spatial) is learned at frame 1 and then kept, "res_t"
# (temporal) starts as its copy and follows the online updates with the base filter.
RESIDUAL_BRANCHES = ("res_s", "res_t")
RESIDUAL_WIDTH = 32


def residual_params(in_channels: int, branch: str, width: int = RESIDUAL_WIDTH,
                    generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """A residual branch (1x1 conv C -> width, ReLU, 3x3 conv width -> 1) whose last layer is
    zero, so adding it leaves the response unchanged until it is trained. On the CPU, like
    :func:`init_params`."""
    return {f"{branch}.conv1.weight": torch.randn(width, in_channels, 1, 1, generator=generator)  # device: CPU
            * (2.0 / in_channels) ** 0.5,
            f"{branch}.conv1.bias": torch.zeros(width),   # device: CPU start
            f"{branch}.conv2.weight": torch.zeros(1, width, 3, 3),   # device: CPU start
            f"{branch}.conv2.bias": torch.zeros(1)}   # device: CPU start


def residual_forward(params: Mapping[str, Tensor], branch: str, features: Tensor) -> Tensor:
    """One residual branch's ``N x 1 x H x W`` output."""
    x = F.relu(F.conv2d(features, params[f"{branch}.conv1.weight"], params[f"{branch}.conv1.bias"]))
    return one_map_conv(x, params[f"{branch}.conv2.weight"], params[f"{branch}.conv2.bias"], (1, 1))


def _channel_correlations(x: Tensor, weight: Tensor, padding: Tuple[int, int]) -> Tensor:
    """``sum_c x[:, c] (*) weight[0, c]``: one depthwise convolution, then the sum over channels."""
    c = weight.shape[1]
    return F.conv2d(x, weight.reshape(c, 1, *weight.shape[-2:]), padding=padding, groups=c).sum(1, keepdim=True)


class _OneMapConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, padding)`` for a ``1 x C x kh x kw`` weight (stride 1), with every
    pass written as depthwise convolutions: on a CPU the convolution kernels' single-output case
    (forward, input and weight gradients) is several times slower. The backward is made of
    differentiable operations, so meta-training's second-order gradients go through it."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Tuple[int, int]) -> Tensor:
        out = _channel_correlations(x, weight, padding)
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, _bias, padding = inputs
        ctx.save_for_backward(x, weight)
        ctx.padding = padding

    @staticmethod
    def backward(ctx, g: Tensor):
        x, weight = ctx.saved_tensors
        (ph, pw), (kh, kw) = ctx.padding, weight.shape[-2:]
        n, c = x.shape[:2]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:    # the transposed convolution, per channel
            gx = F.conv2d(g.expand(n, c, *g.shape[-2:]), weight.flip(-2, -1).reshape(c, 1, kh, kw),
                          padding=(kh - 1 - ph, kw - 1 - pw), groups=c)
        if ctx.needs_input_grad[1]:    # each (sample, channel) plane correlated with its sample's g
            xp = F.pad(x, (pw, pw, ph, ph)).reshape(1, n * c, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)
            gn = g.expand(n, c, *g.shape[-2:]).reshape(n * c, 1, *g.shape[-2:])
            gw = F.conv2d(xp, gn, groups=n * c).reshape(n, c, kh, kw).sum(0, keepdim=True)
        if ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None


def one_map_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Tuple[int, int]) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` for a one-output-channel ``weight``: the
    correlation filter and the residual branches' last layer. The same sums in another order
    (float rounding apart), several times faster on a CPU, in tracking and in training."""
    return _OneMapConv.apply(x, weight, bias, tuple(padding))


class TargetModel(nn.Module):
    """The target model as a module (``conv1``, ``cf``): what the engine's MetaLearner holds as
    the meta-learned start. ``cf.weight`` is the template at its stored size; each target gets a
    resized copy (:func:`sized_start`)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        w1, wc = params["conv1.weight"], params["cf.weight"]
        self.conv1 = nn.Conv2d(w1.shape[1], w1.shape[0], 1)
        self.cf = nn.Conv2d(wc.shape[1], 1, tuple(wc.shape[-2:]))
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(params[name])

    def forward(self, features: Tensor) -> Tensor:
        return forward(dict(self.named_parameters()), features)


def sized_start(start: Mapping[str, Tensor], rates: Mapping[str, Tensor],
                kernel_hw: Tuple[int, int]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """The start and its element-wise rates for one target: the filter template and its rates
    resized to ``kernel_hw``, the rest as is. Differentiable, so meta-training learns the
    template through every target size it meets."""
    w, a = resize_template(start["cf.weight"], rates["cf.weight"], kernel_hw)
    return {**start, "cf.weight": w}, {**rates, "cf.weight": a}


def response_loss(params: Mapping[str, Tensor], batch: Tuple[Tensor, Tensor]) -> Tensor:
    """The masked loss of ``(features N x C x H x W, labels N x H x W)``: the engine's loss_fn for
    the frame-1 step, meta-training and the online updates alike."""
    features, labels = batch
    return masked_loss(forward(params, features)[:, 0], labels)


def gaussian_label(map_hw: Tuple[int, int], target_hw_cells: Tuple[float, float],
                   shift: Tuple[float, float] = (0.0, 0.0), a: float = LABEL_A,
                   sigma_factor: float = LABEL_SIGMA, device: Optional[torch.device] = None) -> Tensor:
    """The regression target ``exp(-a (x^2/sx^2 + y^2/sy^2))`` on an ``H x W`` map, with
    ``s = sigma_factor x target size in cells`` per axis and (x, y) measured from the centre cell
    ``(H // 2, W // 2)`` plus ``shift = (dy, dx)`` (memory frames store shifted labels).
    1 at the target's centre; narrow so the filter localises to a cell. On ``device`` (that of
    the features it is compared with; torch's default when None)."""
    h, w = map_hw
    sy = max(sigma_factor * float(target_hw_cells[0]), 1e-6)
    sx = max(sigma_factor * float(target_hw_cells[1]), 1e-6)
    y = torch.arange(h, dtype=torch.float32, device=device) - (h // 2 + shift[0])
    x = torch.arange(w, dtype=torch.float32, device=device) - (w // 2 + shift[1])
    return torch.exp(-a * ((y[:, None] / sy) ** 2 + (x[None, :] / sx) ** 2))


def masked_loss(response: Tensor, label: Tensor, threshold: float = MASK_THRESHOLD) -> Tensor:
    """The reference's loss, as written: ``sum((exp(C) * m * (X - C))^2) / (sum(m) + 1)`` with
    ``m = [|X - C| >= threshold]``, X the response and C the label.

    exp(C) weights errors near the peak more (the peak is rare, the background everywhere); the
    mask drops cells already within 0.1 so the many easy background cells do not dominate; the
    +1 keeps the loss finite when nothing is masked in. The mask is a constant (no gradient).
    """
    diff = response - label
    m = (diff.detach().abs() >= threshold).to(diff.dtype)
    return torch.sum((torch.exp(label) * m * diff) ** 2) / (m.sum() + 1.0)


def hann2d(h: int, w: int, device: Optional[torch.device] = None) -> Tensor:
    """``H x W`` outer product of symmetric Hann windows: multiplied into the features, it damps
    the crop's border (background, out-of-image padding) so responses favour the centre. On
    ``device`` (the features'; torch's default when None)."""
    return torch.outer(torch.hann_window(h, periodic=False, device=device),
                       torch.hann_window(w, periodic=False, device=device))


def resize_template(weight: Tensor, alpha: Tensor, kernel_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Bilinearly resize the meta-learned filter ``1 x C x kh x kw`` and its element-wise learning
    rate (same shape) to a target's kernel size: one learned start serves every target size.

    Differentiable (meta-training backpropagates through it); alpha always keeps the filter's
    shape. No energy rescaling: the response scale is learned through the resized start.
    """
    if tuple(alpha.shape) != tuple(weight.shape):
        raise ValueError(f"alpha shape {tuple(alpha.shape)} differs from the filter's {tuple(weight.shape)}")
    kh, kw = int(kernel_hw[0]), int(kernel_hw[1])
    if tuple(weight.shape[-2:]) == (kh, kw):
        return weight, alpha
    size = (kh, kw)
    w2 = F.interpolate(weight, size=size, mode="bilinear", align_corners=False)
    a2 = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
    return w2, a2


def response_peak(response: Tensor, subcell: bool = False) -> Tuple[float, float]:
    """(dy, dx) of the response's arg-max from the centre cell ``(H // 2, W // 2)``, in cells
    (the caller multiplies by the stride, 4 px, and by its frame scale). Accepts ``H x W`` or any
    leading singleton dims. ``subcell``: refine each axis by the vertex of the parabola through
    the peak and its two neighbours (at most half a cell), so slow motion is not lost to the
    4-pixel grid."""
    r = response.detach()
    while r.dim() > 2:
        if r.shape[0] != 1:
            raise ValueError(f"one response map expected, got shape {tuple(response.shape)}")
        r = r[0]
    h, w = r.shape
    idx = int(torch.argmax(r))
    i, j = idx // w, idx % w
    dy, dx = float(i - h // 2), float(j - w // 2)
    if subcell:
        dy += _vertex(r[i - 1, j] if i > 0 else None, r[i, j], r[i + 1, j] if i + 1 < h else None)
        dx += _vertex(r[i, j - 1] if j > 0 else None, r[i, j], r[i, j + 1] if j + 1 < w else None)
    return dy, dx


def _vertex(left: Optional[Tensor], mid: Tensor, right: Optional[Tensor]) -> float:
    """Offset of the parabola's vertex through three samples at -1, 0, 1 (0 at a border)."""
    if left is None or right is None:
        return 0.0
    a, b, c = float(left), float(mid), float(right)
    curvature = a - 2.0 * b + c
    if curvature >= 0.0:      # not a maximum (flat or a valley): no refinement
        return 0.0
    return max(-0.5, min(0.5, 0.5 * (a - c) / curvature))


def load_official_crest(obj: Mapping[str, Any], in_channels: Optional[int] = None,
                        reduced: Optional[int] = None) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """The official MetaCREST checkpoint (``{'meta_init': {...}, 'meta_alpha': {...}}`` with
    ``conv1.*`` and ``cf.*``) -> (init, alpha) param dicts.

    Checks the layout and that every alpha has its weight's shape (Meta-SGD's element-wise rate),
    raising UserError naming the key; ``in_channels``/``reduced`` also pin the backbone width.
    A ``module.`` prefix (DataParallel) is stripped.
    """
    if not isinstance(obj, Mapping):
        raise UserError(f"MetaCREST checkpoint: expected a mapping, got {type(obj).__name__}")
    parts = []
    for part in ("meta_init", "meta_alpha"):
        d = obj.get(part)
        if not isinstance(d, Mapping):
            raise UserError(f"MetaCREST checkpoint: no '{part}' dict (keys: {sorted(map(str, obj))})")
        d = {(k[len("module."):] if str(k).startswith("module.") else str(k)): v for k, v in d.items()}
        out: Dict[str, Tensor] = {}
        for key in PARAM_NAMES:
            if key not in d:
                raise UserError(f"MetaCREST checkpoint: '{part}' lacks {key}")
            out[key] = torch.as_tensor(d[key]).detach().float().clone()   # device: where the file was mapped
        parts.append(out)
    init, alpha = parts
    w1, wc = init["conv1.weight"], init["cf.weight"]
    for key, t in (("conv1.weight", w1), ("cf.weight", wc)):
        if t.dim() != 4:
            raise UserError(f"MetaCREST checkpoint: meta_init {key} has shape {tuple(t.shape)}, expected 4-D")
    r, c = int(w1.shape[0]), int(w1.shape[1])
    kh, kw = int(wc.shape[-2]), int(wc.shape[-1])
    expected = param_shapes(c if in_channels is None else in_channels, (kh, kw), r if reduced is None else reduced)
    for key in PARAM_NAMES:
        if tuple(init[key].shape) != expected[key]:
            raise UserError(f"MetaCREST checkpoint: meta_init {key} has shape {tuple(init[key].shape)}, "
                            f"expected {expected[key]}")
        if tuple(alpha[key].shape) != expected[key]:
            raise UserError(f"MetaCREST checkpoint: meta_alpha {key} has shape {tuple(alpha[key].shape)}, "
                            f"expected {expected[key]} (alpha must match its weight)")
    return init, alpha


def peak_to_sidelobe(response: Tensor, exclude: int) -> float:
    """Peak-to-sidelobe ratio of one ``H x W`` response: (peak - mean) / std of the cells farther
    than ``exclude`` cells (Chebyshev) from the arg-max; a sharp lone peak scores high, a flat or
    many-peaked map (nothing like the target in view) low. 0 when the sidelobe is empty or flat."""
    r = response.detach().reshape(response.shape[-2], response.shape[-1]).double()
    h, w = r.shape
    idx = int(torch.argmax(r))
    i, j = idx // w, idx % w
    keep = torch.ones_like(r, dtype=torch.bool)
    keep[max(0, i - exclude):i + exclude + 1, max(0, j - exclude):j + exclude + 1] = False
    side = r[keep]
    if side.numel() < 2:
        return 0.0
    std = float(side.std())
    return 0.0 if std <= 1e-12 else float((r[i, j] - side.mean()) / std)
