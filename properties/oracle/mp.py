"""The oracle of the oracle: schedules, Algorithm 1 and sampler step coefficients in mpmath.

Used only by tests and benchmarks. Every quantity is computed straight from its textbook
definition (paper-facts.md: Table 1, Algorithm 1, Eqs. 20-22, k-diffusion's ancestral step), at
``DPS`` decimal digits, *not* by mirroring the float64 oracle's rearrangements. Float inputs
(β range, η, ᾱ, σ, the cosine offset, np.linspace's points) are taken as their exact binary
values -- ``mpf(0.0001)``, not ``mpf('0.0001')`` -- because the float64 oracle is judged as a
function of its float64 inputs. Step coefficients are exact rationals of those inputs up to one
square root, so they are formed with :class:`fractions.Fraction` and rounded once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import mpmath
import numpy as np

from reference.schedules import COSINE_MAX_BETA, COSINE_OFFSET, DEFAULT_BETA_RANGE

#: Working precision (decimal digits). The schedules lose at most ~6 digits to cancellation
#: (1 - ᾱ_0 = β_0 >= 1e-6, s_{T-2} - s_T >= ~β/2·s), far below 60 - 17.
DPS = 60

_ctx = mpmath.MPContext()
_ctx.dps = DPS
mpf = _ctx.mpf


def _exact(x) -> mpmath.mpf:
    """The exact binary value of a float (an mpf holds any float64 exactly)."""
    return mpf(float(x))


def _frac_to_mpf(q: Fraction):
    return mpf(q.numerator) / q.denominator


def _sqrt_frac(q: Fraction):
    """√q of an exact rational, correctly rounded at DPS digits."""
    if q < 0:
        raise ValueError(f"negative radicand {q}")
    return _ctx.sqrt(_frac_to_mpf(q))


# --- schedules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MpSchedule:
    """β_t, ᾱ_t and 1 - ᾱ_t (t = 0..T-1) as mpf, with the derived quantities of Table 1."""

    betas: tuple
    alphas_cumprod: tuple
    one_minus_alphas_cumprod: tuple

    def split(self, quantity: str) -> Split:
        """The :class:`Split` of a quantity (a field or a derived property), cached."""
        cache = self.__dict__.setdefault("_splits", {})
        if quantity not in cache:
            cache[quantity] = split(getattr(self, quantity))
        return cache[quantity]

    @cached_property
    def alphas(self) -> list:
        """α = 1 - β (per step)."""
        return [1 - b for b in self.betas]

    @cached_property
    def snr(self) -> list:
        """ᾱ/(1 - ᾱ)."""
        return [a / c for a, c in zip(self.alphas_cumprod, self.one_minus_alphas_cumprod)]

    @cached_property
    def log_snr(self) -> list:
        """log ᾱ - log(1 - ᾱ); -inf where ᾱ = 0."""
        return [(-_ctx.inf if a == 0 else _ctx.log(a) - _ctx.log(c))
                for a, c in zip(self.alphas_cumprod, self.one_minus_alphas_cumprod)]

    @cached_property
    def alpha(self) -> list:
        """√ᾱ (signal scale)."""
        return [_ctx.sqrt(a) for a in self.alphas_cumprod]

    @cached_property
    def sigma(self) -> list:
        """√(1 - ᾱ) (VP noise scale)."""
        return [_ctx.sqrt(c) for c in self.one_minus_alphas_cumprod]

    @cached_property
    def euler_sigma(self) -> list:
        """√((1 - ᾱ)/ᾱ) (Karras σ); +inf where ᾱ = 0."""
        return [(_ctx.inf if a == 0 else _ctx.sqrt(c / a))
                for a, c in zip(self.alphas_cumprod, self.one_minus_alphas_cumprod)]


def _from_betas(betas: list) -> MpSchedule:
    """ᾱ_t = Π_{k<=t} (1 - β_k), 1 - ᾱ_t by subtraction (exact enough at DPS digits)."""
    abar, prod = [], mpf(1)
    for b in betas:
        prod = prod * (1 - b)
        abar.append(prod)
    return MpSchedule(tuple(betas), tuple(abar), tuple(1 - a for a in abar))


def _cosine_f(u: int, T: int):
    """f(u) = cos²(((u/T) + s)/(1 + s)·π/2), s = COSINE_OFFSET (exact float value); cospi makes
    f(T) exactly 0."""
    s = _exact(COSINE_OFFSET)
    x = (mpf(u) / T + s) / (1 + s)
    return _ctx.cospi(x / 2) ** 2


def _betas(name: str, T: int, start, end) -> list:
    if name in ("squaredcos_cap_v2", "cosine_unclipped"):
        f = [_cosine_f(u, T) for u in range(T + 1)]
        betas = [1 - f[t + 1] / f[t] for t in range(T)]
        if name == "squaredcos_cap_v2":
            cap = _exact(COSINE_MAX_BETA)
            betas = [min(b, cap) for b in betas]
        return betas
    start, end = _exact(start), _exact(end)
    if name == "sigmoid":
        # the float64 points of np.linspace are the formula's inputs: take them exactly
        return [(end - start) / (1 + _ctx.exp(-_exact(x))) + start for x in np.linspace(-6.0, 6.0, T)]
    ii = [mpf(t) / max(T - 1, 1) for t in range(T)]
    if name == "linear":
        return [start * (1 - i) + end * i for i in ii]
    if name == "scaled_linear":
        rs, re = _ctx.sqrt(start), _ctx.sqrt(end)
        return [(rs * (1 - i) + re * i) ** 2 for i in ii]
    raise ValueError(f"unknown schedule {name!r}")


def _rescale(sched: MpSchedule) -> MpSchedule:
    """Algorithm 1 as the paper states it: s = √ᾱ, s' = (s - s_T)·s_1/(s_1 - s_T), ᾱ' = s'²,
    β'_1 = 1 - ᾱ'_1, β'_t = 1 - ᾱ'_t/ᾱ'_{t-1}."""
    s = [_ctx.sqrt(a) for a in sched.alphas_cumprod]
    s1, sT = s[0], s[-1]
    new_s = [(x - sT) * s1 / (s1 - sT) for x in s]
    new_s[-1] = mpf(0)  # (s_T - s_T) is exactly 0 in mp too; stated for clarity
    abar = [x * x for x in new_s]
    betas = [1 - abar[0]] + [1 - abar[t] / abar[t - 1] for t in range(1, len(abar))]
    return MpSchedule(tuple(betas), tuple(abar), tuple(1 - a for a in abar))


def _floor(sched: MpSchedule, floor: float) -> MpSchedule:
    """ᾱ_T replaced by the (exact float) floor: 1 - ᾱ_T = 1 - floor, β_T = 1 - floor/ᾱ_(T-1)."""
    f = _exact(floor)
    prev = sched.alphas_cumprod[-2] if len(sched.betas) > 1 else mpf(1)
    return MpSchedule(sched.betas[:-1] + (1 - f / prev,), sched.alphas_cumprod[:-1] + (f,),
                      sched.one_minus_alphas_cumprod[:-1] + (1 - f,))


@functools.lru_cache(maxsize=256)
def mp_schedule(name: str, T: int, beta_start: float | None = None, beta_end: float | None = None,
                rescale: bool = False, terminal_floor: float | None = None) -> MpSchedule:
    """The exact schedule (to DPS digits) of reference.make_schedule's arguments."""
    if terminal_floor is not None:
        return _floor(mp_schedule(name, T, beta_start, beta_end, rescale), terminal_floor)
    T = int(T)
    if T < 1:
        raise ValueError(f"T must be >= 1; got {T}")
    if name in DEFAULT_BETA_RANGE:
        d_start, d_end = DEFAULT_BETA_RANGE[name]
        beta_start = d_start if beta_start is None else beta_start
        beta_end = d_end if beta_end is None else beta_end
    sched = _from_betas(_betas(name, T, beta_start, beta_end))
    if rescale:
        if T < 2:
            raise ValueError("rescaling needs T >= 2")
        sched = _rescale(sched)
    return sched


def mp_schedule_of(config) -> MpSchedule:
    """mp_schedule of a properties.strategies.ScheduleConfig (cached)."""
    return mp_schedule(config.name, config.num_train_timesteps, config.beta_start, config.beta_end,
                       config.rescale)


# --- sampler step coefficients (exact rationals of the float inputs, one rounded √) -------------


@dataclass(frozen=True)
class MpDDPM:
    """μ̃ = c_x0·x̂₀ + c_xt·x_t (paper Eq. 20) and the posterior standard deviations."""

    c_x0: object
    c_xt: object
    std_fixed_small: object
    std_fixed_large: object


def mp_ddpm(alpha_bar_t: float, alpha_bar_prev: float) -> MpDDPM:
    """Eq. 20 with α := ᾱ_t/ᾱ_prev, β = 1 - α: c_x0 = √ᾱ_prev·β/(1-ᾱ_t),
    c_xt = √α·(1-ᾱ_prev)/(1-ᾱ_t), β̃ = β(1-ᾱ_prev)/(1-ᾱ_t); std √β̃ (fixed_small), √β (fixed_large)."""
    a_t, a_p = Fraction(float(alpha_bar_t)), Fraction(float(alpha_bar_prev))
    beta = 1 - a_t / a_p
    c_x0 = _sqrt_frac(a_p) * _frac_to_mpf(beta / (1 - a_t))
    c_xt = _sqrt_frac(a_t / a_p) * _frac_to_mpf((1 - a_p) / (1 - a_t))
    if a_p == 1:
        # the oracle's convention (reference.ddpm_variance, as diffusers): no noise on the last
        # step, for every variance type -- √β would be √(1-ᾱ_t) there, but the loop lands on x̂₀
        return MpDDPM(c_x0, c_xt, mpf(0), mpf(0))
    return MpDDPM(c_x0, c_xt, _sqrt_frac(beta * (1 - a_p) / (1 - a_t)), _sqrt_frac(beta))


def mp_ddim(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> tuple:
    """(√(1 - ᾱ_prev - s²), s) with s = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1 - ᾱ_t/ᾱ_prev) (Eqs. 21-22)."""
    a_t, a_p, e = (Fraction(float(v)) for v in (alpha_bar_t, alpha_bar_prev, eta))
    s2 = e * e * (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
    return _sqrt_frac(1 - a_p - s2), _sqrt_frac(s2)


def mp_ancestral(sigma: float, sigma_next: float, eta: float) -> tuple:
    """(σ_down, σ_up): σ_up = min(σ_next, η·√(σ_next²(σ² - σ_next²)/σ²)), σ_down = √(σ_next² - σ_up²).
    At σ = inf, the limit: σ_up = η·σ_next, σ_down = σ_next·√(1 - η²)."""
    sn, e = Fraction(float(sigma_next)), Fraction(float(eta))
    if math.isinf(sigma):
        up2 = e * e * sn * sn
    else:
        sg = Fraction(float(sigma))
        up2 = min(sn * sn, e * e * sn * sn * (sg * sg - sn * sn) / (sg * sg))
    return _sqrt_frac(sn * sn - up2), _sqrt_frac(up2)


# --- error in ULPs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Exact values as float64 pairs hi + lo (hi = float(y), lo = float(y - hi)): ~106 bits, enough
    to measure a float's error in ULPs to ~2⁻⁵² relative, vectorised."""

    hi: np.ndarray
    lo: np.ndarray


def split(exact) -> Split:
    """The :class:`Split` of a sequence of mpf (±inf kept in hi, lo = 0)."""
    ys = [mpf(y) for y in exact]
    hi = np.array([float(y) for y in ys], dtype=np.float64)
    lo = np.array([float(y - mpf(h)) if math.isfinite(h) else 0.0 for y, h in zip(ys, hi)],
                  dtype=np.float64)
    return Split(hi, lo)


def ulp_error(x, exact) -> np.ndarray:
    """|x - exact| in units of the float64 ULP at the exact value, elementwise.

    ulp(y) = np.spacing(|float(y)|). ``exact``: a sequence of mpf (the difference is then formed
    in mpmath) or a :class:`Split` (then (x - hi) - lo in float64: exact by Sterbenz wherever x is
    within a factor 2 of the exact value, i.e. for every error below 2⁵² ULP; larger errors are
    reported to ~2⁻⁵² relative). 0 where both are 0 or both the same infinity; inf where exact is
    0 and x is not, where exactly one is infinite or the infinities differ, and where x is NaN.
    Returns an array of x's shape (at least 1-d).
    """
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if isinstance(exact, Split):
        hi, lo = exact.hi, exact.lo
        if hi.shape != xs.shape:
            raise ValueError(f"x has shape {xs.shape}, exact has {hi.shape}")
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs((xs - hi) - lo) / np.spacing(np.abs(hi))
        zero = (hi == 0) & (lo == 0)
        err = np.where(zero, np.where(xs == 0, 0.0, np.inf), err)
        either_inf = np.isinf(hi) | np.isinf(xs)
        err = np.where(either_inf, np.where(xs == hi, 0.0, np.inf), err)
        return np.where(np.isnan(xs), np.inf, err)
    flat = xs.ravel()
    ys = list(exact) if hasattr(exact, "__len__") else [exact]
    if len(ys) != flat.size:
        raise ValueError(f"x has {flat.size} values, exact has {len(ys)}")
    out = np.empty(flat.size, dtype=np.float64)
    for k, (xv, yv) in enumerate(zip(flat, ys)):
        yv = mpf(yv)
        if math.isnan(xv) or _ctx.isnan(yv):
            out[k] = np.inf
        elif _ctx.isinf(yv) or math.isinf(xv):
            same = _ctx.isinf(yv) and math.isinf(xv) and (yv > 0) == (xv > 0)
            out[k] = 0.0 if same else np.inf
        elif yv == 0:
            out[k] = 0.0 if xv == 0 else np.inf
        else:
            out[k] = float(abs(mpf(xv) - yv) / mpf(float(np.spacing(abs(float(yv))))))
    return out.reshape(xs.shape)


# --- training side: SNR and loss weights, from their papers' definitions --------------------------


def mp_snr(alpha_bar: float):
    """SNR = ᾱ/(1-ᾱ) of an exact float ᾱ."""
    a = _exact(alpha_bar)
    return a / (1 - a)


def mp_loss_weight(alpha_bar: float, prediction_type: str, weighting: str, gamma: float = 5.0,
                   k: float = 1.0):
    """The weight on the ε loss as each paper defines it from SNR (Min-SNR-γ: min(SNR, γ)/SNR;
    debiased: 1/√SNR; P2: (k + SNR)^-γ; uniform: 1), carried to the x₀ loss by × SNR and to the v
    loss by × SNR/(SNR + 1) (‖Δε‖² = SNR·‖Δx₀‖² = SNR/(SNR+1)·‖Δv‖²); a uniform weight is 1 on
    each loss. At SNR 0 the x₀ and v weights are their limits (0)."""
    s, g, kk = mp_snr(alpha_bar), _exact(gamma), _exact(k)
    if weighting == "uniform":
        return mpf(1)
    if s == 0:
        if prediction_type == "epsilon":
            raise ValueError("the epsilon weight is undefined at SNR 0")
        return mpf(0)
    eps_weight = {"min_snr": lambda: min(s, g) / s, "debiased": lambda: 1 / _ctx.sqrt(s),
                  "p2": lambda: (kk + s) ** (-g)}[weighting]()
    return eps_weight * {"epsilon": 1, "sample": s, "v_prediction": s / (s + 1)}[prediction_type]
