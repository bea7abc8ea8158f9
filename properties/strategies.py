"""Every Hypothesis strategy of zsnr, in one place.

Configurations are plain frozen dataclasses with readable reprs, so a failing example reads as a
configuration a user can paste. Edge cases that must always be tried (S = 1, S = T, zero SNR,
η = 0 and 1) are attached to the tests with ``@example``; the strategies also weight them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import (
    BETA_SCHEDULES,
    PREDICTION_TYPES,
    SPACINGS,
    VARIANCE_TYPES,
    make_schedule,
    timesteps,
)

MAX_T = 4000


@dataclass(frozen=True)
class ScheduleConfig:
    """A named beta schedule: T, β range (None for the cosines), rescaled or not."""

    name: str = "scaled_linear"
    num_train_timesteps: int = 1000
    beta_start: float | None = None
    beta_end: float | None = None
    rescale: bool = False

    def build(self):
        return make_schedule(self.name, self.num_train_timesteps, self.beta_start, self.beta_end,
                             rescale=self.rescale)


@dataclass(frozen=True)
class SpacingConfig:
    spacing: str = "trailing"
    num_train_timesteps: int = 1000
    num_inference_steps: int = 10
    steps_offset: int = 0

    def build(self):
        return timesteps(self.spacing, self.num_train_timesteps, self.num_inference_steps, self.steps_offset)


# --- scalars ------------------------------------------------------------------------------------

schedule_names = st.sampled_from(BETA_SCHEDULES)
prediction_types = st.sampled_from(PREDICTION_TYPES)
finite_at_zero_snr_predictions = st.sampled_from(("v_prediction", "sample"))
spacings = st.sampled_from(SPACINGS)
variance_types = st.sampled_from(VARIANCE_TYPES)
etas = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
guidance_scales = st.one_of(st.just(7.5), st.floats(0.0, 20.0))
guidance_rescales = st.one_of(st.sampled_from([0.0, 0.7, 1.0]), st.floats(0.0, 1.0))


def num_train_timesteps(min_value: int = 1, max_value: int = MAX_T):
    return st.one_of(st.sampled_from([v for v in (1, 2, 1000, max_value) if min_value <= v <= max_value]),
                     st.integers(min_value, max_value))


@st.composite
def beta_ranges(draw, name: str):
    """(beta_start, beta_end) for a schedule that takes a range: its default, or a drawn range
    with 0 < beta_start <= beta_end <= 0.05 (the sigmoid and linear families), sqrt-spaced for
    scaled_linear."""
    if name in ("squaredcos_cap_v2", "cosine_unclipped"):
        return None, None
    if draw(st.booleans()):
        return None, None
    start = draw(st.floats(1e-5, 0.01))
    end = draw(st.floats(start, 0.05))
    return start, end


@st.composite
def schedule_configs(draw, min_T: int = 1, max_T: int = MAX_T, rescale=None, names=schedule_names):
    name = draw(names)
    T = draw(num_train_timesteps(max(min_T, 2) if rescale else min_T, max_T))
    start, end = draw(beta_ranges(name))
    do_rescale = draw(st.booleans()) if rescale is None else rescale
    return ScheduleConfig(name, T, start, end, do_rescale and T >= 2)


@st.composite
def spacing_configs(draw, num_train_timesteps=None, spacing=None):
    T = draw(globals()["num_train_timesteps"]()) if num_train_timesteps is None else num_train_timesteps
    sp = draw(spacings) if spacing is None else spacing
    S = draw(st.one_of(st.sampled_from(sorted({1, T, min(T, 10), min(T, 50)})), st.integers(1, T)))
    offset = 0
    if sp == "leading":
        offset = draw(st.integers(0, T - 1 - (S - 1) * (T // S)))
    return SpacingConfig(sp, T, S, offset)


# --- arrays -------------------------------------------------------------------------------------

def states(shape=(2, 3), max_abs: float = 1e3):
    """Finite float64 arrays (latents, model outputs, noise) of the given shape."""
    return hnp.arrays(np.float64, shape, elements=st.floats(-max_abs, max_abs, allow_nan=False))


@st.composite
def alpha_bar_pairs(draw, allow_zero: bool = True, allow_one_prev: bool = True):
    """(ᾱ_t, ᾱ_prev) with 0 <= ᾱ_t <= ᾱ_prev <= 1, ᾱ_t < 1, ᾱ_prev > 0: one step of any sampler,
    weighted towards the edges ᾱ_t = 0 (zero SNR) and ᾱ_prev = 1 (the last step)."""
    a_t = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.9999)) if allow_zero else st.floats(1e-6, 0.9999))
    a_p = draw(st.one_of(st.just(1.0), st.floats(max(a_t, 1e-6), 1.0)) if allow_one_prev
               else st.floats(max(a_t, 1e-6), 0.99999))
    return a_t, max(a_p, a_t)


SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


# --- oracle property tests (properties/oracle) --------------------------------------------------

#: prediction types that are finite at ᾱ = 0, and one flag per DDPM variance type: learned types
#: need a drawn predicted_variance (variance for "learned", v in [-1, 1] for "learned_range").
LEARNED_VARIANCE_TYPES = ("learned", "learned_range")


@st.composite
def predicted_variances(draw, variance_type: str, shape):
    """The model's variance output a learned DDPM variance type needs (None for fixed types)."""
    if variance_type == "learned":
        return draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
    if variance_type == "learned_range":
        return draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0)))
    return None


@st.composite
def interior_alpha_bars(draw, low: float = 1e-6, high: float = 1.0 - 1e-6):
    """ᾱ strictly inside (0, 1), weighted towards both ends."""
    return draw(st.one_of(st.sampled_from([low, 0.5, high]), st.floats(low, high)))


@dataclass(frozen=True)
class BadCall:
    """A call of the oracle with one invalid argument, and what it must raise."""

    function: str
    kwargs: dict = field(hash=False)
    argument: str
    errors: tuple = (ValueError, TypeError)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"reference.{self.function}({args})  # bad: {self.argument}"


_NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])
_NOT_A_NUMBER = st.sampled_from(["0.5", None, [0.5], 1j])


@st.composite
def bad_calls(draw):
    """One oracle call with exactly one bad argument: out of range, non-finite, wrong type,
    unknown name, or mismatched shape. ``argument`` is the name the error message must contain."""
    kind = draw(st.sampled_from([
        "betas", "T", "S", "spacing", "schedule", "prediction_type", "variance_type", "sampler",
        "eta", "alpha_bar", "x_t", "shape", "beta_start", "guidance_rescale", "guidance_scale",
        "sigma_max", "rho", "t"]))
    ok_step = {"x_t": [0.1, -0.2], "model_output": [0.3, 0.4], "prediction_type": "v_prediction",
                   "alpha_bar_t": 0.5, "alpha_bar_prev": 0.7}
    if kind == "betas":
        bad = draw(st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True), _NON_FINITE))
        return BadCall("Schedule.from_betas", {"betas": [0.01, bad, 0.02]}, "betas")
    if kind == "T":
        bad = draw(st.one_of(st.integers(max_value=0), st.floats(1, 100), st.just(True), st.just("10")))
        return BadCall("make_schedule", {"name": "linear", "num_train_timesteps": bad}, "num_train_timesteps")
    if kind == "S":
        T = draw(st.integers(1, 50))
        bad = draw(st.one_of(st.integers(max_value=0), st.integers(T + 1, T + 100), st.floats(1, 10)))
        return BadCall("timesteps", {"spacing": draw(spacings), "num_train_timesteps": T,
                                         "num_inference_steps": bad}, "num_inference_steps")
    if kind == "spacing":
        bad = draw(st.one_of(st.text(max_size=8).filter(lambda s: s not in SPACINGS), st.just(3)))
        return BadCall("timesteps", {"spacing": bad, "num_train_timesteps": 10, "num_inference_steps": 5}, "spacing")
    if kind == "schedule":
        bad = draw(st.one_of(st.text(max_size=8).filter(lambda s: s not in BETA_SCHEDULES), st.just(None)))
        return BadCall("make_schedule", {"name": bad}, "name")
    if kind == "prediction_type":
        bad = draw(st.one_of(st.text(max_size=8).filter(lambda s: s not in PREDICTION_TYPES), st.just(0)))
        return BadCall("ddim_step", {**ok_step, "prediction_type": bad}, "prediction_type")
    if kind == "variance_type":
        bad = draw(st.text(max_size=8).filter(lambda s: s not in VARIANCE_TYPES))
        return BadCall("ddpm_step", {**ok_step, "variance_type": bad, "noise": [0.0, 0.0]}, "variance_type")
    if kind == "sampler":
        from reference import SAMPLERS
        bad = draw(st.text(max_size=8).filter(lambda s: s not in SAMPLERS))
        return BadCall("sample_loop", {"denoiser": None, "x_T": [0.0], "sampler": bad, "prediction_type": "sample",
                                           "alpha_bars": [0.5, 1.0]}, "sampler")
    if kind == "eta":
        bad = draw(st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0, exclude_min=True),
                             _NON_FINITE, _NOT_A_NUMBER))
        return BadCall("ddim_step", {**ok_step, "eta": bad, "noise": [0.0, 0.0]}, "eta")
    if kind == "alpha_bar":
        which = draw(st.sampled_from(["alpha_bar_t", "alpha_bar_prev"]))
        bad = draw(st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0, exclude_min=True),
                             _NON_FINITE, _NOT_A_NUMBER))
        return BadCall("ddim_step", {**ok_step, which: bad}, which)
    if kind == "x_t":
        which = draw(st.sampled_from(["x_t", "model_output"]))
        bad = draw(_NON_FINITE)
        return BadCall("ddim_step", {**ok_step, which: [0.1, bad]}, which)
    if kind == "shape":
        n = draw(st.integers(1, 4).filter(lambda n: n != 2))
        return BadCall("ddim_step", {**ok_step, "model_output": [0.1] * n}, "model_output")
    if kind == "beta_start":
        which = draw(st.sampled_from(["beta_start", "beta_end"]))
        bad = draw(st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True), _NON_FINITE))
        return BadCall("make_schedule", {"name": "linear", "num_train_timesteps": 10, which: bad}, which)
    if kind == "guidance_rescale":
        bad = draw(st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0, exclude_min=True),
                             _NON_FINITE))
        return BadCall("guided_prediction", {"x_neg": [[0.0, 1.0]], "x_pos": [[1.0, 0.0]], "guidance_scale": 7.5,
                                                 "guidance_rescale": bad}, "guidance_rescale")
    if kind == "guidance_scale":
        bad = draw(st.one_of(_NON_FINITE, _NOT_A_NUMBER))
        return BadCall("guided_prediction", {"x_neg": [[0.0, 1.0]], "x_pos": [[1.0, 0.0]], "guidance_scale": bad},
                       "guidance_scale")
    if kind == "sigma_max":
        bad = draw(st.one_of(st.floats(max_value=0.0), _NON_FINITE))
        return BadCall("karras_sigmas", {"sigma_min": 0.03, "sigma_max": bad, "num_inference_steps": 10}, "sigma_max")
    if kind == "rho":
        bad = draw(st.one_of(st.floats(max_value=0.0), _NON_FINITE))
        return BadCall("karras_sigmas", {"sigma_min": 0.03, "sigma_max": 14.6, "num_inference_steps": 10, "rho": bad}, "rho")
    # kind == "t": a timestep outside [0, T-1] or non-finite
    bad = draw(st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=9.0, exclude_min=True),
                         _NON_FINITE))
    return BadCall("sigma_at", {"schedule": make_schedule("linear", 10), "t": [bad]}, "t")


# --- conformance suite (properties/conformance) -------------------------------------------------

#: the beta schedules real samplers are configured with (diffusers' names)
SAMPLER_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


@st.composite
def sampler_options(draw, sampler: str):
    """The per-sampler options of a :class:`properties.contract.SamplerConfig`."""
    if sampler == "ddpm":
        return {"variance_type": draw(variance_types, label="variance_type"),
                "clip_sample": draw(st.booleans(), label="clip_sample")}
    if sampler == "ddim":
        return {"eta": draw(etas, label="eta"), "clip_sample": draw(st.booleans(), label="clip_sample"),
                "set_alpha_to_one": draw(st.booleans(), label="set_alpha_to_one"),
                "use_clipped_model_output": draw(st.booleans(), label="use_clipped_model_output")}
    if sampler == "euler":
        churn = draw(st.one_of(st.just(0.0), st.floats(0.0, 20.0)), label="s_churn")
        return {"s_churn": churn,
                "s_tmin": draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0)), label="s_tmin"),
                "s_tmax": draw(st.one_of(st.just(float("inf")), st.floats(0.0, 100.0)), label="s_tmax"),
                "s_noise": draw(st.one_of(st.just(1.0), st.floats(0.0, 2.0)), label="s_noise"),
                "interpolation_type": draw(st.sampled_from(("linear", "log_linear")), label="interpolation_type"),
                "final_sigmas_type": draw(st.sampled_from(("zero", "sigma_min")), label="final_sigmas_type")}
    return {}


@st.composite
def sampler_configs(draw, sampler: str, *, rescale=None, max_T: int = MAX_T, max_S: int | None = None,
                    predictions=prediction_types, spacing=None, options=None):
    """A whole sampler configuration; ``options`` (a dict) pins per-sampler options."""
    from .contract import SamplerConfig

    T = draw(num_train_timesteps(2, max_T), label="num_train_timesteps")
    name = draw(st.sampled_from(SAMPLER_BETA_SCHEDULES), label="beta_schedule")
    start, end = draw(beta_ranges(name), label="beta_range")
    do_rescale = draw(st.booleans(), label="rescale") if rescale is None else rescale
    sp = draw(spacings if spacing is None else st.just(spacing), label="spacing")
    top = T if max_S is None else min(T, max_S)
    S = draw(st.one_of(st.sampled_from(sorted({1, top, min(top, 10)})), st.integers(1, top)),
             label="num_inference_steps")
    offset = draw(st.integers(0, T - 1 - (S - 1) * (T // S)), label="steps_offset") if sp == "leading" else 0
    opts = draw(sampler_options(sampler))
    opts.update(options or {})
    return SamplerConfig(sampler, T, name, start, end, do_rescale, sp, offset, S,
                         draw(predictions, label="prediction_type"), tuple(sorted(opts.items())))


def latents(shape=(2, 3, 2, 2), max_abs: float = 4.0):
    """Latents / model outputs / noise as float32-representable float64 arrays (4-D: B, C, H, W)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(-max_abs, max_abs, width=32))


# --- training side (properties/oracle/test_training.py) -----------------------------------------

#: the loss weightings that take γ, and the ranges drawn for it
TRAINING_GAMMAS = {"min_snr": (0.5, 20.0), "p2": (0.25, 2.0)}


@st.composite
def training_alpha_bars(draw, allow_zero: bool = True):
    """ᾱ of a training level in [0, 1): weighted towards zero SNR, subnormal and tiny ᾱ, SNR = 1,
    and ᾱ within a few ulps of 1 (σ² as small as 2⁻⁵³)."""
    edges = [5e-324, 1e-310, 1e-300, 0.5, 1.0 - 2.0**-53, 1.0 - 2.0**-40]
    choices = [st.sampled_from(edges), st.floats(1e-300, 1.0, exclude_max=True),
               st.floats(-300.0, 0.0).map(lambda e: min(10.0**e, 1.0 - 2.0**-53)),
               st.integers(1, 53).map(lambda k: 1.0 - 2.0**-k)]
    if allow_zero:
        choices.insert(0, st.just(0.0))
    return draw(st.one_of(*choices))


@st.composite
def sample_shapes(draw, min_rank: int = 2, max_rank: int = 5):
    """A sample's shape (batch, ...): rank 2 (tokens) to 5 (video latents), batch 1-4, each other
    side 1-3 (implementations that assume 4-D latents fail on the others)."""
    rank = draw(st.integers(min_rank, max_rank), label="rank")
    batch = draw(st.integers(1, 4), label="batch")
    return (batch, *draw(st.lists(st.integers(1, 3), min_size=rank - 1, max_size=rank - 1), label="sides"))
