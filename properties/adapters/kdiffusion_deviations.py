"""Known deviations of k-diffusion 0.1.1.post1 (``sampling.sample_euler``, ``sample_euler_ancestral``,
``external.DiscreteSchedule`` and its ε / v wrappers) from the oracle, each declared as a model of what
k-diffusion computes instead (properties/deviations.py). ``python -m properties.adapters.kdiffusion_repro``
reproduces each standalone; KDIFFUSION_DEVIATIONS.md says what each is and where it comes from.
"""

from __future__ import annotations

import numpy as np

import reference as ref

from .. import expected
from ..contract import SamplerConfig
from ..deviations import NON_FINITE, Deviation
from .diffusers_deviations import m_churn_widening  # the same float32 formula as diffusers'

SRC = "https://github.com/crowsonkb/k-diffusion/blob/v0.1.1.post1/k_diffusion/"
BOTH = ("euler", "euler_ancestral")
NAN_AT_T, LOG_LINEAR, ONE_STEP, F32_T = ("kdiffusion-discrete-schedule-nan-at-T", "kdiffusion-log-linear-sigmas",
                                         "kdiffusion-linspace-one-step-at-T", "kdiffusion-float32-linspace-timesteps")


def _ids(E) -> set:
    return {d.id for d in E.sources}


def m_timesteps(E, c: SamplerConfig):
    """MODEL ``get_sigmas``' t = torch.linspace(T-1, 0, S): for S = 1 that is [T-1] (a one-point
    linspace is its start; the one-step deviation); for S >= 2 torch's float32 linspace, start + i·step
    (end - (S-1-i)·step past the middle) with step = fl((0 - (T-1))/(S-1)), not always the nearest
    float32 to (S-1-k)(T-1)/(S-1) (the float32-linspace deviation; evaluated with torch)."""
    ids, S, T = _ids(E), c.num_inference_steps, c.num_train_timesteps
    if S == 1:
        return np.array([T - 1.0]) if ONE_STEP in ids else E.oracle.timesteps(c)
    if F32_T in ids:
        import torch

        return torch.linspace(T - 1, 0, S, dtype=torch.float32).double().numpy()
    return E.oracle.timesteps(c)


def m_sigmas(E, c: SamplerConfig):
    """MODEL ``DiscreteSchedule.get_sigmas(S)``: σ(t) at the (modelled) timesteps, log σ interpolated
    in t (``t_to_sigma``) where the log-linear-sigmas deviation applies, then 0."""
    interp = "log_linear" if LOG_LINEAR in _ids(E) else c.option("interpolation_type", "linear")
    return ref.euler_sigmas(expected.schedule(c), E.timesteps(c), interp)


def _zero_snr(c: SamplerConfig) -> bool:
    return c.rescale


def _small_churn(c: SamplerConfig) -> bool:
    gamma = min((c.option("s_churn") or 0) / c.num_inference_steps, 2**0.5 - 1)
    return c.sampler == "euler" and 0 < gamma < 0.05


SIGMAS = {"timesteps": m_timesteps, "sigmas": m_sigmas}

DEVIATIONS = [
    Deviation(
        NAN_AT_T, ("schedule", "zero_snr", "chaining", "step", "finite_at_T", "loop"), BOTH, _zero_snr,
        "DiscreteSchedule.t_to_sigma(t) interpolates log σ between floor(t) and ceil(t) as "
        "(1 - w)·log σ_lo + w·log σ_hi. At ᾱ_T = 0 its σ table ends in σ_{T-1} = ∞ (correct), but at "
        "t = T-1 exactly (w = 0, floor = ceil) that is (1 - 0)·∞ + 0·∞ = NaN: get_sigmas(S) starts every "
        "zero-SNR schedule at σ = NaN, and the first step from it is NaN (the state x_T·σ_0 and the "
        "wrappers' c_in, c_out are NaN). Behind it, two more defects at σ = ∞ that the NaN masks here "
        "(kdiffusion_repro shows both): DiscreteVDDPMDenoiser.get_scalings(∞) gives c_out = -∞/∞ = NaN "
        "(its limit is -1), and from a state x_T·∞ to_d's (x - x̂₀)/σ is ∞/∞. The open upstream issue on "
        "zero terminal SNR in k-diffusion is #64.",
        "https://github.com/crowsonkb/k-diffusion/issues/64",
        SamplerConfig("euler", spacing="linspace", options=(("interpolation_type", "log_linear"),)),
        symptom=NON_FINITE, summary="σ_0 = NaN at t = T-1 of a zero-SNR schedule, and NaN from the step that "
                                    "starts there (finite values still checked)"),
    Deviation(
        LOG_LINEAR, ("schedule", "step", "chaining", "loop"), BOTH, None,
        "DiscreteSchedule.t_to_sigma always interpolates log σ linearly in t between training steps; "
        "a configuration asking for σ linear in t (diffusers' Euler default, interpolation_type="
        "'linear') gets the log-linear σ at fractional t (linspace spacing with (T-1)/(S-1) not an integer).",
        SRC + "external.py (DiscreteSchedule.t_to_sigma)",
        SamplerConfig("euler", num_train_timesteps=20, spacing="linspace", rescale=False, num_inference_steps=3,
                      options=(("interpolation_type", "linear"),)),
        model=SIGMAS, summary="σ(t) = exp of log σ interpolated linearly in t"),
    Deviation(
        ONE_STEP, ("schedule", "starts_at_T", "step", "chaining", "loop"), BOTH, None,
        "get_sigmas(1) evaluates t = torch.linspace(T-1, 0, 1) = [T-1]: a single step starts at T, as "
        "the paper asks. The oracle's linspace spacing is diffusers' (np.linspace(0, T-1, S)[::-1]), "
        "whose one-step schedule is [0]. A convention, not a k-diffusion bug.",
        SRC + "external.py (DiscreteSchedule.get_sigmas)",
        SamplerConfig("euler", spacing="linspace", rescale=False, num_inference_steps=1,
                      options=(("interpolation_type", "log_linear"),)),
        model=SIGMAS, summary="S = 1: the one timestep is T-1 (σ_max), not 0"),
    Deviation(
        F32_T, ("schedule", "step", "chaining", "loop"), BOTH, None,
        "get_sigmas(S) evaluates σ at t = torch.linspace(T-1, 0, S) in float32, which is not correctly "
        "rounded: torch forms start + i·step from a rounded step (T = 4000, S = 10: t_4 = 2221.66650390625, "
        "0.67 ULP from the exact 2221.6667 and one ULP off its nearest float32 2221.66675), and σ is "
        "evaluated at that t.",
        SRC + "external.py (DiscreteSchedule.get_sigmas: torch.linspace(t_max, 0, n))",
        SamplerConfig("euler", num_train_timesteps=4000, beta_schedule="linear", rescale=False, spacing="linspace",
                      prediction_type="epsilon", options=(("interpolation_type", "log_linear"),)),
        model=SIGMAS, summary="t = torch's float32 linspace(T-1, 0, S); σ at those t"),
    Deviation(
        "kdiffusion-churn-noise-cancellation", ("step", "finite_at_T", "loop"), ("euler",), _small_churn,
        "sample_euler forms the churn noise scale (σ̂² - σ²)^0.5 with σ̂ = σ·(γ + 1) in float32 (the σ "
        "tensor's dtype): for small γ = s_churn/S the difference cancels, ~3u/(2γ) relative (972 u at "
        "γ = 1e-4, kdiffusion_repro); σ·√(γ(2 + γ)) is exact to a few u. The same formula as diffusers' "
        "EulerDiscreteScheduler (euler-churn-noise-cancellation).",
        SRC + "sampling.py (sample_euler: (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5)",
        SamplerConfig("euler", spacing="linspace", rescale=False, num_inference_steps=2, prediction_type="epsilon",
                      options=(("interpolation_type", "log_linear"), ("s_churn", 2e-5))), {"step_index": 0},
        model={"step_widening": m_churn_widening},
        summary="the oracle's step; widening (~3u/(2γ) relative)·σ√(γ(2+γ))·|z|·(1 + 2|σ_next - σ̂|/σ̂)"),
]
