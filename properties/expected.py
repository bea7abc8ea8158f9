"""What the float64 oracle expects of an implementation, for one :class:`SamplerConfig`.

The module functions are the oracle's answers. :class:`Expectation` bundles them as named
*pieces* (``timesteps``, ``alphas_cumprod``, ``sigmas``, ``vp_levels``, ``step``, ...) that the
checks read through; ``ORACLE`` is the oracle's, and ``ORACLE.with_models(deviations)`` the
*deviant expectation*: the oracle with the pieces a declared deviation's model replaces
(properties/deviations.py). Each piece of a model is a function ``fn(E, *args)`` of the whole
deviant expectation E, so models compose (diffusers' timesteps feed its DDIM previous-timestep
rule, which feeds the step, which feeds the loop).
"""

from __future__ import annotations

import math

import numpy as np

import reference as ref

from .contract import SamplerConfig

VE_SAMPLERS = ("euler", "euler_ancestral")
#: the sampler kind of a generic scheduler class a model may describe (property 9)
KINDS = {"EulerDiscreteScheduler": "euler", "EulerAncestralDiscreteScheduler": "euler_ancestral"}


def as_kind(cfg: SamplerConfig) -> SamplerConfig | None:
    """cfg with a generic scheduler class name replaced by its sampler kind (None: no kind)."""
    from dataclasses import replace

    if cfg.sampler in ("ddpm", "ddim", *VE_SAMPLERS):
        return cfg
    kind = KINDS.get(cfg.sampler)
    return None if kind is None else replace(cfg, sampler=kind)


def schedule(cfg: SamplerConfig) -> ref.Schedule:
    return ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                             rescale=cfg.rescale)


#: the configuration options that select a converted σ schedule (diffusers' names), and its name
#: in ``reference.converted_euler_sigmas``
SIGMA_SCHEDULE_OPTIONS = {"use_karras_sigmas": "karras", "use_exponential_sigmas": "exponential",
                          "use_beta_sigmas": "beta"}


def sigma_schedule(cfg: SamplerConfig) -> str:
    """The Euler family's σ schedule: "timesteps" (σ at the spacing's timesteps), or the converted
    "karras" / "exponential" / "beta" schedule its options select (at most one may be set)."""
    chosen = [name for opt, name in SIGMA_SCHEDULE_OPTIONS.items() if cfg.option(opt, False)]
    if len(chosen) > 1:
        raise ValueError(f"at most one of {tuple(SIGMA_SCHEDULE_OPTIONS)} may be set; got {chosen}")
    return chosen[0] if chosen else "timesteps"


def continuous(cfg: SamplerConfig) -> bool:
    """Whether the model's timesteps are EDM's continuous c_noise = ¼·ln σ (timestep_type="continuous")."""
    return cfg.sampler in VE_SAMPLERS and cfg.option("timestep_type", "discrete") == "continuous"


def spacing_timesteps(cfg: SamplerConfig) -> np.ndarray:
    """The spacing's timesteps (float64; fractional for Euler linspace), before any σ conversion."""
    if cfg.sampler in VE_SAMPLERS:
        return ref.fractional_timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps,
                                        cfg.steps_offset)
    return ref.timesteps(cfg.spacing, cfg.num_train_timesteps, cfg.num_inference_steps,
                         cfg.steps_offset).astype(np.float64)


def _converted(cfg: SamplerConfig, sched: ref.Schedule):
    """(timesteps, σ) of a converted σ schedule (reference.converted_euler_sigmas); at zero SNR
    σ_max = inf and it raises the oracle's ValueError (undefined)."""
    return ref.converted_euler_sigmas(sched, spacing_timesteps(cfg), sigma_schedule(cfg),
                                      cfg.option("interpolation_type", "linear"),
                                      cfg.option("final_sigmas_type", "zero"))


def timesteps(cfg: SamplerConfig) -> np.ndarray:
    """The timesteps the sampler should evaluate (float64; fractional for Euler linspace). With a
    converted σ schedule, the model timesteps t(σ) (reference.timestep_from_sigma); with
    timestep_type="continuous", c_noise = ¼·ln σ (reference.continuous_timesteps; undefined, a
    ValueError, at σ = inf)."""
    if cfg.sampler in VE_SAMPLERS and (continuous(cfg) or sigma_schedule(cfg) != "timesteps"):
        sched = schedule(cfg)
        if continuous(cfg):
            return ref.continuous_timesteps(sigmas(cfg, sched)[:-1])
        return _converted(cfg, sched)[0]
    return spacing_timesteps(cfg)


def final_alpha_bar(cfg: SamplerConfig, alphas_cumprod) -> float:
    """ᾱ the loop lands on: 1 (clean data), or ᾱ_0 for DDIM with set_alpha_to_one=False."""
    if cfg.sampler == "ddim" and cfg.option("set_alpha_to_one", True) is False:
        return float(alphas_cumprod[0])
    return 1.0


def sigmas(cfg: SamplerConfig, sched: ref.Schedule) -> np.ndarray:
    """Euler-family σ at each timestep, then the final σ (length S+1)."""
    if sigma_schedule(cfg) != "timesteps":
        return _converted(cfg, sched)[1]
    interp = cfg.option("interpolation_type", "linear")
    return ref.euler_sigmas(sched, spacing_timesteps(cfg), interp, cfg.option("final_sigmas_type", "zero"))


def vp_levels(cfg: SamplerConfig, alphas_cumprod, i: int) -> tuple[float, float]:
    """(ᾱ_t, ᾱ_next) of step i, read from a given ᾱ table at the oracle's timesteps."""
    ts = timesteps(cfg).astype(np.int64)
    a_t = float(alphas_cumprod[ts[i]])
    a_n = float(alphas_cumprod[ts[i + 1]]) if i + 1 < ts.size else final_alpha_bar(cfg, alphas_cumprod)
    return a_t, a_n


def threshold_options(cfg: SamplerConfig) -> dict:
    """The dynamic-thresholding keywords of reference.ddpm_step / ddim_step (empty when off)."""
    if not cfg.option("thresholding", False):
        return {}
    return {"thresholding": True, "dynamic_thresholding_ratio": cfg.option("dynamic_thresholding_ratio", 0.995),
            "sample_max_value": cfg.option("sample_max_value", 1.0)}


def _clip_or_threshold(cfg: SamplerConfig, x0) -> np.ndarray:
    """x̂₀ as the step uses it: dynamically thresholded (which takes precedence), clipped to ±1, or as is."""
    kw = threshold_options(cfg)
    if kw:
        return ref.dynamic_threshold(x0, kw["dynamic_thresholding_ratio"], kw["sample_max_value"])
    return np.clip(x0, -1.0, 1.0) if cfg.option("clip_sample", False) else x0


def step(cfg: SamplerConfig, levels, x, model_output, z, predicted_variance=None) -> np.ndarray:
    """The oracle's step i of this configuration at the given levels: (ᾱ_t, ᾱ_next) for DDPM/DDIM,
    (σ, σ_next) of the variance-exploding state for Euler/Euler ancestral."""
    p = cfg.prediction_type
    lo, hi = levels
    if cfg.sampler in VE_SAMPLERS and math.isinf(lo):
        return step_from_infinity(cfg, hi, x, model_output, z)
    if cfg.sampler == "ddpm":
        return ref.ddpm_step(x, model_output, prediction_type=p, alpha_bar_t=lo, alpha_bar_prev=hi, noise=z,
                             variance_type=cfg.option("variance_type", "fixed_small"),
                             predicted_variance=predicted_variance,
                             clip_sample=cfg.option("clip_sample", False), **threshold_options(cfg))
    if cfg.sampler == "ddim":
        return ref.ddim_step(x, model_output, prediction_type=p, alpha_bar_t=lo, alpha_bar_prev=hi,
                             eta=cfg.option("eta", 0.0), noise=z, clip_sample=cfg.option("clip_sample", False),
                             use_clipped_model_output=cfg.option("use_clipped_model_output", False),
                             **threshold_options(cfg))
    if cfg.sampler == "euler":
        churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
        xh, sig = ref.euler_churn(x, lo, num_inference_steps=cfg.num_inference_steps, noise=z, **churn)
        return ref.euler_step(xh, model_output, prediction_type=p, sigma=sig, sigma_next=hi)
    return ref.euler_ancestral_step(x, model_output, prediction_type=p, sigma=lo, sigma_next=hi,
                                    eta=cfg.option("eta", 1.0), noise=z)


def step_from_infinity(cfg: SamplerConfig, sigma_next: float, x, model_output, z) -> np.ndarray:
    """The Euler-family step from σ = inf to σ_next, from the state's finite form there (the VP
    x_t, properties/contract.py), as the VE state at σ_next: the limit σ -> inf of the update,
    which is reference.loop.step_map's -- DDIM with η = 0 after the churn's limit
    (reference.samplers.euler_churn_vp) for Euler, DDIM with η for Euler ancestral -- times
    √(σ_next² + 1)."""
    a_next = float(ref.alpha_bars_from_sigmas(np.array([sigma_next]))[0])
    x = np.asarray(x, np.float64)
    a_hat, eta = 0.0, cfg.option("eta", 1.0) if cfg.sampler == "euler_ancestral" else 0.0
    if cfg.sampler == "euler":
        churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
        x, a_hat = ref.samplers.euler_churn_vp(x, 0.0, num_inference_steps=cfg.num_inference_steps, noise=z, **churn)
    vp = ref.ddim_step(x, model_output, prediction_type=cfg.prediction_type, alpha_bar_t=a_hat,
                       alpha_bar_prev=a_next, eta=eta, noise=z)
    return vp * ref.samplers.ve_scale(sigma_next)


def _conversion(prediction_type, a_t):
    """Coefficients (k_x, k_m) of x̂₀ = k_x·x_t + k_m·m and of ε̂ likewise, at level ᾱ_t."""
    alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
    if prediction_type == "v_prediction":
        return (alpha, -sigma), (sigma, alpha)
    if prediction_type == "epsilon":
        return ((1.0 / alpha, -sigma / alpha) if alpha > 0 else (math.inf, math.inf)), (0.0, 1.0)
    return (0.0, 1.0), (1.0 / sigma, -alpha / sigma)


def _churn(cfg, sigma):
    tmin, tmax = cfg.option("s_tmin", 0.0), cfg.option("s_tmax", math.inf)
    gamma = min(cfg.option("s_churn", 0.0) / cfg.num_inference_steps, math.sqrt(2.0) - 1.0) \
        if cfg.sampler == "euler" and tmin <= sigma <= tmax else 0.0
    return sigma * (1.0 + gamma), cfg.option("s_noise", 1.0) * sigma * math.sqrt(gamma * (2.0 + gamma))


def step_terms(cfg: SamplerConfig, levels, x, model_output, z, predicted_variance=None):
    """The step as a sum of terms, each (coefficient as a function of the levels, |data|).

    The step equals Σ coefficient(levels)·(signed data); the tolerance module takes every term in
    absolute value (the 'sum of absolute terms') and perturbs each coefficient's levels on its own
    (no credit for cancellation between coefficients). For the Euler family the terms of
    d = (x - x̂₀)/σ, the form k-diffusion and diffusers evaluate, are counted as well.
    """
    ax, am = np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(model_output, np.float64))
    az = np.abs(np.asarray(z, np.float64)) if z is not None else np.zeros_like(ax)
    p = cfg.prediction_type
    if cfg.sampler in ("ddpm", "ddim"):
        def x0(lv, j):
            return _conversion(p, lv[0])[0][j]

        def eps(lv, j):
            return _conversion(p, lv[0])[1][j]

        if cfg.sampler == "ddpm":
            def c_x0(lv):
                return math.sqrt(lv[1]) * ((lv[1] - lv[0]) / lv[1]) / (1.0 - lv[0])

            def c_xt(lv):
                return math.sqrt(lv[0] / lv[1]) * (1.0 - lv[1]) / (1.0 - lv[0])

            def std(lv):
                return ref.ddpm_variance(lv[0], lv[1], cfg.option("variance_type", "fixed_small"),
                                         predicted_variance)

            if threshold_options(cfg):  # the thresholded x̂₀ (|x̂₀| <= 1) is the data of c_x0
                return [(c_x0, thresholded_abs(cfg, levels, x, model_output)), (c_xt, ax), (std, az)]
            return [(lambda lv: c_x0(lv) * x0(lv, 0), ax), (lambda lv: c_x0(lv) * x0(lv, 1), am),
                    (c_xt, ax), (std, az)]

        def c_eps(lv):
            return ref.ddim_noise_scale(lv[0], lv[1], cfg.option("eta", 0.0))[0]

        def s(lv):
            return ref.ddim_noise_scale(lv[0], lv[1], cfg.option("eta", 0.0))[1]

        thr = bool(threshold_options(cfg))
        x0_terms = [(lambda lv: math.sqrt(lv[1]), thresholded_abs(cfg, levels, x, model_output))] if thr else \
            [(lambda lv: math.sqrt(lv[1]) * x0(lv, 0), ax), (lambda lv: math.sqrt(lv[1]) * x0(lv, 1), am)]
        terms = x0_terms + [(lambda lv: c_eps(lv) * eps(lv, 0), ax), (lambda lv: c_eps(lv) * eps(lv, 1), am), (s, az)]
        if (cfg.option("clip_sample", False) or thr) and cfg.option("use_clipped_model_output", False):
            # ε̂ re-derived from the clipped (thresholded) x̂₀: (x_t - √ᾱ_t·x̂₀)/√(1-ᾱ_t), |x̂₀| <= 1
            r = np.ones_like(ax)
            terms += [(lambda lv: c_eps(lv) / math.sqrt(1.0 - lv[0]), ax),
                      (lambda lv: c_eps(lv) * math.sqrt(lv[0]) / math.sqrt(1.0 - lv[0]), r)]
        return terms

    # Euler family, VE state: churn to σ̂, convert at σ̂ (x_vp = x/√(σ̂²+1)), then x + (σ_to - σ̂)·d
    def hat(lv):
        return _churn(cfg, lv[0])

    def to(lv):
        return lv[1] if cfg.sampler == "euler" else ref.ancestral_sigmas(lv[0], lv[1], cfg.option("eta", 1.0))[0]

    def scale(lv):
        return 1.0 / math.sqrt(hat(lv)[0] ** 2 + 1.0)

    def conv(lv, which, j):
        sig = hat(lv)[0]
        return _conversion(p, 1.0 / (sig * sig + 1.0))[which][j]

    def step_len(lv):
        return to(lv) - hat(lv)[0]

    kick = [(lambda lv: hat(lv)[1], az)]
    ax_hat = ax + hat(levels)[1] * az  # the state after the churn, at the nominal levels
    terms = [(lambda lv: 1.0, ax_hat),
             (lambda lv: step_len(lv) * conv(lv, 1, 0) * scale(lv), ax_hat),
             (lambda lv: step_len(lv) * conv(lv, 1, 1), am),
             # d = (x - x̂₀)/σ̂ as evaluated: its two parts, each scaled by the step length
             (lambda lv: step_len(lv) / hat(lv)[0], ax_hat),
             (lambda lv: step_len(lv) / hat(lv)[0] * conv(lv, 0, 0) * scale(lv), ax_hat),
             (lambda lv: step_len(lv) / hat(lv)[0] * conv(lv, 0, 1), am)] + kick
    if cfg.sampler == "euler_ancestral":
        terms.append((lambda lv: ref.ancestral_sigmas(lv[0], lv[1], cfg.option("eta", 1.0))[1], az))
    return terms



def thresholded_abs(cfg: SamplerConfig, levels, x, model_output) -> np.ndarray:
    """|x̂₀| after dynamic thresholding at the nominal levels (<= 1): the data of its coefficient."""
    x0 = ref.predict_x0_and_eps(x, model_output, cfg.prediction_type, levels[0])[0]
    return np.abs(_clip_or_threshold(cfg, x0))


def threshold_parts(cfg: SamplerConfig, levels, x, model_output):
    """For a thresholded DDPM / DDIM step: (x̂₀, the terms of x̂₀ as (coefficient(levels), |data|),
    the coefficients that multiply the thresholded x̂₀ in the step); None without thresholding.
    tolerances.threshold_error turns the x̂₀ terms' bound into the thresholded x̂₀'s."""
    if cfg.sampler not in ("ddpm", "ddim") or not threshold_options(cfg):
        return None
    ax, am = np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(model_output, np.float64))
    p = cfg.prediction_type
    x0 = ref.predict_x0_and_eps(x, model_output, p, levels[0])[0]
    x0_terms = [(lambda lv: _conversion(p, lv[0])[0][0], ax), (lambda lv: _conversion(p, lv[0])[0][1], am)]
    if cfg.sampler == "ddpm":
        carriers = [lambda lv: math.sqrt(lv[1]) * ((lv[1] - lv[0]) / lv[1]) / (1.0 - lv[0])]
    else:
        carriers = [lambda lv: math.sqrt(lv[1])]
        if cfg.option("use_clipped_model_output", False):  # ε̂ = (x_t - √ᾱ_t·x̂₀)/√(1-ᾱ_t) carries it too
            carriers.append(lambda lv: ref.ddim_noise_scale(lv[0], lv[1], cfg.option("eta", 0.0))[0]
                            * math.sqrt(lv[0]) / math.sqrt(1.0 - lv[0]))
    return x0, x0_terms, carriers


# --- the expectation as named pieces --------------------------------------------------------------


def _sigma_table_at(abar, t, interp="linear") -> np.ndarray:
    """σ = √((1-ᾱ)/ᾱ) of a given ᾱ table at (fractional) t, interpolated as ref.sigma_at does;
    NaN where the table is NaN, inf where ᾱ = 0 carries weight. For tables ref.Schedule refuses
    (a floor that rises above ᾱ_{T-2}, NaN from a float32 underflow)."""
    abar = np.asarray(abar, np.float64)
    t_in = np.asarray(t, np.float64)
    if np.any(np.isnan(t_in)):  # a NaN timestep (of a NaN σ): NaN σ
        return np.where(np.isnan(t_in), np.nan, _sigma_table_at(abar, np.nan_to_num(t_in), interp))
    t = np.clip(t_in, 0, abar.size - 1)  # outside [0, T-1]: the end value (np.interp)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = np.sqrt((1.0 - abar) / abar)
        lo = np.clip(np.floor(t), 0, abar.size - 1).astype(np.int64)
        hi = np.minimum(lo + 1, abar.size - 1)
        w = t - lo
        s_lo, s_hi = table[lo], table[hi]
        if interp == "linear":
            mixed = s_lo + w * (s_hi - s_lo)
        else:
            mixed = np.exp(np.log(s_lo) + w * (np.log(s_hi) - np.log(s_lo)))
    return np.where(w == 0, s_lo, np.where(np.isinf(s_hi), np.inf, mixed))


def _t_from_sigma_table(abar, sigma, log_table=None, log_sigma=None) -> np.ndarray:
    """The model timestep of each σ from a given ᾱ table: t piecewise linear in ln σ between the
    table's own σ (reference.timestep_from_sigma, for tables ref.Schedule refuses). The segment is
    the last t whose σ_t <= σ (clipped to [0, T-2]; for an increasing table, searchsorted's), so a
    floor that rises above σ_{T-2} still maps σ_{T-1} itself to T-1. ``log_table`` (ln σ_t, e.g. an
    implementation's float32 one) replaces the table's own, ``log_sigma`` (an implementation's own
    ln σ) the float64 ln σ."""
    abar = np.asarray(abar, np.float64)
    sig = np.asarray(sigma, np.float64)
    T = abar.size
    if T == 1:
        return np.zeros(sig.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = np.log(np.sqrt((1.0 - abar) / abar)) if log_table is None else np.asarray(log_table, np.float64)
        ls = np.log(np.maximum(sig, 1e-300)) if log_sigma is None else np.asarray(log_sigma, np.float64)
        below = table[:, None] <= ls.ravel()[None, :]
        idx = np.where(below.any(axis=0), T - 1 - np.argmax(below[::-1], axis=0), 0)
        idx = np.clip(idx, 0, T - 2)
        low, high = table[idx], table[idx + 1]
        w = np.where(np.isinf(high), np.where(np.isinf(ls.ravel()), 1.0, 0.0), (ls.ravel() - low) / (high - low))
    t = idx + np.clip(np.nan_to_num(w, nan=0.0, neginf=0.0, posinf=1.0), 0.0, 1.0)
    return np.where(np.isnan(sig.ravel()), np.nan, t).reshape(sig.shape)  # a model's NaN σ: no timestep


def _c_noise(sig) -> np.ndarray:
    """reference.continuous_timesteps of a model's σ; a σ the model leaves NaN or inf (a table it
    cannot interpolate) gives NaN / inf timesteps, which no implementation matches."""
    sig = np.asarray(sig, np.float64)
    if np.all(np.isfinite(sig) & (sig > 0)):
        return ref.continuous_timesteps(sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.25 * np.log(sig)


def converted_from_table(cfg: SamplerConfig, abar, spacing_ts, base=None, log_table=None):
    """(timesteps, σ) of the configuration's converted σ schedule (or continuous timesteps) built
    from a given ᾱ table, as reference.converted_euler_sigmas builds them from a schedule: σ at the
    spacing's timesteps (``base``, if given, replaces them) give σ_max and σ_min, the converted
    schedule's S values lie between, each one's timestep is t(σ) on the table
    (:func:`_t_from_sigma_table`), or ¼·ln σ for timestep_type="continuous"; then the final σ."""
    abar = np.asarray(abar, np.float64)
    S = cfg.num_inference_steps
    if base is None:
        base = _sigma_table_at(abar, spacing_ts, cfg.option("interpolation_type", "linear"))
    kind = sigma_schedule(cfg)
    if kind == "timesteps":
        sig, ts = np.asarray(base, np.float64), np.asarray(spacing_ts, np.float64)
    elif not (np.isfinite(base[-1]) and np.isfinite(base[0])):
        # a table with no finite σ range (a model's NaN, or σ_max = inf where no floor is modelled):
        # no converted values (NaN), which no implementation matches
        sig, ts = np.full(S, np.nan), np.full(S, np.nan)
    else:
        lo, hi = float(base[-1]), float(base[0])
        sig = {"karras": lambda: ref.karras_sigmas(lo, hi, S),
               "exponential": lambda: ref.exponential_sigmas(lo, hi, S),
               "beta": lambda: ref.beta_sigmas(lo, hi, S)}[kind]()
        ts = _t_from_sigma_table(abar, sig, log_table)
    if continuous(cfg):
        ts = _c_noise(sig)
    last = 0.0 if cfg.option("final_sigmas_type", "zero") == "zero" else math.sqrt((1 - abar[0]) / abar[0])
    return ts, np.concatenate([sig, [last]])


def _p_timesteps(E, cfg):
    """The spacing's timesteps; with a converted σ schedule or continuous timesteps, those of the
    expected σ: a model that replaces σ or ᾱ moves them too (t(σ) on its table, or ¼·ln σ)."""
    if cfg.sampler in VE_SAMPLERS and (sigma_schedule(cfg) != "timesteps" or continuous(cfg)) \
            and (E.overrides("sigmas") or E.overrides("alphas_cumprod")):
        sig = E.sigmas(cfg)[:-1]
        if continuous(cfg):
            return _c_noise(sig)
        return _t_from_sigma_table(E.alphas_cumprod(cfg), sig)
    return timesteps(cfg)


def _p_timestep_kind(E, cfg):
    """How the model timesteps follow from σ: None (the spacing's), "converted" (t(σ) of a Karras /
    exponential / Beta σ), "continuous" (¼·ln σ); the checks derive the timesteps' bounds from it."""
    if cfg.sampler not in VE_SAMPLERS:
        return None
    if continuous(cfg):
        return "continuous"
    return "converted" if sigma_schedule(cfg) != "timesteps" else None


def _p_alphas_cumprod(E, cfg):
    return schedule(cfg).alphas_cumprod


def _p_alphas_cumprod_abs(E, cfg):
    return 0.0


def _p_sigmas(E, cfg):
    interp, final = cfg.option("interpolation_type", "linear"), cfg.option("final_sigmas_type", "zero")
    if E.overrides("alphas_cumprod") and cfg.sampler in VE_SAMPLERS and \
            (sigma_schedule(cfg) != "timesteps" or continuous(cfg)):
        return converted_from_table(cfg, E.alphas_cumprod(cfg), spacing_timesteps(cfg))[1]
    if E.overrides("alphas_cumprod") or E.overrides("timesteps"):
        abar = E.alphas_cumprod(cfg)
        last = 0.0 if final == "zero" else math.sqrt((1 - abar[0]) / abar[0])
        return np.concatenate([_sigma_table_at(abar, E.timesteps(cfg), interp), [last]])
    return sigmas(cfg, schedule(cfg))


def _p_chain_sigmas(E, cfg, abar, ts):
    """σ each step of an implementation should use, from its own ᾱ table and timesteps: σ(t) as
    interpolated; for a converted σ schedule the σ whose t(σ) is the timestep (t(σ) is piecewise
    linear in ln σ, so σ is the table's log-linear interpolation at t); for continuous timesteps
    σ = exp(4t)."""
    final = 0.0 if cfg.option("final_sigmas_type", "zero") == "zero" else math.sqrt((1 - abar[0]) / abar[0])
    ts = np.asarray(ts, np.float64)
    if continuous(cfg):
        with np.errstate(over="ignore"):  # (discrete timesteps read as c_noise: inf, a failure)
            return np.concatenate([np.exp(4.0 * ts), [final]])
    interp = "log_linear" if sigma_schedule(cfg) != "timesteps" else cfg.option("interpolation_type", "linear")
    return np.concatenate([_sigma_table_at(abar, ts, interp), [final]])


def _p_final_alpha_bar(E, cfg, abar):
    return final_alpha_bar(cfg, abar)


def _p_vp_levels(E, cfg, abar, i):
    ts = E.timesteps(cfg).astype(np.int64)
    a_t = float(abar[ts[i]])
    a_n = float(abar[ts[i + 1]]) if i + 1 < ts.size else E.final_alpha_bar(cfg, abar)
    return a_t, a_n


def _p_ddpm_std(E, cfg, a_t, a_p, pv):
    """The DDPM noise std of a step ᾱ_t → ᾱ_prev for the configuration's variance type."""
    return ref.ddpm_variance(a_t, a_p, cfg.option("variance_type", "fixed_small"), pv)


def _p_ddpm_noise_std(E, cfg, i, levels, pv):
    """The std of the noise step i adds (the oracle: none on the last step, which lands on ᾱ = 1)."""
    return E.ddpm_std(cfg, levels[0], levels[1], pv)


def _p_ddim_coefficients(E, cfg, levels):
    return ref.ddim_noise_scale(levels[0], levels[1], cfg.option("eta", 0.0))


def _p_ancestral_sigmas(E, cfg, sigma, sigma_next):
    return ref.ancestral_sigmas(sigma, sigma_next, cfg.option("eta", 1.0))


def _p_conversion_sigma(E, cfg, sigma, sigma_hat):
    """The σ an Euler step converts the model output at (after the churn: σ̂)."""
    return sigma_hat


def _p_churn_steps(E, cfg):
    """The S of Euler's churn γ = min(s_churn/S, √2 - 1)."""
    return cfg.num_inference_steps


def _p_step_widening(E, cfg, i, levels, x, model_output, z, pv, u):
    return 0.0


def _p_silent_at_T(E, cfg, levels, x, model_output, z, pv, u, subnormal):
    """What ε-prediction at zero SNR may return without raising or warning: nothing (None)."""
    return


def _p_loop_model_point(E, cfg):
    """Where a loop evaluates the model for Euler with churn: after it (Karras Alg. 2)."""
    return "after_churn"


def _p_add_noise_in_loop_step(E, cfg, begin, steps_taken):
    """The step whose level add_noise lands on while sampling (training side): the current one."""
    return begin + steps_taken


def _p_velocity_alpha_bars(E, cfg, abar, sigmas, timesteps, t):
    """ᾱ of the v target at each timestep t (training side): VP samplers, the implementation's
    ᾱ_t; the Euler family, the level of its own σ at the index of t in its timesteps,
    1/(σ² + 1) (t may be fractional)."""
    if cfg.sampler in VE_SAMPLERS:
        idx = _index_in(timesteps, t)
        return ref.alpha_bars_from_sigmas(np.asarray(sigmas, np.float64)[idx])
    return np.asarray(abar, np.float64)[np.asarray(t, np.float64).astype(np.int64)]


def _index_in(timesteps, t) -> np.ndarray:
    """The position of each t in a schedule's timesteps (each must occur exactly once)."""
    ts = np.asarray(timesteps, np.float64)
    idx = []
    for v in np.asarray(t, np.float64).ravel():
        hits = np.flatnonzero(ts == v)
        if hits.size != 1:
            from .contract import Unsupported

            raise Unsupported(f"timestep {v:g} occurs {hits.size} times in the schedule")
        idx.append(int(hits[0]))
    return np.array(idx, np.int64)


def _p_unchecked_levels(E, cfg, abar, levels):
    """Whether a step at these (degenerate) levels of the implementation's table has no value to
    compare (the oracle: never; the levels must be a denoising step)."""
    return False


def _ve_conversion(prediction_type, x, model_output, sigma):
    """x̂₀ of the VE state x at level σ (as the Euler schedulers convert)."""
    scale = ref.samplers.ve_scale(sigma)
    return ref.predict_x0_and_eps(np.asarray(x, np.float64) / scale, model_output, prediction_type,
                                  (1.0 / scale) ** 2)[0]


def _p_step(E, cfg, i, levels, x, model_output, z, pv):
    """Step i at the given levels, built from the pieces (the oracle's step where none is replaced)."""
    custom = {"ddpm": ("ddpm_std", "ddpm_noise_std"), "ddim": ("ddim_coefficients",),
              "euler": ("conversion_sigma", "churn_steps"), "euler_ancestral": ("ancestral_sigmas",)}[cfg.sampler]
    lo, hi = levels
    if not any(E.overrides(n) for n in custom) and not (cfg.sampler in VE_SAMPLERS and hi > lo):
        return step(cfg, levels, x, model_output, z, pv)
    p = cfg.prediction_type
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if cfg.sampler == "ddpm":
            mean = ref.ddpm_step(x, model_output, prediction_type=p, alpha_bar_t=lo, alpha_bar_prev=hi,
                                 variance_type="fixed_small" if pv is None else cfg.option("variance_type"),
                                 predicted_variance=pv, clip_sample=cfg.option("clip_sample", False),
                                 noise=np.zeros(np.shape(x)), **threshold_options(cfg))
            std = E.ddpm_noise_std(cfg, i, levels, pv)
            return mean + (0.0 if z is None else std * np.asarray(z, np.float64))
        if cfg.sampler == "ddim":
            x0, eps = ref.predict_x0_and_eps(x, model_output, p, lo)
            if cfg.option("clip_sample", False) or threshold_options(cfg):
                x0 = _clip_or_threshold(cfg, x0)
                if cfg.option("use_clipped_model_output", False):
                    eps = (np.asarray(x, np.float64) - math.sqrt(lo) * x0) / math.sqrt(1.0 - lo)
            c_eps, s = E.ddim_coefficients(cfg, levels)
            return math.sqrt(hi) * x0 + c_eps * eps + (0.0 if z is None else s * np.asarray(z, np.float64))
        if math.isinf(lo):
            return step(cfg, levels, x, model_output, z, pv)
        if cfg.sampler == "euler":
            churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
            xh, sh = ref.euler_churn(x, lo, num_inference_steps=E.churn_steps(cfg), noise=z, **churn)
            x0 = _ve_conversion(p, xh, model_output, E.conversion_sigma(cfg, lo, sh))
            return xh + (hi - sh) * (xh - x0) / sh
        down, up = E.ancestral_sigmas(cfg, lo, hi)
        x0 = _ve_conversion(p, x, model_output, lo)
        return np.asarray(x, np.float64) + (down - lo) * (x - x0) / lo + up * np.asarray(z, np.float64)


def _p_step_tolerance(E, cfg, i, levels, x, model_output, z, pv, u, subnormal):
    from . import tolerances

    try:
        tol = tolerances.step(cfg, levels, x, model_output, z, u, pv, subnormal)
    except ValueError:  # levels the oracle refuses (σ rises): only a model that predicts NaN there
        tol = np.zeros(np.shape(x))
    return tol + E.step_widening(cfg, i, levels, x, model_output, z, pv, u)


def _p_loop_map(E, cfg, k, pair, denoiser, S):
    """Step k of a loop from ᾱ pair[0] to pair[1], as f(x_vp, z) -> x_vp_next, the model
    evaluated by ``denoiser``."""
    options = {n: v for n, v in cfg.options if n in ref.loop.SAMPLER_OPTIONS[cfg.sampler]}
    a, a_next = float(pair[0]), float(pair[1])
    oracle = ref.step_map(cfg.sampler, denoiser, prediction_type=cfg.prediction_type, alpha_bar=a,
                          alpha_bar_next=a_next, num_inference_steps=S, **options)
    if E is ORACLE or (cfg.sampler in VE_SAMPLERS and a == 0.0):
        return oracle

    def f(x, z=None):
        # a model's NaN stays NaN (the updates are elementwise); the rest is stepped on
        x = np.asarray(x, np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            return np.where(bad, np.nan, f(np.where(bad, 0.0, x), z))
        if cfg.sampler not in VE_SAMPLERS:
            return E.step(cfg, k, (a, a_next), x, denoiser(x, None, a), z, None)
        sig, sig_n = math.sqrt((1 - a) / a), math.sqrt((1 - a_next) / a_next)
        xe = x * ref.samplers.ve_scale(sig)
        seen, level = x, a
        if cfg.sampler == "euler" and E.loop_model_point(cfg) == "after_churn":
            churn = {n: cfg.option(n) for n in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(n) is not None}
            xh, sh = ref.euler_churn(xe, sig, num_inference_steps=E.churn_steps(cfg), noise=z, **churn)
            seen, level = xh / ref.samplers.ve_scale(sh), 1.0 / ref.samplers.ve_scale(sh) ** 2
        out = denoiser(seen, None, level)
        return E.step(cfg, k, (sig, sig_n), xe, out, z, None) / ref.samplers.ve_scale(sig_n)

    return f


_PIECE_FUNCTIONS = {name[3:]: fn for name, fn in dict(globals()).items() if name.startswith("_p_")}
#: the names a deviation's model may replace
PIECES = tuple(_PIECE_FUNCTIONS)
#: pieces whose values add up over the deviations that replace them (tolerance widenings)
SUMMED = ("step_widening", "alphas_cumprod_abs")


class Expectation:
    """What the implementation is expected to compute: the oracle's pieces, some replaced by the
    models of declared deviations (``sources``)."""

    def __init__(self, models=(), sources=(), nonfinite_excused=False):
        self._models = {}
        for name, fn in models:
            if name in SUMMED:
                self._models.setdefault(name, []).append(fn)
            elif name in self._models and self._models[name] is not fn:
                raise ValueError(f"two deviations ({', '.join(d.id for d in sources)}) model the piece "
                                 f"{name!r} differently; declare one model for both")
            else:
                self._models[name] = fn
        self.sources = tuple(sources)
        #: non-finite elements of the implementation's results are excused (a non-finite deviation)
        self.nonfinite_excused = nonfinite_excused
        self.oracle = ORACLE if "ORACLE" in globals() else self

    def overrides(self, name: str) -> bool:
        return name in self._models

    def with_models(self, deviations) -> Expectation:
        deviations = [d for d in deviations if d.model]
        if not deviations:
            return self
        pairs = [(n, fn) for n, fns in self._models.items() for fn in (fns if n in SUMMED else [fns])]
        pairs += [(n, fn) for d in deviations for n, fn in d.model.items()]
        return Expectation(pairs, self.sources + tuple(deviations), self.nonfinite_excused)

    def excusing_nonfinite(self) -> Expectation:
        pairs = [(n, fn) for n, fns in self._models.items() for fn in (fns if n in SUMMED else [fns])]
        return Expectation(pairs, self.sources, nonfinite_excused=True)

    def __getattr__(self, name):
        if name.startswith("_") or name not in _PIECE_FUNCTIONS:
            raise AttributeError(name)
        model = self._models.get(name)
        if name in SUMMED:
            def summed(*args):
                return sum((fn(self, *args) for fn in model or ()), _PIECE_FUNCTIONS[name](self, *args))
            return summed
        fn = model or _PIECE_FUNCTIONS[name]
        return lambda *args: fn(self, *args)

    def __repr__(self):
        return "ORACLE" if not self.sources else f"Expectation(models of {', '.join(d.id for d in self.sources)})"


ORACLE = Expectation()
