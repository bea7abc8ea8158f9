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
from .loop import SAMPLERS, check_levels, check_timesteps, run_step, step_map
from .parameterization import PREDICTION_TYPES, convert


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
    _checks.broadcastable(x_t=x_t, mean=mean, var=var)
    denom = alpha * alpha * var + sigma2
    with np.errstate(over="ignore", invalid="ignore"):
        gain = np.divide(alpha * var, denom, out=np.zeros_like(var), where=denom > 0)
        res = mean + gain * (x_t - alpha * mean)
    return _checks.finite_result("optimal_x0", res, x_t=x_t, mean=mean, var=var, alpha_bar=a)


def gaussian_denoiser(mean, var, prediction_type: str):
    """The optimal model for Gaussian data as ``denoiser(x_t, timestep, alpha_bar) -> output``
    in the given parameterization (what :func:`reference.loop.sample_loop` takes)."""
    mean, var = _moments(mean, var)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)

    def denoiser(x_t, timestep, alpha_bar):
        x0 = optimal_x0(x_t, alpha_bar, mean, var)
        return convert(x0, "sample", prediction_type, x_t, alpha_bar)

    return denoiser


def terminal_marginal(mean, var, alpha_bar):
    """Mean and variance of the true x_t = α·x₀ + σ·ε at level ᾱ."""
    mean, var = _moments(mean, var)
    a = _checks.real("alpha_bar", alpha_bar, 0.0, 1.0)
    with np.errstate(over="ignore"):
        res = math.sqrt(a) * mean, a * var + (1.0 - a)
    return tuple(_checks.finite_result("terminal_marginal", r, mean=mean, var=var, alpha_bar=a) for r in res)


#: where a step's arguments come from in sampler_moments (appended to a step's error)
_IN_MOMENTS = ("(in sampler_moments: the model output is the optimal denoiser's for data of mean and var; the "
               "state starts from x_T_mean and x_T_var; alpha_bar_t and alpha_bar_prev come from alpha_bars)")


def sampler_moments(sampler: str, mean, var, *, prediction_type: str, alpha_bars, x_T_mean=0.0,
                    x_T_var=1.0, timesteps=None, **options):
    """Exact (mean, var) of the samples a sampler draws with the optimal denoiser, starting from
    x_T ~ N(x_T_mean, diag(x_T_var)) and stepping through ``alpha_bars`` (length S+1).
    ``x_T_mean`` and ``x_T_var`` (>= 0) broadcast to the shape of ``mean``. Clipping and
    thresholding of x̂₀ make a step non-affine and are refused."""
    mean, var = _moments(mean, var)
    _checks.choice("sampler", sampler, SAMPLERS)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    levels = _checks.array("alpha_bars", alpha_bars, ndim=1)
    S = check_levels(levels)
    if str(options.get("variance_type", "fixed_small")).startswith("learned"):
        raise ValueError("learned variance types need a model of the variance; the Gaussian case has none "
                         "(variance_type must be a fixed_* type)")
    for name in ("clip_sample", "thresholding"):
        if options.get(name) is not None and _checks.boolean(name, options[name]):
            raise ValueError(f"{name}=True makes a step non-affine in x_t, so the samples are not Gaussian and "
                             f"have no closed-form moments; sampler_moments needs {name}=False")
    ts = check_timesteps(timesteps, S)
    denoiser = gaussian_denoiser(mean, var, prediction_type)
    m0 = _checks.array("x_T_mean", x_T_mean)
    v0 = _checks.array("x_T_var", x_T_var)
    _checks.in_range("x_T_var", v0, 0.0, np.inf)
    for name, value in (("x_T_mean", m0), ("x_T_var", v0)):
        try:
            if np.broadcast_shapes(value.shape, mean.shape) != mean.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"{name} must broadcast to the shape of mean, {mean.shape}; got {value.shape}") from None
    m = np.broadcast_to(m0, mean.shape).astype(np.float64)
    v = np.broadcast_to(v0, mean.shape).astype(np.float64)
    zero, one = np.zeros(mean.shape), np.ones(mean.shape)
    for i in range(S):
        f = step_map(sampler, denoiser, prediction_type=prediction_type, alpha_bar=levels[i],
                     alpha_bar_next=levels[i + 1], timestep=ts[i], num_inference_steps=S, **options)
        b = run_step(f, i, zero, zero, levels, _IN_MOMENTS)
        gain = run_step(f, i, one, zero, levels, _IN_MOMENTS) - b
        kick = run_step(f, i, zero, one, levels, _IN_MOMENTS) - b
        m = run_step(f, i, m, zero, levels, _IN_MOMENTS)
        with np.errstate(over="ignore", invalid="ignore"):
            v = gain * gain * v + kick * kick
        _checks.finite_result(f"the variance after step {i}", v, x_T_var=v0, var=var, alpha_bars=levels, **options)
    return m, v
