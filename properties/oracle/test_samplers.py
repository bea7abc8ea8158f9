"""Sampler steps (paper Sec. 6) and the sampling loop: equivalences, zero SNR, the last step."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import SUBNORMAL, U, assert_within
from reference import (
    VARIANCE_TYPES,
    ddim_noise_scale,
    ddim_step,
    ddpm_step,
    ddpm_variance,
    euler_ancestral_step,
    euler_churn,
    euler_step,
    gaussian_denoiser,
    loop_alpha_bars,
    make_schedule,
    predict_x0_and_eps,
    sample_loop,
    timesteps,
)
from reference._checks import MAX_SIGMA
from reference.loop import step_map

SHAPE = (2, 3)
PAIRS = zs.alpha_bar_pairs()
INTERIOR = zs.alpha_bar_pairs(allow_zero=False, allow_one_prev=False)


def _vp_tol(a_t, a_p, x, out, z, x0, eps):
    """VE ↔ VP equivalences: the VE state x/√ᾱ_t and σ|d| are ~√(1/ᾱ_t) larger than the result and
    cancel, so rounding is amplified by √(ᾱ_prev/ᾱ_t); forming 1-ᾱ again from σ costs u/(1-ᾱ_t).
    Each route rounds ~10 times: 32·u·(1 + √(ᾱ_prev/ᾱ_t) + 1/(1-ᾱ_t))·(sum of |terms|), each
    rounding below the normal range erring by the smallest subnormal instead of u·|term|."""
    terms = np.abs(x) + np.abs(out) + np.abs(z) + np.abs(x0) + np.abs(eps)
    return 32 * (U * terms + SUBNORMAL) * (1 + math.sqrt(a_p / a_t) + 1 / (1 - a_t))


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), z=zs.states(SHAPE), ab=INTERIOR,
       pt=zs.prediction_types, eta=zs.etas)
@example(x=np.ones(SHAPE), out=np.ones(SHAPE), z=np.ones(SHAPE), ab=(0.5, 0.9), pt="epsilon", eta=0.0)
@example(x=np.ones(SHAPE), out=np.ones(SHAPE), z=np.ones(SHAPE), ab=(1e-6, 0.9), pt="v_prediction", eta=1.0)
@example(x=np.zeros(SHAPE), out=np.zeros(SHAPE), z=np.ones(SHAPE), ab=(0.9073465074332476, 0.9073465074332477),
         pt="epsilon", eta=1.0)
@example(x=np.zeros(SHAPE), out=np.pad([[2.22507386e-313]], ((0, 1), (0, 2))), z=np.zeros(SHAPE), ab=(0.125, 0.5),
         pt="epsilon", eta=0.0)
def test_euler_family_is_ddim_in_vp(x, out, z, ab, pt, eta):
    """Euler (η = 0) and Euler ancestral (η) in x_ve = x_vp/√ᾱ equal DDIM with the same η and z."""
    a_t, a_p = ab
    sig, sig_n = math.sqrt((1 - a_t) / a_t), math.sqrt((1 - a_p) / a_p)
    x0, eps = predict_x0_and_eps(x, out, pt, a_t)
    ddim = ddim_step(x, out, prediction_type=pt, alpha_bar_t=a_t, alpha_bar_prev=a_p, eta=eta, noise=z)
    if eta == 0.0:
        ve = euler_step(x / math.sqrt(a_t), out, prediction_type=pt, sigma=sig, sigma_next=sig_n)
    else:
        ve = euler_ancestral_step(x / math.sqrt(a_t), out, prediction_type=pt, sigma=sig, sigma_next=sig_n,
                                  eta=eta, noise=z)
    tol = _vp_tol(a_t, a_p, x, out, z, x0, eps) + eta * math.sqrt(a_p) * _sigma_up_error(sig, sig_n) * np.abs(z)
    assert_within(ve * math.sqrt(a_p), ddim, tol, f"eta={eta}")


def _sigma_up_error(sig, sig_n):
    """How far σ_up = σ_next·√(1-q²), q = σ_next/σ, moves when σ and σ_next are formed from ᾱ in
    float64 (here, by the test): q carries <= 6u relative error (two √((1-ᾱ)/ᾱ) and a quotient),
    so 1-q² moves by <= 12u·q². For a short step 1-q² is itself tiny and this is the conditioning
    of the VE form, not oracle error: first order 6u·σ_next·q²/√(1-q²), and never more than
    σ_next·√(12u)·q (|√(A+δ) - √A| <= √|δ|). (ᾱ 1 ulp apart: σ_up ≈ 1e-8 with ~3 % error.)"""
    q = sig_n / sig
    root = math.sqrt(12 * U) * q
    return sig_n * (min(6 * U * q * q / math.sqrt(1 - q * q), root) if q < 1 else root)


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), z=zs.states(SHAPE), ab=PAIRS,
       pt=zs.finite_at_zero_snr_predictions)
@example(x=np.ones(SHAPE), out=np.ones(SHAPE), z=np.ones(SHAPE), ab=(0.0, 0.5), pt="v_prediction")
@example(x=np.zeros(SHAPE), out=np.full(SHAPE, 2.22507386e-311), z=np.zeros(SHAPE), ab=(0.5, 0.875),
         pt="v_prediction")
def test_ddim_eta1_is_ddpm_fixed_small(x, out, z, ab, pt):
    """DDIM η = 1: s² = β̃ and √(1-ᾱ_prev-β̃)·ε̂ + √ᾱ_prev·x̂₀ = μ̃ (Eq. 20 vs 21-22). Both sides are
    sums of |terms| <= |x̂₀| + |ε̂| + |x_t| + |z| with coefficients <= 1; ~10 roundings each:
    32·(u·(sum) + smallest subnormal)."""
    a_t, a_p = ab
    x0, eps = predict_x0_and_eps(x, out, pt, a_t)
    ddim = ddim_step(x, out, prediction_type=pt, alpha_bar_t=a_t, alpha_bar_prev=a_p, eta=1.0, noise=z)
    ddpm = ddpm_step(x, out, prediction_type=pt, alpha_bar_t=a_t, alpha_bar_prev=a_p, noise=z)
    bound = 32 * (U * (np.abs(x0) + np.abs(eps) + np.abs(x) + np.abs(z)) + SUBNORMAL) * (1 + 1 / (1 - a_t))
    assert_within(ddim, ddpm, bound, "ddim(eta=1) vs ddpm(fixed_small)")


PV_LEARNED = zs.predicted_variances("learned", SHAPE)
PV_RANGE = zs.predicted_variances("learned_range", SHAPE)


def _all_steps(x, out, z, a_t, a_p, pt, eta, pvs):
    """Every step function with every option at (ᾱ_t, ᾱ_prev), as (label, result)."""
    results = []
    for vt in VARIANCE_TYPES:
        pv = pvs.get(vt)
        results.append((f"ddpm {vt}", ddpm_step(x, out, prediction_type=pt, alpha_bar_t=a_t, alpha_bar_prev=a_p,
                                                noise=z, variance_type=vt, predicted_variance=pv)))
    for clip in (False, True):
        results.append((f"ddim clip={clip}", ddim_step(x, out, prediction_type=pt, alpha_bar_t=a_t,
                                                       alpha_bar_prev=a_p, eta=eta, noise=z, clip_sample=clip,
                                                       use_clipped_model_output=clip)))
    den = lambda x_, t, a: out
    for sampler, opts in (("euler", {}), ("euler", {"s_churn": 1.0}), ("euler_ancestral", {"eta": eta})):
        if a_t > 0 or not opts.get("s_churn"):
            f = step_map(sampler, den, prediction_type=pt, alpha_bar=a_t, alpha_bar_next=a_p, **opts)
            if opts.get("s_churn") and a_t / ((1 - a_t) * 2 + a_t) == 0:  # γ = √2−1 at S = 1: ᾱ̂ underflows
                with pytest.raises(ValueError):
                    f(x, z)
                continue
            results.append((f"{sampler} {opts}", f(x, z)))
    return results


ONES = np.ones(SHAPE)


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), z=zs.states(SHAPE), a_p=st.floats(1e-6, 1.0),
       pt=zs.finite_at_zero_snr_predictions, eta=zs.etas, pv=PV_LEARNED, pr=PV_RANGE)
@example(x=ONES, out=ONES, z=ONES, a_p=1e-6, pt="v_prediction", eta=1.0, pv=ONES, pr=-ONES)
@example(x=ONES, out=ONES, z=ONES, a_p=0.5, pt="sample", eta=0.0, pv=0 * ONES, pr=ONES)
@example(x=ONES, out=ONES, z=ONES, a_p=1.0, pt="v_prediction", eta=1.0, pv=ONES, pr=ONES)
def test_every_sampler_finite_at_zero_snr(x, out, z, a_p, pt, eta, pv, pr):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for label, r in _all_steps(x, out, z, 0.0, a_p, pt, eta, {"learned": pv, "learned_range": pr}):
            assert np.all(np.isfinite(r)), label


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), a_p=st.floats(1e-6, 1.0),
       sampler=st.sampled_from(["ddpm", "ddim", "euler", "euler_ancestral"]))
def test_epsilon_at_zero_snr_raises(x, out, a_p, sampler):
    f = step_map(sampler, lambda x_, t, a: out, prediction_type="epsilon", alpha_bar=0.0, alpha_bar_next=a_p)
    with pytest.raises(ValueError, match="v_prediction"):
        f(x, np.zeros(SHAPE))


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), z=zs.states(SHAPE),
       a_t=st.one_of(st.just(0.0), st.floats(0.0, 0.9999)), pt=zs.prediction_types, eta=zs.etas,
       pv=PV_LEARNED, pr=PV_RANGE)
@example(x=ONES, out=ONES, z=ONES, a_t=0.0, pt="v_prediction", eta=1.0, pv=ONES, pr=ONES)
@example(x=ONES, out=ONES, z=ONES, a_t=0.5, pt="epsilon", eta=0.0, pv=ONES, pr=-ONES)
def test_last_step_is_x0(x, out, z, a_t, pt, eta, pv, pr):
    """ᾱ_prev = 1 (σ_next = 0) lands exactly on x̂₀ of the step, with no noise, for every option."""
    if pt == "epsilon" and a_t == 0.0:
        return
    x0, _ = predict_x0_and_eps(x, out, pt, a_t)
    for label, r in _all_steps(x, out, z, a_t, 1.0, pt, eta, {"learned": pv, "learned_range": pr}):
        if "clip=True" in label:
            assert_array_equal(r, np.clip(x0, -1, 1), label)
        elif label.startswith("euler") and a_t > 0 and math.sqrt((1 - a_t) / a_t) <= MAX_SIGMA:
            # the Euler family evaluates x̂₀ at its VE state and ᾱ = 1/(σ²+1) (its own step's x̂₀);
            # where σ overflows (subnormal ᾱ_t) it steps in the VP variable, as at σ = inf
            sig = math.sqrt((1 - a_t) / a_t)
            xe = x * math.hypot(sig, 1)  # the loop's VE state
            own, _ = predict_x0_and_eps(xe / math.hypot(sig, 1), out, pt, (1 / math.hypot(sig, 1)) ** 2)
            if "s_churn" not in label:
                assert_array_equal(r, own, label)
        elif "s_churn" not in label:  # the churn's x̂₀ is that of the churned state
            assert_array_equal(r, x0, label)


@given(ab=PAIRS, vt=st.sampled_from(["small", "large"]))
@example(ab=(0.0, 0.5), vt="small")
def test_log_variance_forms(ab, vt):
    """exp(½·log v) vs √v: log rounds with absolute error u·|log v|, exp makes it relative:
    4·u·(1 + |log v|)·√v."""
    a_t, a_p = ab
    direct = ddpm_variance(a_t, a_p, f"fixed_{vt}")
    logged = ddpm_variance(a_t, a_p, f"fixed_{vt}_log")
    if direct == 0.0:
        assert logged == 0.0
        return
    assert_within(logged, direct, 4 * U * (1 + abs(2 * math.log(direct))) * direct, vt)


@given(ab=PAIRS, eta=zs.etas)
@example(ab=(0.0, 0.3), eta=1.0)
@example(ab=(0.0, 1.0), eta=1.0)
@example(ab=(0.5, 0.5), eta=0.0)
def test_ddim_noise_scale(ab, eta):
    """c_ε = √(1-ᾱ_prev-s²) is real (radicand never negative), c_ε² + s² = 1 - ᾱ_prev within
    8·u·(1 - ᾱ_prev) (two squares, a sum and the oracle's ~6 roundings, all of non-negative terms),
    and c_ε = 0 exactly at ᾱ_t = 0, η = 1."""
    a_t, a_p = ab
    c, s = ddim_noise_scale(a_t, a_p, eta)
    assert c >= 0 and s >= 0 and math.isfinite(c) and math.isfinite(s)
    assert_within(c * c + s * s, 1 - a_p, 16 * U * (1 - a_p), "c^2 + s^2")
    if a_t == 0.0 and eta == 1.0:
        assert c == 0.0


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), ab=INTERIOR, eta=st.floats(0.01, 1.0))
def test_noise_required_when_scale_positive(x, out, ab, eta):
    a_t, a_p = ab
    if a_p == a_t:
        return
    kw = {"prediction_type": "sample", "alpha_bar_t": a_t, "alpha_bar_prev": a_p}
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x, out, eta=eta, **kw)
    with pytest.raises(ValueError, match="noise"):
        ddpm_step(x, out, **kw)
    sig, sig_n = math.sqrt((1 - a_t) / a_t), math.sqrt((1 - a_p) / a_p)
    if sig_n < sig:  # two ᾱ one ulp apart can round to the same σ: a zero-length VE step, no noise
        with pytest.raises(ValueError, match="noise"):
            euler_ancestral_step(x, out, prediction_type="sample", sigma=sig, sigma_next=sig_n, eta=eta)


@given(x=zs.states(SHAPE), out=zs.states(SHAPE), z=zs.states(SHAPE), ab=PAIRS, pt=zs.finite_at_zero_snr_predictions)
def test_noise_ignored_when_scale_zero(x, out, z, ab, pt):
    """η = 0 DDIM and every last step ignore the noise: the result with z equals that without."""
    a_t, a_p = ab
    kw = {"prediction_type": pt, "alpha_bar_t": a_t, "alpha_bar_prev": a_p}
    assert_array_equal(ddim_step(x, out, eta=0.0, noise=z, **kw), ddim_step(x, out, eta=0.0, **kw))
    kw["alpha_bar_prev"] = 1.0
    assert_array_equal(ddpm_step(x, out, noise=z, **kw), ddpm_step(x, out, **kw))
    assert_array_equal(ddim_step(x, out, eta=1.0, noise=z, **kw), ddim_step(x, out, eta=1.0, **kw))


@given(x=zs.states(SHAPE), z=zs.states(SHAPE), sigma=st.floats(1e-3, 1e3), S=st.integers(1, 100),
       churn=st.floats(0.0, 100.0), tmin=st.floats(0.0, 1e3), tmax=st.floats(0.0, 1e3), s_noise=st.floats(0.0, 2.0))
@example(x=np.ones(SHAPE), z=np.ones(SHAPE), sigma=1.0, S=1, churn=80.0, tmin=0.0, tmax=1e3, s_noise=1.0)
def test_euler_churn(x, z, sigma, S, churn, tmin, tmax, s_noise):
    """γ = min(s_churn/S, √2-1) inside [s_tmin, s_tmax], else 0; σ̂ = σ(1+γ); x̂ - x = s_noise·√(σ̂²-σ²)·z,
    the scale against 50-digit mpmath (σ̂ exact): 8 roundings of a product of non-negative terms, plus
    the sum x + kick: 8·u·(|kick| + |x| + |x̂|)."""
    xh, sh = euler_churn(x, sigma, num_inference_steps=S, noise=z, s_churn=churn, s_tmin=tmin, s_tmax=tmax,
                         s_noise=s_noise)
    gamma = min(churn / S, math.sqrt(2) - 1) if tmin <= sigma <= tmax else 0.0
    if gamma == 0.0:
        assert sh == sigma and xh is not None
        assert_array_equal(xh, x)
        return
    assert_within(sh, sigma * (1 + gamma), 2 * U * sh, "sigma_hat")
    import mpmath

    with mpmath.workdps(50):  # σ̂² - σ² = σ²·((1+γ)² - 1) = σ²·γ(2+γ) exactly (no 1+γ to round away)
        g = mpmath.mpf(gamma)
        scale = float(mpmath.mpf(s_noise) * mpmath.mpf(sigma) * mpmath.sqrt(g * (2 + g)))
    assert_within(xh - x, scale * z, 8 * U * (np.abs(scale * z) + np.abs(x) + np.abs(xh)), "churn")


# --- the loop -----------------------------------------------------------------------------------


@given(spacing=zs.spacings, S=st.integers(1, 30), pt=zs.finite_at_zero_snr_predictions, seed=st.integers(0, 2**32 - 1),
       sampler=st.sampled_from(["ddpm", "ddim", "euler", "euler_ancestral"]), eta=zs.etas)
@example(spacing="trailing", S=1, pt="v_prediction", seed=0, sampler="ddim", eta=0.0)
@example(spacing="trailing", S=1000, pt="v_prediction", seed=0, sampler="euler_ancestral", eta=1.0)
def test_loop_is_repeated_steps_and_lands_on_x0(spacing, S, pt, seed, sampler, eta):
    """sample_loop equals calling step_map for each step (bitwise), and its final state equals x̂₀
    of the last step (exactly: the last step lands on x̂₀)."""
    sched = make_schedule("scaled_linear", 1000, rescale=True)
    ts = timesteps(spacing, 1000, S)
    levels = loop_alpha_bars(sched, ts)
    rng = np.random.default_rng(seed)
    mean, var = rng.normal(size=SHAPE), rng.uniform(0.1, 4.0, size=SHAPE)
    den = gaussian_denoiser(mean, var, pt)
    x_T, noise = rng.normal(size=SHAPE), rng.normal(size=(S, *SHAPE))
    opts = {"eta": eta} if sampler in ("ddim", "euler_ancestral") else {}
    out, path = sample_loop(den, x_T, sampler=sampler, prediction_type=pt, alpha_bars=levels, timesteps=ts,
                            noise=noise, return_trajectory=True, **opts)
    x = x_T
    for i in range(S):
        x = step_map(sampler, den, prediction_type=pt, alpha_bar=levels[i], alpha_bar_next=levels[i + 1],
                     timestep=ts[i], num_inference_steps=S, **opts)(x, noise[i])
        assert_array_equal(path[i + 1], x)
    assert_array_equal(out, x)
    a_last, xin = levels[-2], path[-2]
    if sampler.startswith("euler") and a_last > 0:
        # the Euler family evaluates x̂₀ at its VE state, re-derived from σ (see step_map)
        sig = math.sqrt((1 - a_last) / a_last)
        a_last = (1 / math.hypot(sig, 1)) ** 2
        xin = path[-2] * math.hypot(sig, 1) / math.hypot(sig, 1)
    x0, _ = predict_x0_and_eps(xin, den(xin, ts[-1], a_last), pt, a_last)
    assert_array_equal(out, x0)
