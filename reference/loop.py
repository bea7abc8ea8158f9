"""A sampling loop: the updates of :mod:`reference.samplers` chained over a list of noise levels.

The state is always the variance-preserving x_t (what a model receives as input); Euler-family
steps convert to and from their variance-exploding state inside. Levels are given as ᾱ, one per
model evaluation plus the level landed on (1.0 = clean data), so every sampler shares one loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import _checks
from .samplers import ddim_step, ddpm_step, euler_ancestral_step, euler_churn, euler_step, ve_scale
from .schedules import Schedule

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral")

#: options each sampler's step takes besides the levels and the noise
SAMPLER_OPTIONS = {
    "ddpm": ("variance_type", "clip_sample", "clip_sample_range"),
    "ddim": ("eta", "clip_sample", "clip_sample_range", "use_clipped_model_output"),
    "euler": ("s_churn", "s_tmin", "s_tmax", "s_noise"),
    "euler_ancestral": ("eta",),
}


def loop_alpha_bars(schedule: Schedule, timesteps, final_alpha_bar: float = 1.0) -> np.ndarray:
    """ᾱ at each timestep followed by the level the loop lands on.

    ``final_alpha_bar`` 1.0 lands on clean data (DDIM ``set_alpha_to_one=True``, DDPM's
    "previous of t = 0"); pass ``schedule.alphas_cumprod[0]`` for ``set_alpha_to_one=False``.
    """
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size == 0 or not np.issubdtype(ts.dtype, np.integer):
        raise TypeError(f"timesteps must be a non-empty 1-D integer array; got {ts.dtype} {ts.shape}")
    T = schedule.num_train_timesteps
    _checks.in_range("timesteps", ts, 0, T - 1)
    final = _checks.real("final_alpha_bar", final_alpha_bar, 0.0, 1.0, low_open=True)
    return np.concatenate([schedule.alphas_cumprod[ts], [final]])


def alpha_bars_from_sigmas(sigmas) -> np.ndarray:
    """ᾱ = 1/(1+σ²) of Euler-family σ: exactly 0 at σ = inf and 1 at σ = 0."""
    sig = _checks.array("sigmas", sigmas, allow_inf=True)
    _checks.in_range("sigmas", sig, 0.0, np.inf)
    return 1.0 / (1.0 + sig * sig)


def _sigma(alpha_bar: float) -> float:
    return math.inf if alpha_bar == 0.0 else math.sqrt((1.0 - alpha_bar) / alpha_bar)


def step_map(sampler: str, denoiser: Callable, *, prediction_type: str, alpha_bar: float,
             alpha_bar_next: float, timestep=None, num_inference_steps: int = 1, **options):
    """The whole step i of a loop as a function f(x_t, z) -> x_next of the VP state and the noise.

    ``denoiser(x_t, timestep, alpha_bar)`` returns the model output (for DDPM's learned variance
    types, a pair (model_output, predicted_variance)). For Euler with churn the model is evaluated
    after the churn, at σ̂ (Karras et al. Alg. 2). At σ = inf (zero SNR) the Euler-family update is
    taken in the VP variable as DDIM with η = 0 (Euler) or η (ancestral), which it equals exactly.
    """
    _checks.choice("sampler", sampler, SAMPLERS)
    unknown = set(options) - set(SAMPLER_OPTIONS[sampler])
    if unknown:
        raise TypeError(f"{sampler} takes options {SAMPLER_OPTIONS[sampler]}; got {sorted(unknown)}")
    a, a_next = float(alpha_bar), float(alpha_bar_next)
    common = {"prediction_type": prediction_type}

    def f(x, z=None):
        if sampler in ("ddpm", "ddim"):
            out = denoiser(x, timestep, a)
            if sampler == "ddim":
                return ddim_step(x, out, alpha_bar_t=a, alpha_bar_prev=a_next, noise=z, **common, **options)
            var = None
            if isinstance(out, tuple):
                out, var = out
            return ddpm_step(x, out, alpha_bar_t=a, alpha_bar_prev=a_next, noise=z,
                             predicted_variance=var, **common, **options)
        sig, sig_next = _sigma(a), _sigma(a_next)
        eta = options.get("eta", 1.0) if sampler == "euler_ancestral" else 0.0
        if math.isinf(sig):
            out = denoiser(x, timestep, a)
            return ddim_step(x, out, alpha_bar_t=a, alpha_bar_prev=a_next, eta=eta, noise=z, **common)
        xe = np.asarray(x, np.float64) * ve_scale(sig)
        if sampler == "euler":
            xe, sig = euler_churn(xe, sig, num_inference_steps=num_inference_steps, noise=z, **options)
            out = denoiser(xe / ve_scale(sig), timestep, (1.0 / ve_scale(sig)) ** 2)
            xe = euler_step(xe, out, sigma=sig, sigma_next=sig_next, **common)
        else:  # the model sees the VP state and level the VE step itself converts with
            out = denoiser(xe / ve_scale(sig), timestep, (1.0 / ve_scale(sig)) ** 2)
            xe = euler_ancestral_step(xe, out, sigma=sig, sigma_next=sig_next, eta=eta, noise=z, **common)
        return xe / ve_scale(sig_next)

    return f


def sample_loop(denoiser: Callable, x_T, *, sampler: str, prediction_type: str, alpha_bars,
                timesteps=None, noise=None, return_trajectory: bool = False, **options):
    """Run a sampler from x_T through the levels ``alpha_bars`` (length S+1, see
    :func:`loop_alpha_bars`). ``noise`` is an array of shape (S, *x_T.shape), a callable
    ``noise(i)`` returning step i's z, or None for deterministic samplers.
    Returns x at the last level (and the list of states, x_T first, if ``return_trajectory``).
    """
    x = _checks.array("x_T", x_T)
    levels = _checks.array("alpha_bars", alpha_bars, ndim=1)
    S = levels.size - 1
    if S < 1:
        raise ValueError("alpha_bars needs at least two levels: one evaluation and the landing level")
    ts = [None] * S if timesteps is None else list(timesteps)
    if len(ts) != S:
        raise ValueError(f"timesteps must have len(alpha_bars) - 1 = {S} entries; got {len(ts)}")
    if isinstance(noise, np.ndarray) and noise.shape != (S, *x.shape):
        raise ValueError(f"noise must have shape {(S, *x.shape)}; got {noise.shape}")
    path = [x]
    for i in range(S):
        z = noise(i) if callable(noise) else (None if noise is None else noise[i])
        f = step_map(sampler, denoiser, prediction_type=prediction_type, alpha_bar=levels[i],
                     alpha_bar_next=levels[i + 1], timestep=ts[i], num_inference_steps=S, **options)
        x = f(x, z)
        path.append(x)
    return (x, path) if return_trajectory else x
