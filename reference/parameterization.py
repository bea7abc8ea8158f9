"""Conversions between the model outputs ε, x₀ and v, written to be finite at SNR 0.

With α = √ᾱ and σ = √(1-ᾱ), x_t = α·x₀ + σ·ε and v = α·ε - σ·x₀ (Salimans & Ho; paper Sec. 3.2):
  from v:  x₀ = α·x_t - σ·v,  ε = σ·x_t + α·v      (finite everywhere, also at α = 0)
  from x₀: ε = (x_t - α·x₀)/σ                       (finite wherever σ > 0)
  from ε:  x₀ = (x_t - σ·ε)/α                       (undefined at α = 0: raises)
Prediction types use diffusers' names: "epsilon", "sample" (x₀), "v_prediction".
"""

from __future__ import annotations

import numpy as np

from . import _checks

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


class EpsilonAtZeroSNR(ValueError):
    """ε-prediction at ᾱ = 0 (zero SNR): x̂₀ = (x_t - σ·ε)/α divides by α = 0 and x_t carries no
    information about x₀ (paper Sec. 3.2). A subclass of ValueError, so callers can tell this
    refusal from bad input by type."""


def _scales(alpha_bar, name: str = "alpha_bar") -> tuple[np.ndarray, np.ndarray]:
    abar = _checks.array(name, alpha_bar)
    _checks.in_range(name, abar, 0.0, 1.0)
    return np.sqrt(abar), np.sqrt(1.0 - abar)


def _inputs(x_t, model_output, alpha_bar, names=("x_t", "model_output", "alpha_bar")):
    x_t = _checks.array(names[0], x_t)
    out = _checks.array(names[1], model_output)
    _checks.same_shape(**{names[0]: x_t, names[1]: out})
    alpha, sigma = _scales(alpha_bar, names[2])
    _checks.broadcastable(**{names[0]: x_t, names[2]: alpha})
    return x_t, out, alpha, sigma


def _x0_and_eps(x_t, out, prediction_type, alpha, sigma, names=("x_t", "model_output", "alpha_bar")):
    """(x̂₀, ε̂) of validated float64 inputs, computed under errstate: an overflow shows as inf/NaN
    for the caller's :func:`_checks.finite_result`. Raises for ε at α = 0 and x₀ at σ = 0."""
    if prediction_type == "v_prediction":
        return alpha * x_t - sigma * out, sigma * x_t + alpha * out
    if prediction_type == "epsilon":
        if np.any(alpha == 0):
            raise EpsilonAtZeroSNR(
                f"epsilon prediction is undefined at zero SNR ({names[2]} = 0): x_t carries no "
                "information about x0, and x0 = (x_t - sigma*eps)/alpha divides by zero. A schedule "
                "with zero terminal SNR needs prediction_type 'v_prediction' or 'sample'.")
        return (x_t - sigma * out) / alpha, out
    if np.any(sigma == 0):
        raise ValueError(f"sample (x0) prediction gives no epsilon at {names[2]} = 1 (sigma = 0): "
                         "eps = (x_t - alpha*x0)/sigma divides by zero")
    return out, (x_t - alpha * out) / sigma


def predict_x0_and_eps(x_t, model_output, prediction_type: str, alpha_bar):
    """(x̂₀, ε̂) implied by a model output at noise level ᾱ.

    Raises :class:`EpsilonAtZeroSNR` (a ``ValueError``) for ε-prediction at ᾱ = 0 (zero SNR), where x_t holds no signal and
    x̂₀ = (x_t - σ·ε)/α divides by zero: zero terminal SNR needs v- or x₀-prediction (paper Sec. 3.2).
    Raises for x₀-prediction at ᾱ = 1 (σ = 0), where ε is undefined, and (a ValueError naming the
    inputs) where x̂₀ or ε̂ overflows float64.
    """
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x_t, out, alpha, sigma = _inputs(x_t, model_output, alpha_bar)
    with np.errstate(over="ignore", invalid="ignore"):
        x0, eps = _x0_and_eps(x_t, out, prediction_type, alpha, sigma)
    inputs = {"x_t": x_t, "model_output": out, "alpha_bar": alpha_bar}
    return (_checks.finite_result("x0", x0, **inputs), _checks.finite_result("eps", eps, **inputs))


def convert(model_output, from_type: str, to_type: str, x_t, alpha_bar) -> np.ndarray:
    """Re-express a model output in another parameterization at the same (x_t, ᾱ)."""
    _checks.choice("from_type", from_type, PREDICTION_TYPES)
    _checks.choice("to_type", to_type, PREDICTION_TYPES)
    x_t, out, alpha, sigma = _inputs(x_t, model_output, alpha_bar)
    inputs = {"model_output": out, "x_t": x_t, "alpha_bar": alpha_bar}
    with np.errstate(over="ignore", invalid="ignore"):
        x0, eps = _x0_and_eps(x_t, out, from_type, alpha, sigma)
        if to_type == "sample":
            res = x0
        elif to_type == "epsilon":
            res = eps
        else:
            res = alpha * eps - sigma * x0
    return _checks.finite_result(f"convert from {from_type} to {to_type}", res, **inputs)


def add_noise(x0, eps, alpha_bar) -> np.ndarray:
    """The forward process x_t = √ᾱ·x₀ + √(1-ᾱ)·ε."""
    x0 = _checks.array("x0", x0)
    eps = _checks.array("eps", eps)
    alpha, sigma = _scales(alpha_bar)
    _checks.broadcastable(x0=x0, eps=eps, alpha_bar=alpha)
    with np.errstate(over="ignore", invalid="ignore"):
        res = alpha * x0 + sigma * eps
    return _checks.finite_result("add_noise", res, x0=x0, eps=eps)


def velocity(x0, eps, alpha_bar) -> np.ndarray:
    """The v-prediction target v = √ᾱ·ε - √(1-ᾱ)·x₀."""
    x0 = _checks.array("x0", x0)
    eps = _checks.array("eps", eps)
    alpha, sigma = _scales(alpha_bar)
    _checks.broadcastable(x0=x0, eps=eps, alpha_bar=alpha)
    with np.errstate(over="ignore", invalid="ignore"):
        res = alpha * eps - sigma * x0
    return _checks.finite_result("velocity", res, x0=x0, eps=eps)
