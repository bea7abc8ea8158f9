"""Standalone reproductions of every deviation declared for k-diffusion 0.1.1.post1
(:mod:`.kdiffusion_deviations`).

Each function is a few lines of k-diffusion + torch + NumPy (and at most one call into
``reference`` for the correct value), independent of the conformance suite's machinery. It prints
what k-diffusion returns and what it should return, and returns True while k-diffusion still
computes the deviant value. ``python -m properties.adapters.kdiffusion_repro`` runs them all (in
the k-diffusion venv, see README "k-diffusion and skrample"); exit code 0 iff every one
reproduces. Checked against k-diffusion 0.1.1.post1 with torch 2.14.1 (CPU, float32).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import torch

with warnings.catch_warnings():  # clip (imported by k_diffusion/__init__) warns about pkg_resources
    warnings.simplefilter("ignore")
    from k_diffusion import external, sampling

import reference

from ._repro import run_reproductions

U32 = 2.0**-24  # float32 unit roundoff


def _zero_snr_alphas_cumprod(T: int = 1000) -> torch.Tensor:
    """Stable Diffusion's schedule rescaled to zero terminal SNR (Algorithm 1), as a float32 table."""
    return torch.tensor(reference.make_schedule("scaled_linear", T, rescale=True).alphas_cumprod, dtype=torch.float32)


class _ConstantModel(torch.nn.Module):
    """A stand-in network: returns the same output whatever it is given."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out.expand_as(x)


def _show(label: str, value) -> None:
    print(f"  {label:<12} {value}")


def discrete_schedule_nan_at_T() -> bool:
    print("  config       DiscreteVDDPMDenoiser(ᾱ of SD rescaled to zero SNR, T = 1000).get_sigmas(10)")
    den = external.DiscreteVDDPMDenoiser(_ConstantModel(torch.zeros(1)), _zero_snr_alphas_cumprod(), quantize=False)
    sig = den.get_sigmas(10)
    _show("k-diffusion", f"σ[:3] = {sig[:3].tolist()}  (t_to_sigma(999): (1 - 0)·log σ_999 + 0·log σ_999 = ∞ + 0·∞)")
    _show("oracle", f"σ_999 = {reference.make_schedule('scaled_linear', 1000, rescale=True).euler_sigma[-1]}")
    return bool(torch.isnan(sig[0])) and bool(torch.isinf(den.sigmas[-1]))


def v_scalings_nan_at_infinite_sigma() -> bool:
    print("  config       DiscreteVDDPMDenoiser.get_scalings(σ = ∞), v̂ = 1")
    den = external.DiscreteVDDPMDenoiser(_ConstantModel(torch.ones(1)), _zero_snr_alphas_cumprod(), quantize=False)
    c_skip, c_out, c_in = den.get_scalings(torch.tensor(math.inf))
    _show("k-diffusion", f"c_skip = {c_skip.item()}, c_out = {c_out.item()} (-∞/∞), c_in = {c_in.item()}")
    # the x̂₀ of v-prediction at ᾱ = 0 is -v̂ whatever x_t (x̂₀ = √ᾱ·x_t - √(1-ᾱ)·v̂)
    x0, _ = reference.predict_x0_and_eps(np.array([0.5]), np.array([1.0]), "v_prediction", 0.0)
    _show("oracle", f"c_out → -1 as σ → ∞ (-σ/√(σ²+1)); x̂₀ = {x0[0]} for v̂ = 1")
    return bool(torch.isnan(c_out)) and c_skip.item() == 0.0 and c_in.item() == 0.0


def euler_step_from_infinite_sigma_nan() -> bool:
    print("  config       sample_euler(denoiser returning x̂₀ = 0.25, x = z·σ_0, sigmas = [∞, 15.96, 0]) (zero SNR, S = 2 of 10)")
    z = torch.tensor([0.5])

    def exact_denoiser(x, sigma):
        return torch.full_like(x, 0.25)  # any finite x̂₀: the state itself is the problem

    sig = torch.tensor([math.inf, 15.960121, 0.0])
    out = sampling.sample_euler(exact_denoiser, z * sig[0], sig[:2], disable=True)
    # the limit: x_next = x̂₀ + σ_next·(x - x̂₀)/σ → x̂₀ + σ_next·z
    want = 0.25 + 15.960121 * 0.5
    _show("k-diffusion", f"x = z·∞ = {(z * sig[0]).item()}; d = (x - x̂₀)/σ = ∞/∞; after one step: {out.item()}")
    _show("oracle", f"{want:.6f} (x̂₀ + σ_next·z, the limit of x̂₀ + σ_next·(x - x̂₀)/σ)")
    return bool(torch.isnan(out).all())


def epsilon_at_infinite_sigma_silent() -> bool:
    print("  config       DiscreteEpsDDPMDenoiser(zero-SNR ᾱ)(x = 1, σ = ∞), ε̂ = 0.5")
    den = external.DiscreteEpsDDPMDenoiser(_ConstantModel(torch.tensor([0.5])), _zero_snr_alphas_cumprod(),
                                           quantize=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = den(torch.tensor([1.0]), torch.tensor([math.inf]))
    _show("k-diffusion", f"x̂₀ = {out.item()}, no error, {len(caught)} warnings")
    try:
        reference.predict_x0_and_eps(np.array([1.0]), np.array([0.5]), "epsilon", 0.0)
        refused = False
    except reference.EpsilonAtZeroSNR as exc:
        refused = True
        _show("oracle", f"raises EpsilonAtZeroSNR: {str(exc).splitlines()[0][:90]}")
    return refused and not bool(torch.isfinite(out).all()) and not caught


def churn_noise_cancellation() -> bool:
    print("  config       sample_euler's churn noise √(σ̂² - σ²) with σ = 1, γ = 1e-4 (s_churn = 1e-3, S = 10), float32 σ")
    sigma, gamma = torch.tensor(1.0), 1e-4
    sigma_hat = sigma * (gamma + 1)
    got = ((sigma_hat**2 - sigma**2) ** 0.5).item()
    want = math.sqrt(gamma * (2 + gamma))
    rel = abs(got - want) / want
    _show("k-diffusion", f"{got!r}  (relative error {rel:.2e} = {rel / U32:.0f} u)")
    _show("oracle", f"σ·√(γ(2+γ)) = {want!r}")
    return rel > 100 * U32


def log_linear_sigmas() -> bool:
    print("  config       DiscreteEpsDDPMDenoiser(ᾱ of SD, T = 20, no rescale).get_sigmas(3): t = 19, 9.5, 0")
    sched = reference.make_schedule("scaled_linear", 20)
    den = external.DiscreteEpsDDPMDenoiser(_ConstantModel(torch.zeros(1)),
                                           torch.tensor(sched.alphas_cumprod, dtype=torch.float32), quantize=False)
    got = den.get_sigmas(3)[1].item()
    lin, log = (float(reference.sigma_at(sched, 9.5, how)) for how in ("linear", "log_linear"))
    _show("k-diffusion", f"σ(9.5) = {got!r}")
    _show("oracle", f"σ linear in t (diffusers' Euler default): {lin!r}; log σ linear in t: {log!r}")
    return abs(got - log) <= 1e-6 * log < abs(got - lin)


def linspace_one_step_at_T() -> bool:
    print("  config       DiscreteVDDPMDenoiser(ᾱ of SD, T = 1000, no rescale).get_sigmas(1)")
    sched = reference.make_schedule("scaled_linear", 1000)
    den = external.DiscreteVDDPMDenoiser(_ConstantModel(torch.zeros(1)),
                                         torch.tensor(sched.alphas_cumprod, dtype=torch.float32), quantize=False)
    sig = den.get_sigmas(1)
    t = torch.linspace(999, 0, 1)
    _show("k-diffusion", f"t = {t.tolist()}, σ = {sig.tolist()}  (one step from σ_max)")
    want = reference.fractional_timesteps("linspace", 1000, 1)
    _show("oracle", f"linspace S = 1 (diffusers' np.linspace(0, T-1, 1)): t = {want.tolist()}, σ = "
          f"{reference.euler_sigmas(sched, want, 'log_linear').tolist()}")
    return t.tolist() == [999.0] and want.tolist() == [0.0]


def float32_linspace_timesteps() -> bool:
    print("  config       get_sigmas(10) of a T = 4000 schedule: t = torch.linspace(3999, 0, 10) (float32)")
    got = torch.linspace(3999, 0, 10)[4].item()
    exact = 5 * 3999 / 9
    nearest = float(np.float32(exact))
    _show("k-diffusion", f"t_4 = {got!r}  ({abs(got - exact) / np.spacing(np.float32(exact)):.2f} float32 ULP from exact)")
    _show("oracle", f"t_4 = 5·3999/9 = {exact!r}; the nearest float32 is {nearest!r}")
    return got != nearest


#: each declared deviation's reproduction; the three "…at ∞" ones are the defects behind the NaN σ
#: of kdiffusion-discrete-schedule-nan-at-T, which masks them in the suite (its reason names them)
REPRODUCTIONS = {
    "kdiffusion-discrete-schedule-nan-at-T": discrete_schedule_nan_at_T,
    "kdiffusion-discrete-schedule-nan-at-T: v scalings at ∞": v_scalings_nan_at_infinite_sigma,
    "kdiffusion-discrete-schedule-nan-at-T: the state at ∞": euler_step_from_infinite_sigma_nan,
    "kdiffusion-discrete-schedule-nan-at-T: ε at ∞, silent": epsilon_at_infinite_sigma_silent,
    "kdiffusion-log-linear-sigmas": log_linear_sigmas,
    "kdiffusion-linspace-one-step-at-T": linspace_one_step_at_T,
    "kdiffusion-float32-linspace-timesteps": float32_linspace_timesteps,
    "kdiffusion-churn-noise-cancellation": churn_noise_cancellation,
}


def main() -> int:
    return run_reproductions(REPRODUCTIONS)


if __name__ == "__main__":
    sys.exit(main())
