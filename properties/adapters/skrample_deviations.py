"""Known deviations of skrample 0.7.0 (``scheduling.Scaled`` / ``ZSNR``, ``sampling.structured.Euler``)
from the oracle, each declared as a model of what skrample computes instead (properties/deviations.py).
The models are NumPy formulas of their own (they do not call skrample).
``python -m properties.adapters.skrample_repro`` reproduces each standalone; SKRAMPLE_DEVIATIONS.md
says what each is and where it comes from.
"""

from __future__ import annotations

import math

import numpy as np

from reference.schedules import DEFAULT_BETA_RANGE

from ..contract import SamplerConfig
from ..deviations import NON_FINITE, Deviation

SRC = "https://github.com/Beinsezii/skrample/blob/main/skrample/"
BOTH = ("euler", "euler_ancestral")
CONTINUOUS, TIMESTEPS, TERMINAL, FINAL = ("skrample-continuous-alphas-cumprod", "skrample-continuous-timesteps",
                                          "skrample-polar-alpha",
                                          "skrample-zsnr-final-level-not-clean")
#: α_T = cos(atan(∞)) = cos(fl(π/2)): ᾱ_T = α² = 3.7e-33, σ_T = sin/cos = 1.633e16
COS_HALF_PI = math.cos(math.atan(math.inf))


def _ids(E) -> set:
    return {d.id for d in E.sources}


def _continuous(c: SamplerConfig, t: np.ndarray) -> np.ndarray:
    """skrample's continuous ᾱ(t), t ∈ [0, 1]: exp(-T·(∫₀ᵗβ + ½∫₀ᵗβ²)) of β(u) = (r₀ + (r₁ - r₀)u)^k,
    r = β^(1/k) (k = 1 linear, 2 scaled_linear), in place of the discrete ∏(1 - β_i); with the
    zero-SNR rescale, Algorithm 1 applied to its square root anchored at ᾱ(0) = 1 and ᾱ(1)."""
    lo, hi = DEFAULT_BETA_RANGE[c.beta_schedule]
    b0 = lo if c.beta_start is None else c.beta_start
    b1 = hi if c.beta_end is None else c.beta_end
    k, T = (2 if c.beta_schedule == "scaled_linear" else 1), c.num_train_timesteps

    def abar(t):
        r0, r1 = b0 ** (1 / k), b1 ** (1 / k)
        slope = r1 - r0
        if abs(slope) < 1e-8:  # constant β
            i1, i2 = r0**k * t, r0 ** (2 * k) * t
        else:
            i1 = ((r0 + slope * t) ** (k + 1) - r0 ** (k + 1)) / (slope * (k + 1))
            i2 = ((r0 + slope * t) ** (2 * k + 1) - r0 ** (2 * k + 1)) / (slope * (2 * k + 1))
        return np.exp(-(T * (i1 + i2 / 2)))

    if not c.rescale:
        return abar(np.asarray(t, np.float64))
    s = np.sqrt(abar(np.concatenate([[0.0], t, [1.0]])))
    s0, sT = s[0], s[-1]
    return ((s[1:-1] - sT) * (s0 / (s0 - sT))) ** 2


def _served(c: SamplerConfig) -> bool:
    """The configurations skrample's adapter builds (β schedules of Scaled, its trailing t = 1 - k/S)."""
    return c.beta_schedule in ("linear", "scaled_linear") and c.spacing == "trailing" and not c.steps_offset


def _times(c: SamplerConfig) -> np.ndarray:
    """The t of skrample's S points, then t = 0 (where the last step lands)."""
    return np.append(np.linspace(1, 0, c.num_inference_steps, endpoint=False), 0.0)


def m_timesteps(E, c: SamplerConfig):
    """MODEL: skrample's timesteps T·t at t = 1 - k/S: 1-based (the first is T) and unrounded."""
    return c.num_train_timesteps * _times(c)[:-1] if _served(c) else E.oracle.timesteps(c)


def m_sigmas(E, c: SamplerConfig):
    """MODEL the levels skrample steps between, σ = √((1-ᾱ)/ᾱ): of its continuous ᾱ at t = 1 - k/S and
    t = 0 (the continuous deviation; else the oracle's σ); σ_T = 1/cos(fl(π/2)) = 1.633e16, not ∞
    (the terminal deviation); the last level of the rescaled schedule is ᾱ(0) = 1 - 2⁻⁵², σ =
    1.49e-8, not 0 (the final-level deviation)."""
    ids = _ids(E)
    if not _served(c):
        return E.oracle.sigmas(c)
    if CONTINUOUS in ids:
        a = _continuous(c, _times(c))
        with np.errstate(divide="ignore", invalid="ignore"):
            sig = np.sqrt((1 - a) / a)  # NaN where ᾱ(0) rounds above 1 (the final-level-nan deviation)
        if FINAL not in ids and not np.isnan(sig[-1]):
            sig[-1] = 0.0
    else:
        sig = E.oracle.sigmas(c).copy()
    if TERMINAL in ids:  # (sin θ, cos θ) of θ = atan(σ), as NumPy evaluates them: σ_VP/α
        theta = np.arctan(sig[:-1])
        sig[:-1] = np.sin(theta) / np.cos(theta)
    return sig


def m_alphas_cumprod(E, c: SamplerConfig):
    """MODEL (for SNR(T)): the oracle's ᾱ table with ᾱ_T = cos(fl(π/2))² = 3.7e-33 (skrample has no
    table of its own; its σ are m_sigmas)."""
    a = E.oracle.alphas_cumprod(c).copy()
    a[-1] = COS_HALF_PI**2 if a[-1] == 0 else a[-1]
    return a


def m_silent_at_T(E, c: SamplerConfig, levels, x, out, z, pv, u, sub):
    """MODEL ε-prediction at zero SNR, no error or warning: the finite ε step from σ_T = 1.6e16
    (x̂₀ = (x_t - σ·ε̂)/α divides by α_T = 6.1e-17), as skrample's VP state."""
    want = E.step(c, 0, levels, x, out, z, pv) / math.sqrt(levels[1] ** 2 + 1)
    return want, E.step_tolerance(c, 0, levels, x, out, z, pv, u, sub) / math.sqrt(levels[1] ** 2 + 1)


def _rescaled(c: SamplerConfig) -> bool:
    return c.rescale and _served(c)


def _polar_loses(c: SamplerConfig) -> bool:
    """α = cos(atan σ) errs by ~u·σ relative: beyond σ_max = 1e4 (ᾱ(1) < 1e-8) that is > 1e4 u (and
    at zero SNR it is the floor 6.1e-17)."""
    return _served(c) and (c.rescale or _continuous(c, np.array([1.0]))[0] < 1e-8)


def _final_not_clean(c: SamplerConfig) -> bool:
    return _rescaled(c) and _continuous(c, np.array([0.0]))[0] < 1.0


def _final_nan(c: SamplerConfig) -> bool:
    return _served(c) and _continuous(c, np.array([0.0]))[0] > 1.0


LEVELS = {"timesteps": m_timesteps, "sigmas": m_sigmas}

DEVIATIONS = [
    Deviation(
        CONTINUOUS, ("schedule", "step", "chaining", "loop"), BOTH, None,
        "skrample's Scaled schedule is continuous in t: ᾱ(t) = exp(-T·(∫β + ½∫β²)), a second-order "
        "approximation of the discrete ∏(1 - β_i) the model was trained with (0.12 % off at t = 1 for SD's "
        "β, 0.25 % for linear β at T = 1000; skrample's own tests compare σ with diffusers' within 1e-3). "
        "ZSNR applies Algorithm 1 to it anchored at ᾱ(0) = 1 instead of ᾱ at the first training step, "
        "and fractional t (T/S not an integer) are evaluated unrounded.",
        SRC + "scheduling.py (Scaled.continuous_alphas_cumprod, ZSNR)",
        SamplerConfig("euler", rescale=False, prediction_type="epsilon"),
        model=LEVELS, summary="σ of exp(-T(∫β + ½∫β²)) at t = 1 - k/S and 0 (ZSNR: Algorithm 1 anchored at t = 0)"),
    Deviation(
        TIMESTEPS, ("schedule", "starts_at_T", "chaining"), BOTH, None,
        "skrample's timesteps are T·t at t = 1 - k/S: 1-based (the first is T = 1000, the paper's "
        "numbering; diffusers' and zsnr's are 0-based, T-1 = 999) and unrounded (T = 1000, S = 7: 857.14 "
        "for 856). This is the timestep the model is called with, also through skrample's diffusers "
        "wrapper; skrample's own tests allow 1 timestep of difference to diffusers'.",
        SRC + "scheduling.py (Scaled._points: t·base_timesteps)",
        SamplerConfig("euler", rescale=False, num_inference_steps=7, prediction_type="epsilon"),
        model=LEVELS, summary="timesteps T·(1 - k/S), k < S"),
    Deviation(
        TERMINAL, ("zero_snr", "schedule", "step", "chaining", "finite_at_T", "loop"), BOTH, _polar_loses,
        "skrample's VP points are (sin θ, cos θ) of θ = atan(σ) (VariancePreserving.normalize). Near "
        "θ = π/2 the rounding of θ (u·π/2 absolute) makes α = cos θ err by up to ~u·σ relative (4.6e-7 at σ = "
        "1.7e10: T = 4000, linear β 0.0078..0.0156), and at σ_T = ∞ (ZSNR) θ = fl(π/2) and cos(fl(π/2)) = "
        "6.1e-17: α_T = 6.1e-17, ᾱ_T = 3.7e-33, SNR(T) = 3.7e-33 instead of 0 (σ_T = 1.6e16; any σ above "
        "~1e16 saturates there). For v and x₀ prediction the step from T is still right to float64's "
        "precision; for ε it is not (the silent ε deviation).",
        SRC + "scheduling.py (VariancePreserving.normalize)",
        SamplerConfig("euler"), model={**LEVELS, "alphas_cumprod": m_alphas_cumprod},
        summary="σ = sin(atan σ)/cos(atan σ) in float64: α_T = cos(fl(π/2)) = 6.1e-17, ᾱ_T = 3.7e-33, σ_T = 1.63e16"),
    Deviation(
        FINAL, ("schedule", "step", "chaining", "loop"), BOTH, _final_not_clean,
        "ZSNR's rescale (s - s_T)·(s_0/(s_0 - s_T)) at t = 0, where s = s_0 = 1, rounds to 1 - 2⁻⁵³: the "
        "level every sampler's last step lands on is ᾱ = 1 - 2⁻⁵², σ = 1.49e-8, not clean data. The "
        "last step returns x̂₀ + 1.49e-8·ε̂ (and Euler ancestral still adds 1.49e-8 of noise there: its "
        "1e-8 cut-off for 'no noise' is below it).",
        SRC + "scheduling.py (ZSNR.continuous_alphas_cumprod)",
        SamplerConfig("euler", num_inference_steps=1), {"step_index": 0},
        model=LEVELS, summary="the last level is σ = 1.49e-8 (ᾱ = 1 - 2⁻⁵²), not 0"),
    Deviation(
        "skrample-final-level-nan", ("schedule", "step", "chaining", "finite_at_T", "loop"), BOTH, _final_nan,
        "Scaled.continuous_alphas_cumprod at t = 0 computes ∫₀⁰β as (r₀ + s·t)^(k+1) - r₀^(k+1) with the "
        "first power NumPy's (an array) and the second Python's (a float); they can round differently, "
        "giving -5.4e-20 instead of 0 (SD-like scaled_linear β 0.005859375..0.03125): ᾱ(0) = 1 + 2⁻⁵², "
        "σ = √((1-ᾱ)/ᾱ) = NaN, and the last step of every sampler returns NaN (with only NumPy's "
        "RuntimeWarning). 39 of 2000 random β ranges (2 %) hit it; SD's and DDPM's defaults do not.",
        SRC + "scheduling.py (Scaled.continuous_alphas_cumprod)",
        SamplerConfig("euler", beta_start=0.005859375, beta_end=0.03125, rescale=False, num_inference_steps=2),
        {"step_index": 1}, symptom=NON_FINITE,
        summary="the last level (t = 0) is NaN where ᾱ(0) rounds to 1 + 2⁻⁵²; NaN from the last step"),
    Deviation(
        "skrample-epsilon-zero-snr-silent", ("finite_at_T",), BOTH,
        lambda c: _rescaled(c) and c.prediction_type == "epsilon",
        "ε-prediction at zero SNR is undefined (x̂₀ = (x_t - σ·ε̂)/α with α = 0), but skrample's NoiseModel "
        "divides by its α_T = 6.1e-17 (skrample-polar-alpha) without raising or warning: the "
        "first step returns values of order 1e14-1e16 (4.5e14 for x_T = 1, ε̂ = 0.5, S = 10).",
        SRC + "sampling/models.py (NoiseModel.to_x, gamma, delta)",
        SamplerConfig("euler", prediction_type="epsilon"), model={"silent_at_T": m_silent_at_T},
        summary="no error or warning: the finite ε step from σ_T = 1.6e16"),
]
