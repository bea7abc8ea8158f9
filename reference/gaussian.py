"""The exact Gaussian case: data x₀ ~ N(μ, diag(s²)), its optimal denoiser, and the exact mean
and variance every sampler produces from it -- no randomness, no model, no tolerance for noise.

With x_t = α·x₀ + σ·ε the posterior mean is E[x₀|x_t] = μ + α·s²/(α²s² + σ²)·(x_t - α·μ), finite at
α = 0 (it is μ there). Every sampler step is then affine in (x_t, z), so Gaussian moments propagate
exactly: m' = A·m + b, v' = A²·v + C², with A, b, C read off the real step functions themselves.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks
from .loop import step_map
from .parameterization import convert


def _moments(mean, var):
    mean = _checks.array("mean", mean)
    var = _checks.array("var", var)
    _checks.in_range("var", var, 0.0, np.inf)
    _checks.broadcastable(mean=mean, var=var)
    return np.broadcast_arrays(mean, var)


def optimal_x0(x_t, alpha_bar, mean, var):
    """E[x₀ | x_t] for x₀ ~ N(mean, diag(var)) at level ᾱ."""
    mean, var = _moments(mean, var)
    a = _checks.real("alpha_bar", alpha_bar, 0.0, 1.0)
    alpha, sigma2 = math.sqrt(a), 1.0 - a
    x_t = _checks.array("x_t", x_t)
    denom = alpha * alpha * var + sigma2
    gain = np.divide(alpha * var, denom, out=np.zeros_like(var), where=denom > 0)
    return mean + gain * (x_t - alpha * mean)


def gaussian_denoiser(mean, var, prediction_type: str):
    """The optimal model for Gaussian data as ``denoiser(x_t, timestep, alpha_bar) -> output``
    in the given parameterization (what :func:`reference.loop.sample_loop` takes)."""
    mean, var = _moments(mean, var)

    def denoiser(x_t, timestep, alpha_bar):
        x0 = optimal_x0(x_t, alpha_bar, mean, var)
        return convert(x0, "sample", prediction_type, x_t, alpha_bar)

    return denoiser


def terminal_marginal(mean, var, alpha_bar):
    """Mean and variance of the true x_t = α·x₀ + σ·ε at level ᾱ."""
    mean, var = _moments(mean, var)
    a = _checks.real("alpha_bar", alpha_bar, 0.0, 1.0)
    return math.sqrt(a) * mean, a * var + (1.0 - a)


def sampler_moments(sampler: str, mean, var, *, prediction_type: str, alpha_bars, x_T_mean=0.0,
                    x_T_var=1.0, timesteps=None, **options):
    """Exact (mean, var) of the samples a sampler draws with the optimal denoiser, starting from
    x_T ~ N(x_T_mean, diag(x_T_var)) and stepping through ``alpha_bars`` (length S+1)."""
    mean, var = _moments(mean, var)
    levels = _checks.array("alpha_bars", alpha_bars, ndim=1)
    S = levels.size - 1
    if S < 1:
        raise ValueError("alpha_bars needs at least two levels")
    if options.get("variance_type", "fixed_small").startswith("learned"):
        raise ValueError("learned variance types need a model of the variance; the Gaussian case has none")
    denoiser = gaussian_denoiser(mean, var, prediction_type)
    m = np.broadcast_to(_checks.array("x_T_mean", x_T_mean), mean.shape).astype(np.float64)
    v = np.broadcast_to(_checks.array("x_T_var", x_T_var), mean.shape).astype(np.float64)
    zero, one = np.zeros(mean.shape), np.ones(mean.shape)
    ts = [None] * S if timesteps is None else list(timesteps)
    for i in range(S):
        f = step_map(sampler, denoiser, prediction_type=prediction_type, alpha_bar=levels[i],
                     alpha_bar_next=levels[i + 1], timestep=ts[i], num_inference_steps=S, **options)
        b = f(zero, zero)
        gain = f(one, zero) - b
        kick = f(zero, one) - b
        m, v = f(m, zero), gain * gain * v + kick * kick
    return m, v
