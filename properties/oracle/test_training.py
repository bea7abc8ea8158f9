"""The training side of the oracle (reference/training.py): SNR, targets, the forward process and
the loss weights, against mpmath (properties/oracle/mp.py) and against each other.

ULP budgets, derived from the closed forms in reference/training.py (u = 2⁻⁵³; a relative error
r is < r/u ULP, since ULP(y) = np.spacing(|y|) > u·|y|):
- 1 - ᾱ is exact for ᾱ >= 1/2 (Sterbenz) and within u otherwise; √, ×, / add u each.
- SNR = ᾱ/(1-ᾱ): 2u.                           -> 2 ULP
- Min-SNR: x₀ min(SNR, γ): 2u; v: ᾱ (exact) or γ·(1-ᾱ): 2u; where the rounded SNR sits on the
  other side of γ than the exact one, |SNR - γ| <= 2u·SNR, so the other branch is within 2u too.
  ε: γ/SNR: 3u.                                 -> 2, 2, 3 ULP
- debiased: √ᾱ/√(1-ᾱ), √(1-ᾱ)/√ᾱ, √ᾱ·√(1-ᾱ): u + 1.5u + u.            -> 3.5 ULP
- P2: k + SNR within 3u (no cancellation: both > 0), so (k + SNR)^-γ within 3γu plus np.power's
  < 1 ULP; × SNR (x₀) adds 2u + u, × ᾱ (v) adds u.  -> 3γ + 1, 3γ + 4, 3γ + 2 ULP
Results below the normal range are measured on the subnormal grid (ulp_error), where each of
these relative bounds holds a fortiori.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import SUBNORMAL, U, assert_within
from properties.oracle.mp import mp_loss_weight, mp_snr, ulp_error
from reference import (
    LOSS_WEIGHTINGS,
    PREDICTION_TYPES,
    EpsilonAtZeroSNR,
    add_noise,
    add_noise_sigma,
    convert,
    equivalent_loss_weight,
    loss_weight,
    make_schedule,
    snr,
    training_target,
    velocity,
)
from reference.training import DEFAULT_GAMMA

SHAPE = (2, 3)
SNR_BUDGET_ULP = 2.0


def weight_budget_ulp(weighting: str, prediction_type: str, gamma: float) -> float:
    """The derived ULP budget of one loss weight (module docstring)."""
    if weighting == "uniform":
        return 0.0
    if weighting == "min_snr":
        return 3.0 if prediction_type == "epsilon" else 2.0
    if weighting == "debiased":
        return 3.5
    return 3.0 * gamma + {"epsilon": 1.0, "sample": 4.0, "v_prediction": 2.0}[prediction_type]


@given(abar=zs.training_alpha_bars())
@example(abar=0.0)
@example(abar=5e-324)
@example(abar=1.0 - 2.0**-53)
def test_snr_within_budget_of_mpmath(abar):
    got = snr(abar)
    assert ulp_error(got, [mp_snr(abar)])[0] <= SNR_BUDGET_ULP
    if abar == 0.0:
        assert got == 0.0  # SNR(T) = 0 exactly


@st.composite
def weight_cases(draw):
    weighting = draw(st.sampled_from(LOSS_WEIGHTINGS), label="weighting")
    prediction_type = draw(st.sampled_from(PREDICTION_TYPES), label="prediction_type")
    abar = draw(zs.training_alpha_bars(allow_zero=prediction_type != "epsilon"), label="alpha_bar")
    lo_hi = zs.TRAINING_GAMMAS.get(weighting)
    gamma = draw(st.one_of(st.none(), st.floats(*lo_hi)), label="gamma") if lo_hi else None
    return weighting, prediction_type, abar, gamma


@given(case=weight_cases())
@example(case=("min_snr", "epsilon", 5.0 / 6.0, None))  # SNR = γ = 5 exactly
@example(case=("min_snr", "v_prediction", 5.0 / 6.0, None))
@example(case=("min_snr", "v_prediction", 0.0, None))
@example(case=("debiased", "sample", 5e-324, None))
@example(case=("debiased", "epsilon", 5e-324, None))
@example(case=("p2", "sample", 1.0 - 2.0**-53, 2.0))
@example(case=("p2", "v_prediction", 0.0, 1.0))
def test_loss_weight_within_budget_of_mpmath(case):
    weighting, prediction_type, abar, gamma = case
    g = DEFAULT_GAMMA.get(weighting, 1.0) if gamma is None else gamma
    got = loss_weight(abar, prediction_type, weighting, gamma=gamma)
    want = mp_loss_weight(abar, prediction_type, weighting, gamma=g)
    err = ulp_error(got, [want])[0]
    budget = weight_budget_ulp(weighting, prediction_type, g)
    assert err <= budget, f"{weighting}/{prediction_type} at ᾱ={abar!r}, γ={g}: {err:.2f} ULP > {budget}"


@pytest.mark.parametrize("weighting", LOSS_WEIGHTINGS)
def test_weights_at_zero_snr(weighting):
    """At SNR 0 the x₀ and v weights are their limits (0; uniform: 1) and every ε weight is
    refused by type, on the last timestep of a rescaled schedule too."""
    abar = make_schedule("scaled_linear", 1000, rescale=True).alphas_cumprod
    assert abar[-1] == 0.0 and snr(abar)[-1] == 0.0
    limit = 1.0 if weighting == "uniform" else 0.0
    for p in ("sample", "v_prediction"):
        w = loss_weight(abar, p, weighting)
        assert np.all(np.isfinite(w)) and w[-1] == limit
    with pytest.raises(EpsilonAtZeroSNR):
        loss_weight(abar, "epsilon", weighting)
    assert np.all(np.isfinite(loss_weight(abar[:-1], "epsilon", weighting)))


@given(case=weight_cases())
def test_weights_of_the_three_targets_are_equivalent(case):
    """loss_weight on the x₀ and v losses is equivalent_loss_weight of the ε loss's weight, where
    both are defined (ᾱ > 0), within the sum of the two weights' budgets plus the conversion's
    two roundings (and the ratio's one)."""
    weighting, _, abar, gamma = case
    if abar == 0.0 or weighting == "uniform":
        return  # ε undefined at SNR 0; uniform is 1 on each loss, by definition not equivalent
    g = DEFAULT_GAMMA.get(weighting, 1.0) if gamma is None else gamma
    w_eps = loss_weight(abar, "epsilon", weighting, gamma=gamma)
    for p in ("sample", "v_prediction"):
        direct = loss_weight(abar, p, weighting, gamma=gamma)
        carried = equivalent_loss_weight(w_eps, abar, "epsilon", p)
        budget = weight_budget_ulp(weighting, "epsilon", g) + weight_budget_ulp(weighting, p, g) + 3.0
        err = ulp_error(carried, [float(direct)])[0]
        assert err <= budget, f"{weighting}: {p} weight {direct!r} vs carried {carried!r} ({err:.2f} ULP)"


@given(x0=zs.states(SHAPE, 10.0), eps=zs.states(SHAPE, 10.0),
       delta=zs.states(SHAPE, 10.0).filter(lambda d: np.all(np.abs(d) >= 0.1)),
       abar=zs.interior_alpha_bars(1e-6, 1.0 - 1e-6), weighting=st.sampled_from(LOSS_WEIGHTINGS[1:]))
@example(x0=np.ones(SHAPE), eps=-np.ones(SHAPE), delta=np.full(SHAPE, 0.5), abar=0.5, weighting="min_snr")
def test_equivalent_weights_equalise_the_losses(x0, eps, delta, abar, weighting):
    """For a v prediction v̂ = v + δ and its conversions x̂₀, ε̂ (reference.convert, at the same
    x_t), w_ε·‖ε̂ - ε‖² = w_x₀·‖x̂₀ - x₀‖² = w_v·‖v̂ - v‖² with the weights of loss_weight.

    Each converted error x̂₀ - x₀ is formed from terms bounded by m = |√ᾱ·x_t| + |√(1-ᾱ)·v̂| + |x₀|
    (ε likewise) with ~6 roundings: |e| <= 8u·m; the squared norm errs by <= Σ(2|Δ|e + e²) plus
    the sum's and the weight's own relative error (n + 8)u."""
    x_t, v = add_noise(x0, eps, abar), velocity(x0, eps, abar)
    v_hat = v + delta
    a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
    losses = {}
    for p, truth in (("v_prediction", v), ("sample", x0), ("epsilon", eps)):
        pred = v_hat if p == "v_prediction" else convert(v_hat, "v_prediction", p, x_t, abar)
        diff = pred - truth
        m = np.abs(a * x_t) + np.abs(s * v_hat) + np.abs(truth) + np.abs(v)
        e = 8 * U * m
        norm = float(np.sum(diff**2))
        bound = float(np.sum(2 * np.abs(diff) * e + e**2)) + (diff.size + 8) * U * norm
        w = float(loss_weight(abar, p, weighting))
        losses[p] = (w * norm, w * bound)
    ref_loss, ref_bound = losses["v_prediction"]
    for p in ("sample", "epsilon"):
        got, bound = losses[p]
        assert_within(got, ref_loss, bound + ref_bound + 8 * U * ref_loss, f"{weighting}: {p} loss vs v loss")


@given(x0=zs.states(SHAPE), eps=zs.states(SHAPE), abar=zs.training_alpha_bars())
@example(x0=np.ones(SHAPE), eps=np.full(SHAPE, -2.0), abar=0.0)
def test_targets(x0, eps, abar):
    """ε and x₀ targets are the inputs; v is velocity; at SNR 0, v = -x₀ and x_t = ε exactly."""
    assert_array_equal(training_target(x0, eps, abar, "epsilon"), eps)
    assert_array_equal(training_target(x0, eps, abar, "sample"), x0)
    v = training_target(x0, eps, abar, "v_prediction")
    assert_array_equal(v, velocity(x0, eps, abar))
    if abar == 0.0:
        assert_array_equal(v, -x0)
        assert_array_equal(add_noise(x0, eps, abar), eps)


@given(x0=zs.states(SHAPE, 10.0), eps=zs.states(SHAPE, 10.0), abar=zs.interior_alpha_bars(1e-12, 1.0 - 1e-12))
@example(x0=np.full(SHAPE, 2.22507386e-311), eps=np.full(SHAPE, 2.22507386e-311), abar=1e-12)
def test_ve_forward_process_is_the_vp_one_rescaled(x0, eps, abar):
    """x = x₀ + σ·ε with σ = √((1-ᾱ)/ᾱ) equals x_t/√ᾱ: x·√ᾱ = √ᾱ·x₀ + √(1-ᾱ)·ε up to ~6
    roundings of terms bounded by |x₀| + σ|ε| (scaled by √ᾱ): 8u·(√ᾱ|x₀| + √(1-ᾱ)|ε|), plus, for
    subnormal operands, the subnormal spacing per rounding (8·SUBNORMAL)."""
    sigma = math.sqrt((1.0 - abar) / abar)
    x = add_noise_sigma(x0, eps, sigma)
    a = math.sqrt(abar)
    bound = 8 * U * (a * np.abs(x0) + math.sqrt(1.0 - abar) * np.abs(eps)) + 8 * U * np.abs(x * a) + 8 * SUBNORMAL
    assert_within(x * a, add_noise(x0, eps, abar), bound, f"VE vs VP forward process at ᾱ={abar}")


@pytest.mark.parametrize("call, argument", [
    (lambda: add_noise_sigma(np.ones(2), np.ones(2), math.inf), "sigma"),
    (lambda: add_noise_sigma(np.ones(2), np.ones(2), -1.0), "sigma"),
    (lambda: add_noise_sigma(np.full(2, 1e308), np.ones(2), 1e308), "overflows"),
    (lambda: snr(1.0), "alpha_bar"),
    (lambda: snr(-0.1), "alpha_bar"),
    (lambda: loss_weight(0.5, "epsilon", "bogus"), "weighting"),
    (lambda: loss_weight(0.5, "bogus"), "prediction_type"),
    (lambda: loss_weight(0.5, "sample", "min_snr", gamma=0.0), "gamma"),
    (lambda: loss_weight(0.5, "sample", "debiased", gamma=2.0), "gamma"),
    (lambda: loss_weight(0.5, "sample", "p2", k=0.0), "k"),
    (lambda: loss_weight(1e-10, "sample", "p2", gamma=1e4, k=1e-3), "gamma"),
    (lambda: equivalent_loss_weight(-1.0, 0.5, "epsilon", "sample"), "weight"),
    (lambda: equivalent_loss_weight(1.0, 0.5, "epsilon", "bogus"), "to_type"),
    (lambda: equivalent_loss_weight(1.0, 0.5, "bogus", "sample"), "from_type"),
    (lambda: equivalent_loss_weight(1e308, 1e-300, "sample", "epsilon"), "weight"),
    (lambda: training_target(np.ones(2), np.ones(3), 0.5, "sample"), "shapes"),
])
def test_bad_training_input_is_a_clear_error(call, argument):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert argument in str(info.value)


def test_equivalent_weight_refuses_epsilon_at_zero_snr():
    for src, dst in (("epsilon", "v_prediction"), ("v_prediction", "epsilon")):
        with pytest.raises(EpsilonAtZeroSNR):
            equivalent_loss_weight(1.0, 0.0, src, dst)
    assert equivalent_loss_weight(2.0, 0.0, "v_prediction", "sample") == 2.0
