"""The contract between zsnr's conformance suite and an implementation under test.

An *implementation* is any object with:

``build(config: SamplerConfig) -> Sampler | LoopSampler``
    a sampler for one configuration, or ``raise Unsupported(reason)``: that configuration is
    skipped, never failed (support is probed per configuration; a property none of whose drawn
    configurations is supported is skipped with the first reason);
``guidance_rescale(x_cfg, x_pos, guidance_rescale) -> np.ndarray``
    its Algorithm 2 (may raise ``Unsupported``);
``quantize(x) -> np.ndarray``
    x rounded to the dtype it computes in and back to float64 (inputs are fed to the oracle
    exactly as the implementation sees them);
``unit_roundoff: float``
    u of that dtype (2⁻²⁴ for float32, 2⁻⁵³ for float64), from which every tolerance is derived
    (for float64 the oracle's own error bound is added, properties/tolerances.py);
``smallest_subnormal: float`` (optional), ``schedule_unit_roundoff: float`` (optional)
    the dtype's smallest subnormal (absolute rounding below the normal range), and u of the
    dtype its schedules are computed in (default float32's);
``generic_samplers() -> dict[str, Callable[[SamplerConfig], Sampler]]`` (optional)
    further samplers that take a zero-SNR rescale, for the generic flaw checks (finite at T,
    SNR(T) = 0, starts at T).

What a sampler reports (both kinds), as float64 NumPy arrays
-------------------------------------------------------------
``timesteps``: what it evaluates, in order (length S; fractional allowed).
``alphas_cumprod``: its ᾱ table (length T), or None.
``sigmas``: σ = √((1-ᾱ)/ᾱ) of each step's level, then the level it lands on (length S+1; +inf
at zero SNR), or None. At least one of ``alphas_cumprod`` and ``sigmas`` must be given; the
suite reads each step's levels from ``sigmas`` where given (the Euler family) or from
``alphas_cumprod`` at the configuration's timesteps (DDPM/DDIM), and falls back to the other.
A NaN level or timestep is that property's failure (it may be declared with
``symptom=NON_FINITE``), never an error of the oracle.
``state``: "vp" or "ve", *declared* by the sampler and the only thing the suite reads to scale
states (the sampler's kind, e.g. "euler", says which update it performs, not how its state is
scaled):

- "vp": the state is x_t = √ᾱ·x₀ + √(1-ᾱ)·ε (what a model receives as input);
- "ve": the state is x = x_t/√ᾱ = x_t·√(σ²+1).

**σ = ∞ (zero SNR) is a level like any other.** There the VE state is infinite, so it is handed
over in its *finite form*: at a level σ = ∞ (ᾱ = 0) a "ve" state is passed and returned as the
VP x_t, the limit of x/√(σ²+1) (for x_T: pure noise ε). :func:`state_scale` is this rule. The
oracle's update from σ = ∞ is the limit of its update as σ → ∞ (reference.loop.step_map:
DDIM with η = 0 for Euler after the churn's limit reference.samplers.euler_churn_vp, with η for
Euler ancestral), taken from the finite form.

Step-level samplers (:class:`Sampler`)
--------------------------------------
``model_input(i, x) -> np.ndarray``  the VP x_t the model sees at step i (for "vp", x itself);
``step(i, x, model_output, seed, predicted_variance=None) -> (x_next, z)``
    one update at step index i from state x; any noise it draws comes from ``seed``, and ``z`` is
    that standard-normal draw (reproduced exactly by the adapter), so the oracle can use it too.
    The suite evaluates the model at ``model_input(i, x)``, before the step: a step-level sampler
    cannot evaluate the model after Euler's churn (Karras Alg. 2), so with churn its loop
    deviates by construction (diffusers declares it: euler-churn-model-before-churn).

Loop-level samplers (:class:`LoopSampler`): the implementation runs its own loop
--------------------------------------------------------------------------------
``sample(x, denoiser, noise, start=0, stop=None) -> x_stop``
    run steps ``start .. stop-1`` (default: to the end, S) of the configured schedule exactly as
    the full loop runs them (γ = s_churn/S is the whole schedule's), from the state ``x`` at the
    level of step ``start``; return the state at the level of step ``stop`` (the final level for
    stop = S). Properties that need one step call it with ``stop = start + 1``.

    ``denoiser(x, *, sigma=None, alpha_bar=None, timestep=None, state=None)`` is the model,
    supplied by the suite. Call it wherever your loop evaluates the model, with what you pass to
    the model: the input ``x`` and the level it is evaluated at, ``sigma`` (may be inf) or
    ``alpha_bar`` (exactly one; or only ``timestep``, if it is one of your ``timesteps``, or an
    integer index into your ``alphas_cumprod``). ``state`` says how that input is scaled ("vp"
    or "ve"; default the sampler's ``state``; "ve" at σ = ∞ is the finite form). It returns the
    model output for the configuration's prediction type as float64 NumPy of x's shape, already
    rounded to your dtype -- for DDPM's learned variance types a pair (output, predicted
    variance). The suite computes that output as a function of what you pass, so where you
    evaluate the model (before or after Euler's churn) is checked against the oracle.

    ``noise(i) -> z`` is the noise source: a standard-normal draw of the state's shape for step
    index i (float64 NumPy, rounded to your dtype; the same array every time it is asked for
    step i). Draw every random number of step i from ``noise(i)`` -- Euler's churn noise, the
    DDPM/DDIM/ancestral step noise -- so the suite can give the oracle the same draws; where and
    with what scale you add it is yours, and is checked.

Arrays cross the contract as float64 NumPy; the adapter owns dtype and device.
``properties/adapters/example.py`` (step level) and ``example_loop.py`` (loop level) are worked
adapters; ``properties/adapters/reference.py`` puts the oracle itself behind the loop-level
contract, and passes every property.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral")
STATES = ("vp", "ve")


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


def state_scale(state: str, *, sigma: float | None = None, alpha_bar: float | None = None) -> float:
    """The factor from the VP x_t to a sampler's state at a level (σ or ᾱ, one of them):
    1 for "vp"; √(σ²+1) = 1/√ᾱ for "ve" -- and 1 at σ = ∞ (ᾱ = 0), where the VE state is handed
    over in its finite form, the VP x_t (the limit of x/√(σ²+1))."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}; got {state!r}")
    if (sigma is None) == (alpha_bar is None):
        raise TypeError("state_scale takes exactly one of sigma= and alpha_bar=")
    if state == "vp":
        return 1.0
    if sigma is not None:
        return 1.0 if math.isinf(sigma) else math.hypot(sigma, 1.0)
    return 1.0 if alpha_bar == 0.0 else 1.0 / math.sqrt(alpha_bar)


def is_loop_level(sampler) -> bool:
    """Whether a built sampler follows the loop-level contract (it has ``sample``)."""
    flag = getattr(sampler, "loop_level", None)  # the guard's wrapper says what it wraps
    return bool(flag) if flag is not None else callable(getattr(sampler, "sample", None))


#: drawn options that change the σ schedule, the model's timesteps or x̂₀, each with the value that
#: leaves them off (an adapter whose library lacks one refuses the configurations that set it)
OFF_OPTIONS = {"use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
               "timestep_type": "discrete", "thresholding": False}


def refuse_options(cfg: SamplerConfig, library: str, off: dict = OFF_OPTIONS) -> None:
    """Raise :class:`Unsupported` where ``cfg`` sets one of ``off``'s options to another value than
    its off value: an adapter must not test a configuration other than the one drawn."""
    for name, value in off.items():
        got = cfg.option(name)
        if got is not None and got != value:
            raise Unsupported(f"{library} has no {name} (the configuration sets {name}={got!r})")


class Sampler(Protocol):
    """A step-level sampler."""

    state: str
    alphas_cumprod: np.ndarray | None
    timesteps: np.ndarray
    sigmas: np.ndarray | None

    def model_input(self, i: int, x: np.ndarray) -> np.ndarray: ...

    def step(self, i: int, x: np.ndarray, model_output: np.ndarray, seed: int,
             predicted_variance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class Denoiser(Protocol):
    """The model, as the suite supplies it to a loop-level sampler."""

    def __call__(self, x: np.ndarray, *, sigma: float | None = None, alpha_bar: float | None = None,
                 timestep: float | None = None, state: str | None = None) -> np.ndarray: ...


class LoopSampler(Protocol):
    """A loop-level sampler: it runs its own loop, calling the suite's denoiser and noise source."""

    state: str
    alphas_cumprod: np.ndarray | None
    timesteps: np.ndarray
    sigmas: np.ndarray | None

    def sample(self, x: np.ndarray, denoiser: Denoiser, noise: Callable[[int], np.ndarray],
               start: int = 0, stop: int | None = None) -> np.ndarray: ...


class Implementation(Protocol):
    unit_roundoff: float

    def build(self, config: SamplerConfig) -> Sampler | LoopSampler: ...

    def guidance_rescale(self, x_cfg: np.ndarray, x_pos: np.ndarray, guidance_rescale: float) -> np.ndarray: ...

    def quantize(self, x: np.ndarray) -> np.ndarray: ...
