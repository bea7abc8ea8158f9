"""Accuracy of the float64 oracle against mpmath: worst and median ULP error per quantity.

Run from the repository root: ``python -m benchmarks.oracle_accuracy`` (prints Markdown tables:
every schedule plain, rescaled (Algorithm 1) and rescaled with each terminal floor, at
T ∈ {1000, 4000} and over the sweep T = 2…79, 97, 150, 333, 777; every schedule quantity
(β, α, ᾱ, 1-ᾱ, SNR, log SNR, √ᾱ, √(1-ᾱ), Euler σ); 2000 seeded random step levels for the step
coefficients and 2000 seeded training levels ᾱ for SNR and the loss weights), each with the worst
ULP error, where it occurs, and the median.
``measure()`` returns the rows; ``main()`` prints them and returns the overall worst ULP error.
A separate block (``measure_sigma_schedules()``, with its own worst-case line, kept out of
``oracle_worst_ulp``) measures the Karras / exponential / Beta σ, timestep_from_sigma,
continuous_timesteps and dynamic_threshold.
"""

from __future__ import annotations

import math
import time

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
    COMFYUI_FLOOR,
    DIFFUSERS_EULER_FLOOR,
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

SCHEDULE_QUANTITIES = ("betas", "alphas", "alphas_cumprod", "one_minus_alphas_cumprod", "snr", "log_snr",
                       "alpha", "sigma", "euler_sigma")
#: The headline T and the sweep of small and odd T (the precision tests' worst cases lie there).
MAIN_TS = (1000, 4000)
SWEEP_TS = tuple(range(2, 80)) + (97, 150, 333, 777)
#: The terminal floors measured (on the rescaled schedules, at t = T-1: the only entry they change).
FLOORS = {"floor 2⁻²⁴ (diffusers Euler)": DIFFUSERS_EULER_FLOOR, "floor ComfyUI": COMFYUI_FLOOR}


def _where(Ts, ts) -> np.ndarray:
    return np.array([f"T={T}, t={t}" for T, t in zip(Ts, ts)], dtype=object)


def _schedule_errors(Ts) -> dict:
    """(configuration, quantity) -> (ULP errors, where) over every schedule, plain, rescaled and
    rescaled with each terminal floor (those at t = T-1 only), at every T of ``Ts``."""
    out: dict = {}

    def add(cfg, q, err, T, ts):
        e, w = out.get((cfg, q), (np.empty(0), np.empty(0, dtype=object)))
        out[(cfg, q)] = (np.concatenate([e, err]), np.concatenate([w, _where([T] * len(ts), ts)]))

    for name in BETA_SCHEDULES:
        for rescale in (False, True):
            cfg = f"{name}{' +rescale' if rescale else ''}"
            for T in Ts:
                sched, exact = make_schedule(name, T, rescale=rescale), mp_schedule(name, T, rescale=rescale)
                for q in SCHEDULE_QUANTITIES:
                    add(cfg, q, ulp_error(getattr(sched, q), exact.split(q)), T, range(T))
                if not rescale:
                    continue
                for label, floor in FLOORS.items():
                    try:
                        fl = make_schedule(name, T, rescale=True, terminal_floor=floor)
                    except ValueError:  # the floor is not below ᾱ_(T-2) (T = 2, 3 for some schedules)
                        continue
                    fexact = mp_schedule(name, T, rescale=True, terminal_floor=floor)
                    for q in SCHEDULE_QUANTITIES:
                        add(f"{cfg} +{label}", q,
                            ulp_error(getattr(fl, q)[-1:], [getattr(fexact, q)[-1]]), T, [T - 1])
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
            errs.setdefault(("steps", key), []).append((ulp_error(x, [y])[0], f"ᾱ_t={a_t:.6g}, ᾱ_prev={a_p:.6g}, η={eta:.3g}"))
    return {k: (np.array([e for e, _ in v]), np.array([w for _, w in v], dtype=object)) for k, v in errs.items()}


def _training_errors(n: int = 2000, seed: int = 0) -> dict:
    """SNR and every loss weight (default γ, k) at n seeded ᾱ: log-uniform over [1e-300, 1),
    uniform, and 1 - 2⁻ᵏ, plus ᾱ = 0 for the x₀ and v weights."""
    rng = np.random.default_rng(seed)
    abar = np.concatenate([10.0 ** rng.uniform(-300, 0, n // 2), rng.uniform(0, 1, n // 4),
                           1.0 - 2.0 ** -rng.integers(1, 54, n - n // 2 - n // 4).astype(float), [0.0]])
    abar = np.minimum(abar, 1.0 - 2.0**-53)
    def where(a):
        return np.array([f"ᾱ={x:.6g}" for x in a], dtype=object)

    errs = {("training", "reference.snr"): (ulp_error(snr(abar), [mp_snr(a) for a in abar]), where(abar))}
    for weighting in LOSS_WEIGHTINGS:
        for p in PREDICTION_TYPES:
            a = abar[abar > 0] if p == "epsilon" else abar
            got = loss_weight(a, p, weighting)
            errs[("training", f"{weighting} weight, {p} loss")] = (ulp_error(
                got, [mp_loss_weight(x, p, weighting, gamma={"min_snr": 5.0}.get(weighting, 1.0)) for x in a]),
                where(a))
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


#: The measurements: (section title, function returning {(configuration, quantity): (ULP errors,
#: where)}). Add a row group by appending to this list.
SECTIONS = [
    (f"schedules, T ∈ {{{', '.join(map(str, MAIN_TS))}}}", lambda: _schedule_errors(MAIN_TS)),
    (f"schedules, T = 2…79, {', '.join(map(str, SWEEP_TS[78:]))}", lambda: _schedule_errors(SWEEP_TS)),
    ("sampler steps (2000 seeded levels)", _step_errors),
    ("training (2000 seeded ᾱ)", _training_errors),
]


def measure() -> list[tuple[str, str, str, float, float, str]]:
    """Rows (section, configuration, quantity, worst ULP, median ULP, where the worst is)."""
    rows = []
    for section, fn in SECTIONS:
        for (cfg, q), (e, where) in fn().items():
            i = int(np.argmax(e))
            rows.append((section, cfg, q, float(e[i]), float(np.median(e)), str(where[i])))
    return rows


def _print_section(section: str, rows: list) -> None:
    qs = list(dict.fromkeys(r[2] for r in rows))
    print(f"\n### {section}\n")
    if set(qs) <= set(SCHEDULE_QUANTITIES):  # a matrix: configuration × quantity, worst ULP
        print("worst ULP per configuration (rows) and quantity (columns); the floor rows are t = T-1 only "
              "(the rest is the rescaled row; a floor not below ᾱ_(T-2) is skipped); where: the last table\n")
        print("| configuration | " + " | ".join(qs) + " |\n|---|" + "---|" * len(qs))
        cell = {(r[1], r[2]): r[3] for r in rows}
        for cfg in dict.fromkeys(r[1] for r in rows):
            print(f"| {cfg} | " + " | ".join(f"{cell[(cfg, q)]:.2f}" for q in qs) + " |")
        return
    print("| configuration | quantity | worst ULP | where | median ULP |\n|---|---|---|---|---|")
    for _, cfg, q, worst, median, where in rows:
        print(f"| {cfg} | {q} | {worst:.2f} | {where} | {median:.2f} |")


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
    t0 = time.perf_counter()
    rows = measure()
    for section in dict.fromkeys(r[0] for r in rows):
        _print_section(section, [r for r in rows if r[0] == section])
    per_q: dict = {}
    for _, cfg, q, worst, _, where in rows:
        if q not in per_q or worst > per_q[q][0]:
            per_q[q] = (worst, f"{cfg}, {where}")
    print("\n### worst per quantity, over everything above\n\n| quantity | worst ULP | where |\n|---|---|---|")
    for q, (worst, where) in per_q.items():
        print(f"| {q} | {worst:.2f} | {where} |")
    overall = max(w for w, _ in per_q.values())
    print(f"\noverall worst: {overall:.2f} ULP (measured in {time.perf_counter() - t0:.0f} s)")
    print(f"oracle_worst_ulp: {overall:.2f}")
    print_sigma_schedules()
    return overall


if __name__ == "__main__":
    main()
