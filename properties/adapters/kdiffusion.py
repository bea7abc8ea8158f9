"""k-diffusion 0.1.1.post1 behind zsnr's loop-level contract (:mod:`properties.contract`).

``python -m properties --impl properties.adapters.kdiffusion:impl`` in the k-diffusion venv (see
README "k-diffusion and skrample"). k-diffusion runs its own loops, ``sampling.sample_euler`` and
``sampling.sample_euler_ancestral``, over a VE state x = x_t/√ᾱ, calling a model ``model(x, σ)``;
a discrete-time network is wrapped by ``external.DiscreteVDDPMDenoiser`` (v) or
``DiscreteEpsDDPMDenoiser`` (ε), whose ``DiscreteSchedule`` holds σ = √((1-ᾱ)/ᾱ) of the network's
float32 ᾱ table and gives S levels by ``get_sigmas(S)``: t = linspace(T-1, 0, S), log σ
interpolated in t, then σ = 0. So k-diffusion serves ``euler`` / ``euler_ancestral`` with
linspace spacing, ``final_sigmas_type="zero"``, ε or v (its σ are log-linear in t whatever the
configuration's ``interpolation_type``: a declared deviation where that is "linear").

The suite's denoiser stands in for the network: the wrapper calls it with c_in·x (the VP x_t)
and the σ the loop evaluates at. ``sample_euler`` has no noise argument (its churn noise is
``torch.randn_like(x)``, one draw per step), so its draws are routed to the suite's noise source
with a :class:`torch.overrides.TorchFunctionMode`; ``sample_euler_ancestral`` takes the suite's
noise as its ``noise_sampler``. Declared deviations: :mod:`.kdiffusion_deviations`; standalone
reproductions: ``python -m properties.adapters.kdiffusion_repro``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

with warnings.catch_warnings():  # clip (imported by k_diffusion/__init__) warns about pkg_resources
    warnings.simplefilter("ignore")
    from k_diffusion import external, sampling

import reference as ref

from ..contract import SamplerConfig, Unsupported, refuse_options
from .kdiffusion_deviations import DEVIATIONS

WRAPPERS = {"v_prediction": external.DiscreteVDDPMDenoiser, "epsilon": external.DiscreteEpsDDPMDenoiser}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


class _Network(torch.nn.Module):
    """The network inside the wrapper: the suite's denoiser at the σ the wrapper was called with."""

    def forward(self, x_t, t):
        return torch.as_tensor(self.denoiser(_np(x_t), sigma=self.sigma, state="vp"), dtype=torch.float32)


class _Noise(TorchFunctionMode):
    """The suite's noise in k-diffusion's loop: draw k (a torch.randn_like, or a call as the
    noise_sampler) is step start + k's."""

    def __init__(self, noise, start: int):
        super().__init__()
        self.noise, self.i = noise, start

    def __call__(self, *_):
        self.i += 1
        return torch.as_tensor(self.noise(self.i - 1), dtype=torch.float32)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self() if func is torch.randn_like else func(*args, **(kwargs or {}))


class KDiffusionSampler:
    state, alphas_cumprod = "ve", None  # k-diffusion holds σ only

    def __init__(self, cfg: SamplerConfig):
        abar = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                                 rescale=cfg.rescale).alphas_cumprod  # the network's ᾱ table, in float32
        self.cfg, self.net = cfg, _Network()
        self.wrapper = WRAPPERS[cfg.prediction_type](self.net, torch.tensor(abar, dtype=torch.float32), quantize=False)
        self._sigmas = self.wrapper.get_sigmas(cfg.num_inference_steps)
        self.sigmas = _np(self._sigmas)
        self.timesteps = _np(torch.linspace(cfg.num_train_timesteps - 1, 0, cfg.num_inference_steps))

    def _model(self, x, sigma):
        self.net.sigma = float(sigma[0])
        return self.wrapper(x, sigma)

    def sample(self, x, denoiser, noise, start=0, stop=None):
        cfg, S = self.cfg, self.cfg.num_inference_steps
        sig = self._sigmas[start:(S if stop is None else stop) + 1]
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if not torch.isfinite(sig[0]):  # at σ = ∞ the state is handed over as x_t: k-diffusion's is x_t·σ
            x = x * sig[0]
        self.net.denoiser = denoiser
        with _Noise(noise, start) as draws:
            if cfg.sampler == "euler_ancestral":
                out = sampling.sample_euler_ancestral(self._model, x, sig, disable=True, eta=cfg.option("eta", 1.0),
                                                      noise_sampler=draws)
            else:  # γ = min(s_churn/(len(sigmas) - 1), √2 - 1): the whole schedule's S for a part of it
                churn = {k: cfg.option(k) for k in ("s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
                out = sampling.sample_euler(self._model, x, sig, disable=True,
                                            s_churn=(cfg.option("s_churn") or 0.0) * (len(sig) - 1) / S, **churn)
        return _np(out)


class KDiffusionImplementation:
    name = "k-diffusion"
    unit_roundoff, smallest_subnormal = 2.0**-24, 2.0**-149
    dtype = deviations_dtype = "float32"
    deviations = tuple(DEVIATIONS)

    def build(self, cfg: SamplerConfig) -> KDiffusionSampler:
        why = ("k-diffusion's loops here are sample_euler and sample_euler_ancestral"
               if cfg.sampler not in ("euler", "euler_ancestral") else
               "its discrete DDPM wrappers take ε or v networks" if cfg.prediction_type not in WRAPPERS else
               "DiscreteSchedule.get_sigmas(S) is t = linspace(T-1, 0, S), ending on σ = 0"
               if cfg.spacing != "linspace" or cfg.steps_offset or cfg.option("final_sigmas_type", "zero") != "zero"
               else "S > T" if cfg.num_inference_steps > cfg.num_train_timesteps else None)
        if why:
            raise Unsupported(why)
        refuse_options(cfg, "this k-diffusion adapter (DiscreteSchedule.get_sigmas)")
        return KDiffusionSampler(cfg)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        raise Unsupported("k-diffusion has no guidance rescale")

    def quantize(self, x):
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


impl = KDiffusionImplementation()
