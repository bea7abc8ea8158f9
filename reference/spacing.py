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
    lo, hi = _sigma_range(sigma_min, sigma_max, "karras_sigmas")
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


def _sigma_range(sigma_min, sigma_max, what: str) -> tuple[float, float]:
    lo = _checks.real("sigma_min", sigma_min, 0.0, low_open=True, allow_inf=True)
    hi = _checks.real("sigma_max", sigma_max, 0.0, low_open=True, allow_inf=True)
    if np.isinf(hi) or np.isinf(lo):
        raise ValueError(f"{what} needs finite sigma_min and sigma_max; zero terminal SNR gives σ_max = inf, "
                         "from which this schedule is undefined. Implementations floor ᾱ_T first (diffusers: "
                         "2⁻²⁴, σ_max = 4096; ComfyUI: σ_max = 4518.76; with_terminal_floor).")
    if lo > hi:
        raise ValueError(f"sigma_min={lo} must not exceed sigma_max={hi}")
    return lo, hi


def _ramp(S: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, S) if S > 1 else np.zeros(1)


def exponential_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int) -> np.ndarray:
    """σ evenly spaced in log σ, descending (k-diffusion's ``get_sigmas_exponential``, diffusers'
    ``use_exponential_sigmas``): exp((1 - k/(S-1))·ln σ_max + k/(S-1)·ln σ_min), k = 0..S-1.

    Needs a finite σ_max (see :func:`karras_sigmas`); the endpoints are exact, the values stay in
    [σ_min, σ_max] and non-increasing. Accepted: 1 <= S <= 2**24, 0 < σ_min <= σ_max finite.
    """
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    lo, hi = _sigma_range(sigma_min, sigma_max, "exponential_sigmas")
    r = _ramp(S)
    out = np.clip(np.exp((1.0 - r) * math.log(hi) + r * math.log(lo)), lo, hi)
    out[0], out[-1] = hi, (lo if S > 1 else hi)
    return np.minimum.accumulate(out)


def beta_sigmas(sigma_min: float, sigma_max: float, num_inference_steps: int, alpha: float = 0.6,
                beta: float = 0.6) -> np.ndarray:
    """σ at the quantiles of a Beta(α, β) distribution, descending (Lee et al. 2024, "Beta
    Sampling is All You Need"; diffusers' ``use_beta_sigmas``): σ_min + F⁻¹(1 - k/(S-1))·(σ_max -
    σ_min), k = 0..S-1, F⁻¹ the Beta quantile (scipy.special.betaincinv; needs SciPy).

    Needs a finite σ_max (see :func:`karras_sigmas`). Accepted: 1 <= S <= 2**24,
    0 < σ_min <= σ_max finite, α, β > 0 finite.
    """
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    lo, hi = _sigma_range(sigma_min, sigma_max, "beta_sigmas")
    a = _checks.real("alpha", alpha, 0.0, low_open=True)
    b = _checks.real("beta", beta, 0.0, low_open=True)
    ppf = _beta_quantile(a, b, 1.0 - _ramp(S))
    if not np.all(np.isfinite(ppf)):
        raise ValueError(f"the Beta({a!r}, {b!r}) quantile is not finite here; allowed: alpha and beta whose "
                         "quantiles SciPy can compute (e.g. 0.01 <= alpha, beta <= 100)")
    out = np.clip(lo + ppf * (hi - lo), lo, hi)
    out[0] = hi
    if S > 1:
        out[-1] = lo
    return np.minimum.accumulate(out)


def _beta_quantile(a: float, b: float, q: np.ndarray) -> np.ndarray:
    """F⁻¹(q) of Beta(a, b): SciPy's betaincinv, refined by two Newton steps on the forward
    regularised incomplete Beta function (betaincinv alone is off by up to ~1e-12 absolute, e.g.
    betaincinv(1.75, 1.75, 0.5) = 0.5 + 1.0e-12, where the exact quantile is 1/2 by symmetry)."""
    try:
        from scipy.special import betainc, betaincinv, betaln
    except ImportError:
        raise ImportError("beta_sigmas needs SciPy for the Beta quantile: pip install scipy") from None
    p = betaincinv(a, b, q)
    inside = (p > 0.0) & (p < 1.0)
    for _ in range(2):
        pi = np.where(inside, p, 0.5)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            log_pdf = (a - 1.0) * np.log(pi) + (b - 1.0) * np.log1p(-pi) - betaln(a, b)
            step = (betainc(a, b, pi) - q) / np.exp(log_pdf)
        new = pi - step
        ok = inside & np.isfinite(new) & (new > 0.0) & (new < 1.0)
        p = np.where(ok, new, p)
    return p


def timestep_from_sigma(schedule: Schedule, sigma) -> np.ndarray:
    """The fractional training timestep of a VE σ: t(σ) piecewise linear in ln σ between the
    schedule's own σ_t (the inverse of ``sigma_at(..., "log_linear")``; diffusers' and
    k-diffusion's ``_sigma_to_t``), clipped to [0, T-1].

    σ below σ_0 gives 0. At zero terminal SNR σ_{T-1} = inf: every finite σ >= σ_{T-2} maps to
    T-2 (ln σ is interpolated towards infinity) and σ = inf to T-1.
    """
    _checks.schedule("schedule", schedule)
    sig = _checks.array("sigma", sigma, allow_inf=True)
    _checks.in_range("sigma", sig, 0.0, np.inf)
    T = schedule.num_train_timesteps
    if T == 1:
        return np.zeros(sig.shape)
    with np.errstate(divide="ignore"):
        table = np.log(schedule.euler_sigma)  # increasing in t; +inf at t = T-1 with zero SNR
        ls = np.log(sig)
    idx = np.clip(np.searchsorted(table, ls, side="right") - 1, 0, T - 2)
    low, high = table[idx], table[idx + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(np.isinf(high), np.where(np.isinf(ls), 1.0, 0.0), (ls - low) / (high - low))
    return idx + np.clip(np.nan_to_num(w, nan=0.0, neginf=0.0), 0.0, 1.0)


def continuous_timesteps(sigmas) -> np.ndarray:
    """EDM's continuous noise conditioning c_noise = ¼·ln σ (Karras et al. 2022, Table 1; diffusers'
    ``timestep_type="continuous"`` for v-prediction), for σ > 0.

    Undefined at zero SNR: σ_T = inf gives c_noise = inf, a conditioning no network can take; a
    floored σ_max (diffusers: 4096) gives 2.08.
    """
    sig = _checks.array("sigmas", sigmas, allow_inf=True)
    if np.any(np.isinf(sig)):
        raise ValueError("sigmas must be finite: c_noise = ln(σ)/4 is infinite at σ = inf (zero SNR); "
                         "continuous conditioning needs a floored σ_max")
    _checks.in_range("sigmas", sig, 0.0, np.inf, low_open=True)
    return 0.25 * np.log(sig)


SIGMA_SCHEDULES = ("timesteps", "karras", "exponential", "beta")


def converted_euler_sigmas(schedule: Schedule, timesteps, sigma_schedule: str = "karras",
                           interpolation: str = "linear", final_sigma: str = "zero", rho: float = 7.0,
                           alpha: float = 0.6, beta: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, σ) of the Euler family with a converted σ schedule, as diffusers builds them:
    σ at the spacing's timesteps (:func:`sigma_at`) give σ_max (first) and σ_min (last); the S
    values of ``sigma_schedule`` ("karras": :func:`karras_sigmas`, "exponential", "beta";
    "timesteps": σ at the timesteps themselves) between them; each one's model timestep from
    :func:`timestep_from_sigma`; then the final σ (0, or σ_0 for "sigma_min"). Length S and S+1.

    At zero terminal SNR σ_max = inf and the converted schedules are undefined (a ValueError).
    """
    _checks.choice("sigma_schedule", sigma_schedule, SIGMA_SCHEDULES)
    _checks.choice("final_sigma", final_sigma, FINAL_SIGMAS)
    base = _sigma_at(schedule, timesteps, interpolation, "timesteps")
    ts = np.asarray(timesteps, np.float64).reshape(base.shape)
    if base.ndim != 1 or base.size == 0:
        raise ValueError(f"timesteps must be a non-empty 1-dimensional array; got shape {base.shape}")
    if np.any(np.diff(ts) > 0):
        raise ValueError("timesteps must be non-increasing (a denoising order, T-1 first)")
    S = base.size
    if sigma_schedule == "timesteps":
        sig, ts_out = base, ts
    else:
        lo, hi = float(base[-1]), float(base[0])
        if math.isinf(hi):
            raise ValueError(f"sigma_schedule={sigma_schedule!r} needs a finite σ_max, but the schedule has zero "
                             "terminal SNR (σ at timesteps[0] = inf); floor it first (with_terminal_floor; "
                             "diffusers: ᾱ_T = 2⁻²⁴, σ_max = 4096) or use sigma_schedule='timesteps'")
        if sigma_schedule == "karras":
            sig = karras_sigmas(lo, hi, S, rho)
        elif sigma_schedule == "exponential":
            sig = exponential_sigmas(lo, hi, S)
        else:
            sig = beta_sigmas(lo, hi, S, alpha, beta)
        ts_out = timestep_from_sigma(schedule, sig)
    last = 0.0 if final_sigma == "zero" else float(schedule.euler_sigma[0])
    return ts_out, np.concatenate([sig, [last]])
