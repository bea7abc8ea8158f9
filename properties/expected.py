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


def _abs_x0_eps(prediction_type, ax_vp, am, a_t):
    """|x̂₀| and |ε̂| bounds: each conversion term in absolute value."""
    alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
    if prediction_type == "v_prediction":
        return alpha * ax_vp + sigma * am, sigma * ax_vp + alpha * am
    if prediction_type == "epsilon":
        return ((ax_vp + sigma * am) / alpha if alpha > 0 else np.inf * (ax_vp + am)), am
    return am, (ax_vp + alpha * am) / sigma


def step_magnitude(cfg: SamplerConfig, levels, x, model_output, z, predicted_variance=None) -> np.ndarray:
    """Σ|terms| of the step: the same update with every term taken in absolute value.

    Rounding in any implementation is bounded by k·u times this sum (k = operations per term);
    it is the 'sum of absolute terms' of the brief, per element. For the Euler family it also
    counts the terms of d = (x - x̂₀)/σ, the form k-diffusion and diffusers evaluate.
    """
    ax, am = np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(model_output, np.float64))
    az = np.abs(np.asarray(z, np.float64)) if z is not None else np.zeros_like(ax)
    lo, hi = levels
    if cfg.sampler in ("ddpm", "ddim"):
        x0, eps = _abs_x0_eps(cfg.prediction_type, ax, am, lo)
        if cfg.sampler == "ddpm":
            beta = (hi - lo) / hi
            std = ref.ddpm_variance(lo, hi, cfg.option("variance_type", "fixed_small"), predicted_variance)
            c_x0 = math.sqrt(hi) * beta / (1.0 - lo)
            c_xt = math.sqrt(lo / hi) * (1.0 - hi) / (1.0 - lo)
            return c_x0 * x0 + c_xt * ax + np.abs(std) * az
        c_eps, s = ref.ddim_noise_scale(lo, hi, cfg.option("eta", 0.0))
        return math.sqrt(hi) * x0 + c_eps * eps + s * az
    if math.isinf(lo):
        return np.full(ax.shape, np.inf)
    sig, kick = lo, 0.0
    if cfg.sampler == "euler":
        tmin, tmax = cfg.option("s_tmin", 0.0), cfg.option("s_tmax", math.inf)
        gamma = min(cfg.option("s_churn", 0.0) / cfg.num_inference_steps, math.sqrt(2.0) - 1.0) \
            if tmin <= lo <= tmax else 0.0
        sig = lo * (1.0 + gamma)
        kick = cfg.option("s_noise", 1.0) * lo * math.sqrt(gamma * (2.0 + gamma))
        down, up = hi, 0.0
    else:
        down, up = ref.ancestral_sigmas(lo, hi, cfg.option("eta", 1.0))
    ax = ax + kick * az
    x0, eps = _abs_x0_eps(cfg.prediction_type, ax / math.sqrt(sig * sig + 1.0), am, 1.0 / (sig * sig + 1.0))
    return ax + abs(down - sig) * (eps + (ax + x0) / sig) + up * az
