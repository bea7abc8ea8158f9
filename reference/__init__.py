"""zsnr's float64 reference ("oracle") of diffusion noise schedules and samplers.

Pure NumPy, vectorised, finite at t = T with zero terminal SNR. Import the pieces you need as a
gold standard in your own tests::

    from reference import make_schedule, timesteps, ddim_step
"""

from .gaussian import gaussian_denoiser, optimal_x0, sampler_moments, terminal_marginal
from .guidance import classifier_free_guidance, guided_prediction, per_sample_std, rescale_guidance
from .loop import SAMPLERS, alpha_bars_from_sigmas, loop_alpha_bars, sample_loop, step_map
from .parameterization import PREDICTION_TYPES, add_noise, convert, predict_x0_and_eps, velocity
from .samplers import (
    VARIANCE_TYPES,
    ancestral_sigmas,
    ddim_noise_scale,
    ddim_step,
    ddpm_step,
    ddpm_variance,
    euler_ancestral_step,
    euler_churn,
    euler_step,
)
from .schedules import (
    BETA_SCHEDULES,
    COMFYUI_FLOOR,
    DIFFUSERS_EULER_FLOOR,
    Schedule,
    make_betas,
    make_schedule,
    rescale_zero_terminal_snr,
    rescale_zero_terminal_snr_betas,
    rescale_zero_terminal_snr_sigmas,
    with_terminal_floor,
)
from .spacing import (
    SPACINGS,
    euler_sigmas,
    fractional_timesteps,
    from_paper_timesteps,
    karras_sigmas,
    sigma_at,
    timesteps,
    to_paper_timesteps,
)

__all__ = [name for name in dir() if not name.startswith("_") and name not in {
    "gaussian", "guidance", "loop", "parameterization", "samplers", "schedules", "spacing"}]
