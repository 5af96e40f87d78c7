"""Batch norm (batch statistics) -> LeakyReLU -> 2x2 max-pool as one autograd op (the 4-conv's block).

The same function as the three torch layers with far less memory traffic on the CPU: the
statistics and the pooling are taken on the convolution's output ``x`` and only the pooled quarter
is normalised.  Max-pooling commutes with the per-channel map ``y = s (x - mean) + bias``,
``s = weight / sqrt(var + eps)``, because the map is monotone per channel (where ``s < 0`` the window's
minimum of ``x`` is the maximum of ``y``) and with LeakyReLU (monotone for slopes >= 0).  The backward
is written out (one pass over ``x`` for the statistics, a scatter for the pooling) with differentiable
operations, so second-order MAML differentiates through it.

Ties in a window go to the first of the tied elements, as in ``nn.MaxPool2d``; only where rounding in
the normalisation makes distinct ``x`` equal in ``y``, or a scale is exactly zero, does the gradient
take another (equally valid) element of the window.

With ``consume_input`` (the 4-conv passes its convolution's output straight in), a first-order
backward writes the input's gradient over the saved input instead of into a fresh buffer of that
size (on the CPU, large fresh buffers cost page faults): the same bits, less memory.

:func:`conv2d` is the 4-conv's convolution with a leaner double backward.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bn_lrelu_pool", "conv2d"]

_DIMS = (0, 2, 3)


def _channels_last(t: Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _planes(t: Tensor, cl: bool) -> Tensor:
    """(N, C, H, W) as (N, C, H*W) or, channels-last, as (N, H*W, C): a view for contiguous ``t``."""
    return t.permute(0, 2, 3, 1).flatten(1, 2) if cl else t.flatten(2)


def _unplanes(t: Tensor, shape: torch.Size, cl: bool) -> Tensor:
    n, c, h, w = shape
    return t.view(n, h, w, c).permute(0, 3, 1, 2) if cl else t.view(n, c, h, w)


def _stats(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over (N, H, W)."""
    if not _channels_last(x):
        return torch.batch_norm_update_stats(x, None, None, 0.0)
    # the CPU's channels-last batch-norm kernel sums in one pass (~1e-5 relative error on 84x84
    # batches); instead two-pass statistics of cache-sized chunks of samples, combined exactly (Chan et al.)
    step = max(1, (1 << 19) // max(1, x[0].numel()))
    means, m2, counts = [], [], []
    for xi in x.split(step):
        mi = xi.mean(_DIMS)
        means.append(mi)
        m2.append((xi - mi.view(1, -1, 1, 1)).square_().sum(_DIMS))
        counts.append(xi.shape[0])
    if len(means) == 1:
        return means[0], m2[0] / (x.numel() // x.shape[1])
    ms = torch.stack(means)
    w = torch.tensor(counts, dtype=x.dtype).view(-1, 1) * (x.numel() // (x.shape[0] * x.shape[1]))
    mean = (ms * w).sum(0) / w.sum()
    var = (torch.stack(m2).sum(0) + (w * (ms - mean).square()).sum(0)) / w.sum()
    return mean, var


class _BnLreluPool(torch.autograd.Function):
    """Outputs (out, mean, var, pooled x, argmax); the extra outputs keep the backward differentiable."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor, flip: Optional[Tensor], eps: float,
                slope: float, consume: bool) -> Tuple[Tensor, ...]:
        mean, var = _stats(x)
        if flip is None:
            pooled, idx = F.max_pool2d(x, 2, return_indices=True)
        else:   # argmax of -x where the scale is negative; pooled holds x there
            _, idx = F.max_pool2d(x * flip.view(1, -1, 1, 1), 2, return_indices=True)
            cl = _channels_last(x)
            pooled = _unplanes(_planes(x, cl).gather(1 if cl else 2, _planes(idx, cl)), idx.shape, cl)
        scale = (weight * (var + eps).rsqrt()).view(1, -1, 1, 1)
        out = torch.addcmul(bias.view(1, -1, 1, 1) - mean.view(1, -1, 1, 1) * scale, pooled, scale)
        return F.leaky_relu_(out, slope), mean, var, pooled, idx

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, _bias, _flip, eps, slope, consume = inputs
        out, mean, var, pooled, idx = output
        ctx.save_for_backward(x, weight, out, mean, var, pooled, idx)
        ctx.eps, ctx.slope = eps, slope
        # ``x`` may become the input's gradient in place: it is a temporary nobody else holds
        # (``consume``) and no differentiable backward has saved it yet (see ``backward``)
        ctx.consume = consume
        ctx.mark_non_differentiable(idx)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_out, g_mean, g_var, g_pooled, _g_idx):
        x, weight, out, mean, var, pooled, idx = ctx.saved_tensors
        graphed = torch.is_grad_enabled()
        if graphed:     # the differentiable operations below save x: it must stay as it is
            ctx.consume = False
        n = x.numel() // x.shape[1]
        rstd = (var + ctx.eps).rsqrt()
        scale = weight * rstd
        gm = g_mean if g_mean is not None else torch.zeros_like(mean)
        gv = g_var if g_var is not None else torch.zeros_like(var)
        gp, gw, gb = g_pooled, None, None
        if g_out is not None:
            gq = torch.ops.aten.leaky_relu_backward(g_out, out, ctx.slope, True)
            gb = gq.sum(_DIMS)
            gs = (gq * pooled).sum(_DIMS) - mean * gb          # d loss / d scale
            gw = gs * rstd
            gm = gm - scale * gb
            gv = gv - 0.5 * gs * scale / (var + ctx.eps)
            gqs = gq * scale.view(1, -1, 1, 1) if graphed else gq.mul_(scale.view(1, -1, 1, 1))
            gp = gqs if gp is None else gp + gqs
        gx = None
        if ctx.needs_input_grad[0]:
            # the statistics' part, c1 + c2 x (d var / d x = 2 (x - mean) / n), made as a plain
            # (N, H*W, C) or (N, C, H*W) tensor so that the pooling's part is added in place
            cl = _channels_last(x)
            c2 = gv * (2.0 / n)
            c1 = gm / n - c2 * mean
            shape = (1, 1, -1) if cl else (1, -1, 1)
            if ctx.consume and not graphed:   # no fresh x-sized buffer (page faults at this size)
                planes = _planes(x, cl)
                flat = torch.addcmul(c1.view(shape), planes, c2.view(shape), out=planes)
            else:
                flat = torch.addcmul(c1.view(shape), _planes(x, cl), c2.view(shape)).contiguous()
            if gp is not None:
                flat.scatter_add_(1 if cl else 2, _planes(idx, cl), _planes(gp, cl))
            gx = _unplanes(flat, x.shape, cl)
        return gx, gw, gb, None, None, None, None


def bn_lrelu_pool(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5,
                  negative_slope: float = 0.01, consume_input: bool = False) -> Tensor:
    """``max_pool2d(leaky_relu(batch_norm(x, batch statistics, weight, bias)), 2)`` for (N, C, H, W)
    ``x`` (contiguous or channels-last; the output keeps the layout); ``negative_slope >= 0``.

    ``consume_input``: ``x`` is a temporary that nothing else reads (e.g. a convolution's output
    passed straight in); a first-order backward may then overwrite it with its gradient instead
    of allocating one as large.  Backpropagating twice through that graph then fails loudly (the
    saved ``x`` was modified)."""
    if negative_slope < 0:
        raise ValueError(f"bn_lrelu_pool needs negative_slope >= 0, got {negative_slope}")
    if x.numel() // x.shape[1] <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
    if not (x.is_contiguous() or _channels_last(x)):
        x = x.contiguous()
    neg = weight.detach() < 0
    flip = torch.where(neg, -1.0, 1.0).to(x.dtype) if bool(neg.any()) else None
    return _BnLreluPool.apply(x, weight, bias, flip, eps, negative_slope, consume_input)[0]


def _weight_grad(g_out: Tensor, x: Tensor, weight: Tensor, padding: int) -> Tensor:
    return torch.ops.aten.convolution_backward(g_out, x, weight, None, [1, 1], [padding, padding], [1, 1], False,
                                               [0, 0], 1, [False, True, False])[1].contiguous()


class _ConvWeightGrad(torch.autograd.Function):
    """The weight gradient of ``conv2d(x, w)`` for output gradient ``g_out`` (linear in both)."""

    @staticmethod
    def forward(g_out: Tensor, x: Tensor, weight: Tensor, padding: int) -> Tensor:
        return _weight_grad(g_out, x, weight, padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        g_out, x, _w, padding = inputs
        ctx.save_for_backward(g_out, x)
        ctx.padding = padding

    @staticmethod
    def backward(ctx, gg_w):
        g_out, x = ctx.saved_tensors
        p = ctx.padding
        d_gout = F.conv2d(x, gg_w, padding=p) if ctx.needs_input_grad[0] else None
        d_x = F.conv_transpose2d(g_out, gg_w, padding=p) if ctx.needs_input_grad[1] else None
        return d_gout, d_x, None, None


class _ConvBackward(torch.autograd.Function):
    """Input and weight gradients of ``conv2d(x, w)`` in one call, differentiable."""

    @staticmethod
    def forward(g_out: Tensor, x: Tensor, weight: Tensor, padding: int) -> Tuple[Tensor, Tensor]:
        g_x, g_w, _ = torch.ops.aten.convolution_backward(g_out, x, weight, None, [1, 1], [padding, padding],
                                                          [1, 1], False, [0, 0], 1, [True, True, False])
        return g_x, g_w.contiguous()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        g_out, x, weight, padding = inputs
        ctx.save_for_backward(g_out, x, weight)
        ctx.padding = padding
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gg_x, gg_w):
        g_out, x, weight = ctx.saved_tensors
        p = ctx.padding
        d_gout = d_x = d_w = None
        if ctx.needs_input_grad[0]:
            if gg_x is not None:
                d_gout = F.conv2d(gg_x, weight, padding=p)
            if gg_w is not None:
                term = F.conv2d(x, gg_w, padding=p)
                d_gout = term if d_gout is None else d_gout + term
        if gg_w is not None and ctx.needs_input_grad[1]:
            d_x = F.conv_transpose2d(g_out, gg_w, padding=p)
        if gg_x is not None and ctx.needs_input_grad[2]:
            d_w = _ConvWeightGrad.apply(g_out, gg_x, weight, p)
        return d_gout, d_x, d_w, None


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(x: Tensor, weight: Tensor, padding: int) -> Tensor:
        return F.conv2d(x, weight, padding=padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, padding = inputs
        ctx.save_for_backward(x, weight)
        ctx.padding = padding

    @staticmethod
    def backward(ctx, g_out):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        p = ctx.padding
        if not torch.is_grad_enabled():
            g_x, g_w, _ = torch.ops.aten.convolution_backward(g_out, x, weight, None, [1, 1], [p, p], [1, 1], False,
                                                              [0, 0], 1, [need_x, need_w, False])
            return g_x, (g_w.contiguous() if g_w is not None else None), None
        if need_x:
            g_x, g_w = _ConvBackward.apply(g_out, x, weight, p)
            return g_x, (g_w if need_w else None), None
        return None, (_ConvWeightGrad.apply(g_out, x, weight, p) if need_w else None), None


def conv2d(x: Tensor, weight: Tensor, padding: int = 1) -> Tensor:
    """``F.conv2d(x, weight, padding=padding)`` (stride 1, no bias, one group) whose double backward
    skips what torch's computes without need (the input's gradient for an input that needs none, and
    the weight's through a transposed batch-channel convolution), and whose weight gradient arrives
    contiguous (torch gives channels-last weight gradients for channels-last input, which would make
    every later update of the weights mixed-layout)."""
    return _Conv.apply(x, weight, padding)
