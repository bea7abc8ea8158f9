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

from properties.oracle.mp import mp_ancestral, mp_ddim, mp_ddpm, mp_schedule_of, ulp_error
from properties.profiles import active as zsnr_profile
from properties.strategies import ScheduleConfig, alpha_bar_pairs, etas, schedule_configs
from reference import BETA_SCHEDULES, ancestral_sigmas, ddim_noise_scale, ddpm_step, ddpm_variance

#: β, ᾱ, 1 - ᾱ, √ᾱ, √(1-ᾱ), and every step coefficient: the project's target, 4 ULP worst case.
#: What it takes (reference/schedules.py): linear/scaled_linear/sigmoid carry β and the running
#: product in double-double and round once (<= 0.5 ULP, plus np.exp's ~0.5 for sigmoid); the
#: cosine's ᾱ = (sin a/sin c)² has four float sines of 0.5 ULP each plus one rounding, <= 2.5;
#: Algorithm 1 is double-double and rounded once on top of its inputs' errors (ᾱ' inherits
#: those of ᾱ_t and ᾱ_1); √ halves an error and adds 0.5. Step coefficients are 4-6 roundings
#: of exact float inputs (no cancellation: a_p - a_t and σ - σ_next are exact by Sterbenz where
#: they are small). Measured worst (benchmarks/oracle_accuracy.py): 3.6 ULP.
BUDGET_ULP = 4.0
#: SNR = ᾱ/(1-ᾱ): the quotient of two values within BUDGET_ULP each, plus its rounding (0.5) and
#: the change of ULP grid between operands and result (< 1 more): 2·4 + 1.
SNR_BUDGET_ULP = 2 * BUDGET_ULP + 1.0
#: Euler σ = √((1-ᾱ)/ᾱ): half the quotient's error, plus the √'s rounding: (2·4 + 1)/2 + 0.5.
EULER_SIGMA_BUDGET_ULP = SNR_BUDGET_ULP / 2 + 0.5

#: log SNR = log ᾱ - log(1-ᾱ) is ill-conditioned where SNR ≈ 1 (the result is near 0 while its
#: terms are not), so its error is bounded in absolute terms: with ᾱ, 1-ᾱ within 4 ULP (relative
#: <= 8u each, u = 2⁻⁵³), each log within 1 ULP (<= 2u|log|) and the subtraction within 0.5 ULP
#: (<= u·|result| <= u(|log ᾱ| + |log(1-ᾱ)|)):
#:     |error| <= u·(16 + 3·(|log ᾱ| + |log(1-ᾱ)|)).
#: The test asserts |error| / that bound <= 1.
LOG_SNR_BUDGET = 1.0
_U = 2.0**-53

#: Algorithm 1 on the clipped cosine: its base ᾱ is a closed form of float sines (error e <= 2.5
#: ULP, above), not double-double, and ᾱ'_t = ᾱ_1·((s_t - s_T)/(s_1 - s_T))² carries the errors of
#: ᾱ_t, ᾱ_1 and ᾱ_T to first order with weights 1 + c_t + c_1, c = (s + s_T)/(s - s_T); with the
#: clip s_T <= √0.001·s_{T-1}, so c <= 1.07 and the weight is <= 3.14: 3.14·e + 1 (the rescale's
#: own rounding) <= 8.9 for ᾱ'; √ halves it (+0.5); β' = 1 - ᾱ'_t/ᾱ'_{t-1} and 1 - ᾱ' inherit the
#: two neighbours' errors with weights <= 1 (no cancellation) plus a rounding: <= 8.9 as well.
#: Measured worst (T in 2..120, 500, 1000): ᾱ' 5.9 ULP (T = 53), β' 4.7, 1 - ᾱ' 3.6.
RESCALED_COSINE_BUDGET_ULP = 9.0

SCHEDULE_QUANTITIES = {
    "betas": BUDGET_ULP,
    "alphas_cumprod": BUDGET_ULP,
    "one_minus_alphas_cumprod": BUDGET_ULP,
    "alpha": BUDGET_ULP,
    "sigma": BUDGET_ULP,
    "snr": SNR_BUDGET_ULP,
    "euler_sigma": EULER_SIGMA_BUDGET_ULP,
}

# fewer drawn examples than the profile's default: each draw evaluates up to 4000 steps in mpmath
_EXAMPLES = max(5, zsnr_profile().max_examples // 4)


def _log_snr_scaled_error(sched, exact) -> np.ndarray:
    x = sched.log_snr
    hi = exact.split("log_snr").hi
    a = exact.split("alphas_cumprod").hi
    c = exact.split("one_minus_alphas_cumprod").hi
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = _U * (16.0 + 3.0 * (np.abs(np.log(a)) + np.abs(np.log(c))))
        err = np.abs(x - hi) / bound
    return np.where(np.isinf(hi), np.where(x == hi, 0.0, np.inf), err)


def _schedule_examples(test):
    # the worst measured rescaled-cosine case (5.9 ULP in ᾱ', T = 53)
    test = example(config=ScheduleConfig("squaredcos_cap_v2", 53, rescale=True))(test)
    for name in BETA_SCHEDULES:
        for T, rescale in ((1, False), (2, False), (2, True), (4000, False), (4000, True)):
            test = example(config=ScheduleConfig(name, T, rescale=rescale))(test)
    return test


@settings(zsnr_profile(), max_examples=_EXAMPLES)
@given(config=schedule_configs())
@_schedule_examples
def test_schedule_within_ulp_budget(config):
    sched, exact = config.build(), mp_schedule_of(config)
    budgets = dict(SCHEDULE_QUANTITIES)
    if config.rescale and config.name == "squaredcos_cap_v2":
        b = RESCALED_COSINE_BUDGET_ULP
        budgets.update(betas=b, alphas_cumprod=b, one_minus_alphas_cumprod=b, alpha=b / 2 + 0.5,
                       sigma=b / 2 + 0.5, snr=2 * b + 1.0, euler_sigma=(2 * b + 1.0) / 2 + 0.5)
    worst = {q: float(np.max(ulp_error(getattr(sched, q), exact.split(q)))) for q in budgets}
    over = {q: w for q, w in worst.items() if not w <= budgets[q]}
    assert not over, f"{config}: worst ULP error over budget: {over} (budgets {budgets})"
    log_err = float(np.max(_log_snr_scaled_error(sched, exact)))
    assert log_err <= LOG_SNR_BUDGET, f"{config}: log SNR error is {log_err:.3g} × its bound"


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
    over = {k: e for k, e in errors.items() if not e <= BUDGET_ULP}
    assert not over, f"ᾱ_t={a_t!r}, ᾱ_prev={a_p!r}, η={eta!r}: over {BUDGET_ULP} ULP: {over}"


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
def test_ancestral_sigmas_within_ulp_budget(pair, eta):
    sigma, sigma_next = pair
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    exact_down, exact_up = mp_ancestral(sigma, sigma_next, eta)
    errors = {"sigma_down": float(ulp_error(down, [exact_down])[0]),
              "sigma_up": float(ulp_error(up, [exact_up])[0])}
    over = {k: e for k, e in errors.items() if not e <= BUDGET_ULP}
    assert not over, f"σ={sigma!r}, σ_next={sigma_next!r}, η={eta!r}: over {BUDGET_ULP} ULP: {over}"


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
