"""skrample 0.7.0 behind zsnr's contract (:mod:`properties.contract`): NumPy, float64, Python >= 3.12.

``python -m properties --impl properties.adapters.skrample:impl`` in a venv with skrample (see
README "k-diffusion and skrample"). skrample's ``structured.Euler`` is one update of the VP state,
x_next = Γ·x + Δ·model_output + ζ·noise, with ``stochasticity`` η: Euler for η = 0, Euler
ancestral (η) otherwise (the same update as DDIM(η)). Its schedules (``Scaled``: linear and
scaled_linear β; ``ZSNR``: the same rescaled by Algorithm 1) are continuous in t ∈ [0, 1],
evaluated at t = 1 - k/S (trailing) and at t = 0 for the last step. Its deviations are declared as models in
:mod:`.skrample_deviations`; ``python -m properties.adapters.skrample_repro`` reproduces each.
"""

from __future__ import annotations

import numpy as np
from skrample import scheduling
from skrample.common import Step
from skrample.sampling import models, structured

from ..contract import SamplerConfig, Unsupported, refuse_options
from .skrample_deviations import DEVIATIONS

PREDICTIONS = {"epsilon": models.NoiseModel(), "v_prediction": models.VelocityModel(), "sample": models.DataModel()}
BETA_SCALE = {"linear": 1, "scaled_linear": 2}


class SkrampleSampler:
    """skrample's ``structured.Euler`` on a ``Scaled`` / ``ZSNR`` schedule, one step at a time, in
    its own VP state; it reports the levels it steps between (σ of its points, no ᾱ table)."""

    state, alphas_cumprod = "vp", None

    def __init__(self, cfg: SamplerConfig):
        from reference.schedules import DEFAULT_BETA_RANGE

        lo, hi = DEFAULT_BETA_RANGE[cfg.beta_schedule]
        start = lo if cfg.beta_start is None else cfg.beta_start
        end = hi if cfg.beta_end is None else cfg.beta_end
        cls = scheduling.ZSNR if cfg.rescale else scheduling.Scaled
        self.schedule = cls(base_timesteps=cfg.num_train_timesteps, beta_start=start, beta_end=end,
                            beta_scale=BETA_SCALE[cfg.beta_schedule])
        self.S = cfg.num_inference_steps
        eta = cfg.option("eta", 1.0) if cfg.sampler == "euler_ancestral" else 0.0
        self.sampler, self.model = structured.Euler(stochasticity=float(eta)), PREDICTIONS[cfg.prediction_type]
        points = np.concatenate([self.schedule.schedule_np(self.S), [self.schedule.point(0.0)]])
        with np.errstate(divide="ignore"):
            self.sigmas = points[:, 1] / points[:, 2]  # σ = σ_VP/α of each point, then of t = 0
        self.timesteps = points[:-1, 0]  # skrample's own: T·t at t = 1 - k/S

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
    deviations = tuple(DEVIATIONS)

    def build(self, cfg: SamplerConfig) -> SkrampleSampler:
        if cfg.sampler not in ("euler", "euler_ancestral"):
            raise Unsupported(f"skrample's structured.Euler serves euler and euler_ancestral; no {cfg.sampler!r}")
        if cfg.sampler == "euler" and (cfg.option("s_churn") or 0.0) > 0:
            raise Unsupported("skrample's Euler has no churn")
        if cfg.beta_schedule not in BETA_SCALE:
            raise Unsupported(f"skrample has no beta_schedule {cfg.beta_schedule!r} (Scaled: linear, scaled_linear)")
        if cfg.spacing != "trailing" or cfg.steps_offset:
            raise Unsupported("skrample's schedules are evaluated at t = 1 - k/S (trailing) only")
        if cfg.option("final_sigmas_type", "zero") != "zero":
            raise Unsupported("skrample's last step lands on t = 0")
        if cfg.num_inference_steps > cfg.num_train_timesteps:
            raise Unsupported("S > T")
        refuse_options(cfg, "this skrample adapter (structured.Euler on its Scaled schedule)")
        return SkrampleSampler(cfg)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        raise Unsupported("skrample has no guidance rescale")

    def quantize(self, x):
        return np.asarray(x, np.float64)


impl = SkrampleImplementation()
