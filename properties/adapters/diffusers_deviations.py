"""Known deviations of diffusers (checked against 0.42.1) from the oracle: zsnr's expected-failures
file for diffusers. Each predicate picks out exactly the configurations where the deviation
shows; each example reproduces it (run as a strict expected failure by test_deviations.py).
Every one was confirmed by a standalone reproduction; see the README's conformance section.
"""

from __future__ import annotations

import numpy as np

from reference import (
    DIFFUSERS_EULER_FLOOR,
    ddim_noise_scale,
    euler_sigmas,
    fractional_timesteps,
    make_schedule,
)
from reference import timesteps as oracle_timesteps

from ..contract import SamplerConfig
from ..deviations import NON_FINITE, Deviation

SRC = "https://github.com/huggingface/diffusers/blob/main/src/diffusers/schedulers/"
#: a floored ᾱ_T shows as SNR(T) > 0 or a finite σ_T (zero_snr), or as ᾱ / σ off the oracle (schedule)
FLOOR_SYMPTOM = r"SNR\(T\) = |not inf|^alphas_cumprod: \d+ of|^sigmas: \d+ of"
ALL = ("ddpm", "ddim", "euler", "euler_ancestral")


def _float_spacing(c: SamplerConfig) -> np.ndarray:
    """diffusers' own spacing formulas (DDPM/DDIM set_timesteps), evaluated in floating point."""
    T, S = c.num_train_timesteps, c.num_inference_steps
    if c.spacing == "linspace":
        return np.linspace(0, T - 1, S).round()[::-1].astype(np.int64)
    if c.spacing == "leading":
        return (np.arange(0, S) * (T // S)).round()[::-1].astype(np.int64) + c.steps_offset
    return np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1


def _trailing_has_extra_step(c: SamplerConfig) -> bool:
    # np.arange with the float step T/S can give S+1 values, the last -1
    T, S = c.num_train_timesteps, c.num_inference_steps
    return c.spacing == "trailing" and len(np.arange(T, 0, -T / S)) != S


def _float_spacing_differs(c: SamplerConfig) -> bool:
    if c.sampler in ("euler", "euler_ancestral") and c.spacing == "linspace":
        return False  # the Euler family keeps linspace unrounded
    got = _float_spacing(c)
    want = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    return got.shape != want.shape or bool(np.any(got != want))


def _ddim_prev_mismatch(c: SamplerConfig) -> bool:
    # diffusers' DDIM steps to t - T//S, not to the next scheduled timestep (or to "clean" after the last)
    ts = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    prev = ts - c.num_train_timesteps // c.num_inference_steps
    nxt = np.append(ts[1:], -1)
    return bool(np.any(np.where(nxt < 0, prev >= 0, prev != nxt))) or _trailing_has_extra_step(c)


def _ddim_radicand_cancels(c: SamplerConfig) -> bool:
    # some step has keep = c_eps²/(1-ᾱ_prev) < 0.05: float32 cancellation amplified > 10x (the step budget)
    eta = c.option("eta", 0.0) or 0.0
    if eta == 0.0:
        return False
    sched = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end, rescale=c.rescale)
    ts = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    abar = sched.alphas_cumprod
    final = 1.0 if c.option("set_alpha_to_one", True) else float(abar[0])
    nxt = np.append(abar[ts[1:]], final)
    for a_t, a_p in zip(abar[ts], nxt):
        if a_p < 1.0 and a_p > a_t:
            c_eps, _ = ddim_noise_scale(float(a_t), float(a_p), eta)
            if c_eps * c_eps < 0.05 * (1.0 - a_p):
                return True
    return False


def _last_timestep_positive(c: SamplerConfig) -> bool:
    ts = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    return bool(ts[-1] > 0)


def _float32_underflow(c: SamplerConfig) -> bool:
    # ᾱ below float32's normal range (2⁻¹²⁶): the float32 running product loses it to subnormals or 0
    sched = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end)
    return bool(sched.alphas_cumprod[-1] < 2.0**-126)


def _floor_above_previous(c: SamplerConfig) -> bool:
    # the 2⁻²⁴ floor exceeds ᾱ of the second-to-last step: ᾱ rises at T, σ falls
    if not c.rescale or c.num_train_timesteps < 2:
        return False
    sched = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end, rescale=True)
    return bool(sched.alphas_cumprod[-2] <= 2.0**-24)


def _floor_breaks_first_step(c: SamplerConfig) -> bool:
    # ... and the first step goes from the floor up to a σ at or above it: σ at the second timestep,
    # where the Euler schedulers place it (fractional for linspace) and interpolated from the floored
    # schedule, reaches the floor's σ (within float32 rounding of both)
    # (log_linear σ are log-spaced between σ_min and σ_max, whatever the timesteps: never up)
    if not c.rescale or c.num_train_timesteps < 2 or c.num_inference_steps < 2 \
            or c.option("interpolation_type", "linear") == "log_linear":
        return False
    abar = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end,
                         rescale=True).alphas_cumprod.copy()
    abar[-1] = DIFFUSERS_EULER_FLOOR
    ts = fractional_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    if ts[0] != c.num_train_timesteps - 1:
        return False
    sig = np.interp(ts[:2], np.arange(abar.size), np.sqrt((1 - abar) / abar))  # diffusers' linear σ(t)
    return bool(sig[1] >= sig[0] * (1 - 8 * 2.0**-24))


def _floored_euler_sigmas(c: SamplerConfig) -> np.ndarray:
    """The oracle's Euler σ of the configuration, σ = inf replaced by diffusers' floor (σ_T = 4096)."""
    sched = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end, rescale=c.rescale)
    sig = euler_sigmas(sched, fractional_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps,
                                                   c.steps_offset))
    sig[np.isinf(sig)] = 1.0 / DIFFUSERS_EULER_FLOOR ** 0.5
    return sig


def _ancestral_down_cancels(c: SamplerConfig) -> bool:
    # diffusers' σ_down = (σ_to² - σ_up²)^0.5 with σ_up² = σ_to²(σ_from² - σ_to²)/σ_from²: the difference
    # is σ_to⁴/σ_from², relative error ~u·(σ_from/σ_to)²; flag steps where that exceeds 1000 u
    sig = _floored_euler_sigmas(c)
    q = sig[1:] / sig[:-1]
    return bool(np.any((q > 0) & (q * q < 1e-3)))


def _euler_churn_active(c: SamplerConfig) -> bool:
    return c.sampler == "euler" and (c.option("s_churn") or 0) > 0


def _euler_small_churn(c: SamplerConfig) -> bool:
    # γ = min(s_churn/S, √2-1) in (0, 0.05): √(σ̂² - σ²) in float32 loses u/(2γ) > 10u relative
    gamma = min((c.option("s_churn") or 0) / c.num_inference_steps, 2**0.5 - 1)
    return c.sampler == "euler" and 0 < gamma < 0.05


DEVIATIONS = [
    Deviation(
        "float32-alphas-cumprod-underflow",
        ("schedule", "step", "chaining", "zero_snr", "finite_at_T", "loop"), ALL, _float32_underflow,
        "steep schedules (large T and β) take ᾱ below float32's normal range: the float32 running "
        "product underflows to subnormals and 0, and the zero-SNR rescale then divides 0 by 0 (NaN "
        "betas and ᾱ, silently). The float64 oracle represents these ᾱ (down to ~1e-308).",
        SRC + "scheduling_ddim.py (__init__: torch.cumprod in float32; rescale_zero_terminal_snr)",
        SamplerConfig("ddim", num_train_timesteps=4000, beta_schedule="linear", beta_start=0.0078125,
                      beta_end=0.046875), {}),
    Deviation(
        "trailing-extra-step", ("schedule", "step", "chaining", "loop"), ALL, _trailing_has_extra_step,
        "trailing spacing np.round(np.arange(T, 0, -T/S)) - 1 yields S+1 timesteps for some (T, S) "
        "(T=1000: S = 61, 103, 121, ...), the last being -1, which then indexes ᾱ[-1] (the terminal "
        "value) or takes an extra Euler step. Exact rule: round(T - k·T/S) - 1, k = 0..S-1.",
        SRC + "scheduling_ddim.py (set_timesteps, timestep_spacing == 'trailing')",
        SamplerConfig("ddim", num_inference_steps=61, rescale=False, prediction_type="epsilon"),
        {"step_index": 61}),
    Deviation(
        "float-spacing-rounding", ("schedule", "step", "chaining", "loop"), ALL, _float_spacing_differs,
        "the spacings are computed in floating point and then rounded (np.arange with step T/S, "
        "np.linspace): where the exact value T·k/S or k·(T-1)/(S-1) is a half-integer, float error "
        "decides the rounding and the timestep is off by one (T=67, S=10 trailing: 32 for 33).",
        SRC + "scheduling_ddim.py (set_timesteps)",
        SamplerConfig("ddim", num_train_timesteps=67, rescale=False), {"step_index": 5}),
    Deviation(
        "ddim-prev-timestep", ("step", "chaining", "loop"), ("ddim",), _ddim_prev_mismatch,
        "DDIMScheduler.step takes the previous timestep as t - T//S instead of the next scheduled "
        "timestep, so with trailing or linspace spacing it lands on a level the next step does not "
        "start from, and the last step may stop at t = 0 with noise √(1-ᾱ_0) left.",
        "https://github.com/huggingface/diffusers/issues/12633",
        SamplerConfig("ddim", num_inference_steps=3, options=(("eta", 0.0),)), {"step_index": 1}),
    Deviation(
        "ddim-eta1-zero-snr-nan", ("step", "chaining", "finite_at_T", "loop"), ("ddim",), _ddim_radicand_cancels,
        "DDIM forms the ε̂ coefficient as (1 - ᾱ_prev - std²)^0.5: for η > 0 and a large step the radicand "
        "(1-ᾱ_prev)·[(1-η²) + η²·SNR_t/SNR_prev] is a small difference of large numbers and loses "
        "~u/keep relative (keep = the bracket); at zero SNR with η = 1 it is exactly 0 and rounds to a "
        "tiny negative float32 for some (schedule, S): NaN. The sum-of-non-negative-terms form is exact.",
        "https://github.com/huggingface/diffusers/issues/5969",
        SamplerConfig("ddim", num_inference_steps=6, options=(("eta", 1.0),)), {"step_index": 0}),
    Deviation(
        "ddpm-fixed-large-log-nan", ("step", "chaining", "finite_at_T", "loop"), ("ddpm",),
        lambda c: c.option("variance_type") == "fixed_large_log",
        "DDPMScheduler with variance_type='fixed_large_log' takes the square root of log(β) as the noise "
        "std: NaN for β < 1, and 0 (no noise, where √β = 1 is due) at the last training step of a "
        "zero-SNR schedule, where β = 1.",
        "https://github.com/huggingface/diffusers/issues/14569",
        SamplerConfig("ddpm", options=(("variance_type", "fixed_large_log"),)), {"step_index": 1}),
    Deviation(
        "ddpm-noise-on-last-step", ("step", "chaining", "loop"), ("ddpm",),
        _last_timestep_positive,
        "DDPMScheduler adds noise whenever t > 0, not 'unless this is the last step': when the last "
        "timestep is > 0 (trailing, leading with steps_offset, ...) the final sample keeps noise: std √β "
        "for fixed_large, √(predicted variance) for learned, β^(f/2)·1e-10^(1-f) for learned_range, "
        "1e-10 (the 1e-20 variance clamp) for fixed_small and fixed_small_log.",
        SRC + "scheduling_ddpm.py (step: `if t > 0:`)",
        SamplerConfig("ddpm", options=(("variance_type", "fixed_large"),)), {"step_index": 9}),
    Deviation(
        "epsilon-zero-snr-silent", ("finite_at_T",), ALL, lambda c: c.prediction_type == "epsilon" and c.rescale,
        "ε-prediction at zero SNR: DDPM and DDIM return inf/NaN silently (x̂₀ divides by α_T = 0; with "
        "clip_sample=True a silently clipped finite result); Euler and Euler ancestral return a silently "
        "clamped result through their 2⁻²⁴ floor. None raises or warns.",
        "https://github.com/huggingface/diffusers/issues/3851",
        SamplerConfig("ddim", prediction_type="epsilon"), {}, symptom="without raising or warning"),
    Deviation(
        "euler-terminal-floor", ("zero_snr", "schedule"), ("euler", "euler_ancestral"), lambda c: c.rescale,
        "EulerDiscrete and EulerAncestralDiscrete replace ᾱ_T = 0 by 2⁻²⁴ after the zero-SNR rescale "
        "(σ_T = 4096 instead of inf): SNR(T) = 5.96e-08, not 0.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler"), {}, symptom=FLOOR_SYMPTOM),
    Deviation(
        "euler-floor-above-previous", ("schedule", "chaining"),
        ("euler", "euler_ancestral", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"),
        _floor_above_previous,
        "for steep schedules the zero-SNR ᾱ at t = T-2 is below the 2⁻²⁴ floor, so the floored ᾱ rises "
        "at t = T-1: σ is not monotone in t.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler_ancestral", beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125), {}),
    Deviation(
        "euler-floor-first-step-up", ("step", "finite_at_T", "loop"),
        ("euler", "euler_ancestral", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"),
        _floor_breaks_first_step,
        "... and when σ at the second scheduled timestep (fractional for linspace, interpolated) is at "
        "or above the floor's as well, the first step goes up in σ (4096 → 5384.6 for the example; "
        "by 0.01 for linear β, rescale, linspace S = 266): Euler ancestral's σ_up radicand "
        "σ_next²(σ² - σ_next²)/σ² turns negative (NaN), and Euler steps away from the data.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler_ancestral", beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125),
        {"step_index": 0}),
    Deviation(
        "ancestral-sigma-down-cancellation", ("step", "finite_at_T", "loop"), ("euler_ancestral",),
        _ancestral_down_cancels,
        "EulerAncestralDiscreteScheduler forms σ_down = (σ_to² - σ_up²)^0.5 with σ_up² = σ_to²(σ_from² - "
        "σ_to²)/σ_from²: the difference is σ_to⁴/σ_from², so a large step (σ_from/σ_to > 30) loses "
        "~u·(σ_from/σ_to)² relative, and beyond σ_from/σ_to ≈ 1/√u the radicand rounds below 0: NaN "
        "(cosine schedule, trailing S = 3: σ 20291 → 1.75). σ_to·√((1-η²) + η²σ_to²/σ_from²) is exact.",
        SRC + "scheduling_euler_ancestral_discrete.py (step: sigma_down)",
        SamplerConfig("euler_ancestral", beta_schedule="squaredcos_cap_v2", rescale=False, num_inference_steps=3,
                      prediction_type="epsilon"), {"step_index": 0}),
    Deviation(
        "euler-log-linear-sigmas", ("schedule", "step", "chaining", "loop"), ("euler",),
        lambda c: c.option("interpolation_type") == "log_linear",
        "EulerDiscreteScheduler with interpolation_type='log_linear' builds S+1 log-spaced σ between "
        "σ_min and σ_max, ignoring the timesteps, then appends the final σ: S+2 values, the sampler "
        "ends on σ_min instead of 0 and σ_i is not σ(t_i).",
        SRC + "scheduling_euler_discrete.py (set_timesteps, interpolation_type == 'log_linear')",
        SamplerConfig("euler", options=(("interpolation_type", "log_linear"),)), {}),
    Deviation(
        "euler-churn-v-uses-sigma", ("step", "loop"), ("euler",),
        lambda c: _euler_churn_active(c) and c.prediction_type == "v_prediction",
        "EulerDiscreteScheduler with s_churn > 0 and v_prediction converts the model output with σ "
        "while the state has been moved to σ̂ = σ(1+γ) (the ε branch uses σ̂).",
        SRC + "scheduling_euler_discrete.py (step: v_prediction branch)",
        SamplerConfig("euler", rescale=False, options=(("s_churn", 5.0),)), {"step_index": 0}),
    Deviation(
        "euler-churn-noise-cancellation", ("step", "loop"), ("euler",), _euler_small_churn,
        "EulerDiscreteScheduler forms the churn noise scale as (σ̂² - σ²)^0.5 with σ̂ = σ(1+γ) rounded "
        "first: for small γ = s_churn/S the subtraction cancels and loses up to ~3u/(2γ) relative "
        "(853 u measured at γ = 0.001); "
        "σ·√(γ(2+γ)) is exact to a few u.",
        SRC + "scheduling_euler_discrete.py (step: sigma_hat**2 - sigma**2)",
        SamplerConfig("euler", rescale=False, num_inference_steps=1000, beta_schedule="linear",
                      beta_start=0.0078125, beta_end=0.03125, prediction_type="epsilon",
                      options=(("s_churn", 1.0),)), {"step_index": 0}),
    Deviation(
        "euler-churn-model-before-churn", ("loop",), ("euler",), _euler_churn_active,
        "EulerDiscreteScheduler adds the churn noise inside step(), after the model was evaluated at "
        "(x, σ); Karras et al. (2022) Alg. 2 evaluates the model at the churned (x̂, σ̂).",
        SRC + "scheduling_euler_discrete.py (step: s_churn)",
        SamplerConfig("euler", rescale=False, prediction_type="epsilon", options=(("s_churn", 5.0),)), {}),
]

def _half_x0_overflow(c: SamplerConfig) -> bool:
    # x̂₀ = (x - σ·ε̂)/α formed in float16: beyond 65504 once 1/α > 4096 (ᾱ < 2⁻²⁴) for |x - σ·ε̂| >= 16
    if c.prediction_type != "epsilon":
        return False
    ts = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    abar = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end,
                         rescale=c.rescale).alphas_cumprod[ts]
    return bool(np.any((abar > 0) & (abar < 2.0**-24)))


def _half_sigma_eps_overflow(c: SamplerConfig) -> bool:
    # σ·ε̂ formed in float16: beyond 65504 for |ε̂| >= 16 once σ >= 4096 (diffusers' floored σ_T is 4096)
    return c.prediction_type == "epsilon" and bool(np.max(_floored_euler_sigmas(c)) >= 4096.0)


#: deviations that show only in half precision
HALF_DEVIATIONS = [
    Deviation(
        "half-x0-overflow", ("step", "chaining", "loop"), ("ddpm", "ddim"), _half_x0_overflow,
        "DDPMScheduler and DDIMScheduler form pred_original_sample = (sample - √(1-ᾱ_t)·ε̂)/√ᾱ_t in the "
        "latents' dtype: in float16 it overflows to inf once |x̂₀| > 65504 (ε-prediction at ᾱ_t < 2⁻²⁴, "
        "e.g. the first steps below T of a steep zero-SNR schedule), although the step's result "
        "√ᾱ_prev·β/(1-ᾱ_t)·x̂₀ + ... is well inside the range. Forming x̂₀ in float32 (as the Euler "
        "schedulers upcast the sample) avoids it.",
        SRC + "scheduling_ddpm.py (step: pred_original_sample)",
        SamplerConfig("ddpm", num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0078125,
                      beta_end=0.03125, rescale=True, spacing="linspace", num_inference_steps=35,
                      prediction_type="epsilon"), {"step_index": 1},
        symptom=NON_FINITE, dtypes=("float16",)),
    Deviation(
        "half-sigma-eps-overflow", ("step", "finite_at_T", "loop"),
        ("euler", "euler_ancestral", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"),
        _half_sigma_eps_overflow,
        "EulerDiscreteScheduler and EulerAncestralDiscreteScheduler upcast the sample to float32 but form "
        "sigma * model_output in the model output's dtype (a float32 0-dim σ times a float16 tensor stays "
        "float16): for ε-prediction it is inf once σ·|ε̂| > 65504, although x̂₀ = x - σ·ε̂ and the step's "
        "result are in range (cosine schedule, T = 1000, σ_max = 20291: |ε̂| > 3.2 suffices).",
        SRC + "scheduling_euler_discrete.py (step: pred_original_sample = sample - sigma_hat * model_output)",
        SamplerConfig("euler", num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", rescale=False,
                      spacing="trailing", num_inference_steps=10, prediction_type="epsilon"),
        {"step_index": 0, "x": 3.0, "model_output": 4.0},
        symptom=NON_FINITE, dtypes=("float16",)),
]

FLOORED = ("DPMSolverMultistepScheduler", "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler",
           "UniPCMultistepScheduler")

GENERIC_DEVIATIONS = [
    Deviation(
        "terminal-floor-2^-24", ("zero_snr",), FLOORED, lambda c: c.rescale,
        "after the zero-SNR rescale these schedulers set ᾱ_T = 2⁻²⁴ (σ_T = 4096) instead of 0: "
        "SNR(T) = 5.96e-08.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("EulerDiscreteScheduler"), {}, symptom=FLOOR_SYMPTOM),
    Deviation(
        "lcm-origin-steps-miss-T", ("starts_at_T",), ("LCMScheduler", "TCDScheduler"),
        lambda c: c.num_train_timesteps % 50 != 0,
        "LCM and TCD draw their timesteps from an original 50-step schedule, (T // 50)·k - 1, ignoring "
        "timestep_spacing (T=1000, S=4: [999, 759, 499, 259], not trailing's [999, 749, 499, 249]); unless "
        "50 divides T the first timestep is (T // 50)·50 - 1 < T - 1.",
        SRC + "scheduling_lcm.py (set_timesteps: original_inference_steps)",
        SamplerConfig("LCMScheduler", num_train_timesteps=1010, num_inference_steps=4), {},
        symptom="first timestep"),
]

GUIDANCE_DEVIATIONS = [
    Deviation(
        "rescale-noise-cfg-zero-std", ("guidance",), ("guidance-degenerate",), lambda c: True,
        "rescale_noise_cfg divides by the std of the guided prediction with no guard: a sample with "
        "zero std gives inf/NaN, even with guidance_rescale = 0 (0·inf = NaN).",
        "https://github.com/huggingface/diffusers/issues/13425", symptom=NON_FINITE),
]

TRAINING_DEVIATIONS = [
    Deviation(
        "euler-get-velocity-step-index", ("velocity",), ("euler",), lambda c: True,
        "EulerDiscreteScheduler.get_velocity (added in PR #7733) looks up the step index of each timestep "
        "and then reads alphas_cumprod at that *step index*, a position in the inference schedule, instead "
        "of at the timestep: trailing T = 1000, S = 10, t = 999 (step index 0) takes ᾱ_0 = 0.99915, so "
        "v = 0.9996·ε - 0.0292·x₀ instead of 0.0683·ε - 0.9977·x₀. No upstream report found.",
        SRC + "scheduling_euler_discrete.py (get_velocity: alphas_cumprod[step_indices])",
        SamplerConfig("euler", rescale=False, spacing="trailing", num_inference_steps=10), {},
        symptom=r"^v target"),
    Deviation(
        "min-snr-epsilon-zero-snr-nan", ("min_snr",), ("ddpm", "ddim"),
        lambda c: c.rescale and c.prediction_type == "epsilon",
        "diffusers' training examples weight the ε loss by min(SNR, γ)/SNR with SNR from compute_snr: at "
        "t = T-1 of a zero-SNR schedule that is 0/0 = NaN, silently (the loss and the gradients become "
        "NaN). The ε loss at SNR 0 is meaningless (paper Sec. 3.2): a zero-SNR schedule needs v or x₀.",
        "https://github.com/TiankaiHang/Min-SNR-Diffusion-Training/issues/2",
        SamplerConfig("ddpm", rescale=True, prediction_type="epsilon"), {}, symptom=NON_FINITE),
]
