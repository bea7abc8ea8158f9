"""The oracle of the oracle: the float64 reference stays within a stated ULP budget of an mpmath
evaluation of the textbook definitions (properties/oracle/mp.py), over drawn configurations.

Budgets are requirements, derived below; ULP(y) = np.spacing(|y|), so one rounding of a
correctly rounded operation costs <= 0.5 ULP and a relative error of k·2⁻⁵³ is < k ULP.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from properties.oracle.mp import (
    mp_ancestral,
    mp_ddim,
    mp_ddpm,
    mp_schedule,
    mp_schedule_of,
    ulp_error,
)
from properties.profiles import active as zsnr_profile
from properties.strategies import ScheduleConfig, alpha_bar_pairs, etas, schedule_configs
from reference import (
    BETA_SCHEDULES,
    COMFYUI_FLOOR,
    DIFFUSERS_EULER_FLOOR,
    ORACLE_LOG_SNR_ULP_BOUND,
    ORACLE_ULP_BOUND,
    ancestral_sigmas,
    ddim_noise_scale,
    ddpm_step,
    ddpm_variance,
    make_schedule,
)

#: Every array of a drawn make_schedule result (β, α, ᾱ, 1-ᾱ, √ᾱ, √(1-ᾱ), SNR, Euler σ; plain,
#: rescaled, floored): reference.ORACLE_ULP_BOUND = 1.0, derived there (a double-double of relative
#: error <= ~2⁻⁶⁰ rounded once: <= 0.51). Measured worst (benchmarks/oracle_accuracy.py, T ∈ {1000,
#: 4000} and T = 2…79, 97, 150, 333, 777, every schedule, rescaled and floored): 0.54 ULP. (It was
#: 4 for β, ᾱ, 1-ᾱ, √, 9 for SNR and for Algorithm 1 on the clipped cosine, when the cosine's
#: sines, the sigmoid's exp and the derived quotients and roots were float64.)
SCHEDULE_BUDGET_ULP = ORACLE_ULP_BOUND
#: log SNR: reference.ORACLE_LOG_SNR_ULP_BOUND = 2.0 (NumPy's log, <= 1 ULP, on the SNR's
#: double-double, plus the final rounding: 1.5); measured worst 1.00. Its error is now relative
#: everywhere, also near SNR = 1 where log ᾱ - log(1-ᾱ) used to cancel (it was bounded absolutely).
LOG_SNR_BUDGET_ULP = ORACLE_LOG_SNR_ULP_BOUND

#: DDPM's mean coefficients c_x0, c_xt and DDIM's ε̂ coefficient and noise scale: one rounding of
#: a double-double each (reference/_dd.py, ddpm_mean_coefficients and ddim_coefficients; the
#: differences 1 - ᾱ, ᾱ_prev - ᾱ_t and 1 - η² are exact): <= 0.5 + 2⁻⁵⁰; budget 1. Where ᾱ_prev
#: or a non-zero ᾱ_t is below 2⁻⁹⁰⁰ the float formulas apply: STEP_BUDGET_ULP. Measured worst
#: (seeded levels, 2000 + 2·5000): 0.50 each (were 1.98, 2.11, 2.08 and 2.09 in float64).
DD_STEP_BUDGET_ULP = 1.0
_DD_COEFFICIENTS = ("ddpm c_x0", "ddpm c_xt", "ddim eps coefficient", "ddim noise scale")
_DD_SAFE = 2.0**-900
#: The other step coefficients (DDPM std, ancestral σ): 4-6 float64 roundings of exact float
#: inputs with no cancellation (a_p - a_t and σ - σ_next are exact by Sterbenz where they are
#: small); √ halves an error and adds 0.5: at most 4. Measured worst (seeded levels, 2000 +
#: 2·5000): 1.92 (ancestral σ_up).
STEP_BUDGET_ULP = 4.0

SCHEDULE_QUANTITIES = {q: SCHEDULE_BUDGET_ULP for q in (
    "betas", "alphas", "alphas_cumprod", "one_minus_alphas_cumprod", "alpha", "sigma", "snr", "euler_sigma")}
SCHEDULE_QUANTITIES["log_snr"] = LOG_SNR_BUDGET_ULP

# fewer drawn examples than the profile's default: each draw evaluates up to 4000 steps in mpmath
_EXAMPLES = max(5, zsnr_profile().max_examples // 4)


def _schedule_examples(test):
    # the worst cases of the float64 sines and exp (before the double-double ones): Algorithm 1 on
    # the clipped cosine at T = 53 (5.9 ULP in ᾱ'), SNR of the rescaled cosine at T = 4000 (4.15),
    # log SNR of the sigmoid near SNR = 1 at T = 4000 (37)
    test = example(config=ScheduleConfig("squaredcos_cap_v2", 53, rescale=True))(test)
    for name in BETA_SCHEDULES:
        for T, rescale in ((1, False), (2, False), (2, True), (4000, False), (4000, True)):
            test = example(config=ScheduleConfig(name, T, rescale=rescale))(test)
    return test


def _worst(sched, exact, quantities, last_only=False):
    """{quantity: worst ULP error} of a Schedule against its MpSchedule (at t = T-1 only, or all t)."""
    if last_only:
        return {q: float(ulp_error(getattr(sched, q)[-1:], [getattr(exact, q)[-1]])[0]) for q in quantities}
    return {q: float(np.max(ulp_error(getattr(sched, q), exact.split(q)))) for q in quantities}


@settings(zsnr_profile(), max_examples=_EXAMPLES)
@given(config=schedule_configs())
@_schedule_examples
def test_schedule_within_ulp_budget(config):
    sched, exact = config.build(), mp_schedule_of(config)
    worst = _worst(sched, exact, SCHEDULE_QUANTITIES)
    over = {q: w for q, w in worst.items() if not w <= SCHEDULE_QUANTITIES[q]}
    assert not over, f"{config}: worst ULP error over budget: {over} (budgets {SCHEDULE_QUANTITIES})"


@settings(zsnr_profile(), max_examples=_EXAMPLES)
@given(config=schedule_configs(min_T=3, rescale=True),
       floor=st.one_of(st.sampled_from([DIFFUSERS_EULER_FLOOR, COMFYUI_FLOOR]), st.floats(1e-12, 1e-3)))
@example(config=ScheduleConfig("scaled_linear", 1000, rescale=True), floor=DIFFUSERS_EULER_FLOOR)
@example(config=ScheduleConfig("squaredcos_cap_v2", 53, rescale=True), floor=COMFYUI_FLOOR)
@example(config=ScheduleConfig("sigmoid", 4000, rescale=True), floor=COMFYUI_FLOOR)
def test_terminal_floor_within_ulp_budget(config, floor):
    """The floor changes t = T-1 only (the rest is test_schedule_within_ulp_budget's)."""
    base = config.build()
    if not floor < base.alphas_cumprod[-2]:
        return  # not a floor of this schedule (test_bad_input)
    sched = make_schedule(config.name, config.num_train_timesteps, config.beta_start, config.beta_end,
                          rescale=True, terminal_floor=floor)
    exact = mp_schedule(config.name, config.num_train_timesteps, config.beta_start, config.beta_end,
                        rescale=True, terminal_floor=floor)
    worst = _worst(sched, exact, SCHEDULE_QUANTITIES, last_only=True)
    over = {q: w for q, w in worst.items() if not w <= SCHEDULE_QUANTITIES[q]}
    assert not over, f"{config}, floor {floor!r}: ULP error at t = T-1 over budget: {over}"


def _ddpm_coefficients(a_t, a_p):
    """(c_x0, c_xt) of reference.ddpm_step, read off with unit inputs and sample prediction."""
    one, zero = np.ones(1), np.zeros(1)
    common = {"prediction_type": "sample", "alpha_bar_t": a_t, "alpha_bar_prev": a_p, "noise": zero}
    return float(ddpm_step(zero, one, **common)[0]), float(ddpm_step(one, zero, **common)[0])


@settings(zsnr_profile(), max_examples=4 * _EXAMPLES)
@given(pair=alpha_bar_pairs(), eta=etas)
@example(pair=(0.0, 1.0), eta=1.0)  # zero SNR straight to clean data
@example(pair=(0.0, 0.5), eta=1.0)  # zero SNR, η = 1: the ε̂ coefficient is exactly 0
@example(pair=(0.0, 0.5), eta=0.0)
@example(pair=(0.3, 0.3), eta=0.5)  # zero-length step
@example(pair=(0.00019706578507223773, 0.00019706583391565483), eta=0.0)  # nearly equal levels
@example(pair=(0.9999, 1.0), eta=1.0)
@example(pair=(5e-324, 0.75), eta=0.0)  # subnormal ᾱ_t (found by the dev profile)
@example(pair=(5e-324, 0.75), eta=1.0)
@example(pair=(1e-310, 0.5), eta=0.7)
@example(pair=(2.2250738585072014e-308, 0.875), eta=1.0)
@example(pair=(0.0, 0.5), eta=1.6556540817458437e-274)  # η² underflows (found by ci)  # ᾱ_t·(1-ᾱ_prev) subnormal: was 8.8 ULP (thorough)
def test_step_coefficients_within_ulp_budget(pair, eta):
    a_t, a_p = pair
    ddpm, (c_eps, s) = mp_ddpm(a_t, a_p), mp_ddim(a_t, a_p, eta)
    c_x0, c_xt = _ddpm_coefficients(a_t, a_p)
    got = {
        "ddpm c_x0": (c_x0, ddpm.c_x0),
        "ddpm c_xt": (c_xt, ddpm.c_xt),
        "ddpm std fixed_small": (ddpm_variance(a_t, a_p, "fixed_small"), ddpm.std_fixed_small),
        "ddpm std fixed_large": (ddpm_variance(a_t, a_p, "fixed_large"), ddpm.std_fixed_large),
        "ddim eps coefficient": (ddim_noise_scale(a_t, a_p, eta)[0], c_eps),
        "ddim noise scale": (ddim_noise_scale(a_t, a_p, eta)[1], s),
    }
    errors = {k: float(ulp_error(x, [y])[0]) for k, (x, y) in got.items()}
    dd = a_p >= _DD_SAFE and (a_t == 0.0 or a_t >= _DD_SAFE)
    budgets = {k: DD_STEP_BUDGET_ULP if dd and k in _DD_COEFFICIENTS else STEP_BUDGET_ULP for k in got}
    over = {k: e for k, e in errors.items() if not e <= budgets[k]}
    assert not over, f"ᾱ_t={a_t!r}, ᾱ_prev={a_p!r}, η={eta!r}: over budget {budgets}: {over}"


@st.composite
def sigma_pairs(draw):
    """(σ, σ_next) of the levels of a drawn step: σ = √((1-ᾱ)/ᾱ), +inf at ᾱ = 0, 0 at ᾱ = 1."""
    a_t, a_p = draw(alpha_bar_pairs(), label="alpha_bar pair")
    sigma = math.inf if a_t == 0 else math.sqrt((1.0 - a_t) / a_t)
    return sigma, math.sqrt((1.0 - a_p) / a_p)


@settings(zsnr_profile(), max_examples=4 * _EXAMPLES)
@given(pair=sigma_pairs(), eta=etas)
@example(pair=(math.inf, 1.0), eta=1.0)
@example(pair=(math.inf, 1.0), eta=0.5)
@example(pair=(14.6146, 0.0), eta=1.0)  # the last step
@example(pair=(624308.3007749702, 624308.2972587155), eta=0.17)  # σ_next/σ = 1 - 6e-9
@example(pair=(2.0, 2.0), eta=1.0)
@example(pair=(9.480751908109177e+153, 0.2581988897471611), eta=1.0)  # η²q² subnormal: was 11 ULP (thorough)
def test_ancestral_sigmas_within_ulp_budget(pair, eta):
    sigma, sigma_next = pair
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    exact_down, exact_up = mp_ancestral(sigma, sigma_next, eta)
    errors = {"sigma_down": float(ulp_error(down, [exact_down])[0]),
              "sigma_up": float(ulp_error(up, [exact_up])[0])}
    over = {k: e for k, e in errors.items() if not e <= STEP_BUDGET_ULP}
    assert not over, f"σ={sigma!r}, σ_next={sigma_next!r}, η={eta!r}: over {STEP_BUDGET_ULP} ULP: {over}"


def test_ulp_error_measures_what_it_claims():
    """The ruler itself: one ULP away is 1, the special values are as documented."""
    from properties.oracle.mp import mpf, split

    one_up = float(np.nextafter(1.0, 2.0))
    assert ulp_error(one_up, [mpf(1)])[0] == 1.0
    assert ulp_error(np.array([one_up]), split([mpf(1)]))[0] == 1.0
    assert ulp_error(1.0, [mpf(1) + mpf(2.0**-54)])[0] == 0.25  # spacing(1) = 2⁻⁵²
    specials = np.array([0.0, np.inf, 1e-300, np.nan, np.inf])
    exact = [mpf(0), mpf("inf"), mpf(0), mpf(1), mpf(1)]
    expected = [0.0, 0.0, np.inf, np.inf, np.inf]
    np.testing.assert_array_equal(ulp_error(specials, exact), expected)
    np.testing.assert_array_equal(ulp_error(specials, split(exact)), expected)
