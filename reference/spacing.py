"""Sample-step selection (Table 2) and the Euler-family σ schedules.

Timesteps are 0-based (0..T-1) and descending, as implementations use them. The paper's
1-based numbers come from :func:`to_paper_timesteps`, an explicit +1.
Every rounding is done exactly, on integers, half to even (NumPy's ``round``), so the oracle's
timesteps are those of the exact rational formulas.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from .schedules import Schedule

SPACINGS = ("linspace", "leading", "trailing")
INTERPOLATIONS = ("linear", "log_linear")
FINAL_SIGMAS = ("zero", "sigma_min")


def _round_ratio(num: np.ndarray, den: int) -> np.ndarray:
    """round(num/den), half to even, exactly, for integer num >= 0 and den > 0."""
    q, r = np.divmod(num, den)
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


def timesteps(spacing: str, num_train_timesteps: int, num_inference_steps: int,
              steps_offset: int = 0) -> np.ndarray:
    """The S timesteps a sampler evaluates, descending, 0-based (int64).

    ``linspace`` (iDDPM): round(linspace(0, T-1, S)), reversed.
    ``leading`` (DDIM, PNDM): k·⌊T/S⌋ + steps_offset, k = S-1..0.
    ``trailing`` (DPM-Solver; the paper's fix): round(T - k·T/S) - 1, k = 0..S-1; starts at T-1.

    Accepted: 1 <= T <= 2**24, 1 <= S <= T, 0 <= steps_offset <= T-1 (leading only), so every
    product formed (at most T·S <= 2**48) is exact in int64.
    """
    _checks.choice("spacing", spacing, SPACINGS)
    T = _checks.num_train_timesteps(num_train_timesteps)
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, T, high_name="num_train_timesteps")
    offset = _checks.integer("steps_offset", steps_offset, 0, T - 1, high_name="num_train_timesteps - 1")
    if offset and spacing != "leading":
        raise ValueError(f"steps_offset applies only to leading spacing; got steps_offset={offset} "
                         f"with {spacing!r}")
    k = np.arange(S, dtype=np.int64)
    if spacing == "linspace":
        out = _round_ratio(k * (T - 1), S - 1)[::-1] if S > 1 else np.zeros(1, np.int64)
    elif spacing == "leading":
        out = (k * (T // S))[::-1] + offset
        if out[0] > T - 1:
            raise ValueError(f"leading spacing with steps_offset={offset} reaches t={out[0]} > T-1={T - 1} "
                             f"(num_train_timesteps={T}, num_inference_steps={S}); "
                             f"use steps_offset <= {T - 1 - (S - 1) * (T // S)}")
    else:
        out = _round_ratio(T * (S - k), S) - 1
    return np.ascontiguousarray(out, dtype=np.int64)


def fractional_timesteps(spacing: str, num_train_timesteps: int, num_inference_steps: int,
                         steps_offset: int = 0) -> np.ndarray:
    """Timesteps of the Euler family (k-diffusion, diffusers' Euler schedulers), float64, descending.

    ``linspace`` is left unrounded: (S-1-k)·(T-1)/(S-1); ``leading`` and ``trailing`` are the
    integers of :func:`timesteps`. σ at fractional t comes from :func:`sigma_at`.
    """
    out = timesteps(spacing, num_train_timesteps, num_inference_steps, steps_offset).astype(np.float64)
    S, T = int(num_inference_steps), int(num_train_timesteps)  # validated by timesteps
    if spacing == "linspace" and S > 1:
        k = np.arange(S - 1, -1, -1, dtype=np.float64)
        out = k * (T - 1) / (S - 1)
    return out


def to_paper_timesteps(timesteps) -> np.ndarray:
    """0-based implementation timesteps → the paper's 1-based ones (Table 2): t + 1, as int64.

    ``timesteps``: integers (any integer dtype; lists) in [0, 2**24 - 1]; the result never wraps
    around (uint8 255 gives 256)."""
    t = _checks.int_array("timesteps", timesteps, 0, _checks.MAX_TRAIN_TIMESTEPS - 1,
                          bound=" (0-based, T <= 2**24)")
    return t + 1


def from_paper_timesteps(timesteps) -> np.ndarray:
    """The paper's 1-based timesteps → 0-based: t - 1, as int64.

    ``timesteps``: integers in [1, 2**24]; the result never wraps around (uint8 0 is an error,
    not 255)."""
    t = _checks.int_array("timesteps", timesteps, 1, _checks.MAX_TRAIN_TIMESTEPS,
                          bound=" (the paper's timesteps are 1-based, T <= 2**24)")
    return t - 1


def sigma_at(schedule: Schedule, t, interpolation: str = "linear") -> np.ndarray:
    """Euler-family σ at (possibly fractional) training timesteps t in [0, T-1].

    ``linear``: σ interpolated linearly in t (diffusers' Euler ``interpolation_type="linear"``).
    ``log_linear``: log σ interpolated linearly in t (k-diffusion's ``t_to_sigma``).
    At zero terminal SNR σ_{T-1} = +inf, and so is σ at any t in (T-2, T-1].
    """
    return _sigma_at(schedule, t, interpolation, "t")


def _sigma_at(schedule, t, interpolation, name):
    _checks.schedule("schedule", schedule)
    _checks.choice("interpolation", interpolation, INTERPOLATIONS)
    t = _checks.array(name, t)
    T = schedule.num_train_timesteps
    _checks.in_range(name, t, 0.0, T - 1, bound=f" (the schedule's T-1; T = {T})")
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, T - 1)
    w = t - lo
    sig = schedule.euler_sigma
    s_lo, s_hi = sig[lo], sig[hi]
    with np.errstate(invalid="ignore", divide="ignore"):
        if interpolation == "linear":
            mixed = s_lo + w * (s_hi - s_lo)
        else:
            mixed = np.exp(np.log(s_lo) + w * (np.log(s_hi) - np.log(s_lo)))
    # exact at integer t; +inf whenever an infinite endpoint carries weight
    return np.where(w == 0, s_lo, np.where(np.isinf(s_hi), np.inf, mixed))


def euler_sigmas(schedule: Schedule, timesteps, interpolation: str = "linear",
                 final_sigma: str = "zero") -> np.ndarray:
    """σ at each timestep followed by the final σ: length S+1, as Euler samplers consume it.

    ``final_sigma="zero"`` ends on clean data; ``"sigma_min"`` ends at σ of t = 0.
    """
    _checks.choice("final_sigma", final_sigma, FINAL_SIGMAS)
    t = _checks.array("timesteps", timesteps)
    if t.ndim > 1:
        raise ValueError(f"timesteps must be 1-D (or a scalar); got shape {t.shape}")
    sig = _sigma_at(schedule, t, interpolation, "timesteps")
    last = 0.0 if final_sigma == "zero" else schedule.euler_sigma[0]
    if math.isinf(last):
        raise ValueError("final_sigma='sigma_min' ends at σ of t = 0, which is inf for this schedule (T = 1 at "
                         "zero SNR); use final_sigma='zero'")
    return np.concatenate([np.atleast_1d(sig), [last]])


def karras_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int,
                  rho: float = 7.0) -> np.ndarray:
    """Karras et al. (2022) Eq. 5: (σ_max^(1/ρ) + k/(S-1)·(σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, descending.

    Needs a finite σ_max: at zero terminal SNR σ_max = ∞ and every σ of this schedule would be
    ∞. Use a floored schedule (:func:`reference.schedules.with_terminal_floor`) for Karras σ.
    Accepted: 1 <= S <= 2**24, 0 < σ_min <= σ_max finite, ρ > 0 with σ^(1/ρ) finite.
    """
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    rho = _checks.real("rho", rho, 0.0, low_open=True)
    lo = _checks.real("sigma_min", sigma_min, 0.0, low_open=True, allow_inf=True)
    hi = _checks.real("sigma_max", sigma_max, 0.0, low_open=True, allow_inf=True)
    if np.isinf(hi) or np.isinf(lo):
        raise ValueError("karras_sigmas needs finite sigma_min and sigma_max; zero terminal SNR gives "
                         "σ_max = inf, for which the Karras schedule is inf everywhere. Use a floored "
                         "schedule (with_terminal_floor) or a sampler that starts from σ = inf directly.")
    if lo > hi:
        raise ValueError(f"sigma_min={lo} must not exceed sigma_max={hi}")
    ramp = np.linspace(0.0, 1.0, S) if S > 1 else np.zeros(1)
    try:
        a, b = hi ** (1.0 / rho), lo ** (1.0 / rho)
    except OverflowError:
        a = b = math.inf
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise ValueError(f"rho={rho!r} is too small for sigma_min={lo!r}, sigma_max={hi!r}: σ^(1/ρ) is not a "
                         f"finite positive float64 (needs ρ >= ~log2(σ)/1024)")
    # (1-r)·a + r·b, not a + r·(b-a): no cancellation near σ_min, exact at r = 0 and r = 1. The
    # endpoints are then set exactly (x^(1/ρ))^ρ alone is off by ~ρ/2 ulp) and the interior kept in
    # [σ_min, σ_max], where the exact values lie.
    with np.errstate(over="ignore", under="ignore"):  # clipped into [σ_min, σ_max] right away
        out = np.clip(((1.0 - ramp) * a + ramp * b) ** rho, lo, hi)
    out[0], out[-1] = hi, (lo if S > 1 else hi)
    # the exact values are non-increasing; rounding of nearly equal ones must not break that
    return np.minimum.accumulate(out)
