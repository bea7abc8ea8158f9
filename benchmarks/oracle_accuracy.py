"""Accuracy of the float64 oracle against mpmath: worst and median ULP error per quantity.

Run from the repository root: ``python -m benchmarks.oracle_accuracy`` (prints a Markdown table;
T ∈ {1000, 4000}, every schedule, rescaled and not, plus 2000 seeded random step levels and 2000
seeded training levels ᾱ for SNR and the loss weights).
``measure()`` returns the rows; ``main()`` prints them and returns the overall worst ULP error.
A separate block (``measure_sigma_schedules()``, with its own worst-case line)
measures the Karras / exponential / Beta σ, timestep_from_sigma, continuous_timesteps and
dynamic_threshold.
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


# --- σ schedules and dynamic thresholding (issue 13): a self-contained block ---------------------------
# Karras, exponential and Beta σ, the σ → t conversion, EDM's continuous c_noise and Imagen's dynamic
# threshold, each against its textbook definition in mpmath (60 digits) or exact rationals.


def _sigma_schedule_errors(n: int = 300, seed: int = 0) -> dict:
    """n seeded (σ_min, σ_max, S) with σ_min log-uniform in [1e-3, 1], σ_max in [1, 2e4] (and 4096,
    diffusers' floored σ_T, in a quarter), S in [2, 60]; ρ ∈ {7, 1, 3, uniform(0.5, 10)}; Beta(α, β)
    with α, β ∈ {0.6, uniform(0.3, 3)}, its quantile found by mpmath.findroot on the regularised
    incomplete Beta function."""
    from properties.oracle.mp import _ctx, mpf
    from reference import beta_sigmas, exponential_sigmas, karras_sigmas

    rng = np.random.default_rng(seed)
    errs: dict = {}
    for k in range(n):
        lo = float(10.0 ** rng.uniform(-3, 0))
        hi = 4096.0 if k % 4 == 0 else float(10.0 ** rng.uniform(0, math.log10(2e4)))
        S = int(rng.integers(2, 61))
        r = [mpf(j) / (S - 1) for j in range(S)]
        rho = float(rng.choice([7.0, 1.0, 3.0, rng.uniform(0.5, 10.0)]))
        a_, b_ = mpf(hi) ** (1 / mpf(rho)), mpf(lo) ** (1 / mpf(rho))
        want = [(a_ + x * (b_ - a_)) ** mpf(rho) for x in r]
        errs.setdefault(("sigma schedules", "karras_sigmas"), []).append(ulp_error(karras_sigmas(lo, hi, S, rho), want))
        want = [_ctx.exp((1 - x) * _ctx.log(mpf(hi)) + x * _ctx.log(mpf(lo))) for x in r]
        errs.setdefault(("sigma schedules", "exponential_sigmas"), []).append(
            ulp_error(exponential_sigmas(lo, hi, S), want))
        if k % 3 == 0:  # the Beta quantile by root finding is the slow part: a third of the draws
            al = 0.6 if k % 2 == 0 else float(rng.uniform(0.3, 3.0))
            be = 0.6 if k % 2 == 0 else float(rng.uniform(0.3, 3.0))
            got = beta_sigmas(lo, hi, S, al, be)
            want = []
            for x, g in zip(r, got):
                level = 1 - x
                if level in (0, 1):
                    p = level
                else:
                    guess = mpf((float(g) - lo) / (hi - lo))
                    def f(q, al=al, be=be, level=level):
                        return _ctx.betainc(mpf(al), mpf(be), 0, q, regularized=True) - level
                    p = _ctx.re(_ctx.findroot(f, guess, tol=mpf(10) ** -55))  # (an imaginary part ~1e-70)
                want.append(mpf(lo) + p * (mpf(hi) - mpf(lo)))
            errs.setdefault(("sigma schedules", "beta_sigmas"), []).append(ulp_error(got, want))
    return {key: np.concatenate(v) for key, v in errs.items()}


def _sigma_to_t_errors(n: int = 400, seed: int = 0) -> dict:
    """timestep_from_sigma at n seeded σ per schedule (scaled_linear and the cosine, T = 1000, plain and
    rescaled: at zero SNR σ_{T-1} = inf), σ log-uniform over the schedule's finite range, against
    t = i + (ln σ - ln σ_i)/(ln σ_{i+1} - ln σ_i) with σ_i the mpmath schedule's; continuous_timesteps
    (¼·ln σ) at n log-uniform σ in [1e-6, 1e6]."""
    from properties.oracle.mp import _ctx, mp_schedule, mpf
    from reference import continuous_timesteps, timestep_from_sigma

    rng = np.random.default_rng(seed)
    errs: dict = {}
    for name in ("scaled_linear", "squaredcos_cap_v2"):
        for rescale in (False, True):
            sched, exact = make_schedule(name, 1000, rescale=rescale), mp_schedule(name, 1000, rescale=rescale)
            table = [(_ctx.inf if _ctx.isinf(s) else _ctx.log(s)) for s in exact.euler_sigma]
            finite = sched.euler_sigma[np.isfinite(sched.euler_sigma)]
            sig = 10.0 ** rng.uniform(math.log10(finite[0]), math.log10(finite[-1]), n)
            want = []
            for s in sig:
                ls = _ctx.log(mpf(float(s)))
                i = max(j for j in range(len(table) - 1) if table[j] <= ls) if ls >= table[0] else 0
                if _ctx.isinf(table[i + 1]):
                    want.append(mpf(i))
                else:
                    w = min(max((ls - table[i]) / (table[i + 1] - table[i]), 0), 1)
                    want.append(i + w)
            got = timestep_from_sigma(sched, sig)
            label = f"timestep_from_sigma ({name}{' +rescale' if rescale else ''})"
            errs[("sigma schedules", label)] = ulp_error(got, want)
            # near t = 0 ulp(t) is tiny: the same error in units of ulp(T-1), i.e. absolute
            errs[("sigma schedules", label + ", in ulp(T-1)")] = np.array(
                [float(abs(mpf(float(g)) - w)) for g, w in zip(got, want)]) / np.spacing(999.0)
    sig = 10.0 ** rng.uniform(-6, 6, n)
    errs[("sigma schedules", "continuous_timesteps")] = ulp_error(continuous_timesteps(sig),
                                                                  [_ctx.log(mpf(float(s))) / 4 for s in sig])
    return errs


def _threshold_errors(n: int = 300, seed: int = 0) -> dict:
    """dynamic_threshold on n seeded batches (2-4 samples of 3-200 elements, |x̂₀| up to 10), ratio in
    {0.995, 0.5, 1, uniform}, max_value in {1, 1.5, uniform(1, 10)}, against the exact rational
    clip(x̂₀, -s, s)/s with s = clip(quantile(|x̂₀|, ratio), 1, max_value) (linear interpolation
    between order statistics)."""
    from fractions import Fraction

    from properties.oracle.mp import mpf
    from reference import dynamic_threshold

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x0 = rng.standard_normal((int(rng.integers(2, 5)), int(rng.integers(3, 201)))) * float(rng.uniform(0.5, 10.0))
        ratio = float(rng.choice([0.995, 0.5, 1.0, rng.uniform()]))
        max_value = float(rng.choice([1.0, 1.5, rng.uniform(1.0, 10.0)]))
        got = dynamic_threshold(x0, ratio, max_value)
        for b in range(x0.shape[0]):
            v = sorted(Fraction(abs(float(x))) for x in x0[b])
            h = (len(v) - 1) * Fraction(ratio)
            j = math.floor(h)
            q = v[j] + (h - j) * (v[min(j + 1, len(v) - 1)] - v[j])
            s = min(max(q, Fraction(1)), Fraction(max_value))
            want = [max(min(Fraction(float(x)), s), -s) / s for x in x0[b]]
            out.append(ulp_error(got[b], [mpf(w.numerator) / w.denominator for w in want]))
    return {("thresholding", "dynamic_threshold"): np.concatenate(out)}


def measure() -> list[tuple[str, str, float, float]]:
    """Rows (configuration, quantity, worst ULP, median ULP)."""
    errs = {**_schedule_errors(), **_step_errors(), **_training_errors()}
    return [(cfg, q, float(np.max(e)), float(np.median(e))) for (cfg, q), e in errs.items()]


def measure_sigma_schedules() -> list[tuple[str, str, float, float]]:
    """Rows of the σ-schedule and thresholding block (kept apart from ``oracle_worst_ulp``)."""
    errs = {**_sigma_schedule_errors(), **_sigma_to_t_errors(), **_threshold_errors()}
    return [(cfg, q, float(np.max(e)), float(np.median(e))) for (cfg, q), e in errs.items()]


def print_sigma_schedules() -> float:
    rows = measure_sigma_schedules()
    print("\n| σ schedules and thresholding | function | worst ULP | median ULP |\n|---|---|---|---|")
    for cfg, q, worst, median in rows:
        print(f"| {cfg} | {q} | {worst:.2f} | {median:.2f} |")
    worst = max(w for _, q, w, _ in rows if "timestep_from_sigma" not in q or "ulp(T-1)" in q)
    # (not a "name: value" headline line: benchmarks/run.py's headlines are oracle_worst_ulp and the suite's)
    print(f"\nσ schedules and thresholding, worst: {worst:.2f} ULP (timestep_from_sigma counted in ulp(T-1))")
    return worst


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
    print_sigma_schedules()
    return overall


if __name__ == "__main__":
    main()
