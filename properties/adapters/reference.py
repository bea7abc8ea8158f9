"""The oracle itself behind the loop-level contract: the suite's own consistency check.

``impl64`` is :mod:`reference` as it is (float64); ``impl32`` is the same computation with every
state, model output and result rounded to float32 (what crosses the contract), its schedules
kept in float64. Both must pass every property with no declared deviation::

    pytest --pyargs properties.conformance --impl properties.adapters.reference:impl64
    python -m properties --impl properties.adapters.reference:impl32

Any property an exact implementation cannot pass is a bug of the suite, not of the oracle
(properties/adapters/test_reference_adapter.py keeps it so in the default ``pytest`` run).

The samplers run their own loop (``sample``, properties/contract.py) with
:func:`reference.step_map`, the oracle's step as a function of the VP state: the model is called
through the suite's denoiser with the VP x_t and the level ᾱ it is evaluated at (after Euler's
churn, Karras Alg. 2), and every step's noise is ``noise(i)``. The Euler family's state is the VE
x = x_t·√(σ²+1), handed over at σ = inf in its finite form (the VP x_t); ``state="vp"`` gives a
VP-state Euler family instead (as skrample's), ``report`` which schedule arrays are reported
(σ-only or ᾱ-only implementations).
"""

from __future__ import annotations

import numpy as np

import reference as ref
from properties import expected
from properties.contract import SAMPLERS, SamplerConfig, Unsupported, state_scale

_DTYPES = {"float64": np.float64, "float32": np.float32}


class ReferenceSampler:
    """One configuration of the oracle, loop-level."""

    def __init__(self, impl: ReferenceImplementation, cfg: SamplerConfig):
        self.impl, self.cfg = impl, cfg
        sched = expected.schedule(cfg)
        ve = cfg.sampler in expected.VE_SAMPLERS
        try:
            self.timesteps = expected.timesteps(cfg)
            sigmas = expected.sigmas(cfg, sched) if ve else None
        except ValueError as exc:  # a configuration the oracle leaves undefined (Karras σ at σ_max = inf, ...)
            raise Unsupported(f"the oracle defines no schedule here: {str(exc).splitlines()[0]}") from None
        if ve:
            self._levels = ref.alpha_bars_from_sigmas(sigmas)
        else:
            final = expected.final_alpha_bar(cfg, sched.alphas_cumprod)
            self._levels = np.concatenate([sched.alphas_cumprod[self.timesteps.astype(np.int64)], [final]])
            with np.errstate(divide="ignore"):
                sigmas = np.sqrt((1.0 - self._levels) / self._levels)
        self.state = impl.euler_state if ve else "vp"
        self.alphas_cumprod = sched.alphas_cumprod.copy() if "alphas_cumprod" in impl.report else None
        self.sigmas = sigmas if "sigmas" in impl.report and (ve or impl.vp_sigmas) else None
        if self.alphas_cumprod is None and self.sigmas is None:
            raise Unsupported(f"{cfg.sampler} reports its levels only as {impl.report}, which it has not")
        self._options = {n: v for n, v in cfg.options if n in ref.loop.SAMPLER_OPTIONS[cfg.sampler]}

    def _scale(self, k: int) -> float:
        return state_scale(self.state, alpha_bar=float(self._levels[k]))

    def sample(self, x, denoiser, noise, start=0, stop=None):
        cfg, q = self.cfg, self.impl.quantize
        stop = len(self.timesteps) if stop is None else stop
        x = np.asarray(x, np.float64)
        for i in range(start, stop):
            def model(x_t, t, a, i=i):  # the suite's denoiser, told what the oracle's step passes
                return denoiser(x_t, alpha_bar=a, timestep=float(self.timesteps[i]), state="vp")

            f = ref.step_map(cfg.sampler, model, prediction_type=cfg.prediction_type,
                             alpha_bar=float(self._levels[i]), alpha_bar_next=float(self._levels[i + 1]),
                             timestep=float(self.timesteps[i]), num_inference_steps=len(self.timesteps),
                             **self._options)
            x = q(f(x / self._scale(i), noise(i)) * self._scale(i + 1))
        return x

    # --- training side (optional, properties/conformance/training.py) -----------------------------

    def _index(self, t):
        return expected._index_in(self.timesteps, t)

    def add_noise(self, x0, eps, t):
        x0, eps = np.asarray(x0, np.float64), np.asarray(eps, np.float64)
        if self.cfg.sampler in expected.VE_SAMPLERS and self.state == "vp":
            a = self._levels[self._index(t)]
            return self.impl.quantize(ref.add_noise(x0, eps, a.reshape(a.shape + (1,) * (x0.ndim - 1))))
        if self.cfg.sampler in expected.VE_SAMPLERS:
            sig = expected.sigmas(self.cfg, expected.schedule(self.cfg))[self._index(t)]
            sig = sig.reshape(sig.shape + (1,) * (x0.ndim - 1))
            # x₀ + σ·ε, and at σ = inf its finite form ε (the VP x_t)
            with np.errstate(invalid="ignore"):
                out = np.where(np.isinf(sig), eps, x0 + np.where(np.isinf(sig), 0.0, sig) * eps)
            return self.impl.quantize(out)
        a = expected.schedule(self.cfg).alphas_cumprod[np.asarray(t, np.float64).astype(np.int64)]
        return self.impl.quantize(ref.add_noise(x0, eps, a.reshape(a.shape + (1,) * (x0.ndim - 1))))

    def add_noise_in_loop(self, x0, eps, begin, steps_taken):
        t = np.full(np.shape(x0)[0], self.timesteps[begin + steps_taken])
        return self.add_noise(x0, eps, t)

    def velocity(self, x0, eps, t):
        x0 = np.asarray(x0, np.float64)
        if self.cfg.sampler in expected.VE_SAMPLERS:
            a = self._levels[self._index(t)]
        else:
            a = expected.schedule(self.cfg).alphas_cumprod[np.asarray(t, np.float64).astype(np.int64)]
        return self.impl.quantize(ref.velocity(x0, np.asarray(eps, np.float64), a.reshape(a.shape + (1,) * (x0.ndim - 1))))


class ReferenceImplementation:
    """The oracle as an implementation: ``dtype`` "float64" (exact) or "float32" (every state,
    model output and result rounded to float32). ``euler_state`` "ve" (default) or "vp";
    ``report``: the schedule arrays its samplers report ("alphas_cumprod", "sigmas");
    ``vp_sigmas``: DDPM/DDIM samplers report σ too."""

    name = "reference"
    deviations = ()

    def __init__(self, dtype: str = "float64", euler_state: str = "ve",
                 report=("alphas_cumprod", "sigmas"), vp_sigmas: bool = False):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}; got {dtype!r}")
        if euler_state not in ("vp", "ve"):
            raise ValueError(f"euler_state must be 'vp' or 've'; got {euler_state!r}")
        self.dtype, self._np = dtype, _DTYPES[dtype]
        self.euler_state, self.report, self.vp_sigmas = euler_state, tuple(report), bool(vp_sigmas)
        info = np.finfo(self._np)
        self.unit_roundoff = float(info.eps) / 2
        self.smallest_subnormal = float(info.smallest_subnormal)
        #: the schedules are the oracle's float64 values
        self.schedule_unit_roundoff = 2.0**-53

    def __repr__(self):
        return (f"ReferenceImplementation(dtype={self.dtype!r}, euler_state={self.euler_state!r}, "
                f"report={self.report!r})")

    def quantize(self, x):
        with np.errstate(over="ignore"):
            return np.asarray(x, np.float64).astype(self._np).astype(np.float64)

    def build(self, config: SamplerConfig) -> ReferenceSampler:
        if config.sampler not in SAMPLERS:
            raise Unsupported(f"the oracle has no sampler {config.sampler!r}")
        return ReferenceSampler(self, config)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        return self.quantize(ref.rescale_guidance(self.quantize(x_cfg), self.quantize(x_pos), guidance_rescale))

    # --- training side ----------------------------------------------------------------------------

    def training_snr(self, config: SamplerConfig, t):
        # a schedule quantity: in the schedules' dtype (float64), as training code computes it
        abar = expected.schedule(config).alphas_cumprod[np.asarray(t, np.int64)]
        return ref.snr(abar)

    def min_snr_weights(self, config: SamplerConfig, t, gamma: float):
        abar = expected.schedule(config).alphas_cumprod[np.asarray(t, np.int64)]
        return ref.loss_weight(abar, config.prediction_type, "min_snr", gamma=gamma)


impl64 = ReferenceImplementation("float64")
impl32 = ReferenceImplementation("float32")
impl = impl64

