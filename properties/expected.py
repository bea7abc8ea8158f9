"""What the float64 oracle expects of an implementation, for one :class:`SamplerConfig`."""

from __future__ import annotations

import math

import numpy as np

import reference as ref

from .contract import SamplerConfig

VE_SAMPLERS = ("euler", "euler_ancestral")


def schedule(cfg: SamplerConfig) -> ref.Schedule:
    return ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                             rescale=cfg.rescale)


def timesteps(cfg: SamplerConfig) -> np.ndarray:
    """The timesteps the sampler should evaluate (float64; fractional for Euler linspace)."""
    if cfg.sampler in VE_SAMPLERS:
        return ref.fractional_timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps,
                                        cfg.steps_offset)
    return ref.timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps,
                         cfg.steps_offset).astype(np.float64)


def final_alpha_bar(cfg: SamplerConfig, alphas_cumprod) -> float:
    """ᾱ the loop lands on: 1 (clean data), or ᾱ_0 for DDIM with set_alpha_to_one=False."""
    if cfg.sampler == "ddim" and cfg.option("set_alpha_to_one", True) is False:
        return float(alphas_cumprod[0])
    return 1.0


def sigmas(cfg: SamplerConfig, sched: ref.Schedule) -> np.ndarray:
    """Euler-family σ at each timestep, then the final σ (length S+1)."""
    interp = cfg.option("interpolation_type", "linear")
    return ref.euler_sigmas(sched, timesteps(cfg), interp, cfg.option("final_sigmas_type", "zero"))


def vp_levels(cfg: SamplerConfig, alphas_cumprod, i: int) -> tuple[float, float]:
    """(ᾱ_t, ᾱ_next) of step i, read from a given ᾱ table at the oracle's timesteps."""
    ts = timesteps(cfg).astype(np.int64)
    a_t = float(alphas_cumprod[ts[i]])
    a_n = float(alphas_cumprod[ts[i + 1]]) if i + 1 < ts.size else final_alpha_bar(cfg, alphas_cumprod)
    return a_t, a_n


def step(cfg: SamplerConfig, levels, x, model_output, z, predicted_variance=None) -> np.ndarray:
    """The oracle's step i of this configuration at the given levels: (ᾱ_t, ᾱ_next) for DDPM/DDIM,
    (σ, σ_next) of the variance-exploding state for Euler/Euler ancestral."""
    p = cfg.prediction_type
    lo, hi = levels
    if cfg.sampler == "ddpm":
        return ref.ddpm_step(x, model_output, prediction_type=p, alpha_bar_t=lo, alpha_bar_prev=hi, noise=z,
                             variance_type=cfg.option("variance_type", "fixed_small"),
                             predicted_variance=predicted_variance,
                             clip_sample=cfg.option("clip_sample", False))
    if cfg.sampler == "ddim":
        return ref.ddim_step(x, model_output, prediction_type=p, alpha_bar_t=lo, alpha_bar_prev=hi,
                             eta=cfg.option("eta", 0.0), noise=z, clip_sample=cfg.option("clip_sample", False),
                             use_clipped_model_output=cfg.option("use_clipped_model_output", False))
    if cfg.sampler == "euler":
        churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
        xh, sig = ref.euler_churn(x, lo, num_inference_steps=cfg.num_inference_steps, noise=z, **churn)
        return ref.euler_step(xh, model_output, prediction_type=p, sigma=sig, sigma_next=hi)
    return ref.euler_ancestral_step(x, model_output, prediction_type=p, sigma=lo, sigma_next=hi,
                                    eta=cfg.option("eta", 1.0), noise=z)


def _conversion(prediction_type, a_t):
    """Coefficients (k_x, k_m) of x̂₀ = k_x·x_t + k_m·m and of ε̂ likewise, at level ᾱ_t."""
    alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
    if prediction_type == "v_prediction":
        return (alpha, -sigma), (sigma, alpha)
    if prediction_type == "epsilon":
        return ((1.0 / alpha, -sigma / alpha) if alpha > 0 else (math.inf, math.inf)), (0.0, 1.0)
    return (0.0, 1.0), (1.0 / sigma, -alpha / sigma)


def _churn(cfg, sigma):
    tmin, tmax = cfg.option("s_tmin", 0.0), cfg.option("s_tmax", math.inf)
    gamma = min(cfg.option("s_churn", 0.0) / cfg.num_inference_steps, math.sqrt(2.0) - 1.0) \
        if cfg.sampler == "euler" and tmin <= sigma <= tmax else 0.0
    return sigma * (1.0 + gamma), cfg.option("s_noise", 1.0) * sigma * math.sqrt(gamma * (2.0 + gamma))


def step_terms(cfg: SamplerConfig, levels, x, model_output, z, predicted_variance=None):
    """The step as a sum of terms, each (coefficient as a function of the levels, |data|).

    The step equals Σ coefficient(levels)·(signed data); the tolerance module takes every term in
    absolute value (the 'sum of absolute terms') and perturbs each coefficient's levels on its own
    (no credit for cancellation between coefficients). For the Euler family the terms of
    d = (x - x̂₀)/σ, the form k-diffusion and diffusers evaluate, are counted as well.
    """
    ax, am = np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(model_output, np.float64))
    az = np.abs(np.asarray(z, np.float64)) if z is not None else np.zeros_like(ax)
    p = cfg.prediction_type
    if cfg.sampler in ("ddpm", "ddim"):
        def x0(lv, j):
            return _conversion(p, lv[0])[0][j]

        def eps(lv, j):
            return _conversion(p, lv[0])[1][j]

        if cfg.sampler == "ddpm":
            def c_x0(lv):
                return math.sqrt(lv[1]) * ((lv[1] - lv[0]) / lv[1]) / (1.0 - lv[0])

            def c_xt(lv):
                return math.sqrt(lv[0] / lv[1]) * (1.0 - lv[1]) / (1.0 - lv[0])

            def std(lv):
                return ref.ddpm_variance(lv[0], lv[1], cfg.option("variance_type", "fixed_small"),
                                         predicted_variance)

            return [(lambda lv: c_x0(lv) * x0(lv, 0), ax), (lambda lv: c_x0(lv) * x0(lv, 1), am),
                    (c_xt, ax), (std, az)]

        def c_eps(lv):
            return ref.ddim_noise_scale(lv[0], lv[1], cfg.option("eta", 0.0))[0]

        def s(lv):
            return ref.ddim_noise_scale(lv[0], lv[1], cfg.option("eta", 0.0))[1]

        return [(lambda lv: math.sqrt(lv[1]) * x0(lv, 0), ax), (lambda lv: math.sqrt(lv[1]) * x0(lv, 1), am),
                (lambda lv: c_eps(lv) * eps(lv, 0), ax), (lambda lv: c_eps(lv) * eps(lv, 1), am), (s, az)]

    # Euler family, VE state: churn to σ̂, convert at σ̂ (x_vp = x/√(σ̂²+1)), then x + (σ_to - σ̂)·d
    def hat(lv):
        return _churn(cfg, lv[0])

    def to(lv):
        return lv[1] if cfg.sampler == "euler" else ref.ancestral_sigmas(lv[0], lv[1], cfg.option("eta", 1.0))[0]

    def scale(lv):
        return 1.0 / math.sqrt(hat(lv)[0] ** 2 + 1.0)

    def conv(lv, which, j):
        sig = hat(lv)[0]
        return _conversion(p, 1.0 / (sig * sig + 1.0))[which][j]

    def step_len(lv):
        return to(lv) - hat(lv)[0]

    kick = [(lambda lv: hat(lv)[1], az)]
    ax_hat = ax + hat(levels)[1] * az  # the state after the churn, at the nominal levels
    terms = [(lambda lv: 1.0, ax_hat),
             (lambda lv: step_len(lv) * conv(lv, 1, 0) * scale(lv), ax_hat),
             (lambda lv: step_len(lv) * conv(lv, 1, 1), am),
             # d = (x - x̂₀)/σ̂ as evaluated: its two parts, each scaled by the step length
             (lambda lv: step_len(lv) / hat(lv)[0], ax_hat),
             (lambda lv: step_len(lv) / hat(lv)[0] * conv(lv, 0, 0) * scale(lv), ax_hat),
             (lambda lv: step_len(lv) / hat(lv)[0] * conv(lv, 0, 1), am)] + kick
    if cfg.sampler == "euler_ancestral":
        terms.append((lambda lv: ref.ancestral_sigmas(lv[0], lv[1], cfg.option("eta", 1.0))[1], az))
    return terms

