"""A worked adapter: a small, self-contained torch DDIM sampler ("my_pkg") put behind zsnr's
contract. Copy this file into your repository, replace ``MyDDIM`` by your sampler, and run::

    pytest --pyargs properties --impl my_pkg.zsnr_adapter:impl

``MyDDIM`` itself is written the way the paper recommends: schedule rescaled to zero terminal
SNR, update in x₀/ε form with the noise radicand written as a sum of non-negative terms, and
the previous timestep looked up in the schedule (never t - T//S). It passes the DDIM properties.
"""

from __future__ import annotations

import numpy as np
import torch

import reference as ref
from properties.contract import SamplerConfig, Unsupported
from properties.deviations import Deviation


class MyDDIM:
    """The sampler under test (stands in for your own code; float32 torch)."""

    def __init__(self, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, final_alpha_cumprod: float):
        self.alphas_cumprod, self.timesteps = alphas_cumprod, timesteps
        self.final = torch.tensor(final_alpha_cumprod, dtype=alphas_cumprod.dtype)

    def step(self, i, sample, model_output, prediction_type, eta=0.0, noise=None):
        a_t = self.alphas_cumprod[self.timesteps[i]]
        a_p = self.alphas_cumprod[self.timesteps[i + 1]] if i + 1 < len(self.timesteps) else self.final
        alpha, sigma = a_t.sqrt(), (1 - a_t).sqrt()
        if prediction_type == "v_prediction":
            x0, eps = alpha * sample - sigma * model_output, sigma * sample + alpha * model_output
        elif prediction_type == "sample":
            x0, eps = model_output, (sample - alpha * model_output) / sigma
        else:
            if a_t == 0:
                raise ValueError("epsilon prediction is undefined at zero SNR")
            x0, eps = (sample - sigma * model_output) / alpha, model_output
        keep = (1 - eta) * (1 + eta) + eta**2 * (a_t * (1 - a_p)) / (a_p * (1 - a_t))
        s = eta * ((1 - a_p) / (1 - a_t) * ((a_p - a_t) / a_p)).sqrt()
        out = a_p.sqrt() * x0 + ((1 - a_p) * keep).sqrt() * eps
        return out + s * noise if eta > 0 else out


class MySampler:
    """MyDDIM behind the contract's Sampler interface."""

    state, sigmas = "vp", None

    def __init__(self, cfg: SamplerConfig):
        sched = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                                  rescale=cfg.rescale)
        ts = ref.timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps, cfg.steps_offset)
        abar = torch.tensor(sched.alphas_cumprod, dtype=torch.float32)
        final = 1.0 if cfg.option("set_alpha_to_one", True) else float(abar[0])
        self.cfg, self.ddim = cfg, MyDDIM(abar, torch.from_numpy(ts), final)
        self.alphas_cumprod = abar.double().numpy()
        self.timesteps = ts.astype(np.float64)

    def model_input(self, i, x):
        return np.asarray(x, np.float64)

    def step(self, i, x, model_output, seed, predicted_variance=None):
        z = torch.randn(np.shape(x), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
        t32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
        out = self.ddim.step(i, t32(x), t32(model_output), self.cfg.prediction_type,
                             eta=self.cfg.option("eta", 0.0), noise=z)
        return out.double().numpy(), z.double().numpy()


def _float32_underflow(cfg: SamplerConfig) -> bool:
    sched = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
    return bool(sched.alphas_cumprod[-1] < 2.0**-126)


def _float32_alphas_cumprod(E, cfg: SamplerConfig):
    """MODEL: MyDDIM's ᾱ is the oracle's rounded to float32 (subnormal, or 0 below 2⁻¹⁵⁰)."""
    return E.oracle.alphas_cumprod(cfg).astype(np.float32).astype(np.float64)


def _half_subnormal(E, cfg: SamplerConfig):
    """WIDENING: rounding a value below float32's normal range errs by up to 2⁻¹⁵⁰, absolutely."""
    return 2.0**-150


def _unchecked(E, cfg: SamplerConfig, abar, levels):
    """MODEL: a step between ᾱ that are 0 (or not increasing) has no value to compare -- excused
    only where MyDDIM's whole table is the model's float32 table."""
    from properties.tolerances import alphas_cumprod_relative

    want = E.alphas_cumprod(cfg)
    rel = alphas_cumprod_relative(ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start,
                                                    cfg.beta_end).betas)  # the float32 running product's bound
    return bool(np.all(np.abs(np.asarray(abar) - want) <= rel * want + 2.0**-150))


class MyImplementation:
    unit_roundoff = 2.0**-24
    smallest_subnormal = 2.0**-149
    #: MyDDIM's own known deviation, declared as a model of what it computes (this is how a
    #: repository records one): inside its region MyDDIM is checked against that model
    deviations = (
        Deviation("my-float32-schedule-underflow", ("schedule", "step", "chaining", "loop"), ("ddim",),
                  _float32_underflow,
                  "MyDDIM stores ᾱ in float32: below 2⁻¹²⁶ (steep schedules, large T) it becomes subnormal or 0",
                  "https://example.invalid/my_pkg/issues/1",
                  SamplerConfig("ddim", num_train_timesteps=4000, beta_schedule="linear",
                                beta_start=0.0078125, beta_end=0.046875, rescale=False),
                  model={"alphas_cumprod": _float32_alphas_cumprod, "alphas_cumprod_abs": _half_subnormal,
                         "unchecked_levels": _unchecked},
                  summary="ᾱ = the oracle's rounded to float32 (0 below 2⁻¹⁵⁰); steps between zero ᾱ unchecked"),
    )

    def build(self, cfg: SamplerConfig) -> MySampler:
        if cfg.sampler != "ddim" or cfg.option("clip_sample") or cfg.option("use_clipped_model_output") \
                or cfg.option("thresholding"):
            raise Unsupported("MyDDIM is DDIM without clipping or thresholding")
        if cfg.beta_schedule == "sigmoid":
            raise Unsupported("MyDDIM has no sigmoid schedule")
        return MySampler(cfg)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        raise Unsupported("MyDDIM has no guidance rescale")

    def quantize(self, x):
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


impl = MyImplementation()
