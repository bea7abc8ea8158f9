"""The contract between zsnr's conformance suite and an implementation under test.

An *implementation* is any object with:

``build(config: SamplerConfig) -> Sampler``
    a sampler for one configuration, or ``raise Unsupported(reason)`` (the test is skipped,
    never failed);
``guidance_rescale(x_cfg, x_pos, guidance_rescale) -> np.ndarray``
    its Algorithm 2 (may raise ``Unsupported``);
``quantize(x) -> np.ndarray``
    x rounded to the dtype it computes in and back to float64 (inputs are fed to the oracle
    exactly as the implementation sees them);
``unit_roundoff: float``
    u of that dtype (2⁻²⁴ for float32), from which every tolerance is derived;
``smallest_subnormal: float`` (optional), ``schedule_unit_roundoff: float`` (optional)
    the dtype's smallest subnormal (absolute rounding below the normal range), and u of the
    dtype its schedules are computed in (default float32's);
``generic_samplers() -> dict[str, Callable[[SamplerConfig], Sampler]]`` (optional)
    further samplers that take a zero-SNR rescale, for the generic flaw checks (finite at T,
    SNR(T) = 0, starts at T).

A *sampler* (what ``build`` returns) exposes, as float64 NumPy arrays:

``alphas_cumprod`` (length T, or None if it has none), ``timesteps`` (what it evaluates, in order),
``sigmas`` (Euler family: length S+1, else None), ``state`` ("vp": x_t = √ᾱ·x₀ + √(1-ᾱ)·ε, or
"ve": x = x_t/√ᾱ), and

``model_input(i, x) -> np.ndarray``  the VP x_t the model sees at step i (for "vp", x itself);
``step(i, x, model_output, seed, predicted_variance=None) -> (x_next, z)``
    one update at step index i from state x; any noise it draws comes from ``seed``, and ``z`` is
    that standard-normal draw (reproduced exactly by the adapter), so the oracle can use it too.

Arrays cross the contract as float64 NumPy; the adapter owns dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral")


class Unsupported(Exception):
    """Raised by an implementation for a configuration it does not support (the test is skipped)."""


@dataclass(frozen=True)
class SamplerConfig:
    """One configuration of a sampler: schedule, spacing, prediction type and per-sampler options.

    ``options`` holds the sampler-specific settings as sorted (name, value) pairs:
    ddpm: variance_type, clip_sample; ddim: eta, clip_sample, set_alpha_to_one,
    use_clipped_model_output; euler: s_churn, s_tmin, s_tmax, s_noise, interpolation_type,
    final_sigmas_type; euler_ancestral: (none: η = 1).
    """

    sampler: str
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float | None = None
    beta_end: float | None = None
    rescale: bool = True
    spacing: str = "trailing"
    steps_offset: int = 0
    num_inference_steps: int = 10
    prediction_type: str = "v_prediction"
    options: tuple[tuple[str, Any], ...] = field(default=())

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    def with_options(self, **kw) -> SamplerConfig:
        merged = dict(self.options)
        merged.update(kw)
        return replace(self, options=tuple(sorted(merged.items())))


class Sampler(Protocol):
    state: str
    alphas_cumprod: np.ndarray | None
    timesteps: np.ndarray
    sigmas: np.ndarray | None

    def model_input(self, i: int, x: np.ndarray) -> np.ndarray: ...

    def step(self, i: int, x: np.ndarray, model_output: np.ndarray, seed: int,
             predicted_variance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class Implementation(Protocol):
    unit_roundoff: float

    def build(self, config: SamplerConfig) -> Sampler: ...

    def guidance_rescale(self, x_cfg: np.ndarray, x_pos: np.ndarray, guidance_rescale: float) -> np.ndarray: ...

    def quantize(self, x: np.ndarray) -> np.ndarray: ...
