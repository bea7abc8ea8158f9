"""Shared measuring code of the benchmarks: normalised relative error, timing, machine, output lines.

Only NumPy and the standard library here (torch is imported lazily where a function needs it), so
that ``gpu_check.py`` can use this module on a machine with nothing but torch, diffusers and NumPy.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: smallest positive error shown on a log plot; an error of exactly 0 is drawn here
LOG_FLOOR = 1e-17


# --- accuracy -------------------------------------------------------------------------------------


def linear_terms_scale(step: Callable, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Σ_k |c_k·in_k| elementwise: the magnitude of the terms of a step that is linear in its inputs.

    ``step(**inputs)`` must be linear in every array input (true of every sampler update without
    clipping: x_next = a·x + b·model_output + c·z, with a, b, c fixed by the schedule). The
    coefficient c_k is found by calling ``step`` with in_k = 1 and every other input 0. This is the
    scale of the rounding error of evaluating the sum (Higham: |fl(Σ t_k) - Σ t_k| <= γ_n Σ |t_k|),
    so an error normalised by it is a pure measure of rounding, independent of cancellation.
    """
    shape = np.shape(next(iter(inputs.values())))
    total = np.zeros(shape)
    for name, value in inputs.items():
        probe = {k: np.zeros(shape) for k in inputs}
        probe[name] = np.ones(shape)
        coef = np.asarray(step(**probe), dtype=np.float64)
        total = total + np.abs(coef * np.asarray(value, dtype=np.float64))
    return total


def normalised_rel_error(impl, oracle, scale) -> float:
    """max_i |impl_i - oracle_i| / scale_i, the error relative to the magnitude of the terms.

    ``scale`` is the sum of the absolute terms (see :func:`linear_terms_scale`; for a single
    quantity such as ᾱ or σ it is |oracle|). Where scale_i = 0 the error counts as 0 if impl_i is
    exactly oracle_i and as +inf otherwise. Any non-finite impl value gives +inf (not finite).
    Returns a float in [0, inf].
    """
    impl = np.asarray(impl, dtype=np.float64)
    oracle = np.asarray(oracle, dtype=np.float64)
    scale = np.broadcast_to(np.abs(np.asarray(scale, dtype=np.float64)), oracle.shape)
    if impl.shape != oracle.shape:
        raise ValueError(f"impl and oracle must have the same shape; got {impl.shape} and {oracle.shape}")
    if not np.all(np.isfinite(oracle)) or not np.all(np.isfinite(scale)):
        raise ValueError("oracle values and scales must be finite")
    if impl.size == 0:
        raise ValueError("impl and oracle must not be empty")
    if not np.all(np.isfinite(impl)):
        return math.inf
    diff = np.abs(impl - oracle)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff == 0, 0.0, np.inf))
    return float(rel.max())


def rel_error_series(impl, oracle) -> np.ndarray:
    """Elementwise |impl - oracle|/|oracle| of a one-term quantity (ᾱ_t, σ_t), the same rule as
    :func:`normalised_rel_error` with scale |oracle|: 0/0 = 0, x/0 = inf, non-finite impl = inf."""
    impl = np.asarray(impl, dtype=np.float64)
    oracle = np.asarray(oracle, dtype=np.float64)
    if impl.shape != oracle.shape:
        raise ValueError(f"impl and oracle must have the same shape; got {impl.shape} and {oracle.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(impl - oracle)
        scale = np.abs(oracle)
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff == 0, 0.0, np.inf))
    rel[~np.isfinite(impl)] = np.inf
    return rel


def unit_roundoff(dtype_name: str) -> float:
    """u = 2^-p of a float format with p significand bits (float16 p=11, bfloat16 8, float32 24)."""
    bits = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
    if dtype_name not in bits:
        raise ValueError(f"dtype_name must be one of {sorted(bits)}; got {dtype_name!r}")
    return 2.0 ** -bits[dtype_name]


# --- timing ---------------------------------------------------------------------------------------


def time_call(fn: Callable[[], object], repeats: int = 7, min_time: float = 0.05,
              warmup: int = 2) -> dict:
    """timeit-style timing of ``fn``: ``warmup`` calls, then a loop count n chosen so one repeat
    takes >= ``min_time`` s, then ``repeats`` repeats of n calls. Returns per-call seconds: median,
    min, max, the list of repeats and n."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for _ in range(max(warmup, 1)):
        fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 20:
            break
        n = max(n * 2, int(n * min_time / max(dt, 1e-9) * 1.1))
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        per_call.append((time.perf_counter() - t0) / n)
    return {"median": statistics.median(per_call), "min": min(per_call), "max": max(per_call),
            "repeats": per_call, "number": n}


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return str(seconds)
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= f:
            return f"{seconds / f:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_timing(t: dict) -> str:
    """'median [min – max]' of a :func:`time_call` result."""
    return f"{fmt_time(t['median'])} [{fmt_time(t['min'])} – {fmt_time(t['max'])}]"


def fmt_err(x: float) -> str:
    if math.isinf(x):
        return "not finite"
    if x == 0:
        return "0"
    return f"{x:.2e}"


# --- machine and output ---------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):  # no /proc (not Linux): fall back to what platform knows
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_description() -> dict[str, str]:
    """nproc, CPU model, Python, NumPy, torch (threads), diffusers and Hypothesis versions."""
    info = {"nproc": str(os.cpu_count()), "cpu": cpu_model(), "python": sys.version.split()[0],
            "platform": platform.platform(), "numpy": np.__version__}
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed"
    for mod in ("diffusers", "hypothesis"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "not installed"
    return info


def machine_markdown(info: dict[str, str] | None = None) -> str:
    info = info or machine_description()
    return "\n".join(f"- {k}: {v}" for k, v in info.items())


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells; the header has {len(header)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def headline(name: str, value: float | str) -> str:
    """One ``name: value`` line; the name is snake_case, the value a number (or 'n/a: reason')."""
    if not _NAME.match(name):
        raise ValueError(f"headline name must be snake_case ([a-z][a-z0-9_]*); got {name!r}")
    if isinstance(value, str):
        if "\n" in value:
            raise ValueError("headline value must be on one line")
        return f"{name}: {value}"
    value = float(value)
    return f"{name}: {value:.6g}"


HEADLINE_RE = re.compile(r"^([a-z][a-z0-9_]*): (\S.*)$")
