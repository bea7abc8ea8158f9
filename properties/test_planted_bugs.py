"""Bugs planted *inside* declared deviation regions must still fail the suite's checks.

Each planted bug is a small subclass of a diffusers scheduler, run with all of diffusers' declared
deviations (as a subclass inherits them), on a configuration inside the region of the deviation it
hides behind. The checks are called directly (no Hypothesis search), so this stays fast. An
unmodified subclass, on the same configurations, must pass (as the declared deviation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

from properties.adapters.diffusers import DiffusersImplementation
from properties.adapters.diffusers_deviations import (
    DEVIATIONS,
    GENERIC_DEVIATIONS,
    GUIDANCE_DEVIATIONS,
    HALF_DEVIATIONS,
)
from properties.compare import Record
from properties.conformance import checks
from properties.conformance.test_deviations import _reproduce
from properties.contract import SamplerConfig
from properties.deviations import judge, matching

SHAPE = (2, 3, 2, 2)
ALL_DEVIATIONS = DEVIATIONS + HALF_DEVIATIONS + GENERIC_DEVIATIONS + GUIDANCE_DEVIATIONS


# --- the planted bugs -------------------------------------------------------------------------------


class DDIMEtaVarianceNotStd(DDIMScheduler):
    """η-noise std η·variance instead of η·√variance (and its radicand with that std)."""

    def _get_variance(self, timestep, prev_timestep):
        return super()._get_variance(timestep, prev_timestep) ** 2


class DDIMIgnoresEta(DDIMScheduler):
    """The eta option silently ignored (always 0)."""

    def step(self, *args, eta=0.0, **kw):
        return super().step(*args, eta=0.0, **kw)


class DDIMNoNoiseOnLargeSteps(DDIMScheduler):
    """A shortcut taken only on large steps (ᾱ_prev > 10·ᾱ_t): the η-noise skipped there."""

    def _get_variance(self, timestep, prev_timestep):
        v = super()._get_variance(timestep, prev_timestep)
        a_t = self.alphas_cumprod[timestep]
        a_p = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        return v * 0 if a_p > 10 * a_t else v


class DDPMPrevTimestepStride(DDPMScheduler):
    """diffusers #9261 (fixed in 0.32): previous timestep t - T//S instead of the next scheduled one."""

    def previous_timestep(self, timestep):
        return timestep - self.config.num_train_timesteps // self.num_inference_steps


class DDPMLastStepTwiceTheNoise(DDPMScheduler):
    """The last step's leftover noise doubled (2√β instead of √β for fixed_large)."""

    def _get_variance(self, t, predicted_variance=None, variance_type=None):
        v = super()._get_variance(t, predicted_variance, variance_type)
        return v * 4 if int(t) == int(self.timesteps[-1]) else v


class DDPMIgnoresFixedLargeLog(DDPMScheduler):
    """variance_type='fixed_large_log' silently taken as fixed_large (no NaN: not what diffusers does)."""

    def __init__(self, *args, variance_type="fixed_small", **kw):
        super().__init__(*args, variance_type="fixed_large" if variance_type == "fixed_large_log" else variance_type,
                         **kw)


class EulerOtherFloor(EulerDiscreteScheduler):
    """ᾱ_T floored at 1e-6 instead of 2⁻²⁴."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        if self.config.rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 1e-6


class EulerRescaleOff(EulerDiscreteScheduler):
    """The 2⁻²⁴ floor, but the rest of the rescale wrong: ᾱ_t scaled by (1 + 1e-3) below T."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        if self.config.rescale_betas_zero_snr:
            self.alphas_cumprod[:-1] *= 1.001


class EulerWithoutFloorOrRescale(EulerDiscreteScheduler):
    """An old diffusers: rescale_betas_zero_snr ignored, no floor (SD: SNR(T) = 0.00468)."""

    def __init__(self, *args, rescale_betas_zero_snr=False, **kw):
        super().__init__(*args, rescale_betas_zero_snr=False, **kw)


# --- helpers ----------------------------------------------------------------------------------------


def _impl(**classes):
    return DiffusersImplementation(**classes, deviations=ALL_DEVIATIONS)


def _inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)


def _judged(check, impl, cfg, prop, *args):
    """The suite's verdict on one configuration: the outcome, or the AssertionError it raises."""
    rec = Record()
    return judge(lambda e, r: check(impl, cfg, *args, record=r, expect=e), impl, cfg, prop, rec), rec


ETA1 = SamplerConfig("ddim", num_inference_steps=6, options=(("eta", 1.0),))
TRAILING_13 = SamplerConfig("ddpm", num_train_timesteps=1000, num_inference_steps=13,
                            options=(("variance_type", "fixed_large"),))
LAST_STEP = SamplerConfig("ddpm", options=(("variance_type", "fixed_large"),))
LARGE_LOG = SamplerConfig("ddpm", options=(("variance_type", "fixed_large_log"),))
EULER = SamplerConfig("euler")

x, out = _inputs()

#: (planted class, sampler, configuration, the deviation it would hide behind, [(property, check, args)])
CASES = {
    "ddim-eta-variance-not-std": (DDIMEtaVarianceNotStd, "ddim", ETA1, "ddim-eta1-zero-snr-nan",
                                  [("step", checks.check_step, (2, x, out, 0, None)),
                                   ("loop", checks.check_loop, (np.full(SHAPE, 0.2), 0.25, x, 0))]),
    "ddim-ignores-eta": (DDIMIgnoresEta, "ddim", ETA1, "ddim-eta1-zero-snr-nan",
                         [("step", checks.check_step, (2, x, out, 0, None))]),
    "ddim-no-noise-on-large-steps": (DDIMNoNoiseOnLargeSteps, "ddim", ETA1, "ddim-eta1-zero-snr-nan",
                                     [("step", checks.check_step, (0, x, out, 0, None)),
                                      ("loop", checks.check_loop, (np.full(SHAPE, 0.2), 0.25, x, 0))]),
    "ddpm-prev-timestep-stride": (DDPMPrevTimestepStride, "ddpm", TRAILING_13, "ddpm-noise-on-last-step",
                                  [("step", checks.check_step, (5, x, out, 0, None)),
                                   ("chaining", checks.check_chaining, ()),
                                   ("loop", checks.check_loop, (np.full(SHAPE, 0.2), 0.25, x, 0))]),
    "ddpm-last-step-twice-the-noise": (DDPMLastStepTwiceTheNoise, "ddpm", LAST_STEP, "ddpm-noise-on-last-step",
                                       [("step", checks.check_step, (9, x, out, 0, None)),
                                        ("chaining", checks.check_chaining, ())]),
    "ddpm-ignores-fixed-large-log": (DDPMIgnoresFixedLargeLog, "ddpm", LARGE_LOG, "ddpm-fixed-large-log-nan",
                                     [("step", checks.check_step, (1, x, out, 0, None))]),
    "euler-other-floor": (EulerOtherFloor, "euler", EULER, "euler-terminal-floor",
                          [("zero_snr", checks.check_zero_snr, ()), ("schedule", checks.check_schedule, ())]),
    "euler-rescale-off": (EulerRescaleOff, "euler", EULER, "euler-terminal-floor",
                          [("schedule", checks.check_schedule, ())]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bug_planted_inside_a_deviation_region_fails(name):
    cls, sampler, cfg, hides_behind, runs = CASES[name]
    impl = _impl(**{sampler: cls})
    for prop, check, args in runs:
        assert hides_behind in [d.id for d in matching(impl, cfg, prop)], (name, prop)  # inside the region
        with pytest.raises(AssertionError, match="matches neither the oracle nor the declared deviations"):
            _judged(check, impl, cfg, prop, *args)


@pytest.mark.parametrize("name", list(CASES))
def test_an_unmodified_subclass_passes_the_same_checks(name):
    _, sampler, cfg, _hides_behind, runs = CASES[name]
    base = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "euler": EulerDiscreteScheduler}[sampler]
    plain = type(f"Plain{base.__name__}", (base,), {})
    impl = _impl(**{sampler: plain})
    for prop, check, args in runs:
        outcome, _rec = _judged(check, impl, cfg, prop, *args)
        assert outcome in ("oracle", "deviation"), (name, prop, outcome)


def test_an_old_diffusers_without_the_floor_does_not_reproduce_the_floor():
    # the strict reproduction wants the model's ᾱ_T = 2⁻²⁴, not just "SNR(T) != 0" (old: 0.00468)
    impl = _impl(euler=EulerWithoutFloorOrRescale)
    dev = next(d for d in ALL_DEVIATIONS if d.id == "euler-terminal-floor")
    outcomes = _reproduce(impl, dev)
    assert {p: o[0] for p, o in outcomes.items()} == {"zero_snr": "neither", "schedule": "neither"}
    assert "not 5.96046e-08" in outcomes["zero_snr"][2]  # the model wants the floor, SNR(T) = 2⁻²⁴/(1 - 2⁻²⁴)
    assert {p: o[0] for p, o in _reproduce(_impl(), dev).items()} == {"zero_snr": "deviation",
                                                                       "schedule": "deviation"}


class DDPMNoNoiseOnLastStep(DDPMScheduler):
    """A subclass that fixes ddpm-noise-on-last-step: no noise on a step that lands on clean data."""

    def _get_variance(self, t, predicted_variance=None, variance_type=None):
        v = super()._get_variance(t, predicted_variance, variance_type)
        return v * 0 if int(self.previous_timestep(t)) < 0 else v


@pytest.mark.parametrize("inherited", [True, False])
def test_a_subclass_fixing_an_inherited_deviation_is_recorded_not_failed(inherited):
    from properties.conformance.test_deviations import test_declared_deviation_reproduces

    impl = _impl(ddpm=DDPMNoNoiseOnLastStep)
    impl.inherited_deviations = frozenset({"ddpm-noise-on-last-step"} if inherited else ())
    rec = Record()
    if inherited:  # diffusers' known issue, fixed by the user's subclass: recorded as fixed
        test_declared_deviation_reproduces(impl, rec, "ddpm-noise-on-last-step")
        assert "fixed by the subclass" in rec.fixed["ddpm-noise-on-last-step"]
    else:  # the implementation's own declaration, no longer true: remove it
        with pytest.raises(AssertionError, match="is fixed"):
            test_declared_deviation_reproduces(impl, rec, "ddpm-noise-on-last-step")


# --- σ schedules and thresholding (issue 13): bugs inside the new deviations' regions ---------------


class EulerKarrasRho5(EulerDiscreteScheduler):
    """Karras σ with ρ = 5 instead of Karras et al.'s 7 (hidden behind euler-converted-sigmas-floor)."""

    def _convert_to_karras(self, in_sigmas, num_inference_steps):
        ramp = np.linspace(0, 1, num_inference_steps)
        lo, hi = in_sigmas[-1].item() ** (1 / 5), in_sigmas[0].item() ** (1 / 5)
        return (hi + ramp * (lo - hi)) ** 5


class EulerContinuousLog10(EulerDiscreteScheduler):
    """Continuous timesteps ¼·log10 σ instead of ¼·ln σ (v-prediction at zero SNR: the floored region)."""

    def set_timesteps(self, *args, **kw):
        super().set_timesteps(*args, **kw)
        if self.config.timestep_type == "continuous" and self.config.prediction_type == "v_prediction":
            self.timesteps = 0.25 * self.sigmas[:-1].log10()


class EulerIgnoredContinuousOffByOne(EulerDiscreteScheduler):
    """Where continuous timesteps are ignored (ε-prediction), discrete timesteps one step late."""

    def set_timesteps(self, *args, **kw):
        super().set_timesteps(*args, **kw)
        if self.config.timestep_type == "continuous" and self.config.prediction_type != "v_prediction":
            self.timesteps = self.timesteps - 1


class DDPMThresholdOverBatch(DDPMScheduler):
    """The dynamic threshold s taken over the whole batch instead of per sample."""

    def _threshold_sample(self, sample):
        s = torch.quantile(sample.abs().reshape(-1), self.config.dynamic_thresholding_ratio)
        s = torch.clamp(s, min=1, max=self.config.sample_max_value)
        return torch.clamp(sample, -s, s) / s


class DDIMThresholdNoDivision(DDIMScheduler):
    """Dynamic thresholding that clamps to [-s, s] but does not divide by s."""

    def _threshold_sample(self, sample):
        return super()._threshold_sample(sample) * torch.clamp(
            torch.quantile(sample.abs().reshape(sample.shape[0], -1), self.config.dynamic_thresholding_ratio, dim=1),
            min=1, max=self.config.sample_max_value).reshape(-1, *([1] * (sample.ndim - 1)))


class DDPMThresholdCrashOn3D(DDPMScheduler):
    """A thresholding that also crashes (TypeError) on 3-D samples: outside the declared 2-D crash."""

    def _threshold_sample(self, sample):
        if sample.ndim == 3:
            raise TypeError("planted: 3-D samples not handled")
        return super()._threshold_sample(sample)


KARRAS_ZERO_SNR = SamplerConfig("euler", options=(("use_karras_sigmas", True),))
CONTINUOUS_ZERO_SNR = SamplerConfig("euler", options=(("timestep_type", "continuous"),))
CONTINUOUS_EPS = SamplerConfig("euler", rescale=False, prediction_type="epsilon", options=(("timestep_type", "continuous"),))
THRESHOLD = (("thresholding", True), ("dynamic_thresholding_ratio", 0.9), ("sample_max_value", 1.5))
DDPM_THRESHOLD = SamplerConfig("ddpm", prediction_type="sample", options=THRESHOLD)
DDIM_THRESHOLD = SamplerConfig("ddim", prediction_type="sample", options=THRESHOLD)
x3 = np.linspace(-3.0, 3.0, 24).reshape(2, 3, 4)  # x̂₀ (sample prediction) well beyond ±1: thresholded
x3_other = x3 * np.array([1.0, 0.3])[:, None, None]  # two samples with different percentiles

CASES.update({
    "euler-karras-rho-5": (EulerKarrasRho5, "euler", KARRAS_ZERO_SNR, "euler-converted-sigmas-floor",
                           [("schedule", checks.check_schedule, ()),
                            ("loop", checks.check_loop, (np.full(SHAPE, 0.2), 0.25, x, 0))]),
    "euler-continuous-log10": (EulerContinuousLog10, "euler", CONTINUOUS_ZERO_SNR, "euler-converted-sigmas-floor",
                               [("schedule", checks.check_schedule, ()), ("starts_at_T", checks.check_starts_at_T, ())]),
    "euler-ignored-continuous-off-by-one": (EulerIgnoredContinuousOffByOne, "euler", CONTINUOUS_EPS,
                                            "euler-continuous-timesteps-v-only",
                                            [("schedule", checks.check_schedule, ()),
                                             ("starts_at_T", checks.check_starts_at_T, ())]),
    "ddpm-threshold-over-batch": (DDPMThresholdOverBatch, "ddpm", DDPM_THRESHOLD, "threshold-2d-sample-crash",
                                  [("step", checks.check_step, (2, x3, x3_other, 0, None))]),
    "ddim-threshold-no-division": (DDIMThresholdNoDivision, "ddim", DDIM_THRESHOLD, "threshold-2d-sample-crash",
                                   [("step", checks.check_step, (2, x3, x3_other, 0, None)),
                                    ("loop", checks.check_loop, (np.full((2, 3, 4), 0.2), 4.0, x3, 0))]),
})


def test_a_crash_outside_the_declared_rank_is_an_error_not_the_deviation():
    # threshold-2d-sample-crash excuses diffusers' TypeError on 2-D samples only: a 3-D crash stays an error
    impl = _impl(ddpm=DDPMThresholdCrashOn3D)
    assert "threshold-2d-sample-crash" in [d.id for d in matching(impl, DDPM_THRESHOLD, "step")]
    with pytest.raises(TypeError, match="planted"):
        _judged(checks.check_step, impl, DDPM_THRESHOLD, "step", 2, x3, x3_other, 0, None)
    # ... while the 2-D crash of diffusers' own class is recorded as the deviation
    outcome, rec = _judged(checks.check_step, _impl(), DDPM_THRESHOLD, "step", 2, x3[:, :, 0], x3_other[:, :, 0], 0, None)
    assert outcome == "deviation" and "threshold-2d-sample-crash" in rec.deviations
