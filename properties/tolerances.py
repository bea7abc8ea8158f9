"""Tolerances of the conformance suite, each derived from a dtype's unit roundoff u and the
conditioning of the operation. Nothing here is tuned to make an implementation pass.

Model of an implementation: every elementary operation rounds with relative error <= u
(u = eps/2 of the dtype it computes in). First-order error analysis then bounds the error of a
result by u times (operations per term) times the sum of the absolute values of its terms, plus
its sensitivity to the few-ulp errors of the schedule values it reads.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import expected
from .contract import SamplerConfig

# imported here, not inside a test: the budgets' module defines Hypothesis tests, and defining one
# while another runs is a Hypothesis health-check failure (nested @given)
from .oracle import test_precision as budgets

#: rounding steps per term of a sampler update: converting the model output (2 products, 1 sum),
#: forming a coefficient from ᾱ or σ (<= 4 operations: ratio, complement, sqrt, product) and
#: accumulating it into the result (1 product, 1 sum). 2 + 1 + 4 + 2 = 9, rounded up to 10.
STEP_OPS = 10
#: a coefficient formed from a level (ᾱ or σ) by <= 4 operations has relative error <= 4u: the
#: same as the exact coefficient of a level perturbed by <= 4u relative. Counted twice (the level
#: of this step and of the next), each with its own sensitivity, so 4 each.
LEVEL_OPS = 4
#: unit roundoff of float32, the dtype diffusers computes every schedule in
U_FLOAT32 = 2.0**-24
#: unit roundoff of float64, the dtype the oracle computes in
U_FLOAT64 = 2.0**-53


@functools.cache
def oracle_ulp() -> float:
    """The oracle's own worst error, in float64 ULP, on any schedule quantity or step coefficient:
    the largest of the budgets its tests enforce against the 50-digit mpmath evaluation
    (``properties/oracle/test_precision.py``: ``SCHEDULE_QUANTITIES`` — every schedule array within
    ``reference.ORACLE_ULP_BOUND``, log SNR within ``ORACLE_LOG_SNR_ULP_BOUND`` — and the step
    coefficients' ``STEP_BUDGET_ULP`` / ``DD_STEP_BUDGET_ULP``, the one place they are stated;
    measured by ``python -m benchmarks.oracle_accuracy``). Read from there, so a tightened budget
    tightens every tolerance that includes it."""
    return float(max(*budgets.SCHEDULE_QUANTITIES.values(), budgets.STEP_BUDGET_ULP, budgets.DD_STEP_BUDGET_ULP))


def oracle_relative() -> float:
    """The oracle's own error as a relative bound: one ULP is at most 2·u₆₄ relative
    (ULP(y) = spacing(|y|) <= 2⁻⁵²·|y|), so k ULP <= 2k·u₆₄. Negligible against a float32
    implementation's bounds (≈ 2⁻²⁹ of them); for a float64 implementation it is what keeps a
    correct one from failing on the oracle's last ULPs."""
    return 2.0 * oracle_ulp() * U_FLOAT64


def _perturbed(fn, levels, j, rel):
    """fn at levels[j]·(1 ± rel), both sides where they stay in the domain; (Δfn, Δlevel/level)."""
    value = levels[j]
    pts = []
    for v in (value * (1 + rel), value * (1 - rel)):
        lv = list(levels)
        lv[j] = v
        try:
            pts.append((v, fn(tuple(lv))))
        except ValueError:  # the perturbed level leaves the domain (ᾱ > 1, ᾱ_t > ᾱ_next, ...)
            continue  # use the other side only
    if len(pts) < 2:
        pts.append((value, fn(tuple(levels))))
    (v1, f1), (v2, f2) = pts[0], pts[-1]
    return np.abs(np.asarray(f1, np.float64) - np.asarray(f2, np.float64)), abs(v1 - v2) / value


def step(cfg: SamplerConfig, levels, x, model_output, z, u: float, predicted_variance=None,
         subnormal: float = 0.0):
    """Allowed |implementation - oracle| of one step, per element.

    Σ over the step's terms c(levels)·data (see :func:`properties.expected.step_terms`) of
      STEP_OPS·u·|c|·|data|                      rounding of the arithmetic, and
      LEVEL_OPS·u_level·|∂c/∂ln level|·|data|    a coefficient formed backward-stably from levels
                                                  carrying LEVEL_OPS·u_level relative error,
    plus, for each term, STEP_OPS·subnormal·max(1, |c|), and STEP_OPS·subnormal·(step length) for
    the Euler family: below the normal range an operation errs by up to the dtype's smallest
    subnormal, absolutely, and that error is then multiplied by whatever multiplies its operand
    (an ε̂ of 1e-6 is subnormal in float16 and is multiplied by c_ε = σ/α, up to ~1e6; the Euler
    intermediate d is multiplied by the step length). u_level = max(u, float32's u): schedules
    are float32 or better. Levels 0, 1 and inf are exact in every dtype and are not perturbed. Each coefficient
    is perturbed on its own, so cancellation between coefficients earns no credit.
    """
    if cfg.sampler in expected.VE_SAMPLERS and math.isinf(levels[0]):
        return _step_from_infinity(cfg, levels, x, model_output, z, u, subnormal)
    u_level = max(u, U_FLOAT32)
    # the oracle's own step errs by STEP_OPS·u₆₄·Σ|terms| of its arithmetic plus its coefficients'
    # budget (oracle_relative each): a float64 implementation is compared with it, not with exact
    u_terms = STEP_OPS * (u + U_FLOAT64) + oracle_relative()
    amplification = 0.0
    if cfg.sampler in expected.VE_SAMPLERS and not math.isinf(levels[0]):
        # d = (x - x̂₀)/σ̂ is an intermediate: its subnormal rounding is multiplied by the step
        # length |σ_next - σ̂| <= |σ_next| + √2·σ (γ <= √2 - 1)
        amplification += abs(levels[1]) + math.sqrt(2.0) * levels[0]
    tol = np.full(np.shape(x), STEP_OPS * subnormal * amplification)
    tol = tol + _terms(expected.step_terms(cfg, levels, x, model_output, z, predicted_variance), levels, u_terms,
                       u_level, subnormal)
    parts = expected.threshold_parts(cfg, levels, x, model_output)
    if parts is not None:  # the thresholded x̂₀'s own error, carried by its coefficients
        x0, x0_terms, carriers = parts
        dy = threshold_error(x0, _terms(x0_terms, levels, u_terms, u_level, subnormal),
                             cfg.option("dynamic_thresholding_ratio", 0.995), cfg.option("sample_max_value", 1.0), u)
        for coef in carriers:
            tol = tol + abs(float(coef(tuple(levels)))) * dy
    return tol


def _terms(terms, levels, u_terms, u_level, subnormal):
    """Σ over (coefficient(levels), |data|) terms of their rounding (u_terms per unit of |c|·|data|)
    and level-sensitivity bounds (see step)."""
    tol = 0.0
    for coef, data in terms:
        c = np.abs(np.asarray(coef(tuple(levels)), np.float64))
        with np.errstate(invalid="ignore"):
            tol = tol + u_terms * np.where(data > 0, c * data, 0.0) \
                + STEP_OPS * subnormal * np.maximum(c, 1.0)
        for j, value in enumerate(levels):
            if value in (0.0, 1.0) or math.isinf(value):
                continue
            dc, dl = _perturbed(coef, levels, j, 1e-6)
            tol = tol + LEVEL_OPS * u_level * (dc / dl) * data
    return tol


def threshold_error(x0, dx0, ratio: float, max_value: float, u: float) -> np.ndarray:
    """Allowed error of Imagen's dynamic thresholding y = clip(x̂₀, -s, s)/s, per element, given the
    bound dx0 of the implementation's x̂₀ (reference.dynamic_threshold; batch on axis 0).

    Per sample b of n elements, with E = max_i dx0_i:
    * s is a quantile of |x̂₀|: q = (1-f)·a_(j) + f·a_(j+1) of the sorted |x̂₀|, at the position
      p = ratio·(n-1), j = ⌊p⌋. The order statistics are 1-Lipschitz in the max norm, so each
      a_(k) moves by <= E: the threshold's error is that of x̂₀ itself. q is continuous and piecewise
      linear in p with slopes the gaps a_(k+1) - a_(k): p formed in the dtype (ratio rounded, one
      product) errs by <= 2u·(n-1) + u, which moves q by that times the largest gap around j (each
      gap itself off by <= 2E); the interpolation rounds 3 times (3u·q). So
      δq <= E + 3u·q + (2u(n-1) + u)·(max gap + 2E).
    * s = clip(q, 1, max_value) is 1-Lipschitz: δs <= δq.
    * y_i = clip(x̂₀_i, -s, s)/s is continuous in (x̂₀_i, s) with |∂y/∂x̂₀| <= 1/s and
      |∂y/∂s| <= min(|x̂₀_i|, s)/s² (0 where clipped, |x̂₀|/s² inside); the division rounds once
      (|y| <= 1): δy_i <= dx0_i/s + min(|x̂₀_i|, s)·δs/s² + u.
    """
    x0 = np.asarray(x0, np.float64)
    dx0 = np.broadcast_to(np.asarray(dx0, np.float64), x0.shape)
    B = x0.shape[0]
    a = np.abs(x0.reshape(B, -1))
    d = dx0.reshape(B, -1)
    n = a.shape[1]
    E = np.max(d, axis=1)
    srt = np.sort(a, axis=1)
    with np.errstate(invalid="ignore"):
        q = np.nan_to_num(np.quantile(a, ratio, axis=1), nan=np.inf)
    gaps = np.diff(srt, axis=1) if n > 1 else np.zeros((B, 1))
    j = min(math.floor(ratio * (n - 1)), max(n - 2, 0))
    lo_j, hi_j = max(j - 1, 0), min(j + 2, gaps.shape[1])
    with np.errstate(invalid="ignore"):
        gap = np.nan_to_num(np.max(gaps[:, lo_j:hi_j], axis=1), nan=np.inf)
        dq = E + 3 * u * np.where(np.isfinite(q), q, 0.0) + (2 * u * (n - 1) + u) * (gap + 2 * E)
    s = np.clip(q, 1.0, max_value)[:, None]
    ds = dq[:, None]
    with np.errstate(invalid="ignore"):
        dy = d / s + np.minimum(a, s) * ds / (s * s) + u
    return np.nan_to_num(dy, nan=np.inf).reshape(x0.shape)


def _step_from_infinity(cfg: SamplerConfig, levels, x, model_output, z, u: float, subnormal: float):
    """Allowed error of an Euler / Euler-ancestral step from σ = inf, where the state x is the
    finite form (the VP x_t, properties/contract.py) and the result the VE state at σ_next.

    The update there is its limit (reference.loop.step_map): DDIM with η = 0 (Euler, after the
    churn's limit x̂ = (x + s_noise·√(γ(2+γ))·z)/(1+γ), reference.samplers.euler_churn_vp) or η
    (ancestral) from ᾱ = 0 to ᾱ_next = 1/(1+σ_next²), times √(σ_next²+1). Its bound: DDIM's
    :func:`step` on (x̂, model output, z), plus the churn's own STEP_OPS·u·(|x| + s_noise·
    √(γ(2+γ))·|z|), both scaled by √(σ_next²+1) (one more rounding, inside STEP_OPS)."""
    import reference as ref

    sig_n = float(levels[1])
    a_n = float(ref.alpha_bars_from_sigmas(np.array([sig_n]))[0])
    x = np.asarray(x, np.float64)
    extra = np.zeros(np.shape(x))
    eta = cfg.option("eta", 1.0) if cfg.sampler == "euler_ancestral" else 0.0
    xh = x
    if cfg.sampler == "euler":
        churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
        zz = np.zeros(np.shape(x)) if z is None else np.asarray(z, np.float64)
        xh, _ = ref.samplers.euler_churn_vp(x, 0.0, num_inference_steps=cfg.num_inference_steps, noise=zz, **churn)
        churned = cfg.option("s_tmax", math.inf) == math.inf  # s_tmin <= σ = inf <= s_tmax
        gamma = min(cfg.option("s_churn", 0.0) / cfg.num_inference_steps, math.sqrt(2.0) - 1.0) if churned else 0.0
        kick = cfg.option("s_noise", 1.0) * math.sqrt(gamma * (2.0 + gamma))
        extra = STEP_OPS * u * (np.abs(x) + kick * np.abs(zz))
    vp = SamplerConfig("ddim", prediction_type=cfg.prediction_type, options=(("eta", eta),))
    return (step(vp, (0.0, a_n), xh, model_output, z, u, subnormal=subnormal) + extra) * math.hypot(sig_n, 1.0)


def alphas_cumprod_relative(betas: np.ndarray, u: float = U_FLOAT32) -> np.ndarray:
    """Relative error bound of ᾱ_t = Π_{i<=t}(1 - β_i) computed in a dtype with unit roundoff u.

    t+1 roundings of the running product, plus the betas' own errors: a relative error of
    <= 8u in β_i (a linspace, a square or a sigmoid and an affine map: <= 8 operations) moves
    ᾱ_t by β_i/(1-β_i)·8u. Bound: u·[(t+1) + 8·Σ_{i<=t} β_i/(1-β_i)] (first order)."""
    b = np.minimum(betas, 1.0 - 1e-12)
    return u * (np.arange(1, b.size + 1) + 8.0 * np.cumsum(b / (1.0 - b)))


def rescaled_alphas_cumprod_relative(orig_abar: np.ndarray, orig_betas: np.ndarray,
                                     u: float = U_FLOAT32) -> np.ndarray:
    """Relative error bound of Algorithm 1's ᾱ' computed in a dtype with unit roundoff u.

    With e_t the bound of the original ᾱ_t, √ᾱ_t carries s_t·(e_t/2 + u). r_t = (s_t - s_T)/(s_1 - s_T)
    then has absolute error (δs_t + δs_T)/(s_1 - s_T) + 3u·r_t, so ᾱ' = s_1²r² has relative error
    2·(δs_t + δs_T)/(s_t - s_T) + 2·(δs_1 + δs_T)/(s_1 - s_T) + 8u; betas' = 1 - ᾱ'_t/ᾱ'_{t-1} and the
    implementation's second running product add (t+1)·u·(1 + 2) (each 1 - β' rounds and is re-multiplied).
    At t = T-1 the bound is 0: ᾱ'_T must be exactly 0."""
    e = alphas_cumprod_relative(orig_betas, u)
    s = np.sqrt(orig_abar)
    ds = s * (e / 2 + u)
    gap = s - s[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 2 * (ds + ds[-1]) / gap + 2 * (ds[0] + ds[-1]) / (s[0] - s[-1]) + 8 * u \
            + 3 * u * np.arange(1, s.size + 1)
    rel[-1] = 0.0
    return rel


def timestep_abs(t: np.ndarray) -> np.ndarray:
    """Fractional timesteps (Euler linspace) may be stored in float32: one rounding, <= 2⁻²⁴·|t|."""
    return U_FLOAT32 * np.abs(t)


def converted_sigma_relative(sig_rel: np.ndarray, spacing_ts) -> float:
    """Relative bound of a converted σ schedule (Karras, exponential, Beta; reference.spacing).

    Each σ_k is a mean of the endpoints σ_max = σ(t_first), σ_min = σ(t_last) with weights summing
    to 1: Karras σ_k^(1/ρ) = (1-r)·σ_max^(1/ρ) + r·σ_min^(1/ρ), so ∂ln σ_k/∂ln σ_max + ∂ln σ_k/∂ln σ_min
    = 1; exponential ln σ_k = (1-r)·ln σ_max + r·ln σ_min; Beta σ_k = (1-p)·σ_min + p·σ_max. The
    endpoints' relative bound (sig_rel at the timesteps' neighbouring training steps) therefore
    carries over, plus 4 roundings (the schedule's float64 arithmetic, ~ρ ulp of float64, is below
    one float32 rounding; the float32 cast of σ: 1; np.interp of the endpoints: 3)."""
    ts = np.asarray(spacing_ts, np.float64)
    ends = np.array([ts[0], ts[-1]])
    idx = np.clip(np.concatenate([np.floor(ends), np.ceil(ends)]).astype(np.int64), 0, sig_rel.size - 1)
    vals = sig_rel[idx]
    return float(np.max(vals[np.isfinite(vals)], initial=0.0)) + 4 * U_FLOAT32


def model_timestep_abs(kind: str, t, sigma, sigma_rel, abar, table_rel, u: float = U_FLOAT32) -> np.ndarray:
    """Allowed |t_impl - t| of model timesteps computed from σ (σ with relative bound sigma_rel).

    ``continuous``: t = ¼·ln σ, so δt <= ¼·δσ/σ, plus float32's log (u·|ln σ| = 4u·|t|, quartered)
    and the cast of t (u·|t|): ¼·sigma_rel + 2u·|t|.
    converted (t(σ), reference.timestep_from_sigma): t = i + w, w = (ℓ - ℓ_i)/(ℓ_{i+1} - ℓ_i) with
    ℓ = ln σ and ℓ_i = ln σ_i of the table: ∂w/∂ℓ = 1/Δ, ∂w/∂ℓ_i = (w-1)/Δ, ∂w/∂ℓ_{i+1} = -w/Δ, so
    δt <= (δℓ + (1-w)·δℓ_i + w·δℓ_{i+1})/Δ with δℓ = sigma_rel and δℓ_i = table_rel[i] + u·|ℓ_i| (the
    table's σ bound, and float32's log of it), Δ the smallest segment width among i-1, i, i+1 (t is
    continuous and piecewise linear: a perturbation that crosses into a neighbouring segment has
    that segment's slope), plus the cast of t (u·|t|)."""
    t = np.asarray(t, np.float64)
    if kind == "continuous":
        return 0.25 * np.asarray(sigma_rel) + 2 * u * np.abs(t)
    abar = np.asarray(abar, np.float64)
    T = abar.size
    if T < 2:
        return u * np.abs(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.log(np.sqrt((1.0 - abar) / abar))
        d = np.diff(ell)
    d = np.where(np.isfinite(d) & (d > 0), d, np.inf)
    i = np.clip(np.floor(np.nan_to_num(t)).astype(np.int64), 0, T - 2)
    w = np.clip(t - i, 0.0, 1.0)
    width = np.minimum(d[i], np.minimum(d[np.maximum(i - 1, 0)], d[np.minimum(i + 1, T - 2)]))
    dl = np.where(np.isfinite(ell), np.asarray(table_rel, np.float64) + u * np.abs(ell), 0.0)
    dl = np.nan_to_num(dl, nan=0.0, posinf=0.0)
    with np.errstate(invalid="ignore"):
        dt = (np.asarray(sigma_rel) + (1 - w) * dl[i] + w * dl[i + 1]) / width
    return np.nan_to_num(dt, nan=0.0, posinf=0.0) + u * np.abs(t)


def chain_sigma_relative(kind: str, ts, abar, table_rel, u: float = U_FLOAT32) -> np.ndarray:
    """Relative bound of σ(t_i) recomputed from a sampler's own (float32) timesteps and table, for
    the chaining check's 'σ of each step vs σ(t) of its timestep' with model timesteps from σ.

    ``continuous`` (σ = exp(4t)): t carries 2u·|t| + u·|ln σ|/4 (model_timestep_abs with exact σ),
    times 4: 8u·|t| + u·|ln σ| = 12u·|t|.
    converted (σ = exp(ℓ_i + w·Δ), the inverse of t(σ)): the cast of t (u·|t|) moves ℓ by Δ·u·|t|;
    the table's ℓ_i, ℓ_{i+1} carry table_rel + u·|ℓ| each (float32 log of the float32 σ); the
    float32 σ itself 1 rounding."""
    t = np.asarray(ts, np.float64)
    if kind == "continuous":
        return 12 * u * np.abs(t)
    abar = np.asarray(abar, np.float64)
    T = abar.size
    if T < 2:
        return np.full(t.shape, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.log(np.sqrt((1.0 - abar) / abar))
    i = np.clip(np.floor(np.nan_to_num(t)).astype(np.int64), 0, T - 2)
    with np.errstate(invalid="ignore"):
        delta = np.nan_to_num(np.abs(ell[i + 1] - ell[i]), nan=0.0, posinf=0.0)
        dl = np.nan_to_num(np.asarray(table_rel, np.float64) + u * np.abs(ell), nan=0.0, posinf=0.0)
    return delta * u * np.abs(t) + np.maximum(dl[i], dl[i + 1]) + u


def sigma_relative(abar_rel: np.ndarray, abar: np.ndarray) -> np.ndarray:
    """σ = √((1-ᾱ)/ᾱ): δσ/σ = ½·δᾱ/ᾱ·(1 + ᾱ/(1-ᾱ)) plus 3 roundings (subtract, divide, sqrt)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * abar_rel * (1.0 + abar / (1.0 - abar)) + 3 * U_FLOAT32


def guidance(x_cfg, x_pos, phi: float, u: float, subnormal: float = 0.0):
    """Allowed error of Algorithm 2, per element.

    A per-sample std over n elements, summed in a dtype with unit roundoff u, errs absolutely by
    <= (log2(n) + 4)·u·rms (cancellation in x - mean; rms = √mean(x²)), plus (n+4)·subnormal
    below the normal range. The ratio r = std_pos/std_cfg then errs by (e_pos + r·e_cfg)/std_cfg,
    and the output φ·x·r + (1-φ)·x by |x|·φ·that + 4·(u·|x|·(φ·r + 1) + subnormal). (A zero std
    is exact in any dtype only if the sample is exactly constant; a float std of a constant sample
    may come out as a few u·rms, which this bound allows.)"""
    x_cfg, x_pos = np.asarray(x_cfg), np.asarray(x_pos)
    axes = tuple(range(1, x_cfg.ndim))
    n = int(np.prod(x_cfg.shape[1:])) if x_cfg.ndim > 1 else 1

    def std_and_error(x):
        std = np.std(x, axis=axes, keepdims=True)
        rms = np.sqrt(np.mean(x * x, axis=axes, keepdims=True))
        return std, (math.log2(max(n, 2)) + 4) * u * rms + (n + 4) * subnormal

    s_cfg, e_cfg = std_and_error(x_cfg)
    s_pos, e_pos = std_and_error(x_pos)
    ratio = np.divide(s_pos, s_cfg, out=np.ones_like(s_cfg), where=s_cfg > 0)
    d_ratio = np.divide(e_pos + ratio * e_cfg, s_cfg, out=np.zeros_like(s_cfg), where=s_cfg > 0)
    return np.abs(x_cfg) * (phi * d_ratio + 4 * u * (phi * ratio + 1)) + 4 * subnormal
