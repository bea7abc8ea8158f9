"""Dynamic thresholding of x̂₀ (Imagen, Saharia et al. 2022, Sec. 2.3) in the oracle: against an
exact rational evaluation of its definition, its invariants, and its wiring into DDPM and DDIM."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import SUBNORMAL, U, assert_within
from reference import ddim_step, ddpm_step, dynamic_threshold


def _exact_s(values: np.ndarray, ratio: float, max_value: float) -> Fraction:
    """s = clip(quantile(|x|, ratio), 1, max_value), the quantile by linear interpolation between
    order statistics (h = (n-1)·ratio), in exact rationals of the float inputs."""
    v = sorted(Fraction(abs(float(x))) for x in values)
    h = (len(v) - 1) * Fraction(ratio)
    lo = math.floor(h)
    q = v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])
    return min(max(q, Fraction(1)), Fraction(max_value))


@given(x0=zs.states((3, 5), 10.0), ratio=st.one_of(st.sampled_from([0.0, 0.5, 0.995, 1.0]), st.floats(0.0, 1.0)),
       max_value=st.one_of(st.sampled_from([1.0, 1.5, 1e300]), st.floats(1.0, 20.0)))
@example(x0=np.array([[0.5, -3.0, 2.0, 8.0, -1.0]] * 3), ratio=0.995, max_value=10.0)
def test_dynamic_threshold_is_its_definition(x0, ratio, max_value):
    """Per sample: clip(x̂₀, -s, s)/s with the exact s. The float quantile errs by a few roundings
    of the order statistics it interpolates (<= 4u·s, plus the subnormal spacing), and the
    division adds one rounding: |got - want| <= 4u·|x|/s·... bounded by 8u·(|want| + 1) + 2·subnormal."""
    got = dynamic_threshold(x0, ratio, max_value)
    for b in range(x0.shape[0]):
        s = _exact_s(x0[b], ratio, max_value)
        want = np.array([float(max(min(Fraction(float(x)), s), -s) / s) for x in x0[b]])
        assert_within(got[b], want, 8 * U * (np.abs(want) + 1.0) + 2 * SUBNORMAL, f"sample {b}, s = {float(s)}")
    assert np.all(np.abs(got) <= 1.0)


@given(x0=zs.states((2, 3, 2), 1.0), ratio=st.floats(0.0, 1.0), max_value=st.floats(1.0, 10.0))
def test_dynamic_threshold_leaves_samples_within_unit_range_unchanged(x0, ratio, max_value):
    """|x̂₀| <= 1 everywhere: s = 1, so the result is x̂₀ exactly (plain clipping is a no-op)."""
    assert_array_equal(dynamic_threshold(x0, ratio, max_value), x0)


@given(x_t=zs.states((2, 3, 2), 5.0), out=zs.states((2, 3, 2), 5.0), pair=zs.alpha_bar_pairs(),
       ratio=st.floats(0.5, 1.0), max_value=st.floats(1.0, 4.0), z=zs.states((2, 3, 2), 3.0))
def test_thresholding_acts_on_x0_in_ddpm_and_ddim(x_t, out, pair, ratio, max_value, z):
    """With x₀-prediction the thresholded step is the plain step on dynamic_threshold(x̂₀), bit
    for bit (the same operations), and thresholding takes precedence over clip_sample. DDIM keeps
    ε̂ from the unthresholded x̂₀ (as diffusers does) unless use_clipped_model_output re-derives it."""
    a_t, a_p = pair
    kw = {"prediction_type": "sample", "alpha_bar_t": a_t, "alpha_bar_prev": a_p, "noise": z}
    th = {"thresholding": True, "dynamic_thresholding_ratio": ratio, "sample_max_value": max_value}
    x0 = dynamic_threshold(out, ratio, max_value)
    assert_array_equal(ddpm_step(x_t, out, **kw, **th, clip_sample=True, clip_sample_range=0.1),
                       ddpm_step(x_t, x0, **kw))
    assert_array_equal(ddim_step(x_t, out, **kw, **th, eta=0.5, use_clipped_model_output=True),
                       ddim_step(x_t, x0, **kw, eta=0.5))
