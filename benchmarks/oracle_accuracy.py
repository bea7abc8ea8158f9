"""Accuracy of the float64 oracle against mpmath: worst and median ULP error per quantity.

Run from the repository root: ``python -m benchmarks.oracle_accuracy`` (prints a Markdown table;
T ∈ {1000, 4000}, every schedule, rescaled and not, plus 2000 seeded random step levels and 2000
seeded training levels ᾱ for SNR and the loss weights).
``measure()`` returns the rows; ``main()`` prints them and returns the overall worst ULP error.
log SNR is left out: it is ill-conditioned near SNR = 1 and is bounded in absolute terms
(properties/oracle/test_precision.py).
"""

from __future__ import annotations

import math

import numpy as np

from properties.oracle.mp import (
    mp_ancestral,
    mp_ddim,
    mp_ddpm,
    mp_loss_weight,
    mp_schedule,
    mp_snr,
    ulp_error,
)
from reference import (
    BETA_SCHEDULES,
    LOSS_WEIGHTINGS,
    PREDICTION_TYPES,
    ancestral_sigmas,
    ddim_noise_scale,
    ddpm_step,
    ddpm_variance,
    loss_weight,
    make_schedule,
    snr,
)

SCHEDULE_QUANTITIES = ("betas", "alphas_cumprod", "one_minus_alphas_cumprod", "snr", "alpha",
                       "sigma", "euler_sigma")


def _schedule_errors(Ts=(1000, 4000)) -> dict:
    out = {}
    for name in BETA_SCHEDULES:
        for rescale in (False, True):
            errs = {q: [] for q in SCHEDULE_QUANTITIES}
            for T in Ts:
                sched, exact = make_schedule(name, T, rescale=rescale), mp_schedule(name, T, rescale=rescale)
                for q in SCHEDULE_QUANTITIES:
                    errs[q].append(ulp_error(getattr(sched, q), exact.split(q)))
            for q in SCHEDULE_QUANTITIES:
                out[(f"{name}{' +rescale' if rescale else ''}", q)] = np.concatenate(errs[q])
    return out


def _step_errors(n: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    errs: dict = {}
    one, zero = np.ones(1), np.zeros(1)
    for _ in range(n):
        kind = rng.integers(3)
        a_t = 0.0 if kind == 0 else float(10.0 ** rng.uniform(-12, 0)) * 0.9999
        a_p = 1.0 if rng.integers(4) == 0 else float(rng.uniform(a_t, 1.0))
        if kind == 2:  # nearly equal levels
            a_p = min(1.0, a_t * (1.0 + 10.0 ** rng.uniform(-9, -1)))
        eta = float(rng.choice([0.0, 1.0, rng.uniform()]))
        m = mp_ddpm(a_t, a_p)
        kw = {"prediction_type": "sample", "alpha_bar_t": a_t, "alpha_bar_prev": a_p, "noise": zero}
        c_eps, s = ddim_noise_scale(a_t, a_p, eta)
        me, ms = mp_ddim(a_t, a_p, eta)
        sg = math.inf if a_t == 0 else math.sqrt((1.0 - a_t) / a_t)
        sn = math.sqrt((1.0 - a_p) / a_p)
        down, up = ancestral_sigmas(sg, sn, eta)
        md, mu = mp_ancestral(sg, sn, eta)
        for key, x, y in (("ddpm c_x0", ddpm_step(zero, one, **kw)[0], m.c_x0),
                          ("ddpm c_xt", ddpm_step(one, zero, **kw)[0], m.c_xt),
                          ("ddpm std fixed_small", ddpm_variance(a_t, a_p, "fixed_small"), m.std_fixed_small),
                          ("ddpm std fixed_large", ddpm_variance(a_t, a_p, "fixed_large"), m.std_fixed_large),
                          ("ddim eps coefficient", c_eps, me), ("ddim noise scale", s, ms),
                          ("ancestral sigma_down", down, md), ("ancestral sigma_up", up, mu)):
            errs.setdefault(("steps", key), []).append(ulp_error(x, [y])[0])
    return {k: np.array(v) for k, v in errs.items()}


def _training_errors(n: int = 2000, seed: int = 0) -> dict:
    """SNR and every loss weight (default γ, k) at n seeded ᾱ: log-uniform over [1e-300, 1),
    uniform, and 1 - 2⁻ᵏ, plus ᾱ = 0 for the x₀ and v weights."""
    rng = np.random.default_rng(seed)
    abar = np.concatenate([10.0 ** rng.uniform(-300, 0, n // 2), rng.uniform(0, 1, n // 4),
                           1.0 - 2.0 ** -rng.integers(1, 54, n - n // 2 - n // 4).astype(float), [0.0]])
    abar = np.minimum(abar, 1.0 - 2.0**-53)
    errs = {("training", "snr"): ulp_error(snr(abar), [mp_snr(a) for a in abar])}
    for weighting in LOSS_WEIGHTINGS:
        for p in PREDICTION_TYPES:
            a = abar[abar > 0] if p == "epsilon" else abar
            got = loss_weight(a, p, weighting)
            errs[("training", f"{weighting} weight, {p} loss")] = ulp_error(
                got, [mp_loss_weight(x, p, weighting, gamma={"min_snr": 5.0}.get(weighting, 1.0)) for x in a])
    return errs


def measure() -> list[tuple[str, str, float, float]]:
    """Rows (configuration, quantity, worst ULP, median ULP)."""
    errs = {**_schedule_errors(), **_step_errors(), **_training_errors()}
    return [(cfg, q, float(np.max(e)), float(np.median(e))) for (cfg, q), e in errs.items()]


def main() -> float:
    rows = measure()
    print("| configuration (T = 1000 and 4000) | quantity | worst ULP | median ULP |")
    print("|---|---|---|---|")
    for cfg, q, worst, median in rows:
        print(f"| {cfg} | {q} | {worst:.2f} | {median:.2f} |")
    per_q: dict = {}
    for _, q, worst, _ in rows:
        per_q[q] = max(per_q.get(q, 0.0), worst)
    print("\n| quantity | worst ULP over all |\n|---|---|")
    for q, worst in per_q.items():
        print(f"| {q} | {worst:.2f} |")
    overall = max(per_q.values())
    print(f"\noverall worst: {overall:.2f} ULP")
    print(f"oracle_worst_ulp: {overall:.2f}")
    return overall


if __name__ == "__main__":
    main()
