"""The training-side conformance properties: the forward process, the v target, SNR and the
Min-SNR loss weights of an implementation, against reference/training.py.

The contract's optional training methods (an implementation or sampler lacking one skips that
property with the reason):

``Sampler.add_noise(x0, eps, t) -> state``
    x₀ noised to the level of timestep t[b] for each batch element b, as the implementation's
    training / img2img path computes it, in the sampler's state: the VP x_t = √ᾱ·x₀ + √(1-ᾱ)·ε,
    or for "ve" samplers x₀ + σ·ε (the sampler's declared ``state``; a VP-state Euler sampler gives
    the VP form at ᾱ = 1/(σ²+1)). VP samplers take any training timestep 0..T-1; VE samplers
    take values of their own ``timesteps``.
``Sampler.add_noise_in_loop(x0, eps, begin, steps_taken) -> state``
    the same, as an img2img / inpainting pipeline calls it while sampling: sampling began at step
    index ``begin`` and ``steps_taken`` denoising steps were taken since; the level must be that
    of step ``begin + steps_taken`` (diffusers 0.27.0-0.27.1 used the begin index, #7348).
``Sampler.velocity(x0, eps, t) -> v``
    the v target √ᾱ·ε - √(1-ᾱ)·x₀ at timestep t[b] (same timesteps as ``add_noise``).
``Implementation.training_snr(config, t) -> snr`` and
``Implementation.min_snr_weights(config, t, gamma) -> weights``
    SNR(t) and the Min-SNR-γ weight of the loss on the configuration's prediction type, as the
    implementation's training code computes them. At SNR 0 an ε weight must be refused (raise
    or warn): the oracle refuses it (reference.EpsilonAtZeroSNR).

Tolerances are derived from the dtype (u) and the schedule's dtype (u_s): the implementation
works from its own levels (ᾱ_t or σ, already checked by the schedule property), rounds them to
the working dtype (the exact difference |level - quantize(level)| is carried through), takes a
square root and forms two products and a sum.
"""

from __future__ import annotations

import numpy as np

import reference as ref

from .. import expected
from ..compare import Record, assert_close
from ..contract import SamplerConfig, Unsupported
from ..expected import ORACLE
from ..tolerances import oracle_relative
from .checks import refuses

VE = expected.VE_SAMPLERS


def _method(obj, name: str, what: str):
    fn = getattr(obj, name, None)
    if fn is None:
        raise Unsupported(f"{what} has no {name}() (optional training-side contract method)")
    return fn


def _expand(level: np.ndarray, ndim: int) -> np.ndarray:
    return level.reshape(level.shape + (1,) * (ndim - 1))


def _drawn_timesteps(cfg: SamplerConfig, smp, pick) -> np.ndarray:
    """The timesteps a draw picks (one per batch element): values of the sampler's own timesteps
    for the Euler family, training timesteps pick mod T otherwise."""
    if cfg.sampler in VE:
        return np.asarray(smp.timesteps, np.float64)[np.asarray(pick) % len(smp.timesteps)]
    return (np.asarray(pick) % cfg.num_train_timesteps).astype(np.float64)


def _levels_at(cfg: SamplerConfig, smp, t: np.ndarray):
    """The implementation's own level at each timestep: ᾱ_t (VP) or σ (VE, at the index of t in
    its timesteps); a VE timestep that occurs twice in its schedule is ambiguous and rejected."""
    if cfg.sampler in VE:
        return smp.sigmas[expected._index_in(smp.timesteps, t)]
    abar = smp.alphas_cumprod
    if abar is None:
        raise Unsupported("the sampler reports no alphas_cumprod")
    return abar[t.astype(np.int64)]


def _close(expect):
    """assert_close, excusing non-finite elements where a non-finite deviation applies."""
    def close(*args, **kw):
        return assert_close(*args, excuse_nonfinite=expect.nonfinite_excused, **kw)
    return close


def _vp_tolerance(impl, abar, a, b):
    """|√ᾱ·a ± √(1-ᾱ)·b| as formed in the working dtype: 6 roundings of each term (the level
    rounded to the dtype, the square roots, 1 - ᾱ, the products and the sum) plus the exact change
    of √ᾱ and √(1-ᾱ) from rounding ᾱ to the dtype, plus the subnormal spacing per rounding."""
    u, sub = impl.unit_roundoff, getattr(impl, "smallest_subnormal", 0.0)
    aq = np.clip(impl.quantize(abar), 0.0, 1.0)
    d_alpha = np.abs(np.sqrt(aq) - np.sqrt(abar))
    d_sigma = np.abs(np.sqrt(1.0 - aq) - np.sqrt(1.0 - abar))
    terms = np.sqrt(abar) * np.abs(a) + np.sqrt(1.0 - abar) * np.abs(b)
    # (+ the oracle's own last ULPs, for a float64 implementation: tolerances.oracle_relative)
    return (6 * u + oracle_relative()) * terms + d_alpha * np.abs(a) + d_sigma * np.abs(b) + 6 * sub


def _ve_tolerance(impl, sigma, x0, eps):
    """x₀ + σ·ε in the working dtype: 3 roundings of each term plus the exact change of σ from
    rounding it to the dtype, plus the subnormal spacing per rounding."""
    u, sub = impl.unit_roundoff, getattr(impl, "smallest_subnormal", 0.0)
    d_sigma = np.abs(impl.quantize(sigma) - sigma)
    return (3 * u + oracle_relative()) * (np.abs(x0) + np.abs(sigma * eps)) + d_sigma * np.abs(eps) + 3 * sub


def _reject_infinite_sigma(sigma):
    if np.any(np.isinf(sigma)):
        # the VE state x₀ + σ·ε is infinite at σ = inf; its finite form is the VP one
        raise Unsupported("σ = inf: the VE state is infinite (only the VP form is finite at SNR 0)")


def check_add_noise(impl, cfg: SamplerConfig, x0, eps, pick, record: Record | None = None, expect=ORACLE):
    """add_noise at drawn timesteps equals the oracle's forward process at the implementation's
    own levels (VP: √ᾱ·x₀ + √(1-ᾱ)·ε; VE: x₀ + σ·ε); at SNR 0 it is ε exactly-finite."""
    smp = impl.build(cfg)
    fn = _method(smp, "add_noise", "the sampler")
    q = impl.quantize
    x0, eps = q(x0), q(eps)
    t = _drawn_timesteps(cfg, smp, pick)
    level = _levels_at(cfg, smp, t)
    lv = _expand(level, x0.ndim)
    got = fn(x0, eps, t)
    ctx = f"timesteps {t.tolist()}, config: {cfg}"
    if cfg.sampler in VE and smp.state == "vp":  # a VP-state Euler (declared): the VP form at 1/(σ²+1)
        lv = ref.alpha_bars_from_sigmas(lv)
        want = ref.add_noise(x0, eps, lv)
        tol = _vp_tolerance(impl, lv, x0, eps)
    elif cfg.sampler in VE:
        _reject_infinite_sigma(level)
        want = ref.add_noise_sigma(x0, eps, lv)
        tol = _ve_tolerance(impl, lv, x0, eps)
    else:
        want = ref.add_noise(x0, eps, lv)
        tol = _vp_tolerance(impl, lv, x0, eps)
    return _close(expect)(got, want, tol, f"add_noise at levels {level.tolist()}", ctx, record)


def check_add_noise_in_loop(impl, cfg: SamplerConfig, x0, eps, begin: int, steps_taken: int,
                            record: Record | None = None, expect=ORACLE):
    """add_noise while sampling (img2img: steps_taken = 0; inpainting: after each step) noises to
    the level of step begin + steps_taken of the implementation's own schedule."""
    smp = impl.build(cfg)
    fn = _method(smp, "add_noise_in_loop", "the sampler")
    q = impl.quantize
    x0, eps = q(x0), q(eps)
    S = len(smp.timesteps)
    begin = begin % S
    steps_taken = steps_taken % (S - begin)
    k = begin + steps_taken
    got = fn(x0, eps, begin, steps_taken)
    ctx = f"sampling begun at step {begin}, {steps_taken} steps taken (level of step {k}), config: {cfg}"
    if cfg.sampler in VE and smp.state == "vp":  # a VP-state Euler (declared): the VP form at 1/(σ²+1)
        a = float(ref.alpha_bars_from_sigmas(np.array([float(smp.sigmas[k])]))[0])
        want = ref.add_noise(x0, eps, a)
        tol = _vp_tolerance(impl, np.array(a), x0, eps)
        what = f"add_noise in the loop (σ_{k} = {smp.sigmas[k]:.6g}, VP state)"
    elif cfg.sampler in VE:
        sigma = float(smp.sigmas[k])
        _reject_infinite_sigma(np.array([sigma]))
        want = ref.add_noise_sigma(x0, eps, sigma)
        tol = _ve_tolerance(impl, np.array(sigma), x0, eps)
        what = f"add_noise in the loop (σ_{k} = {sigma:.6g})"
    else:
        a = float(smp.alphas_cumprod[int(smp.timesteps[k])])
        want = ref.add_noise(x0, eps, a)
        tol = _vp_tolerance(impl, np.array(a), x0, eps)
        what = f"add_noise in the loop (ᾱ at t = {smp.timesteps[k]:g}: {a:.6g})"
    return _close(expect)(got, want, tol, what, ctx, record)


def check_velocity(impl, cfg: SamplerConfig, x0, eps, pick, record: Record | None = None, expect=ORACLE):
    """The v target at drawn timesteps equals √ᾱ·ε - √(1-ᾱ)·x₀ at the implementation's own ᾱ of
    that timestep; at SNR 0 it is -x₀."""
    smp = impl.build(cfg)
    fn = _method(smp, "velocity", "the sampler")
    if smp.alphas_cumprod is None:
        raise Unsupported("the sampler reports no alphas_cumprod")
    q = impl.quantize
    x0, eps = q(x0), q(eps)
    t = _drawn_timesteps(cfg, smp, pick)
    abar = expect.velocity_alpha_bars(cfg, smp.alphas_cumprod, smp.sigmas, smp.timesteps, t)
    a = _expand(abar, x0.ndim)
    got = fn(x0, eps, t)
    want = ref.velocity(x0, eps, a)
    tol = _vp_tolerance(impl, a, eps, x0)
    return _close(expect)(got, want, tol, f"v target at ᾱ {abar.tolist()}",
                        f"timesteps {t.tolist()}, config: {cfg}", record)


def _snr_tolerance(impl, snr):
    """SNR formed from float ᾱ as (√ᾱ/√(1-ᾱ))² or ᾱ/(1-ᾱ): √ᾱ within u_s, √(1-ᾱ) within 1.5u_s,
    their quotient within 3.5u_s, squared 8u_s (relative), u_s that of the schedule's dtype."""
    u_s = getattr(impl, "schedule_unit_roundoff", 2.0**-24)
    return (8 * u_s + oracle_relative()) * np.abs(snr)


def _training_levels(impl, cfg: SamplerConfig, pick, method: str):
    """(the implementation's ``method``, training timesteps t = pick mod T, its own ᾱ_t)."""
    fn = _method(impl, method, "the implementation")
    smp = impl.build(cfg)
    if smp.alphas_cumprod is None:
        raise Unsupported("the sampler reports no alphas_cumprod")
    t = np.asarray(pick) % cfg.num_train_timesteps
    abar = smp.alphas_cumprod[t]
    if np.any(abar >= 1.0):
        raise Unsupported("ᾱ = 1 in the implementation's float table (SNR infinite)")
    return fn, t, abar


def check_training_snr(impl, cfg: SamplerConfig, pick, record: Record | None = None, expect=ORACLE):
    """SNR(t) at drawn training timesteps equals ᾱ/(1-ᾱ) of the implementation's own ᾱ; SNR(T)
    is exactly 0 with the zero-SNR rescale."""
    fn, t, abar = _training_levels(impl, cfg, pick, "training_snr")
    got = fn(cfg, t)
    want = ref.snr(abar)
    return _close(expect)(got, want, _snr_tolerance(impl, want), "SNR",
                        f"timesteps {t.tolist()}, config: {cfg}", record)


def check_min_snr_weights(impl, cfg: SamplerConfig, pick, gamma: float, record: Record | None = None, expect=ORACLE):
    """The Min-SNR-γ weight at drawn training timesteps equals reference.loss_weight on the
    implementation's own ᾱ (min(SNR, γ)/SNR for ε, min(SNR, γ) for x₀, min(SNR, γ)/(SNR + 1) for
    v); where the oracle refuses an ε weight at SNR 0, the implementation must raise or warn, not
    return NaN or a number silently. Tolerance: the SNR's (above), which min(·, γ)/SNR and
    /(SNR + 1) carry with condition <= 1, plus two roundings."""
    fn, t, abar = _training_levels(impl, cfg, pick, "min_snr_weights")
    ctx = f"timesteps {t.tolist()}, γ = {gamma}, config: {cfg}"
    try:
        want = ref.loss_weight(abar, cfg.prediction_type, "min_snr", gamma=gamma)
    except ref.EpsilonAtZeroSNR:
        refused, got = refuses(fn, cfg, t, gamma)
        if refused:
            return 0.0
        zero = np.flatnonzero(abar == 0.0)
        at_zero = np.asarray(got, np.float64)[zero]
        if expect.nonfinite_excused and not np.any(np.isfinite(at_zero)):
            # a declared non-finite deviation: NaN/inf at SNR 0 excused, every other weight checked
            rest = abar > 0.0
            want = ref.loss_weight(abar[rest], cfg.prediction_type, "min_snr", gamma=gamma)
            u_s = getattr(impl, "schedule_unit_roundoff", 2.0**-24)
            return _close(expect)(np.asarray(got, np.float64)[rest], want, 10 * u_s * np.abs(want),
                                  "Min-SNR weight (SNR > 0)", ctx, record)
        kind = "non-finite" if not np.all(np.isfinite(at_zero)) else "a finite number"
        raise AssertionError(f"the ε-prediction Min-SNR weight at SNR 0 (t = {t[zero].tolist()}) is "
                             f"{kind} ({at_zero.tolist()}), returned without raising or warning "
                             f"(min(SNR, γ)/SNR is 0/0 there; the ε loss at SNR 0 is meaningless). {ctx}")
    got = fn(cfg, t, gamma)
    u_s = getattr(impl, "schedule_unit_roundoff", 2.0**-24)
    tol = (8 * u_s + 2 * u_s + oracle_relative()) * np.abs(want)
    return _close(expect)(got, want, tol, "Min-SNR weight", ctx, record)


