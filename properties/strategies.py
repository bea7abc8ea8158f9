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


#: the converted σ schedules of the Euler family (diffusers' option names; at most one is set)
SIGMA_SCHEDULE_OPTIONS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@st.composite
def thresholding_options(draw):
    """Imagen's dynamic thresholding of x̂₀ (DDPM, DDIM), on in a third of the draws: the percentile
    (0.995 is Imagen's; 0 and 1 are the min and the max of |x̂₀|) and the cap s <= sample_max_value
    (1: plain clipping to [-1, 1])."""
    if not draw(st.sampled_from((False, False, True)), label="thresholding"):
        return {}
    return {"thresholding": True,
            "dynamic_thresholding_ratio": draw(st.one_of(st.sampled_from([0.995, 0.0, 0.5, 1.0]), st.floats(0.0, 1.0)),
                                               label="dynamic_thresholding_ratio"),
            "sample_max_value": draw(st.one_of(st.sampled_from([1.0, 1.5]), st.floats(1.0, 10.0)),
                                     label="sample_max_value")}


@st.composite
def sigma_schedule_options(draw, sampler: str):
    """The Euler family's σ schedule: σ at the timesteps, or the Karras, exponential or Beta σ
    converted from their range (``use_*_sigmas``), with timestep_type "discrete" (t(σ)) or
    "continuous" (EDM's ¼·ln σ). Only non-default values are set. Euler ancestral draws them less
    often (an implementation without them refuses those configurations)."""
    if sampler == "euler_ancestral":
        return dict(draw(st.sampled_from([()] * 10 + [(("use_karras_sigmas", True),), (("use_exponential_sigmas", True),),
                                                      (("use_beta_sigmas", True),), (("timestep_type", "continuous"),)]),
                         label="sigma_schedule"))
    kind = draw(st.sampled_from((None, None, None, *SIGMA_SCHEDULE_OPTIONS)), label="sigma_schedule")
    opts = {kind: True} if kind else {}
    if draw(st.sampled_from(("discrete", "discrete", "discrete", "continuous")), label="timestep_type") == "continuous":
        opts["timestep_type"] = "continuous"
    return opts


@st.composite
def sampler_options(draw, sampler: str):
    """The per-sampler options of a :class:`properties.contract.SamplerConfig`."""
    if sampler == "ddpm":
        return {"variance_type": draw(variance_types, label="variance_type"),
                "clip_sample": draw(st.booleans(), label="clip_sample"), **draw(thresholding_options())}
    if sampler == "ddim":
        return {"eta": draw(etas, label="eta"), "clip_sample": draw(st.booleans(), label="clip_sample"),
                "set_alpha_to_one": draw(st.booleans(), label="set_alpha_to_one"),
                "use_clipped_model_output": draw(st.booleans(), label="use_clipped_model_output"),
                **draw(thresholding_options())}
    if sampler == "euler":
        churn = draw(st.one_of(st.just(0.0), st.floats(0.0, 20.0)), label="s_churn")
        return {"s_churn": churn,
                "s_tmin": draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0)), label="s_tmin"),
                "s_tmax": draw(st.one_of(st.just(float("inf")), st.floats(0.0, 100.0)), label="s_tmax"),
                "s_noise": draw(st.one_of(st.just(1.0), st.floats(0.0, 2.0)), label="s_noise"),
                "interpolation_type": draw(st.sampled_from(("linear", "log_linear")), label="interpolation_type"),
                "final_sigmas_type": draw(st.sampled_from(("zero", "sigma_min")), label="final_sigmas_type"),
                **draw(sigma_schedule_options(sampler))}
    if sampler == "euler_ancestral":
        return draw(sigma_schedule_options(sampler))
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


# =================================================================================================
# --- hostile arguments: the fuzzer of every public function of `reference` -----------------------
# (properties/oracle/test_fuzz.py). A call draws a coherent *world* (T, S, a schedule, a state
# shape, a pair of levels, a prediction type, ...), takes a valid value of every parameter from
# it -- by the parameter's name, with a few per-function overrides -- and then replaces some of
# the parameters by hostile values: NaN, ±inf, ±1.7e308, subnormals, wrong dtypes (bool, complex,
# object, str, uint8), Python lists, 0-d and empty arrays, mismatched shapes, huge T and S (10**18,
# 2**63), negative integers, wrong enum strings, and mutations of the valid value (one element
# replaced, scaled by 1e300, cast, reshaped, its neighbouring float). Valid values for the other
# parameters let a call get past the first check and reach deeper code.
# =================================================================================================

import functools as _functools
import inspect as _inspect
import math as _math

import reference as _ref

_EMPTY = _inspect.Parameter.empty
_NAN, _INF = float("nan"), float("inf")
_HUGE = 1.7e308
_SUB = 5e-324

#: scalars that are wrong or extreme for almost any parameter
_HOSTILE_SCALARS = (
    _NAN, _INF, -_INF, _HUGE, -_HUGE, _SUB, -_SUB, 2.2250738585072014e-308, -0.0, 0.0, -1.0, 1.0, 2.0,
    1e300, 1e-300, 0.5, 10**18, 2**63, 2**64, 10**400, 2**31, 2**24 + 1, -1, 0, 1, 2, 7, True, False,
    1j, 0.5 + 0j, "abc", "", "0.5", None, b"x",
)
#: NumPy scalars of awkward types, made fresh per draw
_HOSTILE_NP_SCALARS = (
    lambda: np.float32(_NAN), lambda: np.float32(3e38), lambda: np.uint8(255), lambda: np.int64(-1),
    lambda: np.float64(_INF), lambda: np.bool_(True), lambda: np.int64(2**62), lambda: np.uint64(2**64 - 1),
    lambda: np.complex128(1.0), lambda: np.array(0.5), lambda: np.array(_NAN), lambda: object(),
)
#: arrays of the wrong kind, made fresh per draw
_HOSTILE_ARRAYS = (
    list, lambda: [[]], lambda: [0.5], lambda: [[0.1], [0.2, 0.3]], lambda: [0.5, None],
    lambda: np.empty((0,)), lambda: np.empty((2, 0)), lambda: np.empty((0, 3)), lambda: np.zeros((1, 1, 1, 1, 1)),
    lambda: np.array([_NAN]), lambda: np.array([_HUGE, -_HUGE]), lambda: np.array([_INF, 0.0]),
    lambda: np.array([0, 255], dtype=np.uint8), lambda: np.array([True, False]), lambda: np.array([1 + 1j]),
    lambda: np.array([0.5], dtype=object), lambda: np.array(["a"]), lambda: np.arange(3),
    lambda: np.array([_SUB, 1.0]), lambda: np.array([-1, 10**18]), lambda: np.array([2**63], dtype=np.uint64),
    lambda: np.array([1.0, 2.0], dtype=np.float32), lambda: np.full((2, 3), _HUGE),
)
#: strings that are not any enum's member
_HOSTILE_STRINGS = ("bogus", "Linear", "EPSILON", " trailing", "v", "x0", "none", "learned_range ", "sample\0")


# Strategies are built once, here: the fuzzer draws tens of thousands of calls, and building a
# strategy per draw would cost more than the calls themselves.
_FUZZ_SHAPES = ((2, 3), (1, 4), (3,), (2, 2, 2), (1, 1))
_FIXED_VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")
_SEED = st.integers(0, 2**32 - 1)
_INDEX: dict = {}


def _index(n: int):
    if n not in _INDEX:
        _INDEX[n] = st.integers(0, n - 1)
    return _INDEX[n]


def _pick(draw, seq, label=None):
    """One element of ``seq``, drawn by index (no strategy built per draw)."""
    return seq[draw(_index(len(seq)), label=label)]


def _subset(draw, names, label, min_size=0):
    """A subset of ``names`` (in order) of at least ``min_size`` elements, by a drawn bitmask."""
    n = len(names)
    if n == 0:
        return []
    while True:
        mask = draw(_index(2**n), label=label)
        chosen = [x for i, x in enumerate(names) if mask >> i & 1]
        if len(chosen) >= min(min_size, n):
            return chosen


@_functools.lru_cache(maxsize=512)
def _cached_schedule(name: str, T: int, rescale: bool):
    """make_schedule, cached: a Schedule is immutable (its arrays are read-only)."""
    return make_schedule(name, T, rescale=rescale)


@dataclass(eq=False)
class FuzzWorld:
    """The coherent valid setting one fuzzer call draws its valid arguments from."""

    T: int
    S: int
    spacing: str
    steps_offset: int
    schedule_name: str
    rescale: bool
    shape: tuple
    a_t: float
    a_p: float
    sigma: float
    sigma_next: float
    prediction_type: str
    sampler: str
    variance_type: str
    seed: int

    @property
    def schedule(self):
        return _cached_schedule(self.schedule_name, self.T, self.rescale)

    @_functools.cached_property
    def timesteps(self):
        return timesteps(self.spacing, self.T, self.S, self.steps_offset)

    @_functools.cached_property
    def rng(self):
        """The generator of the world's scalar choices (etas, scales, options, ...)."""
        return np.random.default_rng([self.seed, 1])

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def coin(self) -> bool:
        return bool(self.rng.random() < 0.5)

    def unit(self) -> float:
        return float(self.rng.random())

    def array(self, key: str, shape=None, low=-3.0, high=3.0):
        """A reproducible float64 array for parameter ``key`` (uniform in [low, high])."""
        rng = np.random.default_rng([self.seed, sum(map(ord, key))])
        return rng.uniform(low, high, self.shape if shape is None else shape)


def _world(seed: int) -> FuzzWorld:
    """The world of a seed: every valid value of a call comes from it (one Hypothesis draw, not
    twenty: the fuzzer's time goes into the calls, not into drawing)."""
    rng = np.random.default_rng(seed)

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    def edge_or(edges, low, high):
        return float(pick(edges)) if rng.random() < 0.4 else float(rng.uniform(low, high))

    T = int(rng.integers(1, 61)) if rng.random() < 0.7 else pick((1, 2, 1000))
    S = int(rng.integers(1, min(T, 8) + 1)) if rng.random() < 0.7 else (T if T <= 60 else 5)
    spacing = pick(SPACINGS)
    offset = int(rng.integers(0, T - (S - 1) * (T // S))) if spacing == "leading" else 0
    name = pick(BETA_SCHEDULES)
    prediction = pick(PREDICTION_TYPES)
    # ε-prediction is undefined at zero SNR: a valid world with ε never rescales (and so never
    # reaches ᾱ = 0: the unclipped cosine has ᾱ_T = 0 without rescale)
    rescale = T >= 2 and prediction != "epsilon" and bool(rng.random() < 0.5)
    if prediction == "epsilon" and name == "cosine_unclipped":
        name = "squaredcos_cap_v2"
    a_t = edge_or((0.0, 1e-6, 0.5, 0.9999), 0.0, 0.9999)
    if prediction == "epsilon" and a_t == 0.0:
        a_t = 0.5
    a_p = 1.0 if rng.random() < 0.3 else a_t + (1.0 - a_t) * float(rng.random())
    sigma = edge_or((1e-3, 1.0, 14.6, 4096.0), 1e-3, 1e4)
    sigma_next = 0.0 if rng.random() < 0.3 else sigma * float(rng.random())
    return FuzzWorld(T, S, spacing, offset, name, rescale, pick(_FUZZ_SHAPES), a_t, min(max(a_p, a_t, 1e-6), 1.0),
                     sigma, min(sigma_next, sigma), prediction, pick(_ref.SAMPLERS), pick(_FIXED_VARIANCE_TYPES),
                     seed)


def fuzz_worlds():
    return _SEED.map(_world)


_STATE_NAMES = ("x_t", "model_output", "x", "x0", "eps", "x_neg", "x_pos", "x_cfg", "x_T", "mean", "x_T_mean")
_ENUMS = {"spacing": _ref.SPACINGS, "interpolation": ("linear", "log_linear"), "final_sigma": ("zero", "sigma_min"),
          "variance_type": VARIANCE_TYPES, "from_type": PREDICTION_TYPES, "to_type": PREDICTION_TYPES,
          "weighting": _ref.LOSS_WEIGHTINGS, "sigma_schedule": _ref.SIGMA_SCHEDULES}
#: per-sampler options of sample_loop / step_map / sampler_moments (their ``**options``)
_OPTION_VALUES = {
    "variance_type": lambda w, draw: w.variance_type,
    "clip_sample": lambda w, draw: w.coin(),
    "clip_sample_range": lambda w, draw: 0.5 + 3.5 * w.unit(),
    "use_clipped_model_output": lambda w, draw: w.coin(),
    "eta": lambda w, draw: w.pick((0.0, 1.0, w.unit())),
    "s_churn": lambda w, draw: 20.0 * w.unit(),
    "s_tmin": lambda w, draw: 10.0 * w.unit(),
    "s_tmax": lambda w, draw: _INF if w.coin() else 100.0 * w.unit(),
    "s_noise": lambda w, draw: 2.0 * w.unit(),
    "thresholding": lambda w, draw: w.coin(),
    "dynamic_thresholding_ratio": lambda w, draw: w.pick((0.995, 0.5, 1.0, w.unit())),
    "sample_max_value": lambda w, draw: w.pick((1.0, 1.5, 1.0 + 9.0 * w.unit())),
}


def _loop_levels(w: FuzzWorld):
    return _ref.loop_alpha_bars(w.schedule, w.timesteps)


def _valid_alpha_bar(w: FuzzWorld):
    return w.a_t if w.prediction_type != "epsilon" or w.a_t > 0 else 0.5


def _valid_value(fname: str, pname: str, w: FuzzWorld, draw, default, sofar: dict):
    """A valid value of parameter ``pname`` of ``fname`` in world ``w``, given the parameters
    drawn before it (``sofar``); ``default`` (the signature's default, or
    ``inspect.Parameter.empty``) where nothing better is known."""
    loop = fname in ("sample_loop", "sampler_moments")
    S_loop = w.timesteps.size
    if pname in ("sigmas",):
        if fname == "rescale_zero_terminal_snr_sigmas":
            base = _cached_schedule(w.schedule_name if w.schedule_name != "cosine_unclipped" else "linear",
                                    max(w.T, 2), False)
            return base.euler_sigma
        return np.abs(w.array(pname)) * 10.0
    if pname == "noise":
        return w.array("noise", (S_loop, *w.shape)) if fname == "sample_loop" else w.array("noise")
    if pname in _STATE_NAMES:
        return w.array(pname)
    if pname in ("var", "x_T_var", "weight"):
        return np.abs(w.array(pname))
    if pname == "predicted_variance":
        learned = sofar.get("variance_type") in ("learned", "learned_range")
        return w.array(pname, low=0.0, high=1.0) if learned else None
    if pname == "variance_type":
        return w.pick(VARIANCE_TYPES) if fname == "ddpm_variance" else w.variance_type
    if pname == "alpha_bar":
        return _valid_alpha_bar(w)
    if pname in ("alpha_bar_t",):
        return w.a_t
    if pname in ("alpha_bar_prev", "alpha_bar_next"):
        return w.a_p
    if pname == "alpha_bars":
        return _loop_levels(w)
    if pname == "sigma":
        return w.sigma
    if pname == "sigma_next":
        return w.sigma_next
    if pname == "eta":
        return w.pick((0.0, 1.0, w.unit()))
    if pname == "guidance_scale":
        return w.pick((7.5, 20.0 * w.unit()))
    if pname == "guidance_rescale":
        return w.pick((0.0, 0.7, 1.0, w.unit()))
    if pname in ("prediction_type", "from_type"):
        return w.prediction_type
    if pname == "spacing":
        return w.spacing
    if pname == "final_sigma" and w.schedule.alphas_cumprod[0] == 0.0:
        return "zero"  # σ_min = σ at t = 0 is inf for the unclipped cosine at T = 1
    if pname == "sigma_schedule" and w.schedule.alphas_cumprod[-1] == 0.0:
        return "timesteps"  # zero SNR: σ_max = inf, the converted σ schedules are undefined
    if pname in _ENUMS:
        return w.pick(_ENUMS[pname])
    if pname == "sampler":
        return w.sampler
    if pname == "name":
        if fname in ("make_schedule", "make_betas"):
            return w.schedule_name
        return w.pick(("custom", "mine"))
    if pname == "num_train_timesteps":
        return w.T
    if pname == "num_inference_steps":
        return S_loop if fname == "step_map" else w.S
    if pname == "steps_offset":
        return w.steps_offset
    if pname == "schedule":
        return w.schedule
    if pname == "rescale":
        return w.rescale
    if pname == "timesteps":
        if fname == "from_paper_timesteps":
            return w.timesteps + 1
        if loop:
            return None if w.coin() else list(w.timesteps)
        return w.timesteps.copy()
    if pname == "t":
        return np.concatenate([w.timesteps.astype(np.float64), w.array("t", (2,), 0.0, w.T - 1)])
    if pname == "timestep":
        return None if w.coin() else int(w.timesteps[0])
    if pname == "betas":
        return w.schedule.betas.copy()
    if pname == "alphas_cumprod":
        return w.schedule.alphas_cumprod.copy()
    if pname == "one_minus_alphas_cumprod":
        return w.schedule.one_minus_alphas_cumprod.copy()
    if pname == "alphas_cumprod_lo":
        return None
    if pname == "terminal_floor":
        return None
    if pname == "alpha_bar_T":
        return min(_ref.DIFFUSERS_EULER_FLOOR, float(w.schedule.alphas_cumprod[-2])) if w.T > 1 else 0.5
    if pname == "final_alpha_bar":
        first = float(w.schedule.alphas_cumprod[0])  # 0 for the unclipped cosine at T = 1
        return 1.0 if w.coin() or first == 0.0 else first
    if pname == "sigma_min":
        return 0.03
    if pname == "sigma_max":
        return 14.6
    if pname == "rho":
        return w.pick((7.0, 1.0, 3.0))
    if pname == "denoiser":
        return _ref.gaussian_denoiser(w.array("dmean"), np.abs(w.array("dvar")), w.prediction_type)
    if pname in ("clip_sample", "use_clipped_model_output", "return_trajectory"):
        return w.coin()
    if pname in _OPTION_VALUES:
        return _OPTION_VALUES[pname](w, draw)
    if default is not _EMPTY:
        return default
    return w.array(pname)  # an unknown parameter: a small float array




def _mutations(valid):
    """Near-misses of a valid value: the same thing made slightly or badly wrong."""
    out = []
    if isinstance(valid, np.ndarray) and valid.dtype.kind in "fiu" and valid.size:
        for bad in (_NAN, _INF, -_INF, _HUGE, -_HUGE, _SUB, -1.0, 2.0, -0.0):
            def put(bad=bad):
                a = valid.astype(np.float64 if isinstance(bad, float) else valid.dtype, copy=True)
                a.flat[a.size // 2] = bad
                return a
            out.append(put)
        out += [lambda: valid * 1e300, lambda: np.full_like(valid, _HUGE, dtype=np.float64), lambda: -valid,
                lambda: valid.astype(np.uint8), lambda: valid.astype(np.int64), lambda: valid.astype(bool),
                lambda: valid.astype(np.float32), lambda: valid.astype(complex), lambda: valid.astype(object),
                lambda: valid.tolist(), lambda: valid.reshape(-1)[0:1].reshape(()), lambda: valid[..., :0],
                lambda: valid.reshape(-1)[:-1] if valid.size > 1 else valid.reshape(-1)[:0],
                lambda: valid[None], lambda: np.concatenate([valid.reshape(-1), valid.reshape(-1)]),
                lambda: valid.T.copy(), lambda: np.nextafter(valid, _INF), lambda: np.nextafter(valid, -_INF),
                lambda: valid + 1, lambda: valid - 1, lambda: valid.astype(str)]
    elif isinstance(valid, bool):
        out += [lambda: int(valid), lambda: "True", lambda: None, lambda: np.bool_(valid), lambda: [valid]]
    elif isinstance(valid, (int, np.integer)):
        v = int(valid)
        out += [lambda: v * 10**18, lambda: 2**63, lambda: 2**63 - 1, lambda: 2**24 + 1, lambda: -v, lambda: v + 1,
                lambda: v - 1, lambda: 0, lambda: float(v), lambda: str(v), lambda: np.int8(v % 128),
                lambda: np.uint64(v), lambda: np.array(v), lambda: [v], lambda: True]
    elif isinstance(valid, float):
        v = valid
        out += [lambda: v * 1e308, lambda: -v, lambda: _math.nextafter(v, _INF), lambda: _math.nextafter(v, -_INF),
                lambda: v + 1.0, lambda: v - 1.0, lambda: np.float32(v), lambda: np.array(v), lambda: [v],
                lambda: complex(v), lambda: str(v), lambda: int(v) if _math.isfinite(v) else 10**400,
                lambda: v * 1e-300, lambda: v + _SUB]
    elif isinstance(valid, str):
        out += [lambda: valid.upper(), lambda: valid + "x", lambda: valid[:-1], lambda: [valid],
                lambda: np.str_(valid), lambda: valid.encode()]
    elif isinstance(valid, list):
        out += [lambda: valid[:-1], lambda: valid + valid, lambda: [float("nan")] * len(valid),
                lambda: [str(v) for v in valid], lambda: tuple(valid), lambda: np.array(valid, dtype=object)]
    elif isinstance(valid, _ref.Schedule):
        T = valid.num_train_timesteps
        out += [lambda: _cached_schedule("linear", T + 1, False), lambda: _cached_schedule("linear", max(T - 1, 1), False),
                lambda: _cached_schedule("linear", 1, False), lambda: _cached_schedule("cosine_unclipped", T, False),
                lambda: valid.betas.copy(), lambda: "schedule"]
    elif callable(valid):
        out += [lambda: None, lambda: "denoiser", lambda: (lambda x, t, a: np.full(np.shape(x), _NAN)),
                lambda: (lambda x, t, a: np.zeros(np.shape(x) + (2,))), lambda: (lambda x, t, a: None),
                lambda: (lambda x, t, a: np.full(np.shape(x), _HUGE)), lambda: (lambda x, t, a: "out"),
                lambda: (lambda x: x)]
    return out


_POOLS = (
    ("scalar", _HOSTILE_SCALARS, False), ("numpy scalar", _HOSTILE_NP_SCALARS, True),
    ("array", _HOSTILE_ARRAYS, True), ("string", _HOSTILE_STRINGS, False),
)


def hostile_value(draw, valid, label=None):
    """A hostile value for a parameter whose valid value is ``valid``: a mutation of it (3 in 7),
    or a wrong or extreme scalar, NumPy scalar, array or string."""
    muts = _mutations(valid)
    kind = draw(_index(7), label=f"{label} kind")
    if muts and kind < 3:
        try:
            return _pick(draw, muts, label)()
        except (ArithmeticError, ValueError, TypeError):  # no such mutation of this value (int(inf)...)
            kind = 3
    _, pool, factory = _POOLS[kind % 4]
    value = _pick(draw, pool, label)
    return value() if factory else value


@dataclass(frozen=True)
class FuzzCall:
    """One call of a public function of ``reference``: its keyword arguments and which of them
    are hostile (the others are valid in ``world``)."""

    function: str
    kwargs: dict = field(hash=False)
    hostile: frozenset
    world: FuzzWorld = field(repr=False, hash=False)

    def __repr__(self):
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        return f"reference.{self.function}({args})  # hostile: {sorted(self.hostile)}"


def _short(v):
    if isinstance(v, np.ndarray):
        body = np.array2string(v, threshold=8, precision=17)
        return f"np.array({body}, dtype={v.dtype})" if v.dtype != np.float64 else f"np.array({body})"
    if isinstance(v, _ref.Schedule):
        return f"<Schedule {v.name!r} T={v.num_train_timesteps}>"
    r = repr(v)
    return r if len(r) < 200 else r[:200] + "..."


def fuzz_parameters(fn):
    """(name, default, kind) of each parameter of ``fn`` the fuzzer fills in (not ``self``/``cls``)."""
    sig = _inspect.signature(fn)
    return [(p.name, p.default, p.kind) for p in sig.parameters.values()]


@st.composite
def fuzz_calls(draw, fname: str, fn):
    """A call of ``fn`` (named ``fname`` in ``reference``) with hostile and valid arguments."""
    w = draw(fuzz_worlds(), label="world")
    params = fuzz_parameters(fn)
    named = [(n, d) for n, d, k in params if k not in (_inspect.Parameter.VAR_KEYWORD,
                                                     _inspect.Parameter.VAR_POSITIONAL)]
    takes_options = any(k == _inspect.Parameter.VAR_KEYWORD for _, _, k in params)
    kwargs = {}
    for n, d in named:
        kwargs[n] = _valid_value(fname, n, w, draw, d, kwargs)
    if takes_options:  # sample_loop / step_map / sampler_moments: the sampler's own options
        allowed = _ref.loop.SAMPLER_OPTIONS.get(kwargs.get("sampler"), ())
        for o in [o for o in allowed if w.coin()]:
            # clipping and thresholding make a step non-affine: sampler_moments refuses them
            nonaffine = fname == "sampler_moments" and o in ("clip_sample", "thresholding")
            kwargs[o] = False if nonaffine else _OPTION_VALUES[o](w, draw)
    names = list(kwargs)
    mode = _pick(draw, ("none", "one", "one", "one", "one", "several", "several"), "mode")
    if mode == "none" or not names:
        hostile = []
    elif mode == "one":
        hostile = [_pick(draw, names, "hostile")]
    else:
        hostile = _subset(draw, names, "hostile", min_size=2)
    for n in hostile:
        kwargs[n] = hostile_value(draw, kwargs[n], n)
    if takes_options and mode != "none" and draw(st.booleans(), label="bogus_option"):
        kwargs["bogus_option"] = 1.0
        hostile = [*hostile, "bogus_option"]
    return FuzzCall(fname, kwargs, frozenset(hostile), w)
