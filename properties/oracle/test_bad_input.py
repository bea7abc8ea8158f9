"""Bad input: a clear ValueError/TypeError naming the argument -- never a silent NaN/inf or a
cryptic error."""

import math
import re

import numpy as np
import pytest
from hypothesis import given

import reference
from properties import strategies as zs
from reference import (
    Schedule,
    ddim_step,
    ddpm_variance,
    guided_prediction,
    karras_sigmas,
    make_schedule,
    rescale_zero_terminal_snr_sigmas,
    sample_loop,
    sampler_moments,
    timesteps,
    with_terminal_floor,
)

STEP = {"x_t": [0.1, -0.2], "model_output": [0.3, 0.4], "prediction_type": "v_prediction",
        "alpha_bar_t": 0.5, "alpha_bar_prev": 0.7}


def _IDENTITY(x, t, a):
    return x


def _resolve(name):
    obj = reference
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@given(call=zs.bad_calls())
def test_bad_call_names_the_argument(call):
    with pytest.raises(call.errors) as info:
        _resolve(call.function)(**call.kwargs)
    assert re.search(rf"\b{re.escape(call.argument)}\b", str(info.value)), str(info.value)


CASES = [
    # (callable, exception, text the message must contain)
    (lambda: Schedule.from_betas([0.1, -0.1]), ValueError, "betas"),
    (lambda: Schedule.from_betas([0.1, 1.5]), ValueError, "betas"),
    (lambda: Schedule.from_betas([]), ValueError, "betas"),
    (lambda: Schedule.from_betas([[0.1]]), ValueError, "betas"),
    (lambda: Schedule.from_betas(["a"]), TypeError, "betas"),
    (lambda: make_schedule("linear", 0), ValueError, "num_train_timesteps"),
    (lambda: make_schedule("linear", 1, rescale=True), ValueError, "T >= 2"),
    (lambda: make_schedule("linear", 10, rescale=1), TypeError, "rescale"),
    (lambda: make_schedule("nope"), ValueError, "name"),
    (lambda: make_schedule("squaredcos_cap_v2", 10, 0.1), ValueError, "beta_start"),
    (lambda: make_schedule("linear", 10, terminal_floor=1e-3), ValueError, "rescale=True"),
    (lambda: make_schedule("linear", 10, rescale=True, terminal_floor=0.0), ValueError, "terminal_floor"),
    (lambda: make_schedule("linear", 10, rescale=True, terminal_floor=0.9), ValueError, "terminal_floor"),
    (lambda: with_terminal_floor([0.5], 1e-3), TypeError, "schedule"),
    (lambda: Schedule.from_alphas_cumprod([0.5, 0.6]), ValueError, "decreasing"),
    (lambda: Schedule.from_alphas_cumprod([1.0, 0.5]), ValueError, "alphas_cumprod"),
    (lambda: rescale_zero_terminal_snr_sigmas([0.1, -1.0]), ValueError, "sigmas"),
    (lambda: rescale_zero_terminal_snr_sigmas([0.1, math.nan]), ValueError, "sigmas"),
    (lambda: timesteps("trailing", 10, 0), ValueError, "num_inference_steps"),
    (lambda: timesteps("trailing", 10, 11), ValueError, "num_inference_steps"),
    (lambda: timesteps("leading", 10, 3, 5), ValueError, "steps_offset"),
    (lambda: timesteps("trailing", 10, 3, 1), ValueError, "steps_offset"),
    (lambda: timesteps("nope", 10, 3), ValueError, "spacing"),
    (lambda: karras_sigmas(1.0, math.inf, 10), ValueError, "sigma_max"),
    (lambda: karras_sigmas(2.0, 1.0, 10), ValueError, "sigma_min"),
    (lambda: ddim_step(**{**STEP, "model_output": [0.1, 0.2, 0.3]}), ValueError, "model_output"),
    (lambda: ddim_step(**{**STEP, "x_t": [0.1, math.nan]}), ValueError, "x_t"),
    (lambda: ddim_step(**{**STEP, "eta": 1.5}), ValueError, "eta"),
    (lambda: ddim_step(**{**STEP, "eta": -0.5}), ValueError, "eta"),
    (lambda: ddim_step(**{**STEP, "eta": 0.5, "noise": [0.0]}), ValueError, "noise"),
    (lambda: ddim_step(**{**STEP, "eta": 0.5, "noise": [0.0, math.inf]}), ValueError, "noise"),
    (lambda: ddim_step(**{**STEP, "alpha_bar_prev": 0.3}), ValueError, "alpha_bar_prev"),
    (lambda: ddim_step(**{**STEP, "alpha_bar_t": 1.0, "alpha_bar_prev": 1.0}), ValueError, "alpha_bar_t"),
    (lambda: ddim_step(**{**STEP, "prediction_type": "x0"}), ValueError, "prediction_type"),
    (lambda: ddim_step(**{**STEP, "clip_sample": True, "clip_sample_range": -1.0}), ValueError,
     "clip_sample_range"),
    (lambda: ddpm_variance(0.5, 0.7, "nope"), ValueError, "variance_type"),
    (lambda: ddpm_variance(0.5, 0.7, "learned"), ValueError, "predicted_variance"),
    (lambda: ddpm_variance(0.5, 0.7, "fixed_small", [0.1]), ValueError, "predicted_variance"),
    (lambda: ddpm_variance(0.5, 0.7, "learned", [-0.1]), ValueError, "predicted_variance"),
    (lambda: sample_loop(None, [0.0], sampler="nope", prediction_type="sample", alpha_bars=[0.5, 1.0]),
     ValueError, "sampler"),
    (lambda: sample_loop(None, [0.0], sampler="ddim", prediction_type="sample", alpha_bars=[0.5]),
     ValueError, "alpha_bars"),
    (lambda: sample_loop(_IDENTITY, [0.0], sampler="ddim", prediction_type="sample", alpha_bars=[0.5, 1.0],
                         s_churn=1.0), TypeError, "s_churn"),
    (lambda: sample_loop(_IDENTITY, [0.0], sampler="ddpm", prediction_type="sample", alpha_bars=[0.5, 1.0],
                         noise=np.zeros((2, 1))), ValueError, "noise"),
    (lambda: sampler_moments("ddpm", 0.0, 1.0, prediction_type="sample", alpha_bars=[0.5, 1.0],
                             variance_type="learned"), ValueError, "learned"),
    (lambda: sampler_moments("ddim", 0.0, -1.0, prediction_type="sample", alpha_bars=[0.5, 1.0]),
     ValueError, "var"),
    (lambda: guided_prediction([[0.0, 1.0]], [[0.0, 1.0, 2.0]], 7.5), ValueError, "x_pos"),
    (lambda: guided_prediction(0.0, 1.0, 7.5), ValueError, "batch"),
    (lambda: guided_prediction([[0.0, 1.0]], [[0.0, 1.0]], 7.5, 1.5), ValueError, "guidance_rescale"),
]


@pytest.mark.parametrize("call,exc,text", CASES, ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])
def test_bad_input_raises_clearly(call, exc, text):
    with pytest.raises(exc, match=re.escape(text)):
        call()


def test_zero_length_ddpm_step_is_not_log_zero():
    """ᾱ_prev = ᾱ_t (a zero-length step): β = β̃ = 0, so the log forms must not take log 0 (the
    oracle used to raise a bare 'math domain error'); the noise scale is 0 for every type."""
    for vt in ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"):
        assert ddpm_variance(0.5, 0.5, vt) == 0.0
    assert np.all(ddpm_variance(0.5, 0.5, "learned_range", np.array([0.3, -1.0])) == 0.0)


def test_learned_range_beyond_float64_raises_and_never_nans():
    """learned_range's std is β̃^((1-f)/2)·β^(f/2), f = (v+1)/2: v far above 1 extrapolates past β
    to a std beyond float64 (a ValueError, not inf), v far below -1 to a std that underflows to 0,
    and no v gives inf - inf = NaN (the two-product form did for |v| near float64's maximum)."""
    with pytest.raises(ValueError, match="beyond float64's range"):
        ddpm_variance(0.5, 0.6, "learned_range", np.array([0.0, 1e6]))
    with pytest.raises(ValueError, match="beyond float64's range"):
        ddpm_variance(0.5, 0.6, "learned_range", np.array([1.7e308]))
    low = ddpm_variance(0.5, 0.6, "learned_range", np.array([-1e6, -1.7e308]))
    assert np.all(low == 0.0)
    # the ends of the range are exactly the fixed types' stds (to rounding)
    ends = ddpm_variance(0.5, 0.6, "learned_range", np.array([-1.0, 1.0]))
    np.testing.assert_allclose(ends, [ddpm_variance(0.5, 0.6, "fixed_small"), ddpm_variance(0.5, 0.6, "fixed_large")],
                               rtol=4 * np.finfo(float).eps)
