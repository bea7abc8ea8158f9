"""A worked loop-level adapter: a small k-diffusion-style float32 torch Euler / Euler-ancestral
sampler ("my_pkg") behind zsnr's loop-level contract (properties/contract.py). Copy the part
below the ADAPTER line into your repository, replace ``my_pkg`` by your sampler, and run::

    pytest --pyargs properties.conformance --impl my_pkg.zsnr_adapter:impl

The sampler runs its own loop, ``sample_euler(model, x, sigmas, ...)`` as k-diffusion's does:
the suite's denoiser stands in for the model wherever the loop calls it, and its noise source
for the noise sampler, so the churn's ordering (the model evaluated after it, Karras Alg. 2) and
the noise are the sampler's own and are checked. It is written the way the paper recommends:
zero terminal SNR (σ_T = inf), v-prediction finite there, the VE state handed over at σ = inf in
its finite form x_t (the limit of x/√(σ²+1)), the churn noise σ·√(γ(2+γ)) (not √(σ̂²-σ²),
which cancels) and σ_down written without cancellation. It passes every Euler property.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# --- my_pkg: the sampler under test (stands in for your own code) ---------------------------------


class Denoised:
    """model(x, σ) -> x̂₀ of an inner model predicting ε, x₀ or v from (x_t, σ) (k-diffusion's
    DiscreteVDDPMDenoiser, with its limit at σ = inf, where x is already x_t)."""

    def __init__(self, inner, prediction_type):
        self.inner, self.prediction_type = inner, prediction_type

    def __call__(self, x, sigma):
        s = float(sigma.flatten()[0])
        alpha = 0.0 if math.isinf(s) else 1.0 / math.hypot(s, 1.0)  # √ᾱ
        sig = 1.0 if math.isinf(s) else s * alpha                    # √(1-ᾱ)
        x_t = x if math.isinf(s) else x * alpha
        out = self.inner(x_t, s)
        if self.prediction_type == "v_prediction":
            return alpha * x_t - sig * out
        if self.prediction_type == "sample":
            return out
        if math.isinf(s):
            raise ValueError("epsilon prediction is undefined at zero SNR (σ = inf): use v or x0 prediction")
        return x - s * out


def sample_euler(model, x, sigmas, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0, noise_sampler=None):
    """k-diffusion's sample_euler, finite from σ = inf: there x is the finite form x_t."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        if gamma > 0:
            kick = s_noise * math.sqrt(gamma * (2 + gamma)) * noise_sampler(sigma, sigma_next)
            x = (x + kick) / (1 + gamma) if math.isinf(sigma) else x + sigma * kick
        sigma_hat = sigma * (1 + gamma)
        denoised = model(x, torch.full((x.shape[0],), sigma_hat))
        if math.isinf(sigma_hat):  # the limit of x̂₀ + (σ_next/σ̂)(x - x̂₀): x̂₀ + σ_next·x_t
            x = denoised + sigma_next * x
        else:
            x = x + (x - denoised) / sigma_hat * (sigma_next - sigma_hat)
    return x


def sample_euler_ancestral(model, x, sigmas, eta=1.0, noise_sampler=None):
    """k-diffusion's sample_euler_ancestral, finite from σ = inf."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        q = 0.0 if math.isinf(sigma) else sigma_next / sigma
        sigma_up = min(sigma_next, eta * sigma_next * math.sqrt((1 - q) * (1 + q)))
        sigma_down = sigma_next * math.sqrt((1 - eta) * (1 + eta) + eta * eta * q * q)
        denoised = model(x, torch.full((x.shape[0],), sigma))
        x_t = x if math.isinf(sigma) else (x - denoised) / sigma  # d = ε̂ (x_t at σ = inf, the limit)
        x = denoised + sigma_down * x_t
        if sigma_next > 0:
            x = x + noise_sampler(sigma, sigma_next) * sigma_up
    return x


# --- ADAPTER: zsnr's loop-level contract (under 60 lines) -------------------------------------------

import reference as ref
from properties.contract import SamplerConfig, Unsupported


class MyLoopSampler:
    state = "ve"  # x = x_t·√(σ²+1); at σ = inf its finite form x_t

    def __init__(self, cfg: SamplerConfig):
        sched = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                                  rescale=cfg.rescale)
        self.timesteps = ref.fractional_timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps,
                                                  cfg.steps_offset)
        sig = ref.euler_sigmas(sched, self.timesteps, "linear", cfg.option("final_sigmas_type", "zero"))
        self.cfg, self.sig32 = cfg, torch.tensor(sig, dtype=torch.float32)
        self.sigmas, self.alphas_cumprod = self.sig32.double().numpy(), None  # σ only

    def sample(self, x, denoiser, noise, start=0, stop=None):
        cfg, S = self.cfg, len(self.timesteps)
        stop = S if stop is None else stop
        sigmas = self.sig32[start:stop + 1]
        inner = lambda x_t, s: torch.from_numpy(denoiser(x_t.double().numpy(), sigma=s, state="vp")).float()
        model = Denoised(inner, cfg.prediction_type)
        # the noise of step i: k-diffusion's noise_sampler(σ, σ_next) knows the step by its σ
        index = {float(s): start + k for k, s in enumerate(sigmas[:-1])}
        ns = lambda s, s_next: torch.from_numpy(noise(index[float(s)])).float()
        x = torch.from_numpy(np.asarray(x, np.float64)).float()
        if cfg.sampler == "euler":  # γ = s_churn/S of the whole schedule, whatever interval is run
            churn = {k: cfg.option(k) for k in ("s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
            out = sample_euler(model, x, sigmas, s_churn=(cfg.option("s_churn") or 0.0) * (stop - start) / S,
                               noise_sampler=ns, **churn)
        else:
            out = sample_euler_ancestral(model, x, sigmas, eta=cfg.option("eta", 1.0), noise_sampler=ns)
        return out.double().numpy()


class MyLoopImplementation:
    unit_roundoff, smallest_subnormal = 2.0**-24, 2.0**-149

    def build(self, cfg: SamplerConfig) -> MyLoopSampler:
        if cfg.sampler not in ("euler", "euler_ancestral") or cfg.option("interpolation_type", "linear") != "linear" \
                or any(cfg.option(o) for o in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")) \
                or cfg.option("timestep_type", "discrete") != "discrete":
            raise Unsupported("my_pkg has Euler and Euler ancestral with linearly interpolated σ at the timesteps")
        return MyLoopSampler(cfg)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        raise Unsupported("my_pkg has no guidance rescale")

    def quantize(self, x):
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


impl = MyLoopImplementation()
