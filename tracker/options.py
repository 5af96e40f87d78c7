"""Tracking options are dataclasses; this checks a filled-in one against its defaults' types.

``--option update_lr=abc`` from a command line or ``make("mdnet", finetune_iters="30")`` from
Python must fail at once, in one line naming the option, not as a TypeError at frame 1 or a
value saved into weights. The rule is the default's type: a bool takes true/false, a word a
string, an integer an int, a number a finite int or float, a tuple of numbers any numbers, a
mixed tuple (a sampler such as ``("gaussian", 0.1, 1.2, 1.1)``) the same kinds in the same
places; a field typed ``Optional`` also takes None.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from foundation.errors import UserError

__all__ = ["check_option_types", "parse_key_values"]


def _number(v: Any, integral: bool = False) -> bool:
    if isinstance(v, bool) or not isinstance(v, int if integral else (int, float)):
        return False
    return integral or math.isfinite(v)


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (int, float)):
        return _number(value, isinstance(default, int) and not isinstance(default, bool))
    return True


def _want(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, str):
        return "a word"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a finite number"
    if isinstance(default, tuple) and all(_number(d) for d in default):
        return "numbers (a,b,...)"
    if isinstance(default, tuple):
        return f"{len(default)} values like {','.join(str(d) for d in default)}"
    return "a value"


def check_option_types(opts: Any, label: str) -> None:
    """Raise a one-line UserError for the first field of ``opts`` whose value has the wrong type."""
    defaults = type(opts)()
    for f in fields(opts):
        value, default = getattr(opts, f.name), getattr(defaults, f.name)
        if value is None and (default is None or "Optional" in str(f.type)):
            continue
        if isinstance(default, tuple):
            ok = isinstance(value, (list, tuple)) and len(value) > 0
            if ok and all(_number(d) for d in default):
                ok = all(_number(v) for v in value)
            elif ok:
                ok = len(value) == len(default) and all(_same_kind(v, d) for v, d in zip(value, default))
        else:
            ok = _same_kind(value, default)
        if not ok:
            raise UserError(f"{label} option {f.name} must be {_want(default)}, got {value!r}")


def _value(text: str) -> Any:
    if "," in text:   # a tuple option: scales=1,0.95,1.05
        return [_value(t.strip()) for t in text.split(",")]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_key_values(pairs: list, flag: str) -> dict:
    """``["a=1", "b=x", "c=1,2"]`` -> ``{"a": 1, "b": "x", "c": [1, 2]}`` (ints, floats, true/false
    and comma lists converted);
    a pair without ``=`` is one clear error naming ``flag``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} needs KEY=VALUE, got {pair!r}")
        out[key.strip()] = _value(value.strip())
    return out
