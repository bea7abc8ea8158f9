"""Known deviations of diffusers (checked against 0.42.1) from the oracle: zsnr's expected-failures
file for diffusers. Each deviation carries a *model*: what diffusers computes instead, as
replacements of named pieces of the oracle's expectation (properties/expected.py). Inside its
region the implementation is compared with that deviant expectation under the same derived
tolerances (plus, for a cancellation, a stated and derived widening); the strict reproduction
(test_deviations.py) requires the model's values on each example, and
``python -m properties.adapters.diffusers_repro`` quotes each model next to diffusers' output.
"""

from __future__ import annotations

import math

import numpy as np

from reference import (
    DIFFUSERS_EULER_FLOOR,
    ddim_noise_scale,
    euler_sigmas,
    fractional_timesteps,
    make_schedule,
)
from reference import timesteps as oracle_timesteps

from .. import expected, tolerances
from ..contract import SamplerConfig
from ..deviations import NON_FINITE, RAISES, Deviation
from ..expected import _conversion, _index_in, _sigma_table_at
from .diffusers import ThresholdRankCrash

SRC = "https://github.com/huggingface/diffusers/blob/main/src/diffusers/schedulers/"
ALL = ("ddpm", "ddim", "euler", "euler_ancestral")
U = tolerances.U_FLOAT32
F32 = np.float32


def _t32(v):
    """A 0-dim float32 torch tensor: diffusers' scalar arithmetic is torch's (its pow(·, 0.5) is not
    always numpy's correctly rounded sqrt), so the models evaluate its float32 radicands with torch."""
    import torch

    return torch.tensor(float(v), dtype=torch.float32)


def _float_spacing(c: SamplerConfig) -> np.ndarray:
    """diffusers' own spacing formulas (DDPM/DDIM/Euler set_timesteps), evaluated in floating point."""
    T, S = c.num_train_timesteps, c.num_inference_steps
    if c.spacing == "linspace":
        return np.linspace(0, T - 1, S).round()[::-1].astype(np.int64)
    if c.spacing == "leading":
        return (np.arange(0, S) * (T // S)).round()[::-1].astype(np.int64) + c.steps_offset
    return np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1


# --- models: what diffusers computes, as pieces of the expectation (fn(E, ...)) ---------------------


def _converted_sigmas(c: SamplerConfig) -> bool:
    """A converted σ schedule (Karras, exponential, Beta) or continuous timesteps (the Euler family)."""
    return c.sampler in expected.VE_SAMPLERS and (expected.sigma_schedule(c) != "timesteps" or expected.continuous(c))


def _spacing(c: SamplerConfig) -> np.ndarray:
    """diffusers' spacing timesteps: its float formulas; the Euler family keeps linspace fractional."""
    if c.sampler in expected.VE_SAMPLERS and c.spacing == "linspace":
        return expected.spacing_timesteps(c)
    return _float_spacing(c).astype(np.float64)


def _diffusers_converted(E, c):
    """(timesteps, σ) of EulerDiscreteScheduler.set_timesteps with a converted σ schedule or
    continuous timesteps, from the model's ᾱ table: σ at its spacing timesteps (np.interp of the
    float32 table; log_linear: its S+1 log-spaced σ) give σ_max = first and σ_min = last, the S
    Karras / exponential / Beta σ between them, t(σ) on the float32 ln σ table (which, where the
    floor rises above σ_{T-2}, can map σ_max = 4096 to the t where the table first passes 4096, not
    to T-1: float32's ln 4096 rounds up); timestep_type="continuous" only for v_prediction (¼·ln σ),
    else those timesteps."""
    abar = E.alphas_cumprod(c)
    ts = _spacing(c)
    plain = m_chain_sigmas(E, c.with_options(use_karras_sigmas=False, use_exponential_sigmas=False,
                                             use_beta_sigmas=False, timestep_type="discrete"), abar, ts)
    base = plain[:-1]
    if c.prediction_type != "v_prediction":
        c = c.with_options(timestep_type="discrete")
    import torch

    with np.errstate(divide="ignore", invalid="ignore"):  # _sigma_to_t's float32 ln σ table
        a32 = torch.tensor(np.asarray(abar, np.float64), dtype=torch.float32)
        log_table = np.log((((1 - a32) / a32) ** 0.5).numpy())
    t_out, sig = expected.converted_from_table(c, abar, ts, base=base, log_table=log_table)
    if _float32_exponential() and expected.sigma_schedule(c) == "exponential" and np.all(np.isfinite(base[[0, -1]])):
        # diffusers 0.31: _convert_to_exponential is torch.linspace(ln σ_max, ln σ_min, S).exp(), in
        # float32, and _sigma_to_t takes ln σ of those float32 σ in float32: ln 4096 rounds up as the
        # table's own ln σ_{T-1} does, so σ_max = 4096 maps to T-1 (0.32+: float64 σ and ln σ, below
        # the table's float32 ln 4096, mapped where the floored table first passes it)
        sig32 = torch.linspace(math.log(float(base[0])), math.log(float(base[-1])), c.num_inference_steps).exp()
        sig[:-1] = sig32.double().numpy()
        if expected.continuous(c):
            t_out = expected._c_noise(sig[:-1])
        else:
            t_out = expected._t_from_sigma_table(abar, sig[:-1], log_table,
                                                 log_sigma=torch.log(torch.clamp(sig32, min=1e-10)).double().numpy())
    sig[-1] = plain[-1]  # the final σ as diffusers forms it: 0, or float32 ((1 - ᾱ_0)/ᾱ_0)^0.5
    return t_out, sig


def _float32_exponential() -> bool:
    """diffusers < 0.32: the exponential σ (from 0.31) are float32 torch, and so is ln σ in t(σ)
    (PR #9954, fixing #9951, made them NumPy float64 in 0.32.0)."""
    return _installed_before("0.32")


def m_timesteps(E, c):
    """MODEL timesteps: diffusers' float formulas (round(arange(T, 0, -T/S)) - 1, ...); the Euler
    family keeps linspace fractional (the oracle's); with a converted σ schedule t(σ) of those σ
    (_diffusers_converted), with timestep_type="continuous" ¼·ln σ for v_prediction only."""
    if _converted_sigmas(c):
        return _diffusers_converted(E, c)[0]
    return _spacing(c)


def m_lcm_timesteps(E, c):
    """MODEL LCM/TCD timesteps: (T // 50)·k - 1 (k = 1..50) reversed, at floor(linspace(0, 50, S, endpoint=False))."""
    origin = (np.arange(1, 51) * (c.num_train_timesteps // 50) - 1)[::-1]
    idx = np.floor(np.linspace(0, origin.size, num=c.num_inference_steps, endpoint=False)).astype(np.int64)
    return origin[idx].astype(np.float64)


def m_vp_levels(E, c, abar, i):
    """MODEL levels of step i: DDIM steps to t - T//S (ᾱ_final below 0); DDPM to the next scheduled
    timestep (1 after the last, or when it is negative); t = -1 reads ᾱ[-1]."""
    ts = E.timesteps(c).astype(np.int64)
    t = ts[i]
    a_t = float(abar[t])
    if c.sampler == "ddim" or (c.sampler == "ddpm" and _ddpm_strides()):
        prev = t - c.num_train_timesteps // c.num_inference_steps
        return a_t, float(abar[prev]) if prev >= 0 else E.final_alpha_bar(c, abar)
    nxt = ts[i + 1] if i + 1 < ts.size else -1
    return a_t, float(abar[nxt]) if nxt >= 0 else E.final_alpha_bar(c, abar)


def _installed_release() -> str | None:
    try:
        from .diffusers import diffusers_version
        return diffusers_version()
    except ImportError:  # diffusers not installed: the models of the current release
        return None


def _installed_before(release: str) -> bool:
    """Whether the installed diffusers is older than ``release`` (False without diffusers: the
    models of the current release)."""
    from packaging.version import Version

    v = _installed_release()
    return v is not None and Version(v) < Version(release)


def _ddpm_strides() -> bool:
    """diffusers < 0.32: DDPMScheduler.previous_timestep is t - T//S, as DDIM's step (PR #9384)."""
    return _installed_before("0.32")


def m_alphas_cumprod(E, c):
    """MODEL ᾱ: the oracle's; where it leaves float32's normal range, diffusers' float32 values
    (m_float32_schedule); and for the floored schedulers ᾱ_T = 2⁻²⁴ after the zero-SNR rescale
    (σ_T = 4096)."""
    abar = m_float32_schedule(E, c) if _float32_underflow(c) else E.oracle.alphas_cumprod(c).copy()
    if c.rescale and c.sampler in FLOORED + ("euler", "euler_ancestral"):
        abar[-1] = DIFFUSERS_EULER_FLOOR
    return abar


def m_chain_sigmas(E, c, abar, ts):
    """MODEL σ from the implementation's own ᾱ table as diffusers forms them: np.interp of the float32
    table √((1-ᾱ)/ᾱ) at the timesteps (inf - inf = NaN between two ᾱ = 0), or the log-linear σ."""
    if expected.continuous(c) and c.prediction_type == "v_prediction":  # σ = exp(4t) of c_noise = ¼·ln σ
        return expected._p_chain_sigmas(E, c, abar, ts)
    if expected.sigma_schedule(c) != "timesteps":  # t(σ) is log-linear: σ = the table's log-linear σ at t
        return expected._p_chain_sigmas(E, c.with_options(timestep_type="discrete"), abar, ts)
    if c.option("interpolation_type", "linear") == "log_linear":
        return _log_linear(c, abar)
    import torch

    with np.errstate(divide="ignore", invalid="ignore"):
        a32 = torch.tensor(np.asarray(abar, np.float64), dtype=torch.float32)
        table = (((1 - a32) / a32) ** 0.5).numpy()
        sig = np.interp(np.asarray(ts, np.float64), np.arange(table.size), table)
    final = 0.0 if c.option("final_sigmas_type", "zero") == "zero" else float(table[0])
    return np.concatenate([sig, [final]])


def _diffusers_rescale_f32(abar32: np.ndarray) -> np.ndarray:
    """diffusers' rescale_zero_terminal_snr and running product, in float32 (its own formulas)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(abar32.astype(F32))
        s0, sT = s[0], s[-1]
        s = (s - sT) * (s0 / (s0 - sT))
        ab = s * s
        alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]]).astype(F32)
        return np.cumprod((F32(1) - (F32(1) - alphas)).astype(np.float64)).astype(F32)


def m_float32_schedule(E, c):
    """MODEL ᾱ: the oracle's ᾱ rounded to float32 (subnormal, or 0 below 2⁻¹⁵⁰); with the rescale,
    diffusers' float32 rescale of those values: 0/0 = NaN from the first ᾱ_{t-1} = 0 on."""
    plain = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end).alphas_cumprod
    if not _float32_underflow(c):
        return E.oracle.alphas_cumprod(c)
    abar32 = plain.astype(F32)
    if not c.rescale:
        return abar32.astype(np.float64)
    return _diffusers_rescale_f32(abar32).astype(np.float64)


def _subnormal_steps(c):
    """Absolute error of a float32 running product below the normal range: each product formed
    there rounds by up to 2⁻¹⁵⁰ absolutely (later factors < 1 only shrink it), so by
    2⁻¹⁵⁰·(1 + the number of subnormal steps so far)."""
    plain = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end).alphas_cumprod
    return 2.0**-150 * (1 + np.cumsum(plain < 2.0**-126))


def m_float32_schedule_abs(E, c):
    """WIDENING of ᾱ, absolute: the subnormal rounding of the float32 running product
    (_subnormal_steps), plus for the rescale the float32 bound of its two running products,
    (t+1)·u·3 + the plain product's, relative to the model's ᾱ."""
    model = E.alphas_cumprod(c)
    if not c.rescale:
        return _subnormal_steps(c)
    base = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end)
    rel = tolerances.alphas_cumprod_relative(base.betas) + 3 * U * np.arange(1, model.size + 1)
    return np.where(np.isfinite(model), rel * np.abs(model), 0.0) + _subnormal_steps(c)


def m_float32_unchecked(E, c, abar, levels):
    """MODEL: a step at NaN or non-increasing levels has no value to compare -- excused only if the
    implementation's whole ᾱ table is the model's (NaN where it is NaN, within its bounds)."""
    want = E.alphas_cumprod(c)
    abar = np.asarray(abar, np.float64)
    if want.shape != abar.shape or not np.array_equal(np.isnan(want), np.isnan(abar)):
        return False
    fin = np.isfinite(want)
    rel = tolerances.alphas_cumprod_relative(make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start,
                                                           c.beta_end).betas) + 3 * U * np.arange(1, want.size + 1)
    return bool(np.all(np.abs(abar[fin] - want[fin]) <= rel[fin] * np.abs(want[fin]) + _subnormal_steps(c)[fin]))


def m_ddim_coefficients(E, c, levels):
    """MODEL (c_ε, s) of DDIM: s as the oracle's; c_ε = (1 - ᾱ_prev - std²)^0.5 is NaN exactly where
    diffusers' float32 radicand (its own operations on its own ᾱ) is < 0, else the exact c_ε
    (its loss: the widening below)."""
    a_t, a_p = levels
    eta = float(c.option("eta", 0.0))
    c_eps, s = ddim_noise_scale(a_t, a_p, eta)
    t32, p32 = _t32(a_t), _t32(a_p)
    var = ((1 - p32) / (1 - t32)) * (1 - t32 / p32)  # DDIMScheduler._get_variance
    std = eta * var ** (0.5)
    radicand = float(1 - p32 - std**2)
    return (math.nan if not radicand >= 0 else c_eps), s


def m_ddim_widening(E, c, i, levels, x, out, z, pv, u):
    """WIDENING of the DDIM step: the radicand r = (1-ᾱ_prev) - std² formed in float32 errs by
    δr <= 12u·((1-ᾱ_prev) + std²) (1-ᾱ_prev: 1 rounding; std² = η²·var: 5 for var, 3 for η·√ and the
    square; 2 subtractions), so c_ε = √r errs by <= min(√δr, δr/(2c_ε)) -- times |ε̂|."""
    a_t, a_p = levels
    c_eps, s = ddim_noise_scale(a_t, a_p, float(c.option("eta", 0.0)))
    dr = 12 * u * ((1 - a_p) + s * s)
    dc = min(math.sqrt(dr), dr / (2 * c_eps)) if c_eps > 0 else math.sqrt(dr)
    (kx, km) = _conversion(c.prediction_type, a_t)[1]
    return dc * (abs(kx) * np.abs(x) + abs(km) * np.abs(out))


def m_fixed_large_log_std(E, c, a_t, a_p, pv):
    """MODEL DDPM std for fixed_large_log: (log β)^0.5 of diffusers' float32 β = 1 - ᾱ_t/ᾱ_prev:
    NaN for β < 1, 0 at β = 1; none on a last step that lands on ᾱ = 1 at t = 0."""
    import torch

    if a_p == 1.0:
        return 0.0
    return float(torch.log(1 - _t32(a_t) / _t32(a_p)) ** 0.5)


def _last_step_std(c, a_t, pv):
    """diffusers' noise std on a last step at t > 0 (ᾱ_prev = 1, β̃ = 0 clamped to 1e-20)."""
    vt = c.option("variance_type", "fixed_small")
    beta = 1.0 - a_t
    if vt in ("fixed_small", "fixed_small_log"):
        return 1e-10
    if vt == "fixed_large":
        return math.sqrt(beta)
    if vt == "fixed_large_log":
        import torch

        return float(torch.log(1 - _t32(a_t)) ** 0.5)
    if vt == "learned":
        return np.sqrt(np.asarray(pv, np.float64))
    frac = (np.asarray(pv, np.float64) + 1) / 2
    return np.exp(0.5 * (frac * math.log(beta) + (1 - frac) * math.log(1e-20)))


def _lands_clean_at_positive_t(E, c, i, levels):
    t = E.timesteps(c)[i]
    return levels[1] == 1.0 and t > 0


def m_ddpm_noise_std(E, c, i, levels, pv):
    """MODEL DDPM noise: a step at t > 0 that lands on ᾱ = 1 (the last, or the one before the
    extra t = -1 step) adds noise of std √β (fixed_large), √pv (learned), β^(f/2)·1e-10^(1-f)
    (learned_range), 1e-10 (fixed_small[_log]), (log β)^0.5 (fixed_large_log); a step at t <= 0
    adds none; elsewhere the std as modelled."""
    if _lands_clean_at_positive_t(E, c, i, levels):
        return _last_step_std(c, levels[0], pv)
    if E.timesteps(c)[i] <= 0:
        return 0.0
    return E.ddpm_std(c, levels[0], levels[1], pv)


def m_ddpm_last_widening(E, c, i, levels, x, out, z, pv, u):
    """WIDENING: the added noise term is a term of the step like any other: STEP_OPS·u·|std·z|, plus
    2u·|log std|·|std·z| (the *_log and learned_range types form std = exp(½·log v): log's absolute
    error u·|log v| becomes a relative one), plus its level sensitivity LEVEL_OPS·u·|∂std/∂ln ᾱ_t|·|z|
    (√β: ᾱ_t/(2√β))."""
    if not _lands_clean_at_positive_t(E, c, i, levels) or z is None:
        return 0.0
    std = np.abs(np.asarray(_last_step_std(c, levels[0], pv), np.float64))
    sens = levels[0] / (2 * math.sqrt(1 - levels[0])) if levels[0] < 1 else 0.0
    with np.errstate(invalid="ignore"):
        logs = np.abs(np.log(np.where(std > 0, std, 1.0)))
        if c.option("variance_type") == "learned_range" and pv is not None:
            # log v = f·log β + (1-f)·log 1e-20 with f = (pv + 1)/2 rounded: the absolute error is u
            # times its terms plus f's own rounding times |log β - log 1e-20| (≈ 46 at β ≈ 1, where
            # log v itself is small); std = exp(½·log v) halves it: this replaces |log std|
            frac = (np.asarray(pv, np.float64) + 1) / 2
            lb, lm = math.log(1.0 - levels[0]), math.log(1e-20)
            logs = 0.5 * (np.abs(frac * lb) + np.abs((1 - frac) * lm) + np.abs(frac) * abs(lb - lm))
        return np.nan_to_num((tolerances.STEP_OPS + 2 * logs) * u * std * np.abs(z)) \
            + tolerances.LEVEL_OPS * u * sens * np.abs(z)


def m_ancestral_sigmas(E, c, sigma, sigma_next):
    """MODEL (σ_down, σ_up) of Euler ancestral: diffusers' σ_up = (σ_to²(σ_from² - σ_to²)/σ_from²)^0.5
    and σ_down = (σ_to² - σ_up²)^0.5 in float32 are NaN exactly where their float32 radicands are
    < 0 (σ rising, or the cancellation of σ_down); else the exact values (the loss: the widening)."""
    f, t = _t32(sigma), _t32(sigma_next)
    up2 = t**2 * (f**2 - t**2) / f**2  # EulerAncestralDiscreteScheduler.step
    r = float(t**2 - up2)
    up2 = float(up2)
    if sigma_next > sigma:
        return math.nan, math.nan
    down, up = E.oracle.ancestral_sigmas(c, sigma, sigma_next)
    return (math.nan if not r >= 0 else down), (math.nan if not up2 >= 0 else up)


def m_ancestral_widening(E, c, i, levels, x, out, z, pv, u):
    """WIDENING of the Euler ancestral step: σ_down² = σ_to² - σ_up² formed in float32 errs by
    δr <= 8u·σ_to² (σ_to²: u; σ_up² = σ_to²(σ_from² - σ_to²)/σ_from²: 6u·σ_to²; the subtraction: u),
    i.e. ~u·(σ_from/σ_to)² relative; σ_down errs by min(√δr, δr/(2σ_down)) -- times |d| = |x - x̂₀|/σ."""
    sigma, sigma_next = levels
    if sigma_next >= sigma or math.isinf(sigma):
        return 0.0
    down, _ = E.oracle.ancestral_sigmas(c, sigma, sigma_next)
    dr = 8 * u * sigma_next**2
    dd = min(math.sqrt(dr), dr / (2 * down)) if down > 0 else math.sqrt(dr)
    x0 = expected._ve_conversion(c.prediction_type, x, out, sigma)
    return dd * np.abs((np.asarray(x, np.float64) - x0) / sigma)


def m_sigmas(E, c):
    """MODEL Euler σ as diffusers forms them from the (modelled) ᾱ and timesteps: see m_chain_sigmas
    (for interpolation_type='log_linear': exp(linspace(log σ(T-1), log σ(0), S+1)), ignoring the
    timesteps, then the final σ: S+2 values); converted σ schedules: _diffusers_converted."""
    if _converted_sigmas(c):
        return _diffusers_converted(E, c)[1]
    return m_chain_sigmas(E, c, E.alphas_cumprod(c), E.timesteps(c))


def _log_linear(c, abar):
    """diffusers' log-linear σ: torch.linspace(log σ(T-1), log σ(0), S+1).exp() in float32."""
    import torch

    with np.errstate(divide="ignore", invalid="ignore"):
        a32 = torch.tensor(np.asarray(abar, np.float64), dtype=torch.float32)
        table = (((1 - a32) / a32) ** 0.5).numpy()
        sig = torch.linspace(float(np.log(table[-1])), float(np.log(table[0])), c.num_inference_steps + 1).exp()
    final = 0.0 if c.option("final_sigmas_type", "zero") == "zero" else float(table[0])
    return np.concatenate([sig.double().numpy(), [final]])


def m_log_linear_churn_steps(E, c):
    """MODEL: the churn's γ = s_churn/(len(sigmas) - 1) counts the S+1 log-linear steps (S with a
    converted σ schedule, which has S σ before the final one)."""
    return c.num_inference_steps + (0 if expected.sigma_schedule(c) != "timesteps" else 1)


def m_v_converts_with_sigma(E, c, sigma, sigma_hat):
    """MODEL Euler with churn: v-prediction converted at σ (where the model was evaluated), not σ̂."""
    return sigma if c.prediction_type == "v_prediction" else sigma_hat


def m_churn_widening(E, c, i, levels, x, out, z, pv, u):
    """WIDENING of the churn: the noise scale (σ̂² - σ²)^0.5 with σ̂ = fl(σ·fl(1+γ)) errs by
    ([5(1+γ)² + 1]·u/(γ(2+γ)) + u)/2 + u relative (σ̂ 2 roundings, two squares, the difference), times
    |z|·σ·√(γ(2+γ))·s_noise, carried by the step's gain on x̂ (<= 1 + 2|σ_next - σ̂|/σ̂)."""
    sigma, sigma_next = levels
    gamma = min((c.option("s_churn") or 0) / c.num_inference_steps, math.sqrt(2) - 1) \
        if c.option("s_tmin", 0.0) <= sigma <= c.option("s_tmax", math.inf) else 0.0
    if gamma == 0 or z is None or math.isinf(sigma):
        return 0.0
    rel = ((5 * (1 + gamma) ** 2 + 1) * u / (gamma * (2 + gamma)) + u) / 2 + u
    sh = sigma * (1 + gamma)
    gain = 1 + 2 * abs(sigma_next - sh) / sh
    return gain * rel * c.option("s_noise", 1.0) * sigma * math.sqrt(gamma * (2 + gamma)) * np.abs(z)


def m_model_before_churn(E, c):
    """MODEL loop: the model is evaluated at (x, σ), before step() adds the churn noise."""
    return "before_churn"


def _ieee_threshold(x0, ratio, max_value):
    """Dynamic thresholding of an x̂₀ holding ±inf/NaN in IEEE arithmetic, as torch evaluates it: the
    quantile interpolates a + f·(b - a) between order statistics (inf - inf = NaN: an all-inf
    sample's threshold s is NaN, and so is every thresholded value), then clamp and divide."""
    import torch

    t = torch.as_tensor(np.asarray(x0, np.float64))
    flat = t.reshape(t.shape[0], -1)
    s = torch.clamp(torch.quantile(flat.abs(), float(ratio), dim=1), min=1, max=float(max_value)).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(t.shape).numpy()


def m_silent_at_T(E, c, levels, x, out, z, pv, u, sub):
    """MODEL of ε-prediction at zero SNR (no error, no warning): DDPM/DDIM divide by α_t = 0 in IEEE
    arithmetic (x̂₀ = ±inf, NaN where x = ε; clip_sample clamps it to ±1; use_clipped_model_output
    re-derives ε̂ = (x - √ᾱ_t·x̂₀)/√(1-ᾱ_t), NaN for an unclipped ±inf; thresholding: _ieee_threshold,
    NaN where a sample's |x̂₀| quantile interpolates inf - inf); Euler/Euler ancestral step from their floored
    σ_T = 4096 (a finite ε-step). Returns (values, tolerance)."""
    if c.sampler in expected.VE_SAMPLERS:
        want = E.step(c, 0, levels, x, out, z, pv)
        return want, E.step_tolerance(c, 0, levels, x, out, z, pv, u, sub)
    a_t, a_p = levels
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (np.asarray(x, np.float64) - math.sqrt(1 - a_t) * np.asarray(out, np.float64)) / math.sqrt(a_t)
    eps = np.asarray(out, np.float64)
    if c.option("thresholding", False):
        x0 = _ieee_threshold(x0, c.option("dynamic_thresholding_ratio", 0.995), c.option("sample_max_value", 1.0))
    elif c.option("clip_sample", False):
        x0 = np.clip(x0, -1.0, 1.0)
    xs = np.asarray(x, np.float64)
    if c.sampler == "ddpm":
        beta = (a_p - a_t) / a_p
        with np.errstate(invalid="ignore"):
            mean = math.sqrt(a_p) * beta / (1 - a_t) * x0
        std = E.ddpm_noise_std(c, 0, levels, pv)  # step 0: with noise where ddpm-noise-on-last-step adds it
        want = mean + (0.0 if z is None else std * np.asarray(z, np.float64))
    else:
        if c.option("use_clipped_model_output", False):  # diffusers re-derives ε̂ even without clipping
            with np.errstate(invalid="ignore"):
                eps = (xs - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)  # 0·(±inf) = NaN unclipped
        c_eps, s = E.ddim_coefficients(c, levels)
        with np.errstate(invalid="ignore"):
            want = math.sqrt(a_p) * x0 + c_eps * eps + (0.0 if z is None else s * np.asarray(z, np.float64))
    # finite (clipped) results: a step with x̂₀ given, as for prediction_type="sample"
    as_x0 = SamplerConfig(c.sampler, prediction_type="sample", options=c.options)
    x0f = np.where(np.isfinite(x0), x0, 0.0)
    try:
        tol = E.step_tolerance(as_x0, 0, levels, xs, x0f, z, pv, u, sub)
    except ValueError:
        tol = np.zeros(np.shape(xs))
    if c.sampler == "ddim":
        # the as-x₀ step derives ε̂ from x_t; here ε̂ is the model output itself: its term c_ε·ε̂
        # errs by the coefficient's float32 √(1-ᾱ_prev) (2 roundings), the product and the sum
        c_eps = E.ddim_coefficients(c, levels)[0]
        with np.errstate(invalid="ignore"):
            tol = tol + np.nan_to_num(tolerances.STEP_OPS * u * np.abs(c_eps * np.where(np.isfinite(eps), eps, 0.0)))
    # a model's widening of the ε̂ term, with ε̂ as it is here (the model output, or re-derived)
    with np.errstate(invalid="ignore"):
        tol = tol + E.step_widening(c, 0, levels, xs, np.where(np.isfinite(eps), eps, 0.0), z, pv, u)
    return want, tol


# --- regions ----------------------------------------------------------------------------------------


def _trailing_has_extra_step(c: SamplerConfig) -> bool:
    # np.arange with the float step T/S can give S+1 values, the last -1
    return c.spacing == "trailing" and len(_float_spacing(c)) != c.num_inference_steps


def _float_spacing_differs(c: SamplerConfig) -> bool:
    if c.sampler in ("euler", "euler_ancestral") and c.spacing == "linspace":
        return False  # the Euler family keeps linspace unrounded
    got = _float_spacing(c)
    want = oracle_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    return got.shape != want.shape or bool(np.any(got != want))


def _ddim_prev_mismatch(c: SamplerConfig) -> bool:
    # the model's levels (t - T//S) differ from the oracle's next scheduled timestep
    ts = _float_spacing(c)
    prev = ts - c.num_train_timesteps // c.num_inference_steps
    nxt = np.append(ts[1:], -1)
    return bool(np.any(np.where(nxt < 0, prev >= 0, prev != nxt))) or _trailing_has_extra_step(c)


def _ddim_radicand_cancels(c: SamplerConfig) -> bool:
    # some step (to the next scheduled timestep or to t - T//S) has keep = c_ε²/(1-ᾱ_prev) < 0.05:
    # the float32 radicand's cancellation amplified > 10x (the step budget)
    eta = c.option("eta", 0.0) or 0.0
    if eta == 0.0:
        return False
    abar = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end,
                         rescale=c.rescale).alphas_cumprod
    ts = _float_spacing(c)
    final = 1.0 if c.option("set_alpha_to_one", True) else float(abar[0])
    nexts = (np.append(ts[1:], -1), ts - c.num_train_timesteps // c.num_inference_steps)
    for nxt in nexts:
        for t, n in zip(ts, nxt):
            a_t, a_p = float(abar[t]), (float(abar[n]) if n >= 0 else final)
            if a_t < a_p < 1.0:
                c_eps, _ = ddim_noise_scale(a_t, a_p, eta)
                if c_eps * c_eps < 0.05 * (1.0 - a_p):
                    return True
    return False


def _noise_on_clean_step(c: SamplerConfig) -> bool:
    # some step at t > 0 lands on clean data (its next timestep is past the end or negative)
    ts = _float_spacing(c)
    return bool(np.any((ts > 0) & (np.append(ts[1:], -1) < 0)))


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
    # the model's σ (floored ᾱ, interpolated at the fractional second timestep) does not fall on the
    # first step (within float32 rounding of both); log_linear σ are log-spaced: never up
    if not c.rescale or c.num_train_timesteps < 2 or c.num_inference_steps < 2 \
            or c.option("interpolation_type", "linear") == "log_linear" or expected.sigma_schedule(c) != "timesteps":
        return False  # Karras / exponential / Beta σ fall by construction
    abar = m_alphas_cumprod(expected.ORACLE, c)
    ts = fractional_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps, c.steps_offset)
    if ts[0] != c.num_train_timesteps - 1:
        return False
    sig = _sigma_table_at(abar, ts[:2])
    return bool(sig[1] >= sig[0] * (1 - 8 * 2.0**-24))


def _floored_euler_sigmas(c: SamplerConfig) -> np.ndarray:
    """The oracle's Euler σ of the configuration, σ = inf replaced by diffusers' floor (σ_T = 4096)."""
    sched = make_schedule(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end, rescale=c.rescale)
    sig = euler_sigmas(sched, fractional_timesteps(c.spacing, c.num_train_timesteps, c.num_inference_steps,
                                                   c.steps_offset))
    sig[np.isinf(sig)] = 1.0 / DIFFUSERS_EULER_FLOOR ** 0.5
    return sig


def _ancestral_down_cancels(c: SamplerConfig) -> bool:
    # σ_down loses ~u·(σ_from/σ_to)² relative: flag steps where that exceeds 1000 u
    sig = _floored_euler_sigmas(c)
    q = sig[1:] / sig[:-1]
    return bool(np.any((q > 0) & (q * q < 1e-3)))


def _euler_churn_active(c: SamplerConfig) -> bool:
    return c.sampler == "euler" and (c.option("s_churn") or 0) > 0


def _euler_small_churn(c: SamplerConfig) -> bool:
    # γ = min(s_churn/S, √2-1) in (0, 0.05): √(σ̂² - σ²) in float32 loses u/(2γ) > 10u relative
    gamma = min((c.option("s_churn") or 0) / c.num_inference_steps, 2**0.5 - 1)
    return c.sampler == "euler" and 0 < gamma < 0.05


TIMESTEPS = {"timesteps": m_timesteps, "sigmas": m_sigmas}
LEVELS = {"timesteps": m_timesteps, "vp_levels": m_vp_levels, "sigmas": m_sigmas}
FLOOR = {"alphas_cumprod": m_alphas_cumprod, "sigmas": m_sigmas}


DEVIATIONS = [
    Deviation(
        "float32-alphas-cumprod-underflow",
        ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop"), ALL, _float32_underflow,
        "steep schedules (large T and β) take ᾱ below float32's normal range: the float32 running "
        "product underflows to subnormals and 0, and the zero-SNR rescale then divides 0 by 0 (NaN "
        "betas and ᾱ, silently). The float64 oracle represents these ᾱ (down to ~1e-308).",
        SRC + "scheduling_ddim.py (__init__: torch.cumprod in float32; rescale_zero_terminal_snr)",
        SamplerConfig("ddim", num_train_timesteps=4000, beta_schedule="linear", beta_start=0.0078125,
                      beta_end=0.046875), {},
        model={"alphas_cumprod": m_alphas_cumprod, "alphas_cumprod_abs": m_float32_schedule_abs,
               "unchecked_levels": m_float32_unchecked, "chain_sigmas": m_chain_sigmas, "sigmas": m_sigmas},
        summary="ᾱ = the oracle's rounded to float32 (0 below 2⁻¹⁵⁰); rescaled: diffusers' float32 "
                "rescale of those, NaN from the first ᾱ_{t-1} = 0; steps at NaN/degenerate levels unchecked "
                "only if the whole ᾱ table is the model's"),
    Deviation(
        "trailing-extra-step", ("schedule", "step", "chaining", "loop"), ALL, _trailing_has_extra_step,
        "trailing spacing np.round(np.arange(T, 0, -T/S)) - 1 yields S+1 timesteps for some (T, S) "
        "(T=1000: S = 61, 103, 121, ...), the last being -1, which then indexes ᾱ[-1] (the terminal "
        "value) or takes an extra Euler step. Exact rule: round(T - k·T/S) - 1, k = 0..S-1.",
        SRC + "scheduling_ddim.py (set_timesteps, timestep_spacing == 'trailing')",
        SamplerConfig("ddim", num_inference_steps=61, rescale=False, prediction_type="epsilon"),
        {"step_index": 61}, model=LEVELS,
        summary="timesteps = round(arange(T, 0, -T/S)) - 1 (S+1 of them, the last -1, reading ᾱ[-1]); "
                "levels as diffusers steps (DDIM: t - T//S; DDPM: next scheduled, 1 below 0)"),
    Deviation(
        "float-spacing-rounding", ("schedule", "step", "chaining", "loop"), ALL, _float_spacing_differs,
        "the spacings are computed in floating point and then rounded (np.arange with step T/S, "
        "np.linspace): where the exact value T·k/S or k·(T-1)/(S-1) is a half-integer, float error "
        "decides the rounding and the timestep is off by one (T=67, S=10 trailing: 32 for 33).",
        SRC + "scheduling_ddim.py (set_timesteps)",
        SamplerConfig("ddim", num_train_timesteps=67, rescale=False), {"step_index": 5}, model=LEVELS,
        summary="timesteps = diffusers' float formulas (round(arange(T, 0, -T/S)) - 1, "
                "round(linspace(0, T-1, S)), ...), levels read at them"),
    Deviation(
        "ddim-prev-timestep", ("step", "chaining", "loop", "finite_at_T"), ("ddim",), _ddim_prev_mismatch,
        "DDIMScheduler.step takes the previous timestep as t - T//S instead of the next scheduled "
        "timestep, so with trailing or linspace spacing it lands on a level the next step does not "
        "start from, and the last step may stop at t = 0 with noise √(1-ᾱ_0) left.",
        "https://github.com/huggingface/diffusers/issues/12633",
        SamplerConfig("ddim", num_inference_steps=3, options=(("eta", 0.0),)), {"step_index": 1}, model=LEVELS,
        summary="DDIM step i lands on ᾱ[t_i - T//S] (ᾱ_final where that is < 0), not on the next timestep"),
    Deviation(
        "ddpm-prev-timestep", ("step", "chaining", "loop", "finite_at_T"), ("ddpm",), _ddim_prev_mismatch,
        "diffusers < 0.32: DDPMScheduler.previous_timestep is t - T//S (as DDIM's step) unless custom "
        "timesteps were given, so with trailing or linspace spacing a step lands on a level the next "
        "step does not start from (trailing T = 1000, S = 3: 666 -> 333, while the next timestep is "
        "332), and its noise variance is that of the wrong pair of levels. Fixed in 0.32.0 by PR "
        "#9384 (issue #9261): the next scheduled timestep.",
        "https://github.com/huggingface/diffusers/pull/9384",
        SamplerConfig("ddpm", num_inference_steps=3), {"step_index": 1}, model=LEVELS, releases="<0.32",
        summary="DDPM step i lands on ᾱ[t_i - T//S] (ᾱ = 1 where that is < 0), not on the next timestep"),
    Deviation(
        "ddim-eta1-zero-snr-nan", ("step", "chaining", "finite_at_T", "loop"), ("ddim",), _ddim_radicand_cancels,
        "DDIM forms the ε̂ coefficient as (1 - ᾱ_prev - std²)^0.5: for η > 0 and a large step the radicand "
        "(1-ᾱ_prev)·[(1-η²) + η²·SNR_t/SNR_prev] is a small difference of large numbers and loses "
        "~u/keep relative (keep = the bracket); at zero SNR with η = 1 it is exactly 0 and rounds to a "
        "tiny negative float32 for some (schedule, S): NaN. The sum-of-non-negative-terms form is exact.",
        "https://github.com/huggingface/diffusers/issues/5969",
        SamplerConfig("ddim", num_inference_steps=6, options=(("eta", 1.0),)), {"step_index": 0},
        model={"ddim_coefficients": m_ddim_coefficients, "step_widening": m_ddim_widening, **LEVELS},
        summary="c_ε NaN exactly where diffusers' float32 radicand 1 - ᾱ_prev - std² is < 0, else exact; "
                "widening min(√δr, δr/2c_ε)·|ε̂|, δr = 12u·((1-ᾱ_prev) + s²)"),
    Deviation(
        "ddpm-fixed-large-log-nan", ("step", "chaining", "finite_at_T", "loop"), ("ddpm",),
        lambda c: c.option("variance_type") == "fixed_large_log",
        "DDPMScheduler with variance_type='fixed_large_log' takes the square root of log(β) as the noise "
        "std: NaN for β < 1, and 0 (no noise, where √β = 1 is due) at the last training step of a "
        "zero-SNR schedule, where β = 1.",
        "https://github.com/huggingface/diffusers/issues/14569",
        SamplerConfig("ddpm", options=(("variance_type", "fixed_large_log"),)), {"step_index": 1},
        model={"ddpm_std": m_fixed_large_log_std},
        summary="noise std = (log β)^0.5 of the float32 β = 1 - ᾱ_t/ᾱ_prev: NaN for β < 1, 0 at β = 1"),
    Deviation(
        "ddpm-noise-on-last-step", ("step", "chaining", "loop", "finite_at_T"), ("ddpm",),
        _noise_on_clean_step,
        "DDPMScheduler adds noise whenever t > 0, not 'unless this is the last step': when the last "
        "timestep is > 0 (trailing, leading with steps_offset, ...) the final sample keeps noise: std √β "
        "for fixed_large, √(predicted variance) for learned, β^(f/2)·1e-10^(1-f) for learned_range, "
        "1e-10 (the 1e-20 variance clamp) for fixed_small and fixed_small_log.",
        SRC + "scheduling_ddpm.py (step: `if t > 0:`)",
        SamplerConfig("ddpm", options=(("variance_type", "fixed_large"),)), {"step_index": 9},
        model={"ddpm_noise_std": m_ddpm_noise_std, "step_widening": m_ddpm_last_widening, **LEVELS},
        summary="the last step (t > 0) adds noise: std √(1-ᾱ_t) fixed_large, √pv learned, "
                "β^(f/2)·1e-10^(1-f) learned_range, 1e-10 fixed_small[_log], (log β)^0.5 fixed_large_log"),
    Deviation(
        "epsilon-zero-snr-silent", ("finite_at_T",), ALL, lambda c: c.prediction_type == "epsilon" and c.rescale,
        "ε-prediction at zero SNR: DDPM and DDIM return inf/NaN silently (x̂₀ divides by α_T = 0; with "
        "clip_sample=True a silently clipped finite result); Euler and Euler ancestral return a silently "
        "clamped result through their 2⁻²⁴ floor. None raises or warns.",
        "https://github.com/huggingface/diffusers/issues/3851",
        SamplerConfig("ddim", prediction_type="epsilon"), {},
        model={"silent_at_T": m_silent_at_T},
        summary="no error or warning; DDPM/DDIM: x̂₀ = (x - ε)/0 in IEEE arithmetic (±inf; ±1 with "
                "clip_sample), Euler: the finite ε-step from the floored σ_T = 4096"),
    Deviation(
        "euler-terminal-floor", ("zero_snr", "schedule"), ("euler", "euler_ancestral"), None,
        "EulerDiscrete and EulerAncestralDiscrete replace ᾱ_T = 0 by 2⁻²⁴ after the zero-SNR rescale "
        "(σ_T = 4096 instead of inf): SNR(T) = 5.96e-08, not 0.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler"), {}, model=FLOOR,
        summary="ᾱ_T = 2⁻²⁴ exactly after the rescale (SNR(T) = 5.96e-08, σ_T = 4096), σ = np.interp of "
                "diffusers' float32 √((1-ᾱ)/ᾱ) (inf where that overflows)"),
    Deviation(
        "euler-floor-above-previous", ("schedule", "chaining"),
        ("euler", "euler_ancestral", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"),
        _floor_above_previous,
        "for steep schedules the zero-SNR ᾱ at t = T-2 is below the 2⁻²⁴ floor, so the floored ᾱ rises "
        "at t = T-1: σ is not monotone in t.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler_ancestral", beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125), {},
        model=FLOOR, summary="ᾱ_T = 2⁻²⁴ above ᾱ_{T-2}: the model's ᾱ rises at T-1, and only there"),
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
        {"step_index": 0}, model={**FLOOR, "ancestral_sigmas": m_ancestral_sigmas},
        summary="σ rises on the first step where the floored σ does; Euler steps x + (σ_next - σ)·d away "
                "from the data, Euler ancestral's σ_up radicand is < 0: NaN"),
    Deviation(
        "ancestral-sigma-down-cancellation", ("step", "finite_at_T", "loop"), ("euler_ancestral",),
        _ancestral_down_cancels,
        "EulerAncestralDiscreteScheduler forms σ_down = (σ_to² - σ_up²)^0.5 with σ_up² = σ_to²(σ_from² - "
        "σ_to²)/σ_from²: the difference is σ_to⁴/σ_from², so a large step (σ_from/σ_to > 30) loses "
        "~u·(σ_from/σ_to)² relative, and beyond σ_from/σ_to ≈ 1/√u the radicand rounds below 0: NaN "
        "(cosine schedule, trailing S = 3: σ 20291 → 1.75). σ_to·√((1-η²) + η²σ_to²/σ_from²) is exact.",
        SRC + "scheduling_euler_ancestral_discrete.py (step: sigma_down)",
        SamplerConfig("euler_ancestral", beta_schedule="squaredcos_cap_v2", rescale=False, num_inference_steps=3,
                      prediction_type="epsilon"), {"step_index": 0},
        model={"ancestral_sigmas": m_ancestral_sigmas, "step_widening": m_ancestral_widening},
        summary="σ_down NaN exactly where diffusers' float32 σ_to² - σ_up² is < 0, else exact; widening "
                "min(√δr, δr/2σ_down)·|d|, δr = 8u·σ_to² (~u·(σ_from/σ_to)² relative)"),
    Deviation(
        "euler-log-linear-sigmas", ("schedule", "step", "chaining", "loop", "finite_at_T"), ("euler",),
        lambda c: c.option("interpolation_type") == "log_linear",
        "EulerDiscreteScheduler with interpolation_type='log_linear' builds S+1 log-spaced σ between "
        "σ_min and σ_max, ignoring the timesteps, then appends the final σ: S+2 values, the sampler "
        "ends on σ_min instead of 0 and σ_i is not σ(t_i).",
        SRC + "scheduling_euler_discrete.py (set_timesteps, interpolation_type == 'log_linear')",
        SamplerConfig("euler", options=(("interpolation_type", "log_linear"),)), {},
        model={"sigmas": m_sigmas, "chain_sigmas": m_chain_sigmas, "churn_steps": m_log_linear_churn_steps},
        summary="σ = exp(linspace(log σ(T-1), log σ(0), S+1)) then the final σ: S+2 values; the loop ends on "
                "σ(0); the churn's γ = s_churn/(S+1)"),
    Deviation(
        "euler-churn-v-uses-sigma", ("step", "loop"), ("euler",),
        lambda c: _euler_churn_active(c) and c.prediction_type == "v_prediction",
        "EulerDiscreteScheduler with s_churn > 0 and v_prediction converts the model output with σ "
        "while the state has been moved to σ̂ = σ(1+γ) (the ε branch uses σ̂).",
        SRC + "scheduling_euler_discrete.py (step: v_prediction branch)",
        SamplerConfig("euler", rescale=False, options=(("s_churn", 5.0),)), {"step_index": 0},
        model={"conversion_sigma": m_v_converts_with_sigma},
        summary="x̂₀ = x̂/(σ²+1) - v·σ/√(σ²+1) with σ, not σ̂; d = (x̂ - x̂₀)/σ̂"),
    Deviation(
        "euler-churn-noise-cancellation", ("step", "finite_at_T", "loop"), ("euler",), _euler_small_churn,
        "EulerDiscreteScheduler forms the churn noise scale as (σ̂² - σ²)^0.5 with σ̂ = σ(1+γ) rounded "
        "first: for small γ = s_churn/S the subtraction cancels and loses up to ~3u/(2γ) relative "
        "(853 u measured at γ = 0.001); "
        "σ·√(γ(2+γ)) is exact to a few u.",
        SRC + "scheduling_euler_discrete.py (step: sigma_hat**2 - sigma**2)",
        SamplerConfig("euler", rescale=False, num_inference_steps=1000, beta_schedule="linear",
                      beta_start=0.0078125, beta_end=0.03125, prediction_type="epsilon",
                      options=(("s_churn", 1.0),)), {"step_index": 0},
        model={"step_widening": m_churn_widening},
        summary="the oracle's step; widening (~3u/(2γ) relative)·σ√(γ(2+γ))·|z|·(1 + 2|σ_next - σ̂|/σ̂)"),
    Deviation(
        "euler-churn-model-before-churn", ("loop",), ("euler",), _euler_churn_active,
        "EulerDiscreteScheduler adds the churn noise inside step(), after the model was evaluated at "
        "(x, σ); Karras et al. (2022) Alg. 2 evaluates the model at the churned (x̂, σ̂).",
        SRC + "scheduling_euler_discrete.py (step: s_churn)",
        SamplerConfig("euler", rescale=False, prediction_type="epsilon", options=(("s_churn", 5.0),)), {},
        model={"loop_model_point": m_model_before_churn},
        summary="the loop evaluates the model at (x, σ), then step() churns to (x̂, σ̂) and steps with it"),
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
        symptom=NON_FINITE, dtypes=("float16",), summary="non-finite elements only (x̂₀ beyond 65504)"),
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
        symptom=NON_FINITE, dtypes=("float16",), summary="non-finite elements only (σ·ε̂ beyond 65504)"),
]

FLOORED = ("DPMSolverMultistepScheduler", "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler",
           "UniPCMultistepScheduler")

GENERIC_DEVIATIONS = [
    Deviation(
        "terminal-floor-2^-24", ("zero_snr",), FLOORED, None,
        "after the zero-SNR rescale these schedulers set ᾱ_T = 2⁻²⁴ (σ_T = 4096) instead of 0: "
        "SNR(T) = 5.96e-08.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("EulerDiscreteScheduler"), {}, model=FLOOR,
        summary="ᾱ_T = 2⁻²⁴ exactly after the rescale (σ_T = 4096)"),
    Deviation(
        "lcm-origin-steps-miss-T", ("starts_at_T",), ("LCMScheduler", "TCDScheduler"),
        lambda c: c.num_train_timesteps % 50 != 0,
        "LCM and TCD draw their timesteps from an original 50-step schedule, (T // 50)·k - 1, ignoring "
        "timestep_spacing (T=1000, S=4: [999, 759, 499, 259], not trailing's [999, 749, 499, 249]); unless "
        "50 divides T the first timestep is (T // 50)·50 - 1 < T - 1.",
        SRC + "scheduling_lcm.py (set_timesteps: original_inference_steps)",
        SamplerConfig("LCMScheduler", num_train_timesteps=1010, num_inference_steps=4), {},
        model={"timesteps": m_lcm_timesteps},
        summary="timesteps = reversed (T//50)·k - 1 (k = 1..50) at floor(linspace(0, 50, S, endpoint=False))"),
]

GUIDANCE_DEVIATIONS = [
    Deviation(
        "rescale-noise-cfg-zero-std", ("guidance",), ("guidance-degenerate",), lambda c: True,
        "rescale_noise_cfg divides by the std of the guided prediction with no guard: a sample with "
        "zero std gives inf/NaN, even with guidance_rescale = 0 (0·inf = NaN).",
        "https://github.com/huggingface/diffusers/issues/13425", symptom=NON_FINITE,
        summary="non-finite elements only (the zero-std sample); the other samples are checked"),
]

TRAINING_DEVIATIONS = [
    Deviation(
        "euler-add-noise-begin-index", ("add_noise_in_loop",), ("euler", "euler_ancestral"), lambda c: True,
        "diffusers 0.27.0-0.27.1: once a pipeline set the begin index (set_begin_index, new in 0.27.0), "
        "EulerDiscrete/EulerAncestralDiscrete.add_noise noise to the level of the *begin* step for every "
        "timestep, also after sampling began: the inpainting pipelines re-noise the kept region to the "
        "first step's σ at every step instead of the current one's. Fixed in 0.27.2 by PR #7386 (issue "
        "#7348): add_noise takes the current step_index once sampling began.",
        "https://github.com/huggingface/diffusers/pull/7386",
        SamplerConfig("euler", rescale=False, spacing="trailing", num_inference_steps=10),
        {"begin": 2, "steps_taken": 3}, releases=">=0.27.0,<0.27.2",
        model={"add_noise_in_loop_step": lambda E, c, begin, steps_taken: begin},
        summary="add_noise in the loop lands on the level of the begin step, not of the current step"),
    Deviation(
        "euler-get-velocity-step-index", ("velocity",), ("euler",), lambda c: True,
        "EulerDiscreteScheduler.get_velocity (added in PR #7733) looks up the step index of each timestep "
        "and then reads alphas_cumprod at that *step index*, a position in the inference schedule, instead "
        "of at the timestep: trailing T = 1000, S = 10, t = 999 (step index 0) takes ᾱ_0 = 0.99915, so "
        "v = 0.9996·ε - 0.0292·x₀ instead of 0.0683·ε - 0.9977·x₀. No upstream report found.",
        SRC + "scheduling_euler_discrete.py (get_velocity: alphas_cumprod[step_indices])",
        SamplerConfig("euler", rescale=False, spacing="trailing", num_inference_steps=10), {},
        releases=">=0.28",  # EulerDiscreteScheduler.get_velocity came with PR #7733, in 0.28.0
        model={"velocity_alpha_bars": lambda E, cfg, abar, sigmas, timesteps, t:
               np.asarray(abar, np.float64)[_index_in(timesteps, t)]},
        summary="the v target at ᾱ[step index of t] (alphas_cumprod read at the position in the inference "
                "schedule), not at the level of t"),
    Deviation(
        "min-snr-epsilon-zero-snr-nan", ("min_snr",), ("ddpm", "ddim"),
        lambda c: c.rescale and c.prediction_type == "epsilon",
        "diffusers' training examples weight the ε loss by min(SNR, γ)/SNR with SNR from compute_snr: at "
        "t = T-1 of a zero-SNR schedule that is 0/0 = NaN, silently (the loss and the gradients become "
        "NaN). The ε loss at SNR 0 is meaningless (paper Sec. 3.2): a zero-SNR schedule needs v or x₀.",
        "https://github.com/TiankaiHang/Min-SNR-Diffusion-Training/issues/2",
        SamplerConfig("ddpm", rescale=True, prediction_type="epsilon"), {}, symptom=NON_FINITE,
        summary="the ε Min-SNR weight is NaN at SNR 0 (0/0), silently; every other weight is the oracle's"),
]


# --- σ schedules and thresholding (issue 13) --------------------------------------------------------


def _converted_at_zero_snr(c: SamplerConfig) -> bool:
    # a converted σ schedule (or continuous timesteps) whose σ_max is σ_T of a zero-SNR schedule: the
    # oracle's σ_max = inf, where these schedules are undefined; diffusers builds them from σ_T = 4096
    if not (c.rescale and _converted_sigmas(c)) or c.sampler != "euler":
        return False
    # (log_linear σ run from σ(T-1) whatever the timesteps: euler-log-linear-sigmas)
    return float(expected.spacing_timesteps(c)[0]) == c.num_train_timesteps - 1 \
        or c.option("interpolation_type", "linear") == "log_linear"


def _continuous_ignored(c: SamplerConfig) -> bool:
    return c.sampler == "euler" and expected.continuous(c) and c.prediction_type != "v_prediction"


def m_timestep_kind(E, c):
    """MODEL: continuous timesteps only for v_prediction; else t(σ) of a converted σ, or the spacing's."""
    if expected.continuous(c) and c.prediction_type == "v_prediction":
        return "continuous"
    return "converted" if c.sampler in expected.VE_SAMPLERS and expected.sigma_schedule(c) != "timesteps" else None


CONVERTED = {"alphas_cumprod": m_alphas_cumprod, "sigmas": m_sigmas, "timesteps": m_timesteps,
             "timestep_kind": m_timestep_kind}

SIGMA_SCHEDULE_DEVIATIONS = [
    Deviation(
        "euler-converted-sigmas-floor", ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop"),
        ("euler",), _converted_at_zero_snr,
        "at zero terminal SNR σ_max = ∞, and the Karras, exponential and Beta σ schedules (use_karras_sigmas, "
        "use_exponential_sigmas, use_beta_sigmas) and EDM's continuous timesteps ¼·ln σ are undefined (every "
        "Karras σ would be ∞; c_noise(∞) = ∞). EulerDiscreteScheduler builds them silently from its floored "
        "σ_T = 4096 (ᾱ_T = 2⁻²⁴, euler-terminal-floor): σ_max = 4096, the model timestep of σ_max is T-1, "
        "c_noise(σ_max) = 2.08, with no error or warning.",
        "https://github.com/huggingface/diffusers/pull/6024",
        SamplerConfig("euler", options=(("use_karras_sigmas", True),)), {"step_index": 0}, model=CONVERTED,
        summary="the converted σ from the floored table: σ_max = 4096, σ_min = σ at the last timestep, S Karras / "
                "exponential / Beta σ between, t(σ) log-linear on the float32 table (continuous: ¼·ln σ)"),
    Deviation(
        "euler-continuous-timesteps-v-only", ("schedule", "step", "chaining", "starts_at_T", "finite_at_T", "loop"),
        ("euler",), _continuous_ignored,
        "EulerDiscreteScheduler honours timestep_type='continuous' only with prediction_type='v_prediction' "
        "(a TODO in set_timesteps: 'Support the full EDM scalings for all prediction types'): for ε and x₀ "
        "prediction it silently keeps the discrete timesteps, where EDM's c_noise = ¼·ln σ does not depend "
        "on the parameterisation.",
        SRC + "scheduling_euler_discrete.py (set_timesteps: timestep_type == 'continuous' and prediction_type == "
        "'v_prediction')",
        SamplerConfig("euler", rescale=False, prediction_type="epsilon", options=(("timestep_type", "continuous"),)),
        {}, model={"timesteps": m_timesteps, "sigmas": m_sigmas, "chain_sigmas": m_chain_sigmas,
                   "timestep_kind": m_timestep_kind},
        summary="timestep_type='continuous' ignored unless v_prediction: the discrete timesteps (spacing, or t(σ) "
                "of a converted σ schedule)"),
]
DEVIATIONS += SIGMA_SCHEDULE_DEVIATIONS


def _threshold_2d(c: SamplerConfig) -> bool:
    # the region is the configuration's; the crash needs a 2-D sample as well (the drawn rank), which
    # a configuration does not carry: a 3-D to 5-D sample in this region is checked against the oracle
    return c.sampler in ("ddpm", "ddim") and bool(c.option("thresholding", False))


THRESHOLD_DEVIATIONS = [
    Deviation(
        "threshold-2d-sample-crash", ("step", "finite_at_T", "loop"), ("ddpm", "ddim"), _threshold_2d,
        "DDPMScheduler and DDIMScheduler with thresholding=True crash on a 2-D sample (batch, features): "
        "_threshold_sample unpacks batch_size, channels, *remaining_dims = sample.shape and reshapes to "
        "(batch_size, channels * np.prod(remaining_dims)); np.prod(()) is the float 1.0, so the new shape "
        "holds a numpy.float64 and torch's reshape raises TypeError ('type must be tuple of ints'). "
        "Imagen's rule is per sample over all its elements, so a user expects the thresholded x̂₀; 3-D to "
        "5-D samples work (np.prod of a non-empty list is an integer). A declared crash: the adapter raises "
        "that TypeError as ThresholdRankCrash only for a thresholded 2-D step, and it is recorded as this "
        "deviation, never as a pass; other ranks in the region are checked as usual.",
        SRC + "scheduling_ddpm.py (_threshold_sample: channels * np.prod(remaining_dims)); the rank-generic "
        "version came with https://github.com/huggingface/diffusers/pull/5210 (no report of the 2-D case found)",
        SamplerConfig("ddpm", options=(("thresholding", True),)), {"step_index": 0, "shape": (2, 3)},
        symptom=RAISES, raises=(ThresholdRankCrash,),
        summary="raises TypeError for a 2-D sample (reshape to (batch, float)); every other rank is checked"),
]
DEVIATIONS += THRESHOLD_DEVIATIONS
