"""Planted training-side bugs in diffusers subclasses: each must fail its training property, and
the unmodified classes must pass on the same inputs (properties/conformance/training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler

from properties.adapters.diffusers import DiffusersImplementation
from properties.conformance import training
from properties.contract import SamplerConfig

X0, EPS = np.full((2, 4, 3, 3), 0.5), np.full((2, 4, 3, 3), -1.0)
CFG = SamplerConfig("euler", spacing="trailing", num_inference_steps=10, rescale=False)


class BeginIndexAddNoise(EulerDiscreteScheduler):
    """diffusers 0.27.0-0.27.1 (#7348): add_noise after the first denoising step used the begin
    index, not the step index (inpainting re-noised the known region to the starting level)."""

    def add_noise(self, original_samples, noise, timesteps):
        sigma = self.sigmas[self.begin_index if self.begin_index is not None else 0].to(original_samples.dtype)
        return original_samples + noise * sigma


class RankFourOnlyAddNoise(DDPMScheduler):
    """add_noise that broadcasts the level over exactly 4-D latents."""

    def add_noise(self, original_samples, noise, timesteps):
        a = self.alphas_cumprod.to(original_samples.dtype)[timesteps][:, None, None, None]
        return a.sqrt() * original_samples + (1 - a).sqrt() * noise


class MinSnrPlusOne(DiffusersImplementation):
    """The Min-SNR v-prediction weight of diffusers' examples before PR #5238: 1 added to the
    ε-form weight (min(SNR, γ)/SNR + 1) instead of dividing by SNR + 1."""

    def min_snr_weights(self, config, t, gamma):
        from diffusers.training_utils import compute_snr

        sched = self.build(config).scheduler
        ts = torch.as_tensor(np.asarray(t, np.int64))
        snr = compute_snr(sched, ts)
        return (torch.stack([snr, gamma * torch.ones_like(ts)], dim=1).min(dim=1)[0] / snr + 1).double().numpy()


def test_add_noise_in_loop_catches_the_begin_index_bug():
    ok, bad = DiffusersImplementation(), DiffusersImplementation(euler=BeginIndexAddNoise)
    training.check_add_noise_in_loop(ok, CFG, X0, EPS, 2, 0)  # img2img (no step yet): both agree
    training.check_add_noise_in_loop(bad, CFG, X0, EPS, 2, 0)
    training.check_add_noise_in_loop(ok, CFG, X0, EPS, 2, 3)
    with pytest.raises(AssertionError, match="add_noise in the loop"):
        training.check_add_noise_in_loop(bad, CFG, X0, EPS, 2, 3)


def test_add_noise_catches_a_rank_assumption():
    cfg = SamplerConfig("ddpm", rescale=True)
    x0, eps, t = np.full((2, 3), 0.5), np.full((2, 3), -1.0), np.array([999, 10])
    training.check_add_noise(DiffusersImplementation(), cfg, x0, eps, t)
    with pytest.raises((AssertionError, RuntimeError, IndexError)):
        training.check_add_noise(DiffusersImplementation(ddpm=RankFourOnlyAddNoise), cfg, x0, eps, t)


def test_min_snr_catches_the_plus_one_v_weight():
    cfg = SamplerConfig("ddpm", rescale=True, prediction_type="v_prediction")
    t = np.array([999, 500, 10])
    training.check_min_snr_weights(DiffusersImplementation(), cfg, t, 5.0)
    with pytest.raises(AssertionError, match="Min-SNR weight"):
        training.check_min_snr_weights(MinSnrPlusOne(), cfg, t, 5.0)


class SigmaVelocity(EulerDiscreteScheduler):
    """Euler's get_velocity at the level of the timestep given (from σ at its index), which is
    what the v target needs; diffusers 0.42.1 reads alphas_cumprod at the step index instead."""

    def get_velocity(self, sample, noise, timesteps):
        idx = [self.index_for_timestep(t, self.timesteps) for t in timesteps]
        sigma = self.sigmas[idx].to(sample.dtype).reshape(-1, *([1] * (sample.ndim - 1)))
        scale = (sigma**2 + 1) ** -0.5
        return scale * noise - sigma * scale * sample


def test_velocity_of_the_euler_family_at_its_own_level():
    """The check accepts a get_velocity taken at the timestep's level and rejects diffusers' (the
    declared deviation euler-get-velocity-step-index): ᾱ at step index 0 is ᾱ_0, not ᾱ_999."""
    cfg = SamplerConfig("euler", spacing="trailing", num_inference_steps=10, rescale=False)
    picks = np.array([0, 3])
    training.check_velocity(DiffusersImplementation(euler=SigmaVelocity), cfg, X0, EPS, picks)
    with pytest.raises(AssertionError, match="v target"):
        training.check_velocity(DiffusersImplementation(), cfg, X0, EPS, picks)
