"""Standalone reproductions of every deviation declared for skrample 0.7.0 (:mod:`.skrample_deviations`).

Each function is a few lines of skrample + NumPy (and at most one call into ``reference`` for the
correct value), independent of the conformance suite's machinery. It prints what skrample returns
and what it should return, and returns True while skrample still computes the deviant value.
``python -m properties.adapters.skrample_repro`` runs them all (in the skrample venv, Python 3.12,
see README "k-diffusion and skrample"); exit code 0 iff every one reproduces. Checked against
skrample 0.7.0 (NumPy 2.4.6, float64).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
from skrample import scheduling
from skrample.common import Step
from skrample.sampling import models, structured

import reference

from ._repro import run_reproductions

U64 = 2.0**-53  # float64 unit roundoff


def _show(label: str, value) -> None:
    print(f"  {label:<9} {value}")


def polar_alpha() -> bool:
    print("  config    scheduling.ZSNR() (SD's β range, T = 1000, Algorithm 1), the point at t = 1; and")
    print("            Scaled(base_timesteps=4000, beta_start=0.0078125, beta_end=0.015625, beta_scale=1) at t = 1")
    p = scheduling.ZSNR().point(1.0)
    _show("skrample", f"σ_VE = ∞ → θ = atan(∞) = {math.atan(math.inf)!r}; α = cos θ = {p.alpha!r}, "
          f"ᾱ_T = α² = {p.alpha**2!r}, SNR_T = {p.alpha**2 / p.sigma**2!r}")
    _show("oracle", f"ᾱ_T = {float(reference.make_schedule('scaled_linear', 1000, rescale=True).alphas_cumprod[-1])!r}")
    steep = scheduling.Scaled(base_timesteps=4000, beta_start=0.0078125, beta_end=0.015625, beta_scale=1)
    a_exact = float(steep.continuous_alphas_cumprod(np.array([1.0]))[0])  # skrample's own ᾱ(1), before the polar map
    q = steep.point(1.0)
    rel = abs(q.alpha - math.sqrt(a_exact)) / math.sqrt(a_exact)
    _show("skrample", f"steep: √ᾱ(1) = {math.sqrt(a_exact)!r} but α = cos(atan σ) = {q.alpha!r} (relative {rel:.2g} "
          f"= {rel / U64:.3g} u: θ = atan(1.7e10) is within 6e-11 of π/2)")
    return p.alpha > 0 and p.alpha**2 < 1e-30 and rel > 1e-7


def epsilon_zero_snr_silent() -> bool:
    print("  config    structured.Euler() + NoiseModel (ε-prediction) on ZSNR(), first of 10 steps, x_T = 1, ε̂ = 0.5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = structured.Euler().sample(np.array([1.0]), np.array([0.5]), Step.from_int(0, 10), models.NoiseModel(),
                                        scheduling.ZSNR()).final
    _show("skrample", f"x_next = {out[0]:.6g}, no error, {len(caught)} warnings (x̂₀ = (x - σ·ε̂)/α divides by 6.1e-17)")
    try:
        reference.predict_x0_and_eps(np.array([1.0]), np.array([0.5]), "epsilon", 0.0)
        refused = False
    except reference.EpsilonAtZeroSNR as exc:
        refused = True
        _show("oracle", f"raises EpsilonAtZeroSNR: {str(exc).splitlines()[0][:90]}")
    return refused and abs(out[0]) > 1e12 and not caught


def continuous_alphas_cumprod() -> bool:
    print("  config    scheduling.Scaled() (SD's β range, T = 1000, no rescale): ᾱ at t = k/T against ∏(1 - β)")
    sched = scheduling.Scaled()
    k = np.arange(1, 1001)
    got = sched.continuous_alphas_cumprod(k / 1000)
    want = reference.make_schedule("scaled_linear", 1000).alphas_cumprod
    rel = np.abs(got - want) / want
    _show("skrample", f"exp(-T·(∫β + ½∫β²)) at t = 1: {float(got[-1])!r}; worst relative difference {rel.max():.3g} "
          f"({rel.max() / U64:.3g} u) at k = {int(k[rel.argmax()])}")
    _show("oracle", f"∏(1 - β_i), i < 1000: {float(want[-1])!r}")
    zs = scheduling.ZSNR().continuous_alphas_cumprod(np.array([0.0, 0.001]))
    zw = reference.make_schedule("scaled_linear", 1000, rescale=True).alphas_cumprod[0]
    _show("", f"ZSNR (Algorithm 1 anchored at t = 0, where the continuous ᾱ is 1): ᾱ(1/T) = {float(zs[1])!r} "
          f"(oracle ᾱ_0 = {float(zw)!r})")
    return rel.max() > 1e-4 and abs(zs[1] - zw) > 1e-6


def continuous_timesteps() -> bool:
    print("  config    Scaled().schedule_np(S) timesteps, T = 1000, S = 10 and S = 7 (trailing)")
    got10, got7 = scheduling.Scaled().schedule_np(10)[:, 0], scheduling.Scaled().schedule_np(7)[:, 0]
    _show("skrample", f"S = 10: {got10[:3].tolist()} …; S = 7: {np.round(got7[:3], 4).tolist()} …  (T·t, t = 1 - k/S)")
    _show("oracle", f"S = 10: {reference.timesteps('trailing', 1000, 10)[:3].tolist()} …; "
          f"S = 7: {reference.timesteps('trailing', 1000, 7)[:3].tolist()} …  (0-based, rounded)")
    return got10[0] == 1000.0 and got7[1] != round(got7[1])


def final_level_nan() -> bool:
    print("  config    Scaled(beta_start=0.005859375, beta_end=0.03125) (scaled_linear, no rescale): the point at t = 0,")
    print("            and Euler's last of 2 steps (v-prediction)")
    sched = scheduling.Scaled(beta_start=0.005859375, beta_end=0.03125)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = sched.point(0.0)
        last = structured.Euler().sample(np.array([0.3]), np.array([0.2]), Step.from_int(1, 2), models.VelocityModel(),
                                         sched).final
    r0 = 0.005859375**0.5
    slope = 0.03125**0.5 - r0
    integral = (r0 + slope * np.array([0.0])) ** 3 - r0**3  # NumPy's power minus Python's, at t = 0
    _show("skrample", f"(r₀ + s·0)³ - r₀³ = {float(integral[0])!r} (not 0): ᾱ(0) = {float(sched.continuous_alphas_cumprod(np.zeros(1))[0])!r}; "
          f"point {p}; last step {float(last[0])!r}; warnings: {sorted({w.category.__name__ for w in caught})}")
    _show("oracle", "σ = 0 at t = 0; the last step returns x̂₀ (finite)")
    return math.isnan(p.sigma) and math.isnan(float(last[0]))


def zsnr_final_level_not_clean() -> bool:
    print("  config    ZSNR() point at t = 0 (where every sampler's last step lands); v-prediction Euler's last step")
    p = scheduling.ZSNR().point(0.0)
    last = structured.Euler().sample(np.array([0.3]), np.array([0.2]), Step.from_int(9, 10), models.VelocityModel(),
                                     scheduling.ZSNR()).final
    a = scheduling.ZSNR().point(0.1).alpha
    x0 = a * 0.3 - math.sqrt(1 - a * a) * 0.2  # x̂₀ of the last step's inputs
    _show("skrample", f"α = {p.alpha!r}, σ = {p.sigma!r} (Algorithm 1's (1 - s_T)·(1/(1 - s_T)) rounds below 1); "
          f"last step {float(last[0])!r}")
    _show("oracle", f"σ = 0, α = 1: the last step returns x̂₀ = {x0!r}")
    return p.sigma > 1e-9 and abs(last[0] - x0) > 1e-10


REPRODUCTIONS = {
    "skrample-polar-alpha": polar_alpha,
    "skrample-epsilon-zero-snr-silent": epsilon_zero_snr_silent,
    "skrample-continuous-alphas-cumprod": continuous_alphas_cumprod,
    "skrample-continuous-timesteps": continuous_timesteps,
    "skrample-zsnr-final-level-not-clean": zsnr_final_level_not_clean,
    "skrample-final-level-nan": final_level_nan,
}


def main() -> int:
    return run_reproductions(REPRODUCTIONS)


if __name__ == "__main__":
    sys.exit(main())
