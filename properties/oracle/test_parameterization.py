"""ε ↔ x₀ ↔ v conversions (paper Sec. 3.2): round trips, exactness and finiteness at ᾱ = 0."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import SUBNORMAL, U, assert_within
from reference import PREDICTION_TYPES, EpsilonAtZeroSNR, add_noise, convert, velocity

SHAPE = (2, 3)


def _truth(x0, eps, abar):
    """x_t and the three targets, from (x₀, ε)."""
    return add_noise(x0, eps, abar), {"sample": x0, "epsilon": eps, "v_prediction": velocity(x0, eps, abar)}


def _bound(src, dst, abar, x0, eps):
    """Rounding bound of convert(src → dst) against the truth built from (x₀, ε).

    Every quantity is a combination of x₀ and ε with coefficients √ᾱ, √(1-ᾱ) <= 1, so the sum of
    absolute terms is at most |x₀| + |ε|; add_noise, velocity and convert each round ~3 times
    (two products, one sum) and √ᾱ, √(1-ᾱ) carry ~1 u each: 16·u·(|x₀| + |ε|) covers it.
    Recovering x₀ from ε divides by √ᾱ, ε from x₀ divides by √(1-ᾱ): the bound grows by that
    factor (the conditioning of the conversion, not slack). Below the normal range each of those
    roundings errs by up to the smallest subnormal absolutely instead, amplified the same way
    (x₀ = 2e-311 at ᾱ = 1e-6 makes x_t = α·x₀ subnormal, with 2e-10 relative error).
    """
    alpha, sigma = math.sqrt(abar), math.sqrt(1.0 - abar)
    amp = 1.0
    if src == "epsilon" and dst != "epsilon":
        amp += 1.0 / alpha
    if src == "sample" and dst != "sample":
        amp += 1.0 / sigma
    return 16 * amp * (U * (np.abs(x0) + np.abs(eps)) + SUBNORMAL)


@given(x0=zs.states(SHAPE), eps=zs.states(SHAPE), abar=zs.interior_alpha_bars(),
       src=st.sampled_from(PREDICTION_TYPES), dst=st.sampled_from(PREDICTION_TYPES))
@example(x0=np.ones(SHAPE), eps=-np.ones(SHAPE), abar=1e-6, src="epsilon", dst="v_prediction")
@example(x0=np.ones(SHAPE), eps=-np.ones(SHAPE), abar=1 - 1e-6, src="sample", dst="epsilon")
@example(x0=np.full(SHAPE, 2.2250738585e-311), eps=np.zeros(SHAPE), abar=1e-6, src="epsilon", dst="sample")
def test_convert_matches_truth(x0, eps, abar, src, dst):
    x_t, target = _truth(x0, eps, abar)
    got = convert(target[src], src, dst, x_t, abar)
    assert_within(got, target[dst], _bound(src, dst, abar, x0, eps), f"{src}->{dst} at abar={abar}")


@given(out=zs.states(SHAPE), x_t=zs.states(SHAPE), abar=zs.interior_alpha_bars(),
       src=st.sampled_from(PREDICTION_TYPES), mid=st.sampled_from(PREDICTION_TYPES))
@example(out=np.ones(SHAPE), x_t=np.ones(SHAPE), abar=0.5, src="v_prediction", mid="epsilon")
def test_round_trip(out, x_t, abar, src, mid):
    """convert(convert(out, src → mid), mid → src) == out. The implied (x₀, ε) have magnitude
    <= (|x_t| + |out|)/min(√ᾱ, √(1-ᾱ)); each leg is bounded as in _bound, so the round trip by
    32·u·(|x_t| + |out|)·(1 + 1/√ᾱ + 1/√(1-ᾱ))²."""
    back = convert(convert(out, src, mid, x_t, abar), mid, src, x_t, abar)
    alpha, sigma = math.sqrt(abar), math.sqrt(1.0 - abar)
    bound = 32 * (U * (np.abs(x_t) + np.abs(out)) + SUBNORMAL) * (1 + 1 / alpha + 1 / sigma) ** 2
    assert_within(back, out, bound, f"{src}->{mid}->{src} at abar={abar}")


@given(x_t=zs.states(SHAPE), out=zs.states(SHAPE))
def test_exact_at_zero_snr(x_t, out):
    """At ᾱ = 0 (α = 0, σ = 1): x̂₀ = -v, ε̂ = x_t from v; ε = x_t and v = -x₀ from x₀ -- exactly."""
    assert_array_equal(convert(out, "v_prediction", "sample", x_t, 0.0), -out)
    assert_array_equal(convert(out, "v_prediction", "epsilon", x_t, 0.0), x_t)
    assert_array_equal(convert(out, "sample", "epsilon", x_t, 0.0), x_t)
    assert_array_equal(convert(out, "sample", "v_prediction", x_t, 0.0), -out)
    # v ↔ x₀ round trips are exact at zero SNR
    assert_array_equal(convert(convert(out, "v_prediction", "sample", x_t, 0.0), "sample", "v_prediction",
                               x_t, 0.0), out)
    assert_array_equal(convert(convert(out, "sample", "v_prediction", x_t, 0.0), "v_prediction", "sample",
                               x_t, 0.0), out)


@given(x_t=zs.states(SHAPE), out=zs.states(SHAPE), dst=st.sampled_from(["sample", "v_prediction"]))
def test_epsilon_at_zero_snr_raises(x_t, out, dst):
    """The refusal has its own type (a ValueError), so callers catch it by type."""
    with pytest.raises(EpsilonAtZeroSNR, match="v_prediction") as info:
        convert(out, "epsilon", dst, x_t, 0.0)
    assert isinstance(info.value, ValueError)


@given(x0=zs.states(SHAPE), eps=zs.states(SHAPE), abar=st.one_of(st.just(0.0), zs.interior_alpha_bars()))
@example(x0=np.ones(SHAPE), eps=np.ones(SHAPE), abar=0.0)
@example(x0=np.zeros(SHAPE), eps=np.full(SHAPE, 2.22507386e-313), abar=1e-6)
def test_x0_recovered_from_xt_and_v(x0, eps, abar):
    """x₀ = √ᾱ·x_t - √(1-ᾱ)·v with x_t = add_noise, v = velocity: α² + σ² = 1 makes it exact up to
    ~6 roundings of terms bounded by |x₀| + |ε|, each relative u or, below the normal range, absolute
    (bound 16·(u·(|x₀| + |ε|) + smallest subnormal)); exact at ᾱ = 0."""
    x_t, v = add_noise(x0, eps, abar), velocity(x0, eps, abar)
    got = convert(v, "v_prediction", "sample", x_t, abar)
    if abar == 0.0:
        assert_array_equal(got, x0)
    assert_within(got, x0, 16 * (U * (np.abs(x0) + np.abs(eps)) + SUBNORMAL), f"x0 from (x_t, v) at abar={abar}")
