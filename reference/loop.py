"""A sampling loop: the updates of :mod:`reference.samplers` chained over a list of noise levels.

The state is always the variance-preserving x_t (what a model receives as input); Euler-family
steps convert to and from their variance-exploding state inside. Levels are given as ᾱ, one per
model evaluation plus the level landed on (1.0 = clean data), so every sampler shares one loop.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

from . import _checks
from .parameterization import PREDICTION_TYPES
from .samplers import (
    ddim_step,
    ddpm_step,
    euler_ancestral_step,
    euler_churn,
    euler_churn_vp,
    euler_step,
    ve_scale,
)
from .schedules import Schedule

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral")

#: options each sampler's step takes besides the levels and the noise
SAMPLER_OPTIONS = {
    "ddpm": ("variance_type", "clip_sample", "clip_sample_range", "thresholding", "dynamic_thresholding_ratio",
             "sample_max_value"),
    "ddim": ("eta", "clip_sample", "clip_sample_range", "use_clipped_model_output", "thresholding",
             "dynamic_thresholding_ratio", "sample_max_value"),
    "euler": ("s_churn", "s_tmin", "s_tmax", "s_noise"),
    "euler_ancestral": ("eta",),
}


def loop_alpha_bars(schedule: Schedule, timesteps, final_alpha_bar: float = 1.0) -> np.ndarray:
    """ᾱ at each timestep followed by the level the loop lands on.

    ``final_alpha_bar`` 1.0 lands on clean data (DDIM ``set_alpha_to_one=True``, DDPM's
    "previous of t = 0"); pass ``schedule.alphas_cumprod[0]`` for ``set_alpha_to_one=False``.
    """
    _checks.schedule("schedule", schedule)
    T = schedule.num_train_timesteps
    ts = _checks.int_array("timesteps", timesteps, 0, T - 1, bound=f" (T-1 of the schedule, T = {T})")
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D integer array; got shape {ts.shape}")
    final = _checks.real("final_alpha_bar", final_alpha_bar, 0.0, 1.0, low_open=True)
    return np.concatenate([schedule.alphas_cumprod[ts], [final]])


def alpha_bars_from_sigmas(sigmas) -> np.ndarray:
    """ᾱ = 1/(1+σ²) of Euler-family σ: exactly 0 at σ = inf and 1 at σ = 0."""
    sig = _checks.array("sigmas", sigmas, allow_inf=True)
    _checks.in_range("sigmas", sig, 0.0, np.inf)
    with np.errstate(over="ignore"):
        out = 1.0 / (1.0 + sig * sig)
    # beyond 2**511, σ² overflows (1/(1+σ²) -> 0) although ᾱ ≈ (1/σ)² may still be a subnormal
    huge = sig > _checks.MAX_SIGMA
    if np.any(huge):
        with np.errstate(under="ignore"):
            out = np.where(huge, (1.0 / np.where(huge, sig, 1.0)) ** 2, out)
    return out


def _sigma(alpha_bar: float) -> float:
    return math.inf if alpha_bar == 0.0 else math.sqrt((1.0 - alpha_bar) / alpha_bar)


def _check_denoiser(denoiser) -> None:
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x_t, timestep, alpha_bar); got "
                        f"{type(denoiser).__name__}")
    try:
        inspect.signature(denoiser).bind(None, None, None)
    except TypeError:
        raise TypeError("denoiser must take three arguments (x_t, timestep, alpha_bar); its signature is "
                        f"{inspect.signature(denoiser)}") from None
    except ValueError:  # no signature to inspect (a builtin): call it and see
        pass


def _model(denoiser, x, timestep, a, learned):
    """The denoiser's output at (x, timestep, ᾱ), checked: finite real numbers of x's shape (for
    DDPM's learned variance types a pair (output, predicted variance))."""
    out = denoiser(x, timestep, a)
    var = None
    if learned:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("with a learned variance_type the denoiser must return a pair "
                            f"(model_output, predicted_variance); got {type(out).__name__}")
        out, var = out
    out = _checks.array("the denoiser's output", out)
    if out.shape != np.shape(x):
        raise ValueError(f"the denoiser's output must have the state's shape {np.shape(x)}; got {out.shape}")
    return out if not learned else (out, var)


def step_map(sampler: str, denoiser: Callable, *, prediction_type: str, alpha_bar: float,
             alpha_bar_next: float, timestep=None, num_inference_steps: int = 1, **options):
    """The whole step i of a loop as a function f(x_t, z) -> x_next of the VP state and the noise.

    ``denoiser(x_t, timestep, alpha_bar)`` returns the model output (for DDPM's learned variance
    types, a pair (model_output, predicted_variance)). For Euler with churn the model is evaluated
    after the churn, at σ̂ (Karras et al. Alg. 2). At σ = inf (zero SNR) the Euler-family update is
    taken in the VP variable as DDIM with η = 0 (Euler) or η (ancestral), which it equals exactly,
    after the churn's limit (:func:`reference.samplers.euler_churn_vp`) for Euler; so is it wherever
    σ (or, with churn, σ̂ ≤ √2·σ) exceeds 2**511, where σ² + 1 overflows (a subnormal ᾱ).
    """
    _checks.choice("sampler", sampler, SAMPLERS)
    unknown = set(options) - set(SAMPLER_OPTIONS[sampler])
    if unknown:
        raise TypeError(f"{sampler} takes options {SAMPLER_OPTIONS[sampler]}; got {sorted(unknown)}")
    _check_denoiser(denoiser)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    a = _checks.real("alpha_bar", alpha_bar, 0.0, 1.0)
    a_next = _checks.real("alpha_bar_next", alpha_bar_next, 0.0, 1.0)
    _checks.integer("num_inference_steps", num_inference_steps, 1, _checks.MAX_TRAIN_TIMESTEPS)
    common = {"prediction_type": prediction_type}
    learned = sampler == "ddpm" and str(options.get("variance_type", "")).startswith("learned")

    def f(x, z=None):
        if sampler in ("ddpm", "ddim"):
            out = _model(denoiser, x, timestep, a, learned)
            if sampler == "ddim":
                return ddim_step(x, out, alpha_bar_t=a, alpha_bar_prev=a_next, noise=z, **common, **options)
            var = None
            if learned:
                out, var = out
            return ddpm_step(x, out, alpha_bar_t=a, alpha_bar_prev=a_next, noise=z,
                             predicted_variance=var, **common, **options)
        sig, sig_next = _sigma(a), _sigma(a_next)
        eta = options.get("eta", 1.0) if sampler == "euler_ancestral" else 0.0
        churning = sampler == "euler" and bool(options.get("s_churn"))
        if sig > (_checks.MAX_SIGMA / math.sqrt(2.0) if churning else _checks.MAX_SIGMA):
            # σ = inf (the limit σ -> inf), or σ² + 1 would overflow: the same update in the VP variable
            a_hat = a
            if sampler == "euler":
                x, a_hat = euler_churn_vp(x, a, num_inference_steps=num_inference_steps, noise=z, **options)
            out = _model(denoiser, x, timestep, a_hat, False)
            return ddim_step(x, out, alpha_bar_t=a_hat, alpha_bar_prev=a_next, eta=eta, noise=z, **common)
        with np.errstate(over="ignore", invalid="ignore"):
            xe = np.asarray(x, np.float64) * ve_scale(sig)
        _checks.finite_result("the variance-exploding state x = x_t·√(σ² + 1)", xe, x_t=x, sigma=sig)
        if sampler == "euler":
            xe, sig = euler_churn(xe, sig, num_inference_steps=num_inference_steps, noise=z, **options)
            out = _model(denoiser, xe / ve_scale(sig), timestep, (1.0 / ve_scale(sig)) ** 2, False)
            xe = euler_step(xe, out, sigma=sig, sigma_next=sig_next, **common)
        else:  # the model sees the VP state and level the VE step itself converts with
            out = _model(denoiser, xe / ve_scale(sig), timestep, (1.0 / ve_scale(sig)) ** 2, False)
            xe = euler_ancestral_step(xe, out, sigma=sig, sigma_next=sig_next, eta=eta, noise=z, **common)
        return xe / ve_scale(sig_next)

    return f


#: where a step's argument comes from in a loop (appended to a step's error inside a loop)
_IN_LOOP = ("(in the loop: x_t / x is the state, from x_T; model_output the denoiser's output; alpha_bar_t and "
            "alpha_bar_prev / sigma and sigma_next come from alpha_bars[i] and alpha_bars[i+1]; noise from noise[i])")


def run_step(f, i: int, x, z, levels, context: str = _IN_LOOP):
    """x_next = f(x, z) for step i of a loop; a step's ValueError/TypeError gets the loop's context
    (the loop's argument names), keeping its type (e.g. EpsilonAtZeroSNR)."""
    try:
        return f(x, z)
    except (ValueError, TypeError) as exc:
        try:
            wrapped = type(exc)(f"step {i} (alpha_bars[{i}]={levels[i]!r} -> alpha_bars[{i + 1}]="
                                f"{levels[i + 1]!r}): {exc} {context}")
        except Exception:  # noqa: BLE001 -- an exception type that takes other arguments
            raise exc from None
        raise wrapped from None


def check_levels(levels: np.ndarray) -> int:
    """S = len(alpha_bars) - 1 of a loop's levels: in [0, 1], non-decreasing, at least two."""
    S = levels.size - 1
    if S < 1:
        raise ValueError("alpha_bars needs at least two levels: one evaluation and the landing level")
    _checks.in_range("alpha_bars", levels, 0.0, 1.0)
    if np.any(np.diff(levels) < 0):
        i = int(np.argmax(np.diff(levels) < 0))
        raise ValueError(f"alpha_bars must be non-decreasing (each step removes noise); alpha_bars[{i + 1}] = "
                         f"{levels[i + 1]!r} < alpha_bars[{i}] = {levels[i]!r}")
    if levels[0] == 1.0:
        raise ValueError("alpha_bars[0] must be < 1: at alpha_bar = 1 there is no noise to remove")
    if np.any(levels[1:] == 0.0):
        raise ValueError("alpha_bars may be 0 only at the first level: a step cannot land on pure noise")
    return S


def check_timesteps(timesteps, S: int) -> list:
    """The per-step timesteps passed to the denoiser: None (all None) or a sequence of S values."""
    if timesteps is None:
        return [None] * S
    if isinstance(timesteps, (str, bytes)) or not hasattr(timesteps, "__len__"):
        raise TypeError(f"timesteps must be None or a sequence of len(alpha_bars) - 1 = {S} values; got "
                        f"{type(timesteps).__name__}")
    try:
        ndim = np.ndim(timesteps)
    except ValueError:  # ragged
        ndim = -1
    if ndim != 1:
        raise ValueError(f"timesteps must be a 1-D sequence of len(alpha_bars) - 1 = {S} values; got "
                         f"{'a ragged sequence' if ndim < 0 else f'{ndim} dimensions'}")
    ts = list(timesteps)
    if len(ts) != S:
        raise ValueError(f"timesteps must have len(alpha_bars) - 1 = {S} entries; got {len(ts)}")
    return ts


def sample_loop(denoiser: Callable, x_T, *, sampler: str, prediction_type: str, alpha_bars,
                timesteps=None, noise=None, return_trajectory: bool = False, **options):
    """Run a sampler from x_T through the levels ``alpha_bars`` (length S+1, see
    :func:`loop_alpha_bars`: in [0, 1], non-decreasing). ``noise`` is an array of shape
    (S, *x_T.shape), a callable ``noise(i)`` returning step i's z, or None for deterministic samplers.
    Returns x at the last level (and the list of states, x_T first, if ``return_trajectory``).
    A step's error names the loop's arguments it comes from.
    """
    x = _checks.array("x_T", x_T)
    levels = _checks.array("alpha_bars", alpha_bars, ndim=1)
    S = check_levels(levels)
    ts = check_timesteps(timesteps, S)
    _checks.choice("sampler", sampler, SAMPLERS)
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    _check_denoiser(denoiser)
    trajectory = _checks.boolean("return_trajectory", return_trajectory)
    if noise is not None and not callable(noise):
        noise = _checks.array("noise", noise)
        if noise.shape != (S, *x.shape):
            raise ValueError(f"noise must have shape (len(alpha_bars) - 1, *x_T.shape) = {(S, *x.shape)}; got "
                             f"{noise.shape}")
    path = [x]
    for i in range(S):
        z = noise(i) if callable(noise) else (None if noise is None else noise[i])
        f = step_map(sampler, denoiser, prediction_type=prediction_type, alpha_bar=levels[i],
                     alpha_bar_next=levels[i + 1], timestep=ts[i], num_inference_steps=S, **options)
        x = run_step(f, i, x, z, levels)
        path.append(x)
    return (x, path) if trajectory else x
