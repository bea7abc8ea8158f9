"""Implementation accuracy: diffusers' schedulers against the float64 oracle, per timestep and dtype.

For DDPMScheduler, DDIMScheduler (η = 0 and 1), EulerDiscreteScheduler and
EulerAncestralDiscreteScheduler, built as diffusers builds them (schedule in float32), with the
Stable Diffusion schedule (scaled_linear 0.00085..0.012, T = 1000), with and without
``rescale_betas_zero_snr``, ``prediction_type="v_prediction"``, ``timestep_spacing="trailing"``:

* ᾱ_t (``alphas_cumprod``) and σ_t against the oracle's, for every t;
* one ``step()`` at every scheduled timestep, with model_output and sample in float32, float16
  and bfloat16, against ``reference.ddpm_step`` / ``ddim_step`` / ``euler_step`` /
  ``euler_ancestral_step`` given the same (dtype-rounded) inputs and, for stochastic steps, the
  same noise (diffusers' draw ``torch.randn(shape, generator=torch.Generator().manual_seed(s),
  dtype=model_output.dtype)``, reproduced and passed to the oracle in float64).

Errors are normalised by the magnitude of the step's terms (see ``_common.linear_terms_scale``).
Euler and Euler ancestral with the zero-SNR rescale floor ᾱ_T at 2⁻²⁴ (σ_T ≈ 4096) instead of 0;
they are compared with the oracle's schedule carrying the same floor
(``make_schedule(..., terminal_floor=DIFFUSERS_EULER_FLOOR)``), so what is measured is rounding,
not that (documented) deviation from Algorithm 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import reference as ref
from benchmarks._common import (
    LOG_FLOOR,
    fmt_err,
    linear_terms_scale,
    markdown_table,
    normalised_rel_error,
    rel_error_series,
    unit_roundoff,
)

SAMPLERS = ("ddpm", "ddim_eta0", "ddim_eta1", "euler", "euler_ancestral")
DTYPES = ("float32", "float16", "bfloat16")
SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _torch():
    import torch
    from diffusers.utils import logging

    logging.set_verbosity_error()
    return torch


def make_scheduler(sampler: str, rescale: bool, T: int = 1000):
    """The diffusers scheduler of ``sampler`` for the SD schedule, v-prediction, trailing spacing,
    no clipping (the oracle's default), DDIM ``set_alpha_to_one=True``."""
    _torch()
    import diffusers

    common = dict(num_train_timesteps=T, prediction_type="v_prediction", rescale_betas_zero_snr=rescale,
                  timestep_spacing="trailing", **SD)
    if sampler == "ddpm":
        return diffusers.DDPMScheduler(clip_sample=False, variance_type="fixed_small", **common)
    if sampler.startswith("ddim"):
        return diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True, **common)
    if sampler == "euler":
        return diffusers.EulerDiscreteScheduler(**common)
    if sampler == "euler_ancestral":
        return diffusers.EulerAncestralDiscreteScheduler(**common)
    raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")


def is_ve(sampler: str) -> bool:
    return sampler in ("euler", "euler_ancestral")


def oracle_schedule(sampler: str, rescale: bool, T: int = 1000) -> ref.Schedule:
    floor = ref.DIFFUSERS_EULER_FLOOR if (rescale and is_ve(sampler)) else None
    return ref.make_schedule("scaled_linear", T, SD["beta_start"], SD["beta_end"], rescale=rescale,
                             terminal_floor=floor)


def schedule_errors(family: str, rescale: bool, T: int = 1000) -> dict[str, np.ndarray]:
    """Relative error of ᾱ_t and σ_t, t = 0..T-1. ``family`` "vp" (DDPM/DDIM: σ = √(1-ᾱ) as their
    step computes it, ``(1 - alphas_cumprod) ** 0.5`` in float32) or "ve" (Euler/EA:
    σ = √((1-ᾱ)/ᾱ), read from ``scheduler.sigmas`` after ``set_timesteps(T)``)."""
    torch = _torch()
    sampler = "ddpm" if family == "vp" else "euler"
    if family not in ("vp", "ve"):
        raise ValueError(f"family must be 'vp' or 've'; got {family!r}")
    sch = make_scheduler(sampler, rescale, T)
    orc = oracle_schedule(sampler, rescale, T)
    acp = sch.alphas_cumprod.double().numpy()
    if family == "vp":
        sig = ((1 - sch.alphas_cumprod) ** 0.5).double().numpy()
        sig_o = orc.sigma
    else:
        sch.set_timesteps(T)
        ts = sch.timesteps.numpy()
        if not np.array_equal(ts, np.arange(T - 1, -1, -1)):
            raise RuntimeError("trailing spacing with S = T is expected to visit every t once")
        sig = sch.sigmas[:-1].double().numpy()[::-1].copy()
        sig_o = orc.euler_sigma
    del torch
    return {"t": np.arange(T), "alphas_cumprod": rel_error_series(acp, orc.alphas_cumprod),
            "sigma": rel_error_series(sig, sig_o)}


@dataclass
class StepErrors:
    sampler: str
    rescale: bool
    dtype: str
    num_inference_steps: int
    t: np.ndarray  # scheduled timesteps, descending
    err: np.ndarray  # normalised relative error of the step output (inf: not finite)


def _ve_sigma(orc: ref.Schedule, t: float) -> float:
    return float(ref.sigma_at(orc, np.array([t]))[0])


def oracle_step(sampler: str, orc: ref.Schedule, t_cur: int, t_next: int, T: int, S: int):
    """(f(x, m[, z]), whether f takes noise): the oracle's step from training timestep t_cur to
    t_next (< 0: the last step, to clean data), v-prediction, at the levels diffusers uses (DDIM:
    t - T//S, diffusers' stride rule, exact for T divisible by S; DDPM: the next scheduled t)."""
    pt = {"prediction_type": "v_prediction"}
    if is_ve(sampler):
        sig = _ve_sigma(orc, t_cur)
        sig_n = _ve_sigma(orc, t_next) if t_next >= 0 else 0.0
        if sampler == "euler":
            return (lambda x, m: ref.euler_step(x, m, sigma=sig, sigma_next=sig_n, **pt)), False
        return (lambda x, m, z: ref.euler_ancestral_step(x, m, sigma=sig, sigma_next=sig_n, eta=1.0,
                                                         noise=z, **pt)), True
    abar = orc.alphas_cumprod
    a_t = float(abar[t_cur])
    if sampler == "ddpm":
        a_p = float(abar[t_next]) if t_next >= 0 else 1.0
        return (lambda x, m, z: ref.ddpm_step(x, m, alpha_bar_t=a_t, alpha_bar_prev=a_p, noise=z,
                                              variance_type="fixed_small", **pt)), True
    prev = t_cur - T // S
    a_p = float(abar[prev]) if prev >= 0 else 1.0
    if sampler == "ddim_eta0":
        return (lambda x, m: ref.ddim_step(x, m, alpha_bar_t=a_t, alpha_bar_prev=a_p, eta=0.0, **pt)), False
    return (lambda x, m, z: ref.ddim_step(x, m, alpha_bar_t=a_t, alpha_bar_prev=a_p, eta=1.0, noise=z,
                                          **pt)), True


def diffusers_step(sch, sampler: str, i: int, model_output, sample, generator):
    """diffusers' ``step()`` i of ``sch`` as a pipeline calls it (DDIM with η = 0 or 1 from the
    sampler name; the generator only where the step draws noise); returns prev_sample."""
    t = sch.timesteps[i]
    if sampler.startswith("ddim"):
        eta = 1.0 if sampler == "ddim_eta1" else 0.0
        return sch.step(model_output, int(t), sample, eta=eta, generator=generator if eta > 0 else None).prev_sample
    if sampler == "ddpm":
        return sch.step(model_output, int(t), sample, generator=generator).prev_sample
    if sampler == "euler":
        return sch.step(model_output, t, sample).prev_sample
    return sch.step(model_output, t, sample, generator=generator).prev_sample


def step_errors(sampler: str, rescale: bool, dtype: str, num_inference_steps: int, T: int = 1000,
                shape=(1, 4, 8, 8), seed: int = 0) -> StepErrors:
    """One diffusers ``step()`` at each scheduled timestep (fresh random inputs each), against the
    oracle given the same rounded inputs and noise."""
    torch = _torch()
    tdt = getattr(torch, dtype)
    S = num_inference_steps
    sch = make_scheduler(sampler, rescale, T)
    sch.set_timesteps(S)
    if hasattr(sch, "is_scale_input_called"):
        sch.is_scale_input_called = True  # inputs are given directly in the VE variable
    orc = oracle_schedule(sampler, rescale, T)
    abar = orc.alphas_cumprod
    ts = sch.timesteps.numpy()
    errs = np.empty(S)
    for i, t in enumerate(ts):
        ti = round(float(t))
        rng = np.random.default_rng([seed, i])
        x0, eps, mo = rng.standard_normal((3, *shape))
        a_t = float(abar[ti])
        x_t = math.sqrt(a_t) * x0 + math.sqrt(1.0 - a_t) * eps
        s_seed = seed * 100003 + i
        gen = torch.Generator().manual_seed(s_seed)
        z = torch.randn(shape, generator=torch.Generator().manual_seed(s_seed), dtype=tdt)
        if is_ve(sampler):
            sig = _ve_sigma(orc, ti)
            sample = x_t * math.sqrt(sig * sig + 1.0)
        else:
            sample = x_t
        s_t = torch.from_numpy(sample).to(tdt)
        m_t = torch.from_numpy(mo).to(tdt)
        oracle, noisy = oracle_step(sampler, orc, ti, round(float(ts[i + 1])) if i + 1 < S else -1, T, S)
        out = diffusers_step(sch, sampler, i, m_t, s_t, gen)
        inputs = {"x": s_t.double().numpy(), "m": m_t.double().numpy()}
        if noisy:
            inputs["z"] = z.double().numpy()
        want = oracle(**inputs)
        scale = linear_terms_scale(oracle, inputs)
        errs[i] = normalised_rel_error(out.double().numpy(), want, scale)
    return StepErrors(sampler, rescale, dtype, S, ts.astype(np.float64), errs)


# --- the whole measurement ------------------------------------------------------------------------


def run(quick: bool = False, out_dir=None, T: int = 1000) -> dict:
    """Measure everything; write ``impl_accuracy.md`` and one PNG per schedule variant to
    ``out_dir`` (if given). Returns the tables and the worst errors."""
    plot_S = 100 if quick else T
    table_S = (plot_S, 10)
    shape = (1, 4, 8, 8) if quick else (1, 4, 16, 16)
    sched = {(fam, r): schedule_errors(fam, r, T) for fam in ("vp", "ve") for r in (False, True)}
    steps = {}
    for r in (False, True):
        for s in SAMPLERS:
            for d in DTYPES:
                for S in table_S:
                    steps[(r, s, d, S)] = step_errors(s, r, d, S, T, shape)
    sched_rows = []
    for (fam, r), e in sched.items():
        for q in ("alphas_cumprod", "sigma"):
            v = e[q]
            fin = v[np.isfinite(v)]
            sched_rows.append([("zero SNR" if r else "SD"), {"vp": "DDPM/DDIM", "ve": "Euler/EA"}[fam], q,
                               fmt_err(float(fin.max()) if fin.size else math.inf), int(np.argmax(v)),
                               fmt_err(float(np.median(v))), int((~np.isfinite(v)).sum())])
    step_rows = []
    for (r, s, d, S), e in steps.items():
        fin = np.isfinite(e.err)
        worst = float(e.err[fin].max()) if fin.any() else math.inf
        bad = e.t[~fin]
        step_rows.append([("zero SNR" if r else "SD"), s, d, S, fmt_err(worst),
                          int(e.t[np.argmax(np.where(fin, e.err, -1))]) if fin.any() else "-",
                          f"{worst / unit_roundoff(d):.3g}" if math.isfinite(worst) else "-",
                          f"{int((~fin).sum())}" + (f" (t={', '.join(str(int(b)) for b in bad[:4])})"
                                                    if bad.size else "")])
    sched_md = markdown_table(["schedule", "schedulers", "quantity", "worst rel. err", "at t",
                               "median", "non-finite"], sched_rows)
    step_md = markdown_table(["schedule", "sampler", "dtype", "S", "worst rel. err (finite steps)", "at t",
                              "worst / u(dtype)", "non-finite steps"], step_rows)
    result = {"schedule_table": sched_md, "step_table": step_md, "sched": sched, "steps": steps,
              "plot_S": plot_S, "shape": shape}
    if out_dir is not None:
        result["plots"] = [plot(sched, steps, r, plot_S, out_dir) for r in (False, True)]
    return result


def plot(sched, steps, rescale: bool, S: int, out_dir) -> str:
    """log10 relative error vs t: a panel per sampler (a line per dtype, x = not finite), and
    panels for ᾱ and σ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"float32": "C0", "float16": "C1", "bfloat16": "C2"}
    fig, axes = plt.subplots(2, len(SAMPLERS), figsize=(4 * len(SAMPLERS), 7), sharex=True)
    for j, s in enumerate(SAMPLERS):
        ax = axes[0, j]
        for d in DTYPES:
            e = steps[(rescale, s, d, S)]
            fin = np.isfinite(e.err)
            ax.semilogy(e.t[fin], np.maximum(e.err[fin], LOG_FLOOR), color=colors[d], lw=0.8, label=d)
            if (~fin).any():
                ax.semilogy(e.t[~fin], np.ones((~fin).sum()), "x", color=colors[d], ms=8,
                            label=f"{d}: not finite")
        ax.set_title(f"{s} step (S={S})")
        ax.set_ylim(LOG_FLOOR / 2, 10)
        ax.legend(fontsize=7)
        if j == 0:
            ax.set_ylabel("|impl - oracle| / Σ|terms|")
    for j, (fam, q) in enumerate([("vp", "alphas_cumprod"), ("vp", "sigma"), ("ve", "alphas_cumprod"),
                                   ("ve", "sigma")]):
        ax = axes[1, j]
        e = sched[(fam, rescale)]
        v = e[q]
        fin = np.isfinite(v)
        ax.semilogy(e["t"][fin], np.maximum(v[fin], LOG_FLOOR), color="k", lw=0.8, label="float32 schedule")
        if (~fin).any():
            ax.semilogy(e["t"][~fin], np.ones((~fin).sum()), "rx", ms=8, label="not finite")
        ax.set_title(f"{q} ({'DDPM/DDIM' if fam == 'vp' else 'Euler/EA'})")
        ax.set_ylim(LOG_FLOOR / 2, 10)
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
        if j == 0:
            ax.set_ylabel("|impl - oracle| / |oracle|")
    axes[1, -1].axis("off")
    axes[1, -1].text(0.0, 0.5, f"errors of exactly 0 drawn at {LOG_FLOOR:g};\nx at 1: step output not finite\n"
                     "Euler/EA vs oracle with the same\n2^-24 floor of ᾱ_T (zero SNR)", fontsize=9)
    fig.suptitle(f"diffusers vs float64 oracle: SD schedule{' + zero-SNR rescale' if rescale else ''}, "
                 "v_prediction, trailing")
    fig.tight_layout()
    name = f"impl_accuracy_{'zero_snr' if rescale else 'sd'}.png"
    path = f"{out_dir}/{name}"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return name
