"""zsnr's float64 reference ("oracle") of diffusion noise schedules and samplers.

Pure NumPy, vectorised, finite at t = T with zero terminal SNR. Import the pieces you need as a
gold standard in your own tests::

    from reference import make_schedule, timesteps, ddim_step
"""

from .gaussian import gaussian_denoiser, optimal_x0, sampler_moments, terminal_marginal
from .guidance import classifier_free_guidance, guided_prediction, per_sample_std, rescale_guidance
from .loop import SAMPLERS, alpha_bars_from_sigmas, loop_alpha_bars, sample_loop, step_map
from .parameterization import (
    PREDICTION_TYPES,
    EpsilonAtZeroSNR,
    add_noise,
    convert,
    predict_x0_and_eps,
    velocity,
)
from .samplers import (
    VARIANCE_TYPES,
    ancestral_sigmas,
    ddim_noise_scale,
    ddim_step,
    ddpm_step,
    ddpm_variance,
    dynamic_threshold,
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
from .training import (
    LOSS_WEIGHTINGS,
    add_noise_sigma,
    equivalent_loss_weight,
    loss_weight,
    snr,
    training_target,
)

__all__ = [
    "BETA_SCHEDULES",
    "COMFYUI_FLOOR",
    "DIFFUSERS_EULER_FLOOR",
    "LOSS_WEIGHTINGS",
    "PREDICTION_TYPES",
    "SAMPLERS",
    "SPACINGS",
    "VARIANCE_TYPES",
    "EpsilonAtZeroSNR",
    "Schedule",
    "add_noise",
    "add_noise_sigma",
    "alpha_bars_from_sigmas",
    "ancestral_sigmas",
    "classifier_free_guidance",
    "convert",
    "ddim_noise_scale",
    "ddim_step",
    "ddpm_step",
    "ddpm_variance",
    "dynamic_threshold",
    "equivalent_loss_weight",
    "euler_ancestral_step",
    "euler_churn",
    "euler_sigmas",
    "euler_step",
    "fractional_timesteps",
    "from_paper_timesteps",
    "gaussian_denoiser",
    "guided_prediction",
    "karras_sigmas",
    "loop_alpha_bars",
    "loss_weight",
    "make_betas",
    "make_schedule",
    "optimal_x0",
    "per_sample_std",
    "predict_x0_and_eps",
    "rescale_guidance",
    "rescale_zero_terminal_snr",
    "rescale_zero_terminal_snr_betas",
    "rescale_zero_terminal_snr_sigmas",
    "sample_loop",
    "sampler_moments",
    "sigma_at",
    "snr",
    "step_map",
    "terminal_marginal",
    "timesteps",
    "to_paper_timesteps",
    "training_target",
    "velocity",
    "with_terminal_floor",
]
