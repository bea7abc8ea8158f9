"""Argument checks shared by every module of the oracle.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong value) with a message that names the argument, what it got and what is allowed.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {allowed}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(allowed)}")
    return value


def integer(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be >= {low}{upper}; got {value}")
    return value


def real(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    allow_inf: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite; got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value!r}")
    return value


def array(name: str, value: object, *, ndim: int | None = None, allow_inf: bool = False) -> np.ndarray:
    """A float64 copy of ``value``; rejects non-numeric, complex, NaN and (unless allowed) inf."""
    try:
        out = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 -- ragged lists and the like, re-raised as TypeError
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if out.dtype == object or not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise TypeError(f"{name} must be array-like of real numbers; got dtype {out.dtype}")
    if np.issubdtype(out.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {out.dtype}")
    out = out.astype(np.float64)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {out.shape}")
    bad = np.isnan(out) if allow_inf else ~np.isfinite(out)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if allow_inf else "NaN or inf"
        raise ValueError(f"{name} must not contain {what}; found {out[index]} at index {index}")
    return out


def in_range(name: str, values: np.ndarray, low: float, high: float, *, low_open: bool = False) -> None:
    bad = (values < low) | (values > high) | ((values == low) if low_open else False)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must lie in {interval}; found {values[index]!r} at index {index}")


def broadcastable(**arrays: np.ndarray) -> None:
    try:
        np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"shapes do not broadcast together: {shapes}") from None
