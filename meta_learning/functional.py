"""Functional core: named parameter dicts, parameter selection and the K-step inner loop.

Parameters travel as ``Dict[str, Tensor]`` keyed by ``nn.Module.named_parameters`` names, so any
module can be evaluated at any point in parameter space with :func:`torch.func.functional_call`
and the inner loop stays differentiable (second order) without copying modules.

Inner gradients are taken with :func:`torch.autograd.grad` in plain eager code (fastest for one
task at a time) and with :func:`torch.func.grad` when the call happens inside a ``torch.func``
transform such as ``vmap`` over a meta-batch (``autograd.grad`` cannot see through those).
"""
from __future__ import annotations

import fnmatch
import functools
import inspect
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

Params = Dict[str, Tensor]
LossFn = Callable[..., Tensor]
Selection = Union[str, Sequence[str], Callable[[str], bool], None]

__all__ = [
    "Params", "LossFn", "Selection", "named_params", "select_names", "head_names", "non_norm_names",
    "functional_loss", "in_functorch_transform", "inner_grads", "sgd_step", "inner_loop",
    "prepare_batch_norm", "detach_params",
]


def named_params(module: nn.Module, requires_grad_only: bool = False) -> Params:
    """The module's parameters as a name -> tensor dict (the tensors themselves, not copies)."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad or not requires_grad_only}


def detach_params(params: Mapping[str, Tensor], requires_grad: bool = False) -> Params:
    """Detached copies (sharing storage), optionally marked as leaves that require grad."""
    return {k: v.detach().requires_grad_(requires_grad) for k, v in params.items()}


def head_names(module: nn.Module) -> List[str]:
    """Names of the parameters of the last sub-module (in registration order) that owns any.

    "Head only" adaptation (ANIL-style, or the tracker's fc layers) needs this without the caller
    spelling out names.
    """
    last: Optional[str] = None
    for mod_name, mod in module.named_modules():
        if any(True for _ in mod.parameters(recurse=False)):
            last = mod_name
    if last is None:
        return []
    prefix = f"{last}." if last else ""
    return [prefix + n for n, _ in module.get_submodule(last).named_parameters(recurse=False)]


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def non_norm_names(module: nn.Module) -> List[str]:
    """Parameter names outside normalisation layers (batch/instance/layer/group norm)."""
    skip = set()
    for mod_name, mod in module.named_modules():
        if isinstance(mod, _NORM_TYPES):
            prefix = f"{mod_name}." if mod_name else ""
            skip.update(prefix + n for n, _ in mod.named_parameters(recurse=False))
    return [n for n, _ in module.named_parameters() if n not in skip]


def select_names(names: Iterable[str], spec: Selection, module: Optional[nn.Module] = None) -> List[str]:
    """Pick parameter names by a spec.

    ``"all"``/``None`` -> every name; ``"head"`` -> the last parameterised sub-module of ``module``;
    ``"no_norm"`` -> all but normalisation-layer parameters (the L2F/MAML++ convention for BN);
    a string or list of fnmatch patterns (``"fc*"``, ``"layer3.*.weight"``); or a predicate.
    A pattern that matches nothing raises, because a typo would otherwise silently freeze a model.
    """
    names = list(names)
    if spec is None or spec == "all":
        return names
    if spec in ("head", "no_norm"):
        if module is None:
            raise ValueError(f"selection {spec!r} needs the module")
        keep = set(head_names(module)) if spec == "head" else set(non_norm_names(module))
        return [n for n in names if n in keep]
    if callable(spec):
        return [n for n in names if spec(n)]
    patterns = [spec] if isinstance(spec, str) else list(spec)
    chosen = []
    for pat in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise ValueError(f"parameter pattern {pat!r} matches none of {names}")
        chosen.extend(hits)
    return [n for n in names if n in set(chosen)]


def prepare_batch_norm(module: nn.Module) -> nn.Module:
    """Make every batch-norm layer use batch statistics only (transductive, as in MAML).

    Running statistics are buffers mutated in place, which breaks ``vmap``/``grad`` and leaks
    information between tasks of a meta-batch; MAML normalises with the statistics of the batch
    at hand in training and testing alike.  Returns the module (modified in place).
    """
    from torch.func import replace_all_batch_norm_modules_

    return replace_all_batch_norm_modules_(module)


def functional_loss(model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor],
                    buffers: Optional[Mapping[str, Tensor]] = None) -> LossFn:
    """Build ``loss_fn(params, (x, y)) -> criterion(model_at(params)(x), y)``.

    Parameters not in ``params`` (e.g. frozen batch-norm affine parameters) are taken from the
    module itself, so ``params`` may hold only the adapted subset.
    """
    from torch.func import functional_call

    def loss_fn(params: Mapping[str, Tensor], batch: Tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        tensors = dict(params) if buffers is None else {**buffers, **params}
        return criterion(functional_call(model, tensors, (x,), strict=False), y)

    return loss_fn


def in_functorch_transform(*trees: Any) -> bool:
    """True if any tensor in the pytrees is wrapped by a torch.func transform (vmap/grad)."""
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    if check is None:  # pragma: no cover - very old torch
        return False
    for tree in trees:
        for leaf in pytree.tree_leaves(tree):
            if isinstance(leaf, Tensor) and check(leaf):
                return True
    return False


@functools.lru_cache(maxsize=256)
def _accepts_step(fn: Callable) -> bool:
    try:
        return "step" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def inner_grads(loss_fn: LossFn, params: Mapping[str, Tensor], batch: Any, names: Sequence[str],
                create_graph: bool, step: Optional[int] = None) -> Tuple[Tensor, Params]:
    """Loss at ``params`` and its gradient w.r.t. ``params[names]``.

    ``create_graph=False`` is first order: the gradient is computed at a detached copy so no graph
    through it is kept (MAML's first-order approximation treats it as a constant).
    ``loss_fn`` may take a ``step`` keyword (e.g. per-step batch-norm statistics).
    """
    try:
        wants_step = step is not None and _accepts_step(loss_fn)
    except TypeError:  # unhashable callable
        wants_step = step is not None and "step" in inspect.signature(loss_fn).parameters
    kwargs = {"step": step} if wants_step else {}
    frozen = {k: v for k, v in params.items() if k not in names}
    if in_functorch_transform(params, batch):
        from torch.func import grad_and_value

        def f(p: Params) -> Tensor:
            return loss_fn({**frozen, **p}, batch, **kwargs)

        sub = {n: params[n] for n in names}
        if not create_graph:
            sub = {n: v.detach() for n, v in sub.items()}
        g, loss = grad_and_value(f)(sub)
        return loss, g
    sub = {n: params[n] for n in names}
    if not create_graph:
        sub = detach_params(sub, requires_grad=True)
    else:
        for n, v in sub.items():
            if not v.requires_grad:  # a plain tensor start: make it differentiable
                sub[n] = v.detach().requires_grad_(True)
    loss = loss_fn({**frozen, **sub}, batch, **kwargs)
    g = torch.autograd.grad(loss, list(sub.values()), create_graph=create_graph, allow_unused=True)
    grads = {n: (gi if gi is not None else torch.zeros_like(sub[n])) for n, gi in zip(sub, g)}
    if not create_graph:
        loss = loss.detach()
    return loss, grads


def sgd_step(params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
             lrs: Union[float, Tensor, Mapping[str, Union[float, Tensor]]]) -> Params:
    """``theta - lr * g`` for the names in ``grads`` (others pass through unchanged).

    ``lrs`` is a number, a tensor, or a per-name mapping (Meta-SGD: scalar, per tensor, or
    element-wise tensors of the parameter's shape).
    """
    out = dict(params)
    for n, g in grads.items():
        lr = lrs[n] if isinstance(lrs, Mapping) else lrs
        out[n] = params[n] - lr * g
    return out


def inner_loop(loss_fn: LossFn, params: Mapping[str, Tensor], batch: Any, steps: int,
               lrs: Union[float, Tensor, Mapping[str, Union[float, Tensor]]],
               names: Optional[Sequence[str]] = None, first_order: bool = False,
               grad_transform: Optional[Callable[[Params, int], Params]] = None,
               path: Optional[List[Params]] = None) -> Tuple[Params, List[Tensor]]:
    """K steps of (Meta-)SGD on the support batch; returns adapted params and the support losses.

    ``grad_transform(grads, step)`` can rewrite each inner gradient (DropGrad uses it).
    Second order (default) keeps the whole graph so the query loss differentiates through it.
    If ``path`` is a list, the params before each step and after the last are appended to it
    (evaluation after 0, 1, ..., K steps in one pass).
    """
    names = list(params) if names is None else list(names)
    params = dict(params)
    losses: List[Tensor] = []
    if path is not None:
        path.append(params)
    for k in range(steps):
        loss, grads = inner_grads(loss_fn, params, batch, names, create_graph=not first_order, step=k)
        if grad_transform is not None:
            grads = grad_transform(grads, k)
        params = sgd_step(params, grads, lrs)
        losses.append(loss)
        if path is not None:
            path.append(params)
    return params, losses
