"""Argument checks shared by every module of the oracle: one check per kind of argument.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong value) with a message that names the argument, what it got and what is allowed.
Relational checks (a shape, a bound that depends on another argument) name both arguments.
:func:`finite_result` turns an overflow of a finite computation into a ``ValueError`` that names
its inputs, instead of a silent inf/NaN with a NumPy ``RuntimeWarning``.

The accepted range of the integer arguments:

- ``num_train_timesteps`` T: 1 <= T <= :data:`MAX_TRAIN_TIMESTEPS` = 2**24. Every timestep
  t < T is then exact in float32 as well as float64, and every integer the spacings form
  (at most T·S <= 2**48) is exact in int64, so no integer overflow is possible.
- ``num_inference_steps`` S: 1 <= S <= T (for :func:`reference.karras_sigmas`, which has no T:
  1 <= S <= 2**24).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

#: the largest num_train_timesteps (T) the oracle accepts: 2**24, see the module docstring
MAX_TRAIN_TIMESTEPS = 2**24

_FLOAT_MAX = float(np.finfo(np.float64).max)

#: the largest finite variance-exploding σ the oracle takes: 2**511, so that σ² + 1 is finite
#: and ᾱ = 1/(σ² + 1) is a normal float64 (above it ᾱ underflows and the VP/VE conversion fails)
MAX_SIGMA = 2.0**511


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {allowed}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(allowed)}")
    return str(value)


def boolean(name: str, value: object) -> bool:
    """True or False (a Python or NumPy bool); anything else, even 0 or 1, is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return bool(value)


def integer(name: str, value: object, low: int, high: int | None = None, *, high_name: str | None = None) -> int:
    """An integer in [low, high]; ``high_name`` names the argument the upper bound comes from."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}" + (f" ({high_name})" if high_name else "")
        raise ValueError(f"{name} must be >= {low}{upper}; got {value}")
    return value


def num_train_timesteps(value: object, name: str = "num_train_timesteps") -> int:
    """T in [1, MAX_TRAIN_TIMESTEPS]."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) \
            and int(value) > MAX_TRAIN_TIMESTEPS:
        raise ValueError(f"{name} must be <= 2**24 = {MAX_TRAIN_TIMESTEPS} (the oracle's range of T: every "
                         f"timestep exact in float32, every spacing product exact in int64); got {int(value)}")
    return integer(name, value, 1)


def real(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    allow_inf: bool = False,
) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be within float64's range (|{name}| <= {_FLOAT_MAX:.6g}); got an integer "
                         f"of {len(str(abs(int(value))))} digits") from None
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite; got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value!r}")
    return value


def _asarray(name: str, value: object) -> np.ndarray:
    try:
        out = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 -- ragged lists and the like, re-raised as TypeError
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if out.dtype == bool:
        raise TypeError(f"{name} must hold real numbers, not booleans; got dtype bool")
    if out.dtype == object or not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.timedelta64):
        raise TypeError(f"{name} must be array-like of real numbers; got dtype {out.dtype}")
    if np.issubdtype(out.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {out.dtype}")
    return out


def array(name: str, value: object, *, ndim: int | None = None, allow_inf: bool = False) -> np.ndarray:
    """A float64 copy of ``value``; rejects non-numeric, boolean, complex, NaN and (unless allowed) inf."""
    out = _asarray(name, value)
    if out.dtype.itemsize > 8 and np.issubdtype(out.dtype, np.floating):  # long double: may exceed float64
        with np.errstate(over="ignore"):
            wide = out.astype(np.float64)
        if np.any(np.isinf(wide) & ~np.isinf(out)):
            raise ValueError(f"{name} must be within float64's range (|{name}| <= {_FLOAT_MAX:.6g})")
        out = wide
    else:
        out = out.astype(np.float64)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {out.shape}")
    bad = np.isnan(out) if allow_inf else ~np.isfinite(out)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if allow_inf else "NaN or inf"
        raise ValueError(f"{name} must not contain {what}; found {out[index]} at index {index}")
    return out


def int_array(name: str, value: object, low: int, high: int, *, bound: str = "") -> np.ndarray:
    """An int64 copy of an integer array with every value in [low, high] (``bound`` says where
    the range comes from). Floats, booleans and anything else are a TypeError; the range is
    checked before the conversion, so nothing wraps around."""
    out = _asarray(name, value)
    if not np.issubdtype(out.dtype, np.integer):
        raise TypeError(f"{name} must be integers; got dtype {out.dtype}")
    if out.size:
        lo, hi = int(out.min()), int(out.max())
        if lo < low or hi > high:
            bad = lo if lo < low else hi
            index = tuple(int(i) for i in np.argwhere(out == bad)[0])
            raise ValueError(f"{name} must lie in [{low}, {high}]{bound}; found {bad} at index {index}")
    return out.astype(np.int64)


def in_range(name: str, values: np.ndarray, low: float, high: float, *, low_open: bool = False,
             bound: str = "") -> None:
    bad = (values < low) | (values > high) | ((values == low) if low_open else False)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must lie in {interval}{bound}; found {values[index]!r} at index {index}")


def broadcastable(**arrays: np.ndarray) -> None:
    try:
        np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"shapes do not broadcast together: {shapes}") from None


def same_shape(**arrays: np.ndarray) -> None:
    (a, x), (b, y) = arrays.items()
    if np.shape(x) != np.shape(y):
        raise ValueError(f"{a} and {b} must have the same shape; got {np.shape(x)} and {np.shape(y)}")


def schedule(name: str, value: object):
    from .schedules import Schedule

    if not isinstance(value, Schedule):
        raise TypeError(f"{name} must be a Schedule (see make_schedule); got {type(value).__name__}")
    return value


def _magnitude(value) -> str:
    try:
        a = np.abs(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):  # an option that is not a number (e.g. a variance type)
        return repr(value)
    return f"{float(a.max()):.3g}" if a.size else "empty"


def finite_result(what: str, out, **inputs):
    """``out`` unchanged if every value in it is finite; else a ValueError saying that ``what``
    overflowed float64 for the finite ``inputs``, each named with its largest magnitude.

    The common case costs one reduction: a sum of finite values is finite unless it overflows,
    and only then are the elements checked one by one. Call it under
    ``np.errstate(over="ignore", invalid="ignore")`` around the computation."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(out)
    if math.isfinite(total) or np.all(np.isfinite(out)):
        return out
    parts = ", ".join(f"{k} (largest |{k}| = {_magnitude(v)})" for k, v in inputs.items())
    raise ValueError(f"{what} overflows float64 (beyond ±{_FLOAT_MAX:.4g}) for these finite inputs: {parts}. "
                     f"Scale the inputs down; the oracle returns no inf or NaN for finite inputs")
