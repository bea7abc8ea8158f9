"""Sampler updates written in x₀/ε space, finite at t = T with SNR 0 (paper Sec. 6).

Each update is a pure function of the state, the model output and its prediction type, the
schedule values of this and the next step, and -- where stochastic -- the noise ``z`` passed in.
Noise is never drawn here. DDPM and DDIM take ᾱ of this and the next step in the
variance-preserving variable x_t = √ᾱ·x₀ + √(1-ᾱ)·ε; Euler and Euler ancestral take the
variance-exploding state x = x_t/√ᾱ and σ = √((1-ᾱ)/ᾱ), as k-diffusion and diffusers do.
The last step of a loop (ᾱ_prev = 1, σ_next = 0) lands on x̂₀ with no noise, for every option.

Bad input is a ValueError/TypeError naming the argument. A result that overflows float64 for
finite inputs (e.g. |x_t| near 1.7e308) is a ValueError naming the inputs, never inf or NaN. The
VE steps take σ in (0, 2**511] (σ² + 1 finite); σ = inf is the VP step's (ddim_step).
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks, _dd
from .parameterization import PREDICTION_TYPES, _inputs, _x0_and_eps

#: smallest normal float64: below it (subnormal ᾱ) products lose digits, so some coefficients are
#: formed from square roots first
_TINY = 2.0**-1022
_LOG_MAX = math.log(np.finfo(np.float64).max)

VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log",
                  "learned", "learned_range")


# --- tiny shared helpers ------------------------------------------------------------------------


def _levels(alpha_bar_t, alpha_bar_prev) -> tuple[float, float]:
    a_t = _checks.real("alpha_bar_t", alpha_bar_t, 0.0, 1.0)
    a_p = _checks.real("alpha_bar_prev", alpha_bar_prev, 0.0, 1.0)
    if a_t == 1.0:
        raise ValueError("alpha_bar_t must be < 1: at alpha_bar = 1 there is no noise to remove")
    if a_p < a_t:
        raise ValueError(f"alpha_bar_prev={a_p} must be >= alpha_bar_t={a_t}: a step removes noise")
    if a_p == 0.0:
        raise ValueError("alpha_bar_prev must be > 0: a step cannot land on pure noise")
    return a_t, a_p


def _noise_term(noise, scale, shape, state="x_t"):
    """scale·z, with z required (same shape as the state) wherever scale > 0."""
    if np.all(np.asarray(scale) == 0):
        return 0.0
    if noise is None:
        raise ValueError("noise is required for a stochastic step (its noise scale is > 0); pass "
                         f"z ~ N(0, I) of the shape of {state} -- the oracle never draws noise itself")
    z = _checks.array("noise", noise)
    if z.shape != tuple(shape):
        raise ValueError(f"noise must have the shape of {state}, {tuple(shape)}; got {z.shape}")
    return scale * z


def _clip(x0, clip_sample, clip_sample_range):
    if not _checks.boolean("clip_sample", clip_sample):
        return x0
    r = _checks.real("clip_sample_range", clip_sample_range, 0.0, low_open=True)
    return np.clip(x0, -r, r)


def dynamic_threshold(x0, ratio: float = 0.995, max_value: float = 1.0) -> np.ndarray:
    """Imagen's dynamic thresholding of x̂₀ (Saharia et al. 2022, Sec. 2.3), per sample.

    For each sample b (axis 0; the percentile is over all its other elements):
    s_b = clip(quantile(|x̂₀_b|, ratio), 1, max_value), then x̂₀_b ← clip(x̂₀_b, -s_b, s_b)/s_b. The
    quantile interpolates linearly between order statistics (NumPy's and torch's default). With
    s_b = 1 this is plain clipping to [-1, 1]; ``max_value`` (>= 1) caps s_b.
    """
    x0 = _checks.array("x0", x0)
    return _threshold(x0, _checks.real("ratio", ratio, 0.0, 1.0), _checks.real("max_value", max_value, 1.0), "x0")


def _threshold(x0: np.ndarray, ratio: float, max_value: float, name: str) -> np.ndarray:
    if x0.ndim == 0 or x0.size == 0:
        raise ValueError(f"{name} must be a non-empty batch of samples (batch on axis 0) to be thresholded; "
                         f"got shape {x0.shape}")
    flat = x0.reshape(x0.shape[0], -1)
    with np.errstate(invalid="ignore"):  # an overflowed x̂₀: interpolating inf and inf is NaN, i.e. inf
        q = np.nan_to_num(np.quantile(np.abs(flat), ratio, axis=1), nan=np.inf)
    s = np.clip(q, 1.0, max_value)[:, None]
    return (np.clip(flat, -s, s) / s).reshape(x0.shape)


def _clip_or_threshold(x0, clip_sample, clip_sample_range, thresholding, ratio, max_value):
    """x̂₀ after dynamic thresholding (which takes precedence, as in diffusers) or clipping."""
    _checks.boolean("clip_sample", clip_sample)
    if _checks.boolean("thresholding", thresholding):
        return _threshold(x0, _checks.real("dynamic_thresholding_ratio", ratio, 0.0, 1.0),
                          _checks.real("sample_max_value", max_value, 1.0), "x_t")
    return _clip(x0, clip_sample, clip_sample_range)


def _eta(eta) -> float:
    return _checks.real("eta", eta, 0.0, 1.0)


def _check_predicted_variance(predicted_variance, shape) -> None:
    """The learned variance must broadcast to the state's shape (the result keeps that shape)."""
    pv = _checks.array("predicted_variance", predicted_variance)
    try:
        ok = np.broadcast_shapes(pv.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"predicted_variance must broadcast to the shape of x_t, {shape}; got {pv.shape}")


# --- DDPM -----------------------------------------------------------------------------------------


def ddpm_variance(alpha_bar_t, alpha_bar_prev, variance_type="fixed_small", predicted_variance=None):
    """Standard deviation of the DDPM posterior noise for a step ᾱ_t → ᾱ_prev.

    With β = 1 - ᾱ_t/ᾱ_prev and β̃ = β·(1-ᾱ_prev)/(1-ᾱ_t) (paper Eq. 20's posterior variance):
    fixed_small: √β̃; fixed_large: √β; *_log: the same through exp(½·log(·));
    learned: √(predicted variance) (the model outputs the variance, as in diffusers);
    learned_range: exp(½·(f·log β + (1-f)·log β̃)), f = (v+1)/2 (improved DDPM Eq. 15).
    0 on the last step (ᾱ_prev = 1) for every type: the loop lands on clean data; 0 also on a
    zero-length step (ᾱ_prev = ᾱ_t, β = 0), where the log forms would take log 0.
    """
    a_t, a_p = _levels(alpha_bar_t, alpha_bar_prev)
    _checks.choice("variance_type", variance_type, VARIANCE_TYPES)
    beta = (a_p - a_t) / a_p
    beta_tilde = beta * (1.0 - a_p) / (1.0 - a_t)
    learned = variance_type in ("learned", "learned_range")
    if learned:
        if predicted_variance is None:
            raise ValueError(f"variance_type={variance_type!r} needs predicted_variance (the model's "
                             "variance output)")
        v = _checks.array("predicted_variance", predicted_variance)
    elif predicted_variance is not None:
        raise ValueError(f"predicted_variance is only used with learned variance types, not {variance_type!r}")
    if a_p == 1.0 or beta == 0.0:  # last step, or a zero-length step (ᾱ_prev = ᾱ_t): no noise
        return np.zeros_like(v) if learned else 0.0
    if variance_type == "fixed_small":
        return math.sqrt(beta_tilde)
    if variance_type == "fixed_small_log":
        return math.exp(0.5 * math.log(beta_tilde))
    if variance_type == "fixed_large":
        return math.sqrt(beta)
    if variance_type == "fixed_large_log":
        return math.exp(0.5 * math.log(beta))
    if variance_type == "learned":
        _checks.in_range("predicted_variance", v, 0.0, np.inf)
        return np.sqrt(v)
    # log std = ½·(log β̃ + f·log(β/β̃)), β/β̃ = (1-ᾱ_t)/(1-ᾱ_prev) >= 1: one product, so a huge |v|
    # gives ±inf (std inf or 0), never inf - inf = NaN
    frac = (v + 1.0) / 2.0
    with np.errstate(over="ignore"):
        log_std = 0.5 * (math.log(beta_tilde) + frac * math.log((1.0 - a_t) / (1.0 - a_p)))
    if np.any(log_std > _LOG_MAX):
        worst = float(np.max(v))
        raise ValueError(f"predicted_variance {worst:.6g} gives a learned_range noise std beyond float64's "
                         f"range: v interpolates log β̃ (v = -1) .. log β (v = 1), and this v extrapolates "
                         f"far past log β = {math.log(beta):.6g}")
    return np.exp(log_std)


def ddpm_step(x_t, model_output, *, prediction_type, alpha_bar_t, alpha_bar_prev, noise=None,
              variance_type="fixed_small", predicted_variance=None, clip_sample=False,
              clip_sample_range=1.0, thresholding=False, dynamic_thresholding_ratio=0.995,
              sample_max_value=1.0):
    """One ancestral DDPM step in x₀ form (paper Eq. 20), for any stride ᾱ_t → ᾱ_prev.

    x̂₀ is clipped to ±clip_sample_range (``clip_sample``) or, with ``thresholding``, dynamically
    thresholded (:func:`dynamic_threshold` with ``dynamic_thresholding_ratio``, ``sample_max_value``).

    μ̃ = [√ᾱ_prev·β/(1-ᾱ_t)]·x̂₀ + [√(ᾱ_t/ᾱ_prev)·(1-ᾱ_prev)/(1-ᾱ_t)]·x_t, β = 1 - ᾱ_t/ᾱ_prev;
    x_prev = μ̃ + std·z with std from :func:`ddpm_variance`. At ᾱ_t = 0 this is √ᾱ_prev·x̂₀ + std·z:
    finite, with no division by α_t (the ε-form mean would divide by zero there).
    """
    a_t, a_p = _levels(alpha_bar_t, alpha_bar_prev)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x_t, out, alpha, sigma = _inputs(x_t, model_output, a_t, _STEP_NAMES)
    if predicted_variance is not None:
        _check_predicted_variance(predicted_variance, x_t.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        x0, _ = _x0_and_eps(x_t, out, prediction_type, alpha, sigma, _STEP_NAMES)
    x0 = _clip_or_threshold(x0, clip_sample, clip_sample_range, thresholding, dynamic_thresholding_ratio,
                            sample_max_value)
    c_x0, c_xt = _dd.ddpm_mean_coefficients(a_t, a_p)
    std = ddpm_variance(a_t, a_p, variance_type, predicted_variance)
    with np.errstate(over="ignore", invalid="ignore"):
        res = c_x0 * x0 + c_xt * x_t + _noise_term(noise, std, x0.shape)
    return _checks.finite_result("ddpm_step", res, x_t=x_t, model_output=out, alpha_bar_t=a_t,
                                 alpha_bar_prev=a_p, noise=0.0 if noise is None else noise,
                                 predicted_variance=0.0 if predicted_variance is None else predicted_variance)


# --- DDIM -----------------------------------------------------------------------------------------


def ddim_noise_scale(alpha_bar_t, alpha_bar_prev, eta=0.0) -> tuple[float, float]:
    """(ε̂ coefficient, noise scale s) of a DDIM step (paper Eqs. 21-22).

    s = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev); the ε̂ coefficient is √(1-ᾱ_prev-s²), its radicand
    written as (1-ᾱ_prev)·[(1-η²) + η²·ᾱ_t(1-ᾱ_prev)/(ᾱ_prev(1-ᾱ_t))]: a sum of non-negative terms,
    so it is exactly 0 (never slightly negative) at ᾱ_t = 0 with η = 1.
    """
    a_t, a_p = _levels(alpha_bar_t, alpha_bar_prev)
    eta = _eta(eta)
    dd = _dd.ddim_coefficients(a_t, a_p, eta)  # one rounding each; None for tiny levels
    if dd is not None:
        return dd
    s = eta * math.sqrt((1.0 - a_p) / (1.0 - a_t) * ((a_p - a_t) / a_p))
    if a_t >= 2.0**-960:  # below, ᾱ_t·(1-ᾱ_prev) (1-ᾱ_prev >= 2⁻⁵³) can be subnormal and lose digits
        keep = (1.0 - eta) * (1.0 + eta) + eta * eta * (a_t * (1.0 - a_p)) / (a_p * (1.0 - a_t))
        return math.sqrt((1.0 - a_p) * keep), s
    # tiny or subnormal ᾱ_t: √keep = hypot(√(1-η²), η·√ᾱ_t·√((1-ᾱ_prev)/(ᾱ_prev(1-ᾱ_t)))) forms no product of
    # ᾱ_t, so it keeps its digits
    root_q = math.sqrt(a_t) * math.sqrt((1.0 - a_p) / (a_p * (1.0 - a_t)))
    if not math.isfinite(root_q):  # ᾱ_prev subnormal too: 1/ᾱ_prev overflows; q <= 1 all the same
        root_q = math.sqrt(a_t / a_p) * math.sqrt((1.0 - a_p) / (1.0 - a_t))
    return math.sqrt(1.0 - a_p) * math.hypot(math.sqrt((1.0 - eta) * (1.0 + eta)), eta * root_q), s


def ddim_step(x_t, model_output, *, prediction_type, alpha_bar_t, alpha_bar_prev, eta=0.0,
              noise=None, clip_sample=False, clip_sample_range=1.0, use_clipped_model_output=False,
              thresholding=False, dynamic_thresholding_ratio=0.995, sample_max_value=1.0):
    """One DDIM step (paper Eqs. 21-22): x_prev = √ᾱ_prev·x̂₀ + √(1-ᾱ_prev-s²)·ε̂ + s·z.

    With ``clip_sample`` x̂₀ is clipped to ±clip_sample_range, with ``thresholding`` dynamically
    thresholded (:func:`dynamic_threshold`; it takes precedence); ``use_clipped_model_output`` then
    re-derives ε̂ = (x_t - √ᾱ_t·x̂₀)/√(1-ᾱ_t) from the clipped x̂₀ (as diffusers does).
    """
    a_t, a_p = _levels(alpha_bar_t, alpha_bar_prev)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x_t, out, alpha, sigma = _inputs(x_t, model_output, a_t, _STEP_NAMES)
    use_clipped = _checks.boolean("use_clipped_model_output", use_clipped_model_output)
    with np.errstate(over="ignore", invalid="ignore"):
        x0, eps = _x0_and_eps(x_t, out, prediction_type, alpha, sigma, _STEP_NAMES)
        x0 = _clip_or_threshold(x0, clip_sample, clip_sample_range, thresholding, dynamic_thresholding_ratio,
                                sample_max_value)
        if (_checks.boolean("clip_sample", clip_sample) or thresholding) and use_clipped:
            eps = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        c_eps, s = ddim_noise_scale(a_t, a_p, eta)
        res = math.sqrt(a_p) * x0 + c_eps * eps + _noise_term(noise, s, x0.shape)
    return _checks.finite_result("ddim_step", res, x_t=x_t, model_output=out, alpha_bar_t=a_t,
                                 alpha_bar_prev=a_p, noise=0.0 if noise is None else noise)


# --- Euler and Euler ancestral (variance-exploding state) -----------------------------------------


def ve_scale(sigma: float) -> float:
    """√(σ² + 1) = 1/√ᾱ, the factor between the VE state and x_t, without overflow for huge σ."""
    return math.hypot(sigma, 1.0)


_INF_SIGMA = ("sigma = inf (zero terminal SNR): the variance-exploding state x = x_t/sqrt(alpha_bar) is "
              "infinite there. Take this step in the variance-preserving variable with ddim_step "
              "(eta=0 is Euler, eta is Euler ancestral: the same update), as sample_loop does.")
_STEP_NAMES = ("x_t", "model_output", "alpha_bar_t")
_VE_NAMES = ("x", "model_output", "sigma")


def _ve_sigma(sigma, low_open=True) -> float:
    """σ of a VE step: finite, in (0, 2**511] (0 allowed where ``low_open`` is False)."""
    sigma = _checks.real("sigma", sigma, 0.0, low_open=low_open, allow_inf=True)
    if math.isinf(sigma):
        raise ValueError(_INF_SIGMA)
    if sigma > _checks.MAX_SIGMA:
        raise ValueError(f"sigma must be <= 2**511 = {_checks.MAX_SIGMA:.6g} (σ² + 1 finite, ᾱ = 1/(σ² + 1) a "
                         f"normal float64); got {sigma!r}")
    return sigma


def _ve_x0_and_eps(x, model_output, prediction_type, sigma):
    """(x, model output, x̂₀, ε̂) from the VE state x = x_t/√ᾱ at level σ (finite σ only), under
    errstate: an overflow shows as inf/NaN for the caller's finite_result."""
    sigma = _ve_sigma(sigma)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x = _checks.array("x", x)
    out = _checks.array("model_output", model_output)
    _checks.same_shape(x=x, model_output=out)
    scale = ve_scale(sigma)
    abar = (1.0 / scale) ** 2
    alpha, sig_vp = np.sqrt(abar), np.sqrt(1.0 - abar)
    x0, eps = _x0_and_eps(x / scale, out, prediction_type, alpha, sig_vp, _VE_NAMES)
    return sigma, x, out, x0, eps


def euler_churn(x, sigma, *, num_inference_steps, noise=None, s_churn=0.0, s_tmin=0.0,
                s_tmax=math.inf, s_noise=1.0):
    """Karras et al. (2022) Alg. 2 churn: raise σ to σ̂ = σ(1+γ) by adding noise.

    γ = min(s_churn/S, √2-1) if s_tmin <= σ <= s_tmax else 0; x̂ = x + s_noise·√(σ̂²-σ²)·z.
    Returns (x̂, σ̂). The model is then evaluated at (x̂, σ̂).
    """
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    churn = _checks.real("s_churn", s_churn, 0.0)
    tmin = _checks.real("s_tmin", s_tmin, 0.0, allow_inf=True)
    tmax = _checks.real("s_tmax", s_tmax, 0.0, allow_inf=True)
    snoise = _checks.real("s_noise", s_noise, 0.0)
    sigma = _ve_sigma(sigma, low_open=False)
    x = _checks.array("x", x)
    gamma = min(churn / S, math.sqrt(2.0) - 1.0) if tmin <= sigma <= tmax else 0.0
    if gamma == 0.0 or sigma == 0.0:
        return x, sigma
    sigma_hat = sigma * (1.0 + gamma)
    if sigma_hat > _checks.MAX_SIGMA:
        raise ValueError(f"the churned sigma_hat = sigma·(1+γ) = {sigma_hat:.6g} (sigma = {sigma:.6g}, γ = {gamma:.6g}) "
                         f"exceeds 2**511 = {_checks.MAX_SIGMA:.6g}, the largest σ a VE step takes (σ² + 1 finite); "
                         "lower s_churn or s_tmax")
    with np.errstate(over="ignore", invalid="ignore"):
        scale = snoise * sigma * math.sqrt(gamma * (2.0 + gamma))
        res = x + _noise_term(noise, scale, x.shape, "x")
    return _checks.finite_result("euler_churn", res, x=x, noise=noise, s_noise=snoise, sigma=sigma), sigma_hat


def euler_churn_vp(x_t, alpha_bar, *, num_inference_steps, noise=None, s_churn=0.0, s_tmin=0.0,
                   s_tmax=math.inf, s_noise=1.0):
    """:func:`euler_churn` in the variance-preserving variable: finite at σ = inf (ᾱ = 0).

    With σ = √((1-ᾱ)/ᾱ) (inf at ᾱ = 0) and γ as in :func:`euler_churn`, the churn
    x̂ = x + s_noise·σ·√(γ(2+γ))·z to σ̂ = σ(1+γ), taken in x_t = x·√ᾱ and x̂_t = x̂/√(σ̂²+1), is
    (numerator and denominator multiplied by √ᾱ)::

        x̂_t = (x_t + s_noise·√(1-ᾱ)·√(γ(2+γ))·z) / √((1-ᾱ)(1+γ)² + ᾱ),
        ᾱ̂  = ᾱ / ((1-ᾱ)(1+γ)² + ᾱ).

    At ᾱ = 0 this is the limit σ → inf: x̂_t = (x_t + s_noise·√(γ(2+γ))·z)/(1+γ), ᾱ̂ = 0 (with
    s_noise = 1 the churned state is again of unit variance). Returns (x̂_t, ᾱ̂).
    """
    S = _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    churn = _checks.real("s_churn", s_churn, 0.0)
    tmin = _checks.real("s_tmin", s_tmin, 0.0, allow_inf=True)
    tmax = _checks.real("s_tmax", s_tmax, 0.0, allow_inf=True)
    snoise = _checks.real("s_noise", s_noise, 0.0)
    a = _checks.real("alpha_bar", alpha_bar, 0.0, 1.0)
    x_t = _checks.array("x_t", x_t)
    sigma = math.inf if a == 0.0 else math.sqrt((1.0 - a) / a)
    gamma = min(churn / S, math.sqrt(2.0) - 1.0) if tmin <= sigma <= tmax else 0.0
    if gamma == 0.0 or a == 1.0:
        return x_t, a
    denom = (1.0 - a) * (1.0 + gamma) ** 2 + a
    if a > 0.0 and a / denom == 0.0:
        raise ValueError(f"alpha_bar = {a:.6g} churned to σ̂ = σ·(1+γ) (γ = {gamma:.6g}) gives ᾱ̂ = ᾱ/{denom:.6g}, "
                         "which underflows float64 to 0: lower s_churn at such a level")
    with np.errstate(over="ignore", invalid="ignore"):
        scale = snoise * math.sqrt(1.0 - a) * math.sqrt(gamma * (2.0 + gamma))
        res = (x_t + _noise_term(noise, scale, x_t.shape)) / math.sqrt(denom)
    return _checks.finite_result("euler_churn_vp", res, x_t=x_t, noise=noise, s_noise=snoise,
                                 alpha_bar=a), a / denom


def euler_step(x, model_output, *, prediction_type, sigma, sigma_next):
    """One Euler step of the probability-flow ODE (Karras et al. 2022; paper Sec. 6).

    d = (x - x̂₀)/σ = ε̂, x_next = x + (σ_next - σ)·d, i.e. x̂₀ + (σ_next/σ)(x - x̂₀).
    In the VP variable this is exactly DDIM with η = 0. For churn, call :func:`euler_churn` first
    and pass its (x̂, σ̂) as (x, sigma).
    """
    sigma_next = _checks.real("sigma_next", sigma_next, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        sigma, x, out, x0, d = _ve_x0_and_eps(x, model_output, prediction_type, sigma)
        if sigma_next > sigma:
            raise ValueError(f"sigma_next={sigma_next} must be <= sigma={sigma}")
        # σ_next = 0: x - σ·d = x̂₀ exactly; x̂₀ itself avoids the rounding of x - σ·d
        res = x0 if sigma_next == 0.0 else x + (sigma_next - sigma) * d
    return _checks.finite_result("euler_step", res, x=x, model_output=out, sigma=sigma, sigma_next=sigma_next)


def ancestral_sigmas(sigma, sigma_next, eta=1.0) -> tuple[float, float]:
    """(σ_down, σ_up) of k-diffusion's ``get_ancestral_step``.

    σ_up = min(σ_next, η·√(σ_next²(σ²-σ_next²)/σ²)), σ_down = √(σ_next² - σ_up²), the latter
    written as σ_next·√((1-η²) + η²·σ_next²/σ²) (no cancellation). As σ → ∞: σ_up → σ_next, σ_down → 0.
    """
    sigma = _checks.real("sigma", sigma, 0.0, low_open=True, allow_inf=True)
    sigma_next = _checks.real("sigma_next", sigma_next, 0.0)
    eta = _eta(eta)
    if sigma_next > sigma:
        raise ValueError(f"sigma_next={sigma_next} must be <= sigma={sigma}")
    q = sigma_next / sigma
    # 1 - q² = (1 - q)(1 + q) with 1 - q = (σ - σ_next)/σ: σ - σ_next is exact (Sterbenz) where
    # 1 - q would cancel (σ_next close to σ: ~10⁷ ULP at σ_next/σ = 1 - 6e-9); at σ = inf, q = 0.
    one_minus_q = 1.0 if math.isinf(sigma) else (sigma - sigma_next) / sigma
    keep = math.sqrt(one_minus_q * (1.0 + q))
    up = min(sigma_next, eta * sigma_next * keep)
    if eta * q >= 2.0**-500:
        down = sigma_next * math.sqrt((1.0 - eta) * (1.0 + eta) + eta * eta * q * q)
    else:  # η²q² would be subnormal and lose digits (11 ULP at σ ≈ 1e154): hypot squares nothing
        down = sigma_next * math.hypot(math.sqrt((1.0 - eta) * (1.0 + eta)), eta * q)
    return down, up


def euler_ancestral_step(x, model_output, *, prediction_type, sigma, sigma_next, eta=1.0, noise=None):
    """One Euler-ancestral step (k-diffusion ``sample_euler_ancestral``).

    x_next = x + (σ_down - σ)·d + σ_up·z with d = ε̂ and (σ_down, σ_up) from :func:`ancestral_sigmas`.
    In the VP variable this is exactly DDIM with the same η.
    """
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    with np.errstate(over="ignore", invalid="ignore"):
        sigma, x, out, x0, d = _ve_x0_and_eps(x, model_output, prediction_type, sigma)
        if down == 0.0 and up == 0.0:  # σ_next = 0: x - σ·d = x̂₀ exactly, no noise
            res = x0
        else:
            res = x + (down - sigma) * d + _noise_term(noise, up, x.shape, "x")
    return _checks.finite_result("euler_ancestral_step", res, x=x, model_output=out, sigma=sigma,
                                 sigma_next=sigma_next, noise=0.0 if noise is None else noise)
