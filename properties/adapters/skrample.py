"""skrample 0.7.0 behind zsnr's contract (:mod:`properties.contract`): NumPy, float64, Python >= 3.12.

``python -m properties --impl properties.adapters.skrample:impl`` in a venv with skrample (see
README "k-diffusion and skrample"). skrample's ``structured.Euler`` is one update in VP form,
x_next = Γ·x + Δ·model_output + ζ·noise, with ``stochasticity`` η: DDIM(η) exactly. Its schedules
(``Scaled``: linear and scaled_linear β; ``ZSNR``: the same rescaled by Algorithm 1) are continuous
in t ∈ [0, 1], evaluated at t = 1 - k/S ("trailing"). Its deviations are declared as models in
:mod:`.skrample_deviations`; ``python -m properties.adapters.skrample_repro`` reproduces each.
"""

from __future__ import annotations

import numpy as np
from skrample import scheduling
from skrample.common import Step
from skrample.sampling import models, structured

from ..contract import SamplerConfig, Unsupported

PREDICTIONS = {"epsilon": models.NoiseModel(), "v_prediction": models.VelocityModel(), "sample": models.DataModel()}
BETA_SCALE = {"linear": 1, "scaled_linear": 2}


class SkrampleSampler:
    state, sigmas = "vp", None

    def __init__(self, cfg: SamplerConfig):
        from reference.schedules import DEFAULT_BETA_RANGE

        lo, hi = DEFAULT_BETA_RANGE[cfg.beta_schedule]
        cls = scheduling.ZSNR if cfg.rescale else scheduling.Scaled
        self.schedule = cls(base_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start or lo,
                            beta_end=cfg.beta_end or hi, beta_scale=BETA_SCALE[cfg.beta_schedule])
        self.cfg, self.S, T = cfg, cfg.num_inference_steps, cfg.num_train_timesteps
        self.sampler = structured.Euler(stochasticity=float(cfg.option("eta", 0.0)))
        self.model = PREDICTIONS[cfg.prediction_type]
        # skrample's ᾱ at its 1-based training timesteps k = 1..T (t = k/T), and the timesteps it
        # evaluates, T·t for t = 1 - k/S, as 0-based (T·t - 1)
        self.alphas_cumprod = self.schedule.points_np(np.arange(1, T + 1) / T)[:, 2] ** 2
        self.timesteps = self.schedule.schedule_np(self.S)[:, 0] - 1.0

    def model_input(self, i, x):
        return np.asarray(x, np.float64)

    def step(self, i, x, model_output, seed, predicted_variance=None):
        z = np.random.default_rng(seed).standard_normal(np.shape(x))
        out = self.sampler.sample(np.asarray(x, np.float64), np.asarray(model_output, np.float64),
                                  Step.from_int(i, self.S), self.model, self.schedule,
                                  noise=z if self.sampler.require_noise else None)
        return np.asarray(out.final, np.float64), z


class SkrampleImplementation:
    name = "skrample"
    unit_roundoff = 2.0**-53
    smallest_subnormal = 2.0**-1074
    schedule_unit_roundoff = 2.0**-53
    dtype = deviations_dtype = "float64"

    def __init__(self):
        from .skrample_deviations import DEVIATIONS

        self.deviations = list(DEVIATIONS)

    def build(self, cfg: SamplerConfig) -> SkrampleSampler:
        if cfg.sampler != "ddim":
            raise Unsupported(f"skrample's Euler is served as ddim here; no {cfg.sampler!r}")
        if cfg.beta_schedule not in BETA_SCALE:
            raise Unsupported(f"skrample has no beta_schedule {cfg.beta_schedule!r} (Scaled: linear, scaled_linear)")
        if cfg.spacing != "trailing" or cfg.steps_offset:
            raise Unsupported("skrample's schedules are evaluated at t = 1 - k/S (trailing) only")
        if cfg.option("clip_sample") or cfg.option("use_clipped_model_output") or \
                cfg.option("set_alpha_to_one", True) is False:
            raise Unsupported("skrample's Euler has no clipping and always lands on t = 0")
        if cfg.num_inference_steps > cfg.num_train_timesteps:
            raise Unsupported("S > T")
        return SkrampleSampler(cfg)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        raise Unsupported("skrample has no guidance rescale")

    def quantize(self, x):
        return np.asarray(x, np.float64)


impl = SkrampleImplementation()
