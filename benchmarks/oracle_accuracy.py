"""Accuracy of the float64 oracle against mpmath: worst and median ULP error per quantity.

Run from the repository root: ``python -m benchmarks.oracle_accuracy`` (prints Markdown tables:
every schedule plain, rescaled (Algorithm 1) and rescaled with each terminal floor, at
T ∈ {1000, 4000} and over the sweep T = 2…79, 97, 150, 333, 777; every schedule quantity
(β, α, ᾱ, 1-ᾱ, SNR, log SNR, √ᾱ, √(1-ᾱ), Euler σ); 2000 seeded random step levels for the step
coefficients and 2000 seeded training levels ᾱ for SNR and the loss weights), each with the worst
ULP error, where it occurs, and the median.
``measure()`` returns the rows; ``main()`` prints them and returns the overall worst ULP error.
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
    return overall


if __name__ == "__main__":
    main()
