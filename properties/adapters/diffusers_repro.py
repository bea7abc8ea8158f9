"""Standalone reproductions of every deviation declared in :mod:`.diffusers_deviations`.

Each function is a few lines of diffusers + torch + NumPy (and at most one call into ``reference``
for the correct value), independent of the conformance suite's machinery. It prints the
configuration, what diffusers returns, what it should return, and the declared model of the
deviation (its one-line summary, from :mod:`.diffusers_deviations`), and returns True while
diffusers still computes the model's values. ``python -m properties.adapters.diffusers_repro`` runs them all;
exit code 0 iff every one reproduces. Checked against diffusers 0.42.1 (torch CPU, float32); on
an older release only the deviations whose release range (``Deviation.releases``) holds it run,
and a scheduler class the release does not have is said so.
"""

from __future__ import annotations

import math
import sys
import warnings

import diffusers
import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)

import reference

from ..contract import Unsupported


def _classes(*names):
    """The named scheduler classes this diffusers release has (an older one lacks e.g. TCDScheduler)."""
    found = [getattr(diffusers, n) for n in names if hasattr(diffusers, n)]
    for n in names:
        if not hasattr(diffusers, n):
            print(f"  (diffusers {diffusers.__version__} has no {n})")
    return found


def rescale_noise_cfg(*args, **kw):
    """diffusers' rescale_noise_cfg, from where the installed release has it (the adapter's lookup)."""
    from .diffusers import _default_rescale_noise_cfg

    return _default_rescale_noise_cfg()(*args, **kw)

SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}  # Stable Diffusion's β range
U32 = 2.0**-24  # float32 unit roundoff


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, seed: int) -> torch.Tensor:
    """The standard normal diffusers' randn_tensor draws from this seed (one CPU generator)."""
    return torch.randn(shape, generator=_gen(seed), dtype=torch.float32)


def _f64(t) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def _show(label: str, value) -> None:
    print(f"  {label:<10} {value}")


# --- DEVIATIONS ------------------------------------------------------------------------------------


def float32_alphas_cumprod_underflow() -> bool:
    cfg = {"num_train_timesteps": 4000, "beta_schedule": "linear", "beta_start": 0.0078125, "beta_end": 0.046875}
    print(f"  config     DDIMScheduler({cfg}, rescale_betas_zero_snr=True)")
    s = DDIMScheduler(**cfg, rescale_betas_zero_snr=True)
    plain = DDIMScheduler(**cfg).alphas_cumprod  # float32 running product, no rescale
    n_nan = int(torch.isnan(s.alphas_cumprod).sum())
    _show("diffusers", f"no rescale: ᾱ_T = {plain[-1].item()}, {int((plain == 0).sum())} ᾱ are exactly 0, "
          f"{int(((plain > 0) & (plain < 2.0**-126)).sum())} subnormal; rescaled: {n_nan} NaN ᾱ "
          f"(and {int(torch.isnan(s.betas).sum())} NaN betas), ᾱ[-3:] = {s.alphas_cumprod[-3:].tolist()}")
    o = reference.make_schedule("linear", **{k: cfg[k] for k in ("num_train_timesteps", "beta_start", "beta_end")})
    _show("oracle", f"no rescale: ᾱ_T = {o.alphas_cumprod[-1]:.6e} (float64; {int((o.alphas_cumprod < 2.0**-126).sum())} "
          "below float32's normal range, none 0); rescaled: finite, ᾱ_T = 0 (Algorithm 1)")
    return n_nan > 0 and bool(plain[-1] == 0) and o.alphas_cumprod[-1] > 0


def trailing_extra_step() -> bool:
    print("  config     DDIMScheduler(SD scaled_linear, timestep_spacing='trailing', epsilon, no rescale), S=61")
    s = DDIMScheduler(**SD, timestep_spacing="trailing", prediction_type="epsilon", clip_sample=False)
    s.set_timesteps(61)
    ts = s.timesteps.tolist()
    want = reference.timesteps("trailing", 1000, 61)
    # the extra 62nd step at t = -1: ᾱ[-1] is the TERMINAL ᾱ (Python negative index); x=1, ε̂=0
    out = s.step(torch.zeros(1), ts[-1], torch.ones(1)).prev_sample.item()
    _show("diffusers", f"{len(ts)} timesteps, last three {ts[-3:]}; step at t=-1 (x=1, ε̂=0) -> {out:.4f} "
          f"(= 1/√ᾱ[-1] = {1 / s.alphas_cumprod[-1].sqrt().item():.4f})")
    _show("oracle", f"{len(want)} timesteps, last three {want[-3:].tolist()} (round(T - k·T/S) - 1, k = 0..S-1)")
    return len(ts) == 62 and ts[-1] == -1 and len(want) == 61


def float_spacing_rounding() -> bool:
    ok = True
    for T, S, spacing in ((67, 10, "trailing"), (30, 15, "linspace")):
        print(f"  config     DDIMScheduler(num_train_timesteps={T}, timestep_spacing={spacing!r}), S={S}")
        s = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
        s.set_timesteps(S)
        got, want = s.timesteps.numpy(), reference.timesteps(spacing, T, S)
        k = int(np.argmax(got != want))
        num, den = (T * (S - k), S) if spacing == "trailing" else ((S - 1 - k) * (T - 1), S - 1)
        _show("diffusers", f"{got.tolist()}  (index {k}: {got[k]})")
        _show("oracle", f"{want.tolist()}  (index {k}: {want[k]}; exact value {num}/{den} = "
              f"{num / den} rounds half-to-even)")
        model = {"trailing": np.round(np.arange(T, 0, -T / S)) - 1,
                 "linspace": np.linspace(0, T - 1, S).round()[::-1]}[spacing]
        _show("model", f"{model.astype(int).tolist()}")
        ok &= bool(np.any(got != want)) and bool(np.array_equal(got, model))
    return ok


def ddim_prev_timestep() -> bool:
    print("  config     DDIMScheduler(SD, rescale, trailing, v_prediction), S=3, eta=0, step index 1")
    s = DDIMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction", clip_sample=False)
    s.set_timesteps(3)
    ts = s.timesteps.tolist()
    x, v = _randn((4,), 1), _randn((4,), 2)
    got = _f64(s.step(v, ts[1], x).prev_sample)
    acp = _f64(s.alphas_cumprod)
    # correct: land on the next scheduled timestep ts[2]; diffusers lands on ts[1] - T//S
    want = reference.ddim_step(_f64(x), _f64(v), prediction_type="v_prediction",
                               alpha_bar_t=acp[ts[1]], alpha_bar_prev=acp[ts[2]])
    prev = ts[1] - 1000 // 3
    _show("diffusers", f"timesteps {ts}; step t={ts[1]} -> prev t={prev}: x_prev = {np.round(got, 6).tolist()}")
    _show("oracle", f"step t={ts[1]} -> t={ts[2]} (the next scheduled timestep): {np.round(want, 6).tolist()}")
    err = np.max(np.abs(got - want) / (np.abs(want) + 1e-30))
    _show("rel. err", f"{err:.3e} (float32 rounding would be ~1e-7)")
    model = reference.ddim_step(_f64(x), _f64(v), prediction_type="v_prediction", alpha_bar_t=acp[ts[1]],
                                alpha_bar_prev=acp[prev])
    model_err = np.max(np.abs(got - model) / (np.abs(model) + 1e-30))
    _show("model", f"step to ᾱ[{prev}]: {np.round(model, 6).tolist()} (rel. diff {model_err:.1e})")
    s7 = DDIMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing")
    s7.set_timesteps(7)
    last = s7.timesteps[-1].item()
    _show("also", f"S=7 trailing: last t={last}, diffusers' prev = {last - 1000 // 7} (ᾱ_prev = ᾱ_0, not 1: "
          f"√(1-ᾱ_0) = {math.sqrt(1 - s7.alphas_cumprod[0].item()):.4f} noise left)")
    return prev != ts[2] and err > 1e-3 and model_err < 1e-5


def ddpm_prev_timestep() -> bool:
    print("  config     DDPMScheduler(SD, rescale, trailing, v_prediction, fixed_small), S=3, step index 1")
    s = DDPMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction", clip_sample=False)
    s.set_timesteps(3)
    ts = s.timesteps.tolist()
    prev = int(s.previous_timestep(ts[1]))
    x, v = _randn((1, 4), 1), _randn((1, 4), 2)
    got = _f64(s.step(v, ts[1], x, generator=_gen(3)).prev_sample)
    z = _f64(_randn((1, 4), 3))
    acp = _f64(s.alphas_cumprod)

    def ddpm(a_prev):
        return reference.ddpm_step(_f64(x), _f64(v), noise=z, prediction_type="v_prediction", alpha_bar_t=acp[ts[1]],
                                   alpha_bar_prev=a_prev, variance_type="fixed_small")
    want, model = ddpm(acp[ts[2]]), ddpm(acp[ts[1] - 1000 // 3])
    _show("diffusers", f"timesteps {ts}; previous_timestep({ts[1]}) = {prev}: x_prev = {np.round(got, 6).tolist()}")
    _show("oracle", f"step t={ts[1]} -> t={ts[2]} (the next scheduled timestep): {np.round(want, 6).tolist()}")
    err = np.max(np.abs(got - want) / (np.abs(want) + 1e-30))
    model_err = np.max(np.abs(got - model) / (np.abs(model) + 1e-30))
    _show("model", f"step to ᾱ[{ts[1] - 1000 // 3}]: {np.round(model, 6).tolist()} (rel. diff {model_err:.1e}; "
          f"vs the oracle {err:.1e})")
    return prev == ts[1] - 1000 // 3 != ts[2] and err > 1e-4 and model_err < 1e-5


def ddim_eta1_zero_snr_nan() -> bool:
    print("  config     DDIMScheduler(SD, rescale, trailing, v_prediction), S=6, eta=1, step index 0 (t=999)")
    s = DDIMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction", clip_sample=False)
    s.set_timesteps(6)
    t = s.timesteps[0].item()
    x, v = _randn((4,), 1), _randn((4,), 2)
    got = s.step(v, t, x, eta=1.0, generator=_gen(3)).prev_sample
    a_t, a_p = s.alphas_cumprod[t], s.alphas_cumprod[t - 1000 // 6]
    std = 1.0 * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)) ** 0.5
    _show("diffusers", f"x_prev = {got.tolist()}; radicand 1 - ᾱ_prev - std² = {(1 - a_p - std**2).item():.3e} "
          f"(ᾱ_t = {a_t.item()}, ᾱ_prev = {a_p.item():.6f})")
    want = reference.ddim_step(_f64(x), _f64(v), prediction_type="v_prediction", alpha_bar_t=float(a_t),
                               alpha_bar_prev=float(a_p), eta=1.0, noise=_f64(_randn((4,), 3)))
    _show("oracle", f"x_prev = {np.round(want, 6).tolist()} (radicand is exactly 0 at ᾱ_t = 0)")
    return bool(torch.isnan(got).all()) and bool(np.all(np.isfinite(want)))


def ddpm_fixed_large_log_nan() -> bool:
    print("  config     DDPMScheduler(SD, rescale, trailing, v_prediction, variance_type='fixed_large_log'), "
          "S=10, step index 1")
    s = DDPMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction", variance_type="fixed_large_log", clip_sample=False)
    s.set_timesteps(10)
    t, t_prev = s.timesteps[1].item(), s.timesteps[2].item()
    x, v = _randn((1, 4), 1), _randn((1, 4), 2)  # DDPM.step reads model_output.shape[1]: needs a batch dim
    got = s.step(v, t, x, generator=_gen(3)).prev_sample
    a_t, a_p = s.alphas_cumprod[t].item(), s.alphas_cumprod[t_prev].item()
    _show("diffusers", f"t={t}: _get_variance = log β = {s._get_variance(t).item():.4f}, step takes its **0.5: "
          f"x_prev = {got.tolist()}")
    want = reference.ddpm_step(_f64(x), _f64(v), prediction_type="v_prediction", alpha_bar_t=a_t, alpha_bar_prev=a_p,
                               noise=_f64(_randn((1, 4), 3)), variance_type="fixed_large_log")
    _show("oracle", f"std = exp(½·log β) = √β = {math.sqrt(1 - a_t / a_p):.4f}; x_prev = {np.round(want, 6).tolist()}")
    return bool(torch.isnan(got).all()) and bool(np.all(np.isfinite(want)))


def ddpm_noise_on_last_step() -> bool:
    print("  config     DDPMScheduler(SD, rescale, trailing, v_prediction, variance_type='fixed_large'), S=10, "
          "step index 9 (last)")
    s = DDPMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                      prediction_type="v_prediction", variance_type="fixed_large", clip_sample=False)
    s.set_timesteps(10)
    t = s.timesteps[-1].item()
    x, v, z = _randn((1, 1000), 1), _randn((1, 1000), 2), _randn((1, 1000), 3)
    got = _f64(s.step(v, t, x, generator=_gen(3)).prev_sample)
    a_t = s.alphas_cumprod[t].item()
    want = reference.ddpm_step(_f64(x), _f64(v), prediction_type="v_prediction", alpha_bar_t=a_t, alpha_bar_prev=1.0,
                               variance_type="fixed_large")  # last step: x̂₀, no noise
    ratio = np.median((got - want) / _f64(z))
    _show("diffusers", f"last t={t} > 0, so noise is added: (x_prev - x̂₀)/z = {ratio:.4f} "
          f"(= √β = √(1-ᾱ_{t}) = {math.sqrt(1 - a_t):.4f})")
    _show("oracle", "x_prev = x̂₀ exactly on the last step (ᾱ_prev = 1): no noise for any variance type")
    # the other variance types, same last step, x̂₀ = 0 (prediction_type='sample'), std of the output
    stds = {}
    for vt in ("fixed_small", "fixed_small_log", "learned", "learned_range"):
        d = DDPMScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                          prediction_type="sample", variance_type=vt, clip_sample=False)
        d.set_timesteps(10)
        mo = torch.zeros(1, 1000)
        if vt.startswith("learned"):  # predicted variance 0.25 / range value 0 (halfway β̃..β in log)
            mo = torch.cat([mo, torch.full((1, 1000), 0.25 if vt == "learned" else 0.0)])[None].reshape(1, 2, 1000)
        out = d.step(mo, t, torch.zeros(1, 1, 1000) if vt.startswith("learned") else torch.zeros(1, 1000),
                     generator=_gen(3)).prev_sample
        stds[vt] = f"{out.std().item():.4g}"
    _show("others", f"std of the final sample with x̂₀ = 0: {stds} (learned: predicted variance 0.25; "
          "learned_range: v = 0)")
    return t > 0 and abs(ratio - math.sqrt(1 - a_t)) < 1e-3


def epsilon_zero_snr_silent() -> bool:
    print("  config     SD, rescale, trailing, epsilon prediction, S=10, step index 0 (t=999, ᾱ = 0); "
          "DDPM/DDIM with clip_sample=False and with diffusers' default clip_sample=True")
    x, eps = _randn((1, 4), 1), _randn((1, 4), 2)
    res = {}
    for cls, clip in ((DDPMScheduler, False), (DDIMScheduler, False), (DDPMScheduler, True), (DDIMScheduler, True),
                      (EulerDiscreteScheduler, None), (EulerAncestralDiscreteScheduler, None)):
        kw = {} if clip is None else {"clip_sample": clip}
        s = cls(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="epsilon", **kw)
        s.set_timesteps(10)
        t = s.timesteps[0]
        xin = x * s.init_noise_sigma
        s.scale_model_input(xin, t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            key = cls.__name__ + ("" if clip is None else f"(clip_sample={clip})")
            res[key] = s.step(eps, t, xin, generator=_gen(3)).prev_sample
        _show("diffusers", f"{key:<38} x_prev = {np.round(_f64(res[key]), 4).tolist()}, "
              f"{len(caught)} warnings, no error")
    try:
        reference.predict_x0_and_eps(_f64(x), _f64(eps), "epsilon", 0.0)
        raised = "no error"
    except ValueError as exc:
        raised = f"ValueError: {str(exc)[:90]}..."
    _show("oracle", raised)
    nonfinite = [k for k, v in res.items() if not torch.isfinite(v).all()]
    return sorted(nonfinite) == ["DDIMScheduler(clip_sample=False)", "DDPMScheduler(clip_sample=False)"] \
        and raised.startswith("ValueError")


def euler_terminal_floor() -> bool:
    print("  config     EulerDiscreteScheduler / EulerAncestralDiscreteScheduler(SD, rescale_betas_zero_snr=True)")
    ok = True
    for cls in (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler):
        s = cls(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing")
        a = s.alphas_cumprod[-1].item()
        _show("diffusers", f"{cls.__name__:<32} ᾱ_T = {a:.6e} (2⁻²⁴ = {2.0**-24:.6e}), σ_T = {s.sigmas[0].item()}, "
              f"SNR(T) = {a / (1 - a):.3e}")
        ok &= a == 2.0**-24
    o = reference.make_schedule("scaled_linear", rescale=True)
    _show("oracle", f"ᾱ_T = {o.alphas_cumprod[-1]}, σ_T = {o.euler_sigma[-1]}, SNR(T) = {o.snr[-1]}")
    return ok and o.snr[-1] == 0.0


def euler_floor_above_previous() -> bool:
    cfg = {"beta_schedule": "linear", "beta_start": 0.0078125, "beta_end": 0.03125}
    print(f"  config     EulerAncestralDiscreteScheduler({cfg}, rescale, trailing, v_prediction), S=10, step index 0")
    s = EulerAncestralDiscreteScheduler(**cfg, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                                        prediction_type="v_prediction")
    s.set_timesteps(10)
    acp = s.alphas_cumprod
    sf, st = s.sigmas[0], s.sigmas[1]
    x, v = _randn((4,), 1) * s.init_noise_sigma, _randn((4,), 2)
    s.scale_model_input(x, s.timesteps[0])
    got = s.step(v, s.timesteps[0], x, generator=_gen(3)).prev_sample
    _show("diffusers", f"ᾱ[-2] = {acp[-2].item():.3e} < floor ᾱ[-1] = {acp[-1].item():.3e}; σ: {sf.item():.1f} -> "
          f"{st.item():.1f} (rises); σ_up radicand σ_next²(σ²-σ_next²)/σ² = {(st**2 * (sf**2 - st**2) / sf**2).item():.4g}; "
          f"x_prev = {got.tolist()}")
    o = reference.make_schedule("linear", 1000, 0.0078125, 0.03125, rescale=True)
    _show("oracle", f"ᾱ[-2] = {o.alphas_cumprod[-2]:.3e}, ᾱ_T = {o.alphas_cumprod[-1]}: σ non-increasing in t, "
          f"σ_T = {o.euler_sigma[-1]}, σ_up -> σ_next as σ -> ∞ (finite step)")
    return bool(torch.isnan(got).all()) and bool(st > sf)


def euler_floor_first_step_up() -> bool:
    """The step-level consequence of euler-floor-above-previous (same configuration)."""
    return euler_floor_above_previous()


def ancestral_sigma_down_cancellation() -> bool:
    print("  config     EulerAncestralDiscreteScheduler(squaredcos_cap_v2, trailing, epsilon), S=3, step index 0")
    s = EulerAncestralDiscreteScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                                        prediction_type="epsilon")
    s.set_timesteps(3)
    sf, st = s.sigmas[0], s.sigmas[1]
    up2 = st**2 * (sf**2 - st**2) / sf**2
    x, eps = _randn((4,), 1) * sf, _randn((4,), 2)
    s.scale_model_input(x, s.timesteps[0])
    got = s.step(eps, s.timesteps[0], x, generator=_gen(3)).prev_sample
    down, up = reference.ancestral_sigmas(float(sf), float(st))
    _show("diffusers", f"σ {sf.item():.1f} -> {st.item():.4f}: σ_to² - σ_up² = {(st**2 - up2).item():.3g} "
          f"(exact σ_to⁴/σ_from² = {(float(st)**4 / float(sf)**2):.3g}); x_prev = {got.tolist()}")
    _show("oracle", f"σ_down = {down:.6g}, σ_up = {up:.6g} (finite)")
    return bool(torch.isnan(got).any())


def euler_log_linear_sigmas() -> bool:
    print("  config     EulerDiscreteScheduler(SD, rescale, trailing, interpolation_type='log_linear'), S=10")
    s = EulerDiscreteScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                               interpolation_type="log_linear")
    s.set_timesteps(10)
    sig, ts = _f64(s.sigmas), s.timesteps.numpy().astype(np.int64)
    acp = _f64(s.alphas_cumprod)
    want = np.append(np.sqrt((1 - acp[ts]) / acp[ts]), 0.0)  # σ(t_i) of its own (floored) ᾱ, then 0
    _show("diffusers", f"{len(ts)} timesteps, {len(sig)} sigmas: {np.round(sig, 4).tolist()}")
    _show("rule", f"σ_i = σ(t_i), S+1 values ending at 0: {np.round(want, 4).tolist()}")
    _show("", f"the loop's last step (i = 9) goes to σ = {sig[10]:.4f}, not 0")
    table = np.sqrt((1 - acp) / acp)
    model = np.append(np.exp(np.linspace(np.log(table[-1]), np.log(table[0]), len(ts) + 1)), 0.0)
    model_err = np.max(np.abs(sig - model) / np.maximum(model, 1e-30))
    _show("model", f"exp(linspace(log σ(T-1), log σ(0), S+1)), 0: max rel diff {model_err:.1e}")
    return len(sig) == len(ts) + 2 and sig[len(ts)] > 0 and model_err < 1e-5


def euler_churn_v_uses_sigma() -> bool:
    print("  config     EulerDiscreteScheduler(SD, no rescale, trailing, v_prediction), S=10, s_churn=5, step index 0")
    s = EulerDiscreteScheduler(**SD, timestep_spacing="trailing", prediction_type="v_prediction")
    s.set_timesteps(10)
    t = s.timesteps[0]
    x, v = _randn((1000,), 1) * s.init_noise_sigma, _randn((1000,), 2)
    s.scale_model_input(x, t)
    got = _f64(s.step(v, t, x, s_churn=5.0, generator=_gen(3)).prev_sample)
    sigma, sigma_next = float(s.sigmas[0]), float(s.sigmas[1])
    gamma = min(5.0 / 10, 2**0.5 - 1)
    sigma_hat = sigma * (1 + gamma)
    x_hat = _f64(x) + _f64(_randn((1000,), 3)) * sigma * math.sqrt(gamma * (2 + gamma))  # the churned state
    want = reference.euler_step(x_hat, _f64(v), prediction_type="v_prediction", sigma=sigma_hat, sigma_next=sigma_next)
    # diffusers' own v-branch: x̂₀ = v·(-σ/√(σ²+1)) + x̂/(σ²+1) with σ, not σ̂
    x0_sigma = _f64(v) * (-sigma / math.sqrt(sigma**2 + 1)) + x_hat / (sigma**2 + 1)
    mimic = x_hat + (x_hat - x0_sigma) / sigma_hat * (sigma_next - sigma_hat)
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    _show("diffusers", f"σ = {sigma:.4f}, σ̂ = σ(1+γ) = {sigma_hat:.4f}; x_prev[:3] = {np.round(got[:3], 4).tolist()} "
          f"(same with σ in the v conversion: max rel diff {np.max(np.abs(got - mimic)) / np.max(np.abs(mimic)):.1e})")
    _show("oracle", f"v converted at σ̂ (where the state is): x_prev[:3] = {np.round(want[:3], 4).tolist()}; "
          f"max|diff|/max|oracle| = {err:.3e}")
    return err > 1e-3 and np.max(np.abs(got - mimic)) / np.max(np.abs(mimic)) < 1e-5


def euler_churn_noise_cancellation() -> bool:
    cfg = {"beta_schedule": "linear", "beta_start": 0.0078125, "beta_end": 0.03125}
    print(f"  config     EulerDiscreteScheduler({cfg}, no rescale, trailing, epsilon), S=1000, s_churn=1 "
          "(γ = 0.001), step index 0")
    s = EulerDiscreteScheduler(**cfg, timestep_spacing="trailing", prediction_type="epsilon")
    s.set_timesteps(1000)
    t = s.timesteps[0]
    zero = torch.zeros(1000)
    s.scale_model_input(zero, t)
    # x = 0, ε̂ = 0: x_prev = x̂ = z·√(σ̂² - σ²) exactly as diffusers forms the churn scale (float32)
    got = _f64(s.step(zero, t, zero, s_churn=1.0, generator=_gen(3)).prev_sample)
    z, sigma = _f64(_randn((1000,), 3)), float(s.sigmas[0])
    want, _ = reference.euler_churn(np.zeros(1000), sigma, num_inference_steps=1000, noise=z, s_churn=1.0)
    rel = np.max(np.abs(got - want) / np.abs(want))
    _show("diffusers", f"σ = {sigma:.7g}: noise scale (σ̂²-σ²)^0.5 in float32 = {np.median(got / z):.9g}")
    _show("oracle", f"σ·√(γ(2+γ)) = {np.median(want / z):.9g}; max rel err of x̂ = {rel:.3e} "
          f"= {rel / U32:.0f} u (bound u/(2γ) = {U32 / 0.002:.2e}; a correctly formed scale: ~2 u)")
    gamma = 0.001
    bound = ((5 * (1 + gamma) ** 2 + 1) * U32 / (gamma * (2 + gamma)) + U32) / 2 + U32
    _show("model", f"the oracle's x̂ within the declared widening {bound / U32:.0f} u relative: {rel <= bound}")
    return rel > 10 * U32 and rel <= bound


def euler_churn_model_before_churn() -> bool:
    print("  config     EulerDiscreteScheduler(SD, no rescale, trailing, epsilon), S=10, s_churn=5, one pipeline "
          "step; data x₀ ~ N(0, 1) with its exact denoiser ε̂(x, σ) = σx/(1+σ²)")
    s = EulerDiscreteScheduler(**SD, timestep_spacing="trailing", prediction_type="epsilon")
    s.set_timesteps(10)
    t = s.timesteps[0]
    x = _randn((1000,), 1) * s.init_noise_sigma
    seen = s.scale_model_input(x, t)  # what the pipeline feeds the model, with timestep t (level σ)
    sigma, sigma_next = float(s.sigmas[0]), float(s.sigmas[1])
    eps_model = _f64(seen) * math.sqrt(sigma**2 + 1) * sigma / (1 + sigma**2)
    got = _f64(s.step(torch.from_numpy(eps_model).float(), t, x, s_churn=5.0, generator=_gen(3)).prev_sample)
    gamma = min(5.0 / 10, 2**0.5 - 1)
    sh = sigma * (1 + gamma)
    x_hat = _f64(x) + _f64(_randn((1000,), 3)) * sigma * math.sqrt(gamma * (2 + gamma))
    want = x_hat + (sigma_next - sh) * sh * x_hat / (1 + sh**2)  # Karras Alg. 2: model at (x̂, σ̂)
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    mimic = x_hat + (sigma_next - sh) * eps_model  # model evaluated before the churn, ε̂ used at σ̂
    model_err = np.max(np.abs(got - mimic)) / np.max(np.abs(mimic))
    _show("model", f"ε̂ from (x, σ), then churn and step: max rel diff to diffusers {model_err:.1e}")
    _show("diffusers", f"model sees x/√(σ²+1) at σ = {sigma:.4f} (churn noise added later inside step()); "
          f"x_prev[:3] = {np.round(got[:3], 4).tolist()}")
    _show("rule", f"Karras Alg. 2: churn to σ̂ = {sh:.4f} first, model at (x̂, σ̂): x_prev[:3] = "
          f"{np.round(want[:3], 4).tolist()}; max|diff|/max|rule| = {err:.3e}")
    return err > 1e-3 and model_err < 1e-5


# --- TRAINING_DEVIATIONS (release-ranged) ---------------------------------------------------------


def euler_add_noise_begin_index() -> bool:
    print("  config     EulerDiscreteScheduler(SD, trailing), S=10: set_begin_index(2), 3 steps, then add_noise "
          "at the current timestep (the inpainting pipelines' re-noising)")
    s = EulerDiscreteScheduler(**SD, timestep_spacing="trailing")
    s.set_timesteps(10)
    if not hasattr(s, "set_begin_index"):
        raise Unsupported(f"diffusers {diffusers.__version__} has no set_begin_index (added in 0.27.0)")
    s.set_begin_index(2)
    x = torch.zeros((1, 4))
    for t in s.timesteps[2:5]:
        s.scale_model_input(x, t)
        x = s.step(torch.zeros((1, 4)), t, x).prev_sample
    x0, eps = torch.ones((1, 4)), -torch.ones((1, 4))
    got = _f64(s.add_noise(x0, eps, s.timesteps[5:6]))
    sig = _f64(s.sigmas)
    want, model = 1.0 - sig[5], 1.0 - sig[2]  # x₀ + σ·ε with ε = -1
    _show("diffusers", f"add_noise at t={s.timesteps[5].item():g} (step 5): {np.round(got, 5).tolist()}")
    _show("oracle", f"x₀ + σ_5·ε = {want:.5f} (σ_5 = {sig[5]:.5f})")
    _show("model", f"x₀ + σ_2·ε = {model:.5f} (σ_2 = {sig[2]:.5f}, the begin step's)")
    return bool(np.allclose(got, model, rtol=1e-6) and not np.allclose(got, want, rtol=1e-3))


# --- GENERIC_DEVIATIONS ----------------------------------------------------------------------------


def terminal_floor_2_24() -> bool:
    print("  config     each of DPMSolverMultistep, EulerAncestralDiscrete, EulerDiscrete, UniPCMultistep "
          "(SD, rescale_betas_zero_snr=True)")
    ok = True
    import inspect

    for cls in _classes("DPMSolverMultistepScheduler", "EulerAncestralDiscreteScheduler",
                        "EulerDiscreteScheduler", "UniPCMultistepScheduler"):
        if "rescale_betas_zero_snr" not in inspect.signature(cls.__init__).parameters:
            # diffusers' configuration would ignore the unknown argument (with a warning) and build
            # the plain schedule: the class has no zero-SNR rescale in this release
            print(f"  ({cls.__name__} takes no rescale_betas_zero_snr in diffusers {diffusers.__version__})")
            continue
        a = cls(**SD, rescale_betas_zero_snr=True).alphas_cumprod[-1].item()
        _show("diffusers", f"{cls.__name__:<32} ᾱ_T = {a!r} (= 2⁻²⁴: {a == 2.0**-24}), SNR(T) = {a / (1 - a):.3e}")
        ok &= a == 2.0**-24
    _show("oracle", f"SNR(T) = {reference.make_schedule('scaled_linear', rescale=True).snr[-1]} (Algorithm 1)")
    return ok


def lcm_origin_steps_miss_T() -> bool:
    ok = True
    for T in (1010, 1000):
        print(f"  config     LCMScheduler / TCDScheduler(num_train_timesteps={T}, timestep_spacing='trailing', "
              "rescale_betas_zero_snr=True), S=4")
        want = reference.timesteps("trailing", T, 4)
        for cls in _classes("LCMScheduler", "TCDScheduler"):
            s = cls(num_train_timesteps=T, timestep_spacing="trailing", rescale_betas_zero_snr=True)
            s.set_timesteps(4)
            got = s.timesteps.tolist()
            _show("diffusers", f"{cls.__name__:<14} {got}")
            origin = (np.arange(1, 51) * (T // 50) - 1)[::-1]
            model = origin[np.floor(np.linspace(0, 50, 4, endpoint=False)).astype(int)].tolist()
            ok &= got == model
            if T == 1010:
                ok &= got[0] == (T // 50) * 50 - 1 < T - 1
        _show("oracle", f"trailing: {want.tolist()} (starts at T-1 = {T - 1})")
        _show("model", f"{model}")
    return ok


# --- GUIDANCE_DEVIATIONS ---------------------------------------------------------------------------


def rescale_noise_cfg_zero_std() -> bool:
    print("  config     rescale_noise_cfg(noise_cfg = constant 0.5 (std 0), noise_pred_text ~ N(0,1)), shape (1, 4, 8, 8)")
    cfg = torch.full((1, 4, 8, 8), 0.5)
    text = _randn((1, 4, 8, 8), 1)
    out = {phi: rescale_noise_cfg(cfg, text, guidance_rescale=phi) for phi in (0.7, 0.0)}
    for phi, o in out.items():
        _show("diffusers", f"guidance_rescale={phi}: {o.flatten()[:4].tolist()}")
    want = reference.rescale_guidance(_f64(cfg), _f64(text), 0.7)
    _show("oracle", f"x_cfg unchanged where σ_cfg = 0 (any φ): {want.flatten()[:4].tolist()}; φ = 0 is plain CFG")
    return bool(torch.isinf(out[0.7]).all()) and bool(torch.isnan(out[0.0]).all()) and bool(np.all(want == 0.5))


def half_x0_overflow() -> bool:
    print("  config     DDPMScheduler(linear β 0.0078125..0.03125, rescale, linspace, epsilon), S=35, step index 1, "
          "float16 latents")
    s = DDPMScheduler(beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125, rescale_betas_zero_snr=True,
                      timestep_spacing="linspace", prediction_type="epsilon", clip_sample=False)
    s.set_timesteps(35)
    t, t_prev = s.timesteps[1].item(), s.timesteps[2].item()
    x, eps = _randn((1, 4), 1).half() * 2, _randn((1, 4), 2).half()
    got = s.step(eps, t, x, generator=_gen(3)).prev_sample
    a_t, a_p = s.alphas_cumprod[t].item(), s.alphas_cumprod[t_prev].item()
    x0 = (_f64(x) - math.sqrt(1 - a_t) * _f64(eps)) / math.sqrt(a_t)
    _show("diffusers", f"t={t}, ᾱ_t = {a_t:.3e}: x̂₀ formed in float16 -> x_prev = {got.tolist()}")
    want = reference.ddpm_step(_f64(x), _f64(eps), prediction_type="epsilon", alpha_bar_t=a_t, alpha_bar_prev=a_p,
                               noise=_f64(torch.randn((1, 4), generator=_gen(3), dtype=torch.float16)))
    _show("oracle", f"|x̂₀| up to {np.abs(x0).max():.4g} (> 65504); x_prev = {np.round(want, 4).tolist()} "
          "(inside float16's range)")
    return bool((~torch.isfinite(got)).any()) and bool(np.all(np.abs(want) < 65504))


def half_sigma_eps_overflow() -> bool:
    print("  config     EulerDiscreteScheduler(squaredcos_cap_v2, T=1000, trailing, epsilon), S=10, step 0, "
          "float16 latents: x_vp = 3, ε̂ = 4")
    s = EulerDiscreteScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                               prediction_type="epsilon")
    s.set_timesteps(10)
    sig, sig_n = s.sigmas[0].item(), s.sigmas[1].item()
    x = torch.full((1, 4), 3.0 * math.sqrt(sig * sig + 1)).half()
    eps = torch.full((1, 4), 4.0).half()
    s.scale_model_input(x, s.timesteps[0])
    got = s.step(eps, s.timesteps[0], x).prev_sample
    _show("diffusers", f"σ = {sig:.6g}: x = {x[0, 0].item()} (in range), σ·ε̂ = {sig * 4:.6g} formed in float16 -> "
          f"x_next = {got.tolist()}")
    want = reference.euler_step(_f64(x), _f64(eps), prediction_type="epsilon", sigma=sig, sigma_next=sig_n)
    _show("oracle", f"x̂₀ = x - σ·ε̂ = {_f64(x)[0, 0] - sig * 4:.6g}; x_next = {np.round(want, 3).tolist()}")
    return bool((~torch.isfinite(got)).all()) and bool(np.all(np.abs(want) < 65504))


# --- σ schedules and thresholding (issue 13) --------------------------------------------------------


def euler_converted_sigmas_floor() -> bool:
    print("  config     EulerDiscreteScheduler(SD, rescale, trailing, v_prediction, use_karras_sigmas=True), S=10; "
          "and timestep_type='continuous'")
    s = EulerDiscreteScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                               prediction_type="v_prediction", use_karras_sigmas=True)
    s.set_timesteps(10)
    c = EulerDiscreteScheduler(**SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                               prediction_type="v_prediction", timestep_type="continuous")
    c.set_timesteps(10)
    _show("diffusers", f"Karras σ = {np.round(_f64(s.sigmas)[:3], 2).tolist()}..., timesteps "
          f"{np.round(_f64(s.timesteps)[:3], 3).tolist()}...; continuous c_noise[0] = {c.timesteps[0].item():.6f}")
    o = reference.make_schedule("scaled_linear", rescale=True)
    try:
        reference.converted_euler_sigmas(o, reference.fractional_timesteps("trailing", 1000, 10), "karras")
        refused = False
    except ValueError as exc:
        refused = True
        _show("oracle", f"refuses (σ_max = inf): {str(exc)[:90]}...")
    floored = reference.with_terminal_floor(o, reference.DIFFUSERS_EULER_FLOOR)
    _, sig = reference.converted_euler_sigmas(floored, reference.fractional_timesteps("trailing", 1000, 10), "karras")
    err = np.max(np.abs(_f64(s.sigmas) - sig) / np.maximum(sig, 1e-30))
    _show("model", f"the floored schedule's Karras σ (σ_max = 4096): max rel diff {err:.1e}; "
          f"¼·ln 4096 = {0.25 * math.log(4096):.6f}")
    return refused and s.sigmas[0].item() == 4096.0 and err < 1e-5 and \
        abs(c.timesteps[0].item() - 0.25 * math.log(4096)) < 1e-6


def euler_continuous_timesteps_v_only() -> bool:
    print("  config     EulerDiscreteScheduler(SD, no rescale, trailing, timestep_type='continuous'), S=10, "
          "v_prediction vs epsilon")
    got = {}
    for p in ("v_prediction", "epsilon"):
        s = EulerDiscreteScheduler(**SD, timestep_spacing="trailing", prediction_type=p, timestep_type="continuous")
        s.set_timesteps(10)
        got[p] = _f64(s.timesteps)
        _show("diffusers", f"{p:<12} timesteps[:3] = {np.round(got[p][:3], 4).tolist()}")
    o = reference.make_schedule("scaled_linear")
    want = reference.continuous_timesteps(reference.euler_sigmas(o, reference.fractional_timesteps("trailing", 1000, 10))[:-1])
    _show("oracle", f"c_noise = ¼·ln σ for every prediction type: {np.round(want[:3], 4).tolist()}")
    return bool(np.allclose(got["v_prediction"], want, rtol=1e-5) and got["epsilon"][0] == 999.0)


def threshold_2d_sample_crash() -> bool:
    print("  config     DDPMScheduler / DDIMScheduler(SD, thresholding=True, prediction_type='sample'), S=10, "
          "sample shape (2, 3)")
    crashed = True
    for cls in (DDPMScheduler, DDIMScheduler):
        s = cls(**SD, thresholding=True, prediction_type="sample", clip_sample=False)
        s.set_timesteps(10)
        x = _randn((2, 3), 1) * 3
        try:
            s.step(x, s.timesteps[0], x, generator=_gen(0))
            _show("diffusers", f"{cls.__name__}: no error")
            crashed = False
        except TypeError as exc:
            _show("diffusers", f"{cls.__name__}: TypeError: {exc}")
        x4 = x.reshape(2, 3, 1, 1)
        s.step(x4, s.timesteps[0], x4, generator=_gen(0))  # the same values as (2, 3, 1, 1): no error
    want = reference.dynamic_threshold(_f64(x), 0.995, 1.0)
    _show("oracle", f"per-sample percentile over all elements: x̂₀ thresholded = {np.round(want, 3).tolist()}")
    return crashed


REPROS = {
    "float32-alphas-cumprod-underflow": float32_alphas_cumprod_underflow,
    "trailing-extra-step": trailing_extra_step,
    "float-spacing-rounding": float_spacing_rounding,
    "ddim-prev-timestep": ddim_prev_timestep,
    "ddpm-prev-timestep": ddpm_prev_timestep,
    "ddim-eta1-zero-snr-nan": ddim_eta1_zero_snr_nan,
    "ddpm-fixed-large-log-nan": ddpm_fixed_large_log_nan,
    "ddpm-noise-on-last-step": ddpm_noise_on_last_step,
    "epsilon-zero-snr-silent": epsilon_zero_snr_silent,
    "euler-terminal-floor": euler_terminal_floor,
    "euler-floor-above-previous": euler_floor_above_previous,
    "euler-floor-first-step-up": euler_floor_first_step_up,
    "ancestral-sigma-down-cancellation": ancestral_sigma_down_cancellation,
    "euler-log-linear-sigmas": euler_log_linear_sigmas,
    "euler-churn-v-uses-sigma": euler_churn_v_uses_sigma,
    "euler-churn-noise-cancellation": euler_churn_noise_cancellation,
    "euler-churn-model-before-churn": euler_churn_model_before_churn,
    "euler-add-noise-begin-index": euler_add_noise_begin_index,
    "terminal-floor-2^-24": terminal_floor_2_24,
    "lcm-origin-steps-miss-T": lcm_origin_steps_miss_T,
    "rescale-noise-cfg-zero-std": rescale_noise_cfg_zero_std,
    "half-x0-overflow": half_x0_overflow,
    "half-sigma-eps-overflow": half_sigma_eps_overflow,
    "euler-converted-sigmas-floor": euler_converted_sigmas_floor,
    "euler-continuous-timesteps-v-only": euler_continuous_timesteps_v_only,
    "threshold-2d-sample-crash": threshold_2d_sample_crash,
}


def main() -> int:
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    from .diffusers_deviations import (
        DEVIATIONS,
        GENERIC_DEVIATIONS,
        GUIDANCE_DEVIATIONS,
        HALF_DEVIATIONS,
        TRAINING_DEVIATIONS,
    )

    declared = {d.id: d for d in DEVIATIONS + HALF_DEVIATIONS + GENERIC_DEVIATIONS + GUIDANCE_DEVIATIONS
                + TRAINING_DEVIATIONS}
    results = {}
    for name, fn in REPROS.items():
        dev = declared.get(name)
        print(f"\n== {name}")
        if dev is not None and not dev.in_releases(diffusers.__version__):
            print(f"  (declared for diffusers {dev.releases}; not run on {diffusers.__version__})")
            continue
        print(f"  {'MODEL':<10} {dev.summary if dev is not None else '(none declared)'}")
        try:
            results[name] = bool(fn())
        except Unsupported as exc:  # this release lacks what the reproduction needs
            print(f"  SKIPPED    {exc}")
        except Exception as exc:  # noqa: BLE001 -- any crash means "does not reproduce as described"
            print(f"  ERROR      {type(exc).__name__}: {exc}")
            results[name] = False
    print("\nSummary")
    for name, ok in results.items():
        print(f"{name}: {'reproduces' if ok else 'DOES NOT REPRODUCE'}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
