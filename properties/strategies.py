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

from reference import BETA_SCHEDULES, PREDICTION_TYPES, SPACINGS, VARIANCE_TYPES, make_schedule, timesteps

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
