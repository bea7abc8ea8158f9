"""The conformance properties as plain functions of (implementation, configuration, inputs).

The Hypothesis tests in this package draw the configurations and inputs; the deviation tests
run the same functions on each declared deviation's example. Every check raises AssertionError
with the configuration and the worst points when the implementation disagrees with the oracle.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

import reference as ref

from .. import expected, tolerances
from ..compare import Record, assert_close
from ..contract import SamplerConfig, Unsupported, is_loop_level, state_scale
from ..deviations import judge
from ..expected import ORACLE
from ..guard import ContractError

VE = expected.VE_SAMPLERS


class GenericImplementation:
    """An implementation whose build() is one of its ``generic_samplers()`` factories (property 9)."""

    def __init__(self, impl, name: str):
        self._impl, self.name = impl, name
        self.build = getattr(impl, "generic_samplers", dict)()[name]

    def __getattr__(self, attr):
        return getattr(self._impl, attr)


#: drawn configurations refused in a row, none supported, after which a property is skipped (the
#: implementation supports none of them; Hypothesis would otherwise draw hundreds before giving up)
GIVE_UP_AFTER = 50


def run_check(check, impl, cfg: SamplerConfig, prop: str, record, *args):
    """Run a check inside a Hypothesis test: an unsupported configuration is rejected (never
    failed), and a failure where a declared deviation applies is recorded as that deviation."""
    from hypothesis import reject

    try:
        if cfg is not None:
            impl.build(cfg)  # support first: a refused configuration is never judged (its regions may need
            # oracle values the oracle leaves undefined there, e.g. Karras σ at zero SNR)
        judge(lambda expect, rec: check(impl, cfg, *args, record=rec, expect=expect), impl, cfg, prop, record)
    except Unsupported as exc:  # support is probed per configuration (and per case: a dtype's range)
        if record is not None:
            if record.unsupported is None:
                record.unsupported = str(exc) or type(exc).__name__
            record.refused += 1
            if record.supported == 0 and record.refused >= GIVE_UP_AFTER:
                import pytest  # (run_check runs inside a pytest test; a skip passes through Hypothesis)

                pytest.skip(record.unsupported_everywhere())
        reject()
    except ref.EpsilonAtZeroSNR:  # the oracle refuses: ε-prediction at zero SNR is another property's job
        reject()
    if record is not None:
        record.supported += 1


def _subnormal(impl) -> float:
    return getattr(impl, "smallest_subnormal", 0.0)


def _schedule_u(impl) -> float:
    return getattr(impl, "schedule_unit_roundoff", tolerances.U_FLOAT32)


def _require_representable(impl, what: str, x, scale: float = 1.0):
    """Reject (as Unsupported) a case whose exact values overflow the implementation's dtype: a
    float16 state x·√(σ²+1) at σ = 1e6 is ±inf before any implementation sees it, and a result
    beyond the dtype's range cannot be returned by any implementation. ``scale`` (the VE state
    scale √(σ²+1)) must itself be representable: at σ = 81165 a float16 state cannot hold a unit
    sample, so its steps are outside the dtype's range even from x = 0."""
    x = np.append(np.asarray(x, np.float64).ravel() * scale, scale)
    if not np.isfinite(impl.quantize(x)).all():
        raise Unsupported(f"{what} (max |x| = {np.max(np.abs(x)):.4g}) overflows "
                          f"{getattr(impl, 'dtype', 'the dtype of the implementation')}")


def _ve(cfg: SamplerConfig) -> bool:
    """Whether the configuration's update is the Euler family's: levels σ, the oracle's step taken
    in the VE state. (How the *implementation's* state is scaled is its declared ``state``.)"""
    return cfg.sampler in VE


def _scale(state: str, cfg: SamplerConfig, level: float) -> float:
    """x_state = scale·x_t at a level of the configuration's kind (σ for the Euler family, else
    ᾱ); 1 at σ = ∞ / ᾱ = 0, where a VE state is handed over in its finite form (the VP x_t)."""
    if state == "vp":
        return 1.0
    if _ve(cfg):
        if math.isinf(level):
            return 1.0
        return math.sqrt(level**2 + 1.0) if level < 1e150 else math.hypot(level, 1.0)
    return state_scale(state, alpha_bar=level)


def _native(cfg: SamplerConfig) -> str:
    """The state the oracle's step of this configuration takes: VE for the Euler family."""
    return "ve" if _ve(cfg) else "vp"


def _state_scale(cfg: SamplerConfig, levels, smp=None) -> float:
    """The implementation's state scale at levels[0] (its declared state; the Euler family's VE
    state when no sampler is given)."""
    return _scale(smp.state if smp is not None else _native(cfg), cfg, levels[0])


def _convert(cfg, x, level, src: str, dst: str):
    """A state at a level from one scaling to another (VP x_t, VE x_t·√(σ²+1))."""
    if src == dst:
        return x
    return np.asarray(x, np.float64) / _scale(src, cfg, level) * _scale(dst, cfg, level)


def _nonfinite(expect, values, what: str, ctx: str, want=None) -> bool:
    """True if some of ``values`` (the implementation's levels or timesteps) are NaN: excused under
    a declared non-finite deviation, or where a deviation's model (``want``) is NaN at exactly the
    same places (nothing to compare there), else that property's failure."""
    bad = np.isnan(np.asarray(values, np.float64))
    if not bad.any():
        return False
    if expect.nonfinite_excused:
        return True
    if want is not None and expect is not ORACLE:
        w = np.asarray(want, np.float64)
        if w.shape == bad.shape and np.array_equal(np.isnan(w), bad):
            return True
    raise AssertionError(f"the implementation's {what} are not finite: {int(bad.sum())} NaN "
                         f"(e.g. {np.asarray(values).ravel()[:4]}). {ctx}")


def _alpha_bars_of(sigmas) -> np.ndarray:
    """ᾱ = 1/(1+σ²) of an implementation's σ: 0 at σ = inf, NaN kept (never the oracle's
    ValueError: the checks judge NaN levels themselves)."""
    sig = np.asarray(sigmas, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isinf(sig), 0.0, 1.0 / (1.0 + sig * sig))


def _sigmas_of(cfg: SamplerConfig, smp, expect=ORACLE) -> np.ndarray:
    """The σ the Euler family's steps use: the sampler's own ``sigmas``, else σ(t) of its ᾱ table
    at its timesteps (and the final σ)."""
    if smp.sigmas is not None:
        return np.asarray(smp.sigmas, np.float64)
    return expect.chain_sigmas(cfg, smp.alphas_cumprod, smp.timesteps)


def _vp_pair(cfg: SamplerConfig, smp, i: int, expect=ORACLE) -> tuple[float, float]:
    """(ᾱ_t, ᾱ_next) of VP step i: from the sampler's ᾱ table at the configuration's timesteps,
    else from its σ."""
    if smp.alphas_cumprod is not None:
        return expect.vp_levels(cfg, smp.alphas_cumprod, i)
    a = _alpha_bars_of(smp.sigmas)
    assert a.size >= i + 2, f"{a.size} sigmas for {len(smp.timesteps)} timesteps (need S+1). config: {cfg}"
    return float(a[i]), float(a[i + 1])


def _levels(cfg: SamplerConfig, smp, i: int, expect=ORACLE):
    """The levels step i should use, read from the implementation's own schedule values (None:
    the expectation says these degenerate levels have no value to compare, or they are NaN under
    a declared non-finite deviation)."""
    S = expect.timesteps(cfg).size
    ctx = f"config: {cfg}"
    assert len(smp.timesteps) == S, f"{len(smp.timesteps)} timesteps, expected S = {S}. {ctx}"
    if _ve(cfg):
        sig = _sigmas_of(cfg, smp, expect)
        assert sig.size >= i + 2, f"{sig.size} sigmas for {S} timesteps (need S+1). {ctx}"
        lv = float(sig[i]), float(sig[i + 1])
        # σ rises only where the expected σ do (a model of a floor above ᾱ_{T-2})
        want = expect.sigmas(cfg) if expect is not ORACLE else None
        rises = want is not None and want.size == sig.size and want[i + 1] > want[i] * (1 - 8 * tolerances.U_FLOAT32)
        ok = not any(math.isnan(v) for v in lv) and (lv[1] <= lv[0] or rises)
    else:
        lv = _vp_pair(cfg, smp, i, expect)
        ok = not any(math.isnan(v) for v in lv) and lv[0] <= lv[1]
    if not ok and smp.alphas_cumprod is not None and expect.unchecked_levels(cfg, smp.alphas_cumprod, lv):
        return None
    if _nonfinite(expect, lv, f"levels for step {i}", ctx):
        return None
    assert ok, f"the implementation's own levels for step {i} are not a denoising step: {lv}. {ctx}"
    return lv


def _to_state(cfg, levels, x_vp, smp=None):
    """A VP-scaled draw as the sampler's state (VE: x·√(σ²+1); x itself at σ = ∞)."""
    return x_vp * _state_scale(cfg, levels, smp)


# --- driving a sampler: one step of either contract ------------------------------------------------


class SuiteNoise:
    """The noise source a loop-level sampler draws from (properties/contract.py): ``noise(i)`` is a
    standard-normal draw of the state's shape for step index i, reproducible from (seed, i) and
    rounded to the implementation's dtype; which indices were asked for is recorded."""

    def __init__(self, impl, seed: int, shape):
        self._q, self._seed, self.shape = impl.quantize, int(seed), tuple(shape)
        self._draws: dict[int, np.ndarray] = {}
        self.asked: list[int] = []

    def draw(self, i: int) -> np.ndarray:
        i = int(i)
        if i not in self._draws:
            rng = np.random.default_rng([self._seed, i])
            self._draws[i] = self._q(rng.standard_normal(self.shape))
        return self._draws[i]

    def __call__(self, i) -> np.ndarray:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise ContractError(f"noise(i) takes the step index i (an int); got {type(i).__name__}")
        self.asked.append(int(i))
        return self.draw(int(i)).copy()


class SuiteDenoiser:
    """The model, as the suite supplies it to a loop-level sampler (properties/contract.py):
    ``denoiser(x, *, sigma=None, alpha_bar=None, timestep=None, state=None)``. Each call's input is
    converted to the VP x_t at its level ᾱ and recorded (``calls``: (x_t, ᾱ)); the output is
    ``model(x_t, ᾱ)``, rounded to the implementation's dtype."""

    def __init__(self, impl, cfg: SamplerConfig, smp, shape, model):
        self._impl, self._cfg, self._smp, self.shape, self._model = impl, cfg, smp, tuple(shape), model
        self.calls: list[tuple[np.ndarray, float]] = []

    def _level(self, sigma, alpha_bar, timestep) -> tuple[float, str]:
        if sigma is not None and alpha_bar is not None:
            raise ContractError("denoiser(x, ...) takes one of sigma= and alpha_bar=, not both")
        if sigma is not None:
            return float(sigma), "sigma"
        if alpha_bar is not None:
            return float(alpha_bar), "alpha_bar"
        if timestep is None:
            raise ContractError("denoiser(x, ...) needs the level the model is evaluated at: sigma=, "
                                "alpha_bar= or timestep=")
        smp, t = self._smp, float(timestep)
        hits = np.flatnonzero(np.asarray(smp.timesteps, np.float64) == t)
        if hits.size:  # one of its own timesteps: the level of that step
            k = int(hits[0])
            if _ve(self._cfg) or smp.alphas_cumprod is None:
                return float(_sigmas_of(self._cfg, smp)[k]), "sigma"
            return float(_vp_pair(self._cfg, smp, k)[0]), "alpha_bar"
        abar = smp.alphas_cumprod
        if abar is not None and t == int(t) and 0 <= t < abar.size:
            return float(abar[int(t)]), "alpha_bar"
        raise ContractError(f"denoiser(x, timestep={t:g}): that timestep is neither one of the sampler's "
                            "timesteps nor an index into its alphas_cumprod; pass sigma= or alpha_bar=")

    def __call__(self, x, *, sigma=None, alpha_bar=None, timestep=None, state=None):
        x = np.asarray(x, np.float64)
        if x.shape != self.shape:
            raise ContractError(f"denoiser(x, ...): x has shape {x.shape}; the state's is {self.shape}")
        state = state or self._smp.state
        if state not in ("vp", "ve"):
            raise ContractError(f"denoiser(..., state={state!r}): state is 'vp' or 've'")
        level, kind = self._level(sigma, alpha_bar, timestep)
        if kind == "sigma":
            a = float(_alpha_bars_of([level])[0])
            scale = 1.0 if state == "vp" or math.isinf(level) or math.isnan(level) else math.hypot(level, 1.0)
        else:
            a = level
            scale = state_scale(state, alpha_bar=a) if 0.0 <= a <= 1.0 else math.nan
        x_vp = x / scale
        self.calls.append((x_vp, a))
        if not (0.0 <= a <= 1.0):  # a NaN level: the model's output is NaN (the result will show it)
            out = np.full(self.shape, np.nan)
            return (out, out) if self._learned() else out
        return self._model(x_vp, a)

    def _learned(self) -> bool:
        return str(self._cfg.option("variance_type", "")).startswith("learned")


def _one_step(impl, smp, cfg: SamplerConfig, i: int, x, out, seed: int, pv=None):
    """Step i of either contract from state x with the model output ``out``: (x_next, z, calls).
    Step level: ``smp.step`` (z the noise it reports, calls None). Loop level: the one-interval
    loop ``smp.sample(x, denoiser, noise, i, i+1)`` with a denoiser that returns ``out`` wherever
    it is called (calls: where, as (x_t, ᾱ)) and the suite's noise for step i as z."""
    if not is_loop_level(smp):
        got, z = smp.step(i, x, out, seed, pv)
        return got, z, None
    shape = np.shape(x)
    noise = SuiteNoise(impl, seed, shape)
    den = SuiteDenoiser(impl, cfg, smp, shape, lambda x_vp, a: out if pv is None else (out, pv))
    got = smp.sample(np.array(x, np.float64), den, noise, i, i + 1)
    stray = sorted(set(noise.asked) - {i})
    assert not stray, f"one step (i = {i}) drew the noise of other steps {stray[:4]}. config: {cfg}"
    return np.asarray(got, np.float64), noise.draw(i), den.calls


def _model_point(cfg: SamplerConfig, i: int, levels, x_native, z, expect=ORACLE):
    """Where step i must evaluate the model, as (VP x_t, ᾱ): at its own state and level, except
    for Euler with churn, where Karras Alg. 2 evaluates it after the churn, at (x̂, σ̂) (a model
    may say before: ``loop_model_point``)."""
    lo = levels[0]
    if not _ve(cfg):
        return np.asarray(x_native, np.float64), float(lo)
    churn = {k: cfg.option(k) for k in ("s_churn", "s_tmin", "s_tmax", "s_noise") if cfg.option(k) is not None}
    after = cfg.sampler == "euler" and expect.loop_model_point(cfg) == "after_churn"
    if math.isinf(lo):
        if after:
            return ref.samplers.euler_churn_vp(x_native, 0.0, num_inference_steps=cfg.num_inference_steps,
                                               noise=z, **churn)
        return np.asarray(x_native, np.float64), 0.0
    sig, xs = lo, np.asarray(x_native, np.float64)
    if after:
        xs, sig = ref.euler_churn(xs, lo, num_inference_steps=expect.churn_steps(cfg), noise=z, **churn)
    return xs / ref.samplers.ve_scale(sig), 1.0 / ref.samplers.ve_scale(sig) ** 2


def _check_model_calls(cfg, i, levels, x_native, z, calls, u, expect, ctx, record):
    """A loop-level step evaluated the model exactly once, at the point the oracle's step does."""
    assert len(calls) == 1, f"step {i} evaluated the model {len(calls)} times (a first-order step: once). {ctx}"
    want_x, want_a = _model_point(cfg, i, levels, x_native, z, expect)
    got_x, got_a = calls[0]
    # ᾱ̂ = 1/(1+σ̂²) from σ̂ = σ(1+γ): a few roundings of σ and σ̂ (8u relative in σ, twice in ᾱ)
    tol_a = 16 * max(u, tolerances.U_FLOAT32) * want_a * (1.0 - want_a) + 2 * u * want_a
    assert abs(got_a - want_a) <= tol_a or (math.isnan(got_a) and expect.nonfinite_excused), \
        (f"step {i} evaluated the model at ᾱ = {got_a!r}, not {want_a!r} (|diff| {abs(got_a - want_a):.3g} > "
         f"{tol_a:.3g}){' (after the churn, Karras Alg. 2)' if cfg.sampler == 'euler' else ''}. {ctx}")
    zz = np.abs(np.asarray(z, np.float64)) if z is not None else 0.0
    # the churn's arithmetic, and its level: x̂_t = (x + s·σ·√(γ(2+γ))·z)/√(σ̂²+1) moves by at most
    # (|x̂_t| + |z|)·δσ/σ under a relative error δσ/σ of σ; σ (or ᾱ) carries LEVEL_OPS·u_level,
    # counted twice (σ and σ̂), as in tolerances.step (schedules are float32 or better)
    level = 2 * tolerances.LEVEL_OPS * max(u, tolerances.U_FLOAT32)
    tol_x = (tolerances.STEP_OPS * u + level) * (np.abs(want_x) + zz) + 2 * u * np.abs(got_x)
    if expect is not ORACLE and cfg.sampler == "euler" and want_a > 0:
        # a declared widening of Euler's step (the churn noise's cancellation) bounds the error of the
        # churned x̂ the model sees as well (the step's gain on x̂ is >= 1); here in VP units at σ̂
        widen = expect.step_widening(cfg, i, levels, x_native, np.zeros(np.shape(want_x)), z, None, u)
        tol_x = tol_x + np.abs(widen) * math.sqrt(want_a)
    _closer(expect)(got_x, want_x, tol_x, f"the model's input at step {i}", ctx, record)


def _closer(expect):
    """assert_close, excusing non-finite elements where the expectation says so."""
    def close(*args, **kw):
        return assert_close(*args, excuse_nonfinite=expect.nonfinite_excused, **kw)
    return close


# --- 1. schedule equivalence ---------------------------------------------------------------------


def check_schedule(impl, cfg: SamplerConfig, record: Record | None = None, expect=ORACLE):
    """ᾱ (and σ for the Euler family) within derived float32 bounds; timesteps exactly."""
    smp = impl.build(cfg)
    oracle = expected.schedule(cfg)
    u = _schedule_u(impl)
    ctx = f"config: {cfg}"
    close = _closer(expect)
    ts_exp = expect.timesteps(cfg)
    assert smp.timesteps.shape == ts_exp.shape, \
        f"timesteps: {smp.timesteps.size} of them, expected S = {ts_exp.size}. {ctx}\n" \
        f"  got      {smp.timesteps[-5:]} (last 5)\n  expected {ts_exp[-5:]}"
    kind = expect.timestep_kind(cfg)
    if kind is None:
        close(smp.timesteps, ts_exp, tolerances.timestep_abs(ts_exp), "timesteps", ctx, record)
    if cfg.rescale:
        base = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
        rel = tolerances.rescaled_alphas_cumprod_relative(base.alphas_cumprod, base.betas, u)
    else:
        rel = tolerances.alphas_cumprod_relative(oracle.betas, u)
    rel = rel + tolerances.oracle_relative()  # the oracle's own last ULPs (a float64 implementation)
    abar_exp = expect.alphas_cumprod(cfg)
    with np.errstate(invalid="ignore"):
        abar_tol = rel * np.abs(oracle.alphas_cumprod) + expect.alphas_cumprod_abs(cfg)
    if smp.alphas_cumprod is not None:
        close(smp.alphas_cumprod, abar_exp, abar_tol, "alphas_cumprod", ctx, record)
    if not _ve(cfg) and smp.sigmas is not None:  # σ of a VP sampler's levels (σ-only implementations)
        ts = expect.timesteps(cfg).astype(np.int64)
        abar_all = np.concatenate([abar_exp[ts], [expect.final_alpha_bar(cfg, abar_exp)]])
        assert smp.sigmas.shape == abar_all.shape, \
            f"sigmas: {smp.sigmas.size} values, expected S+1 = {abar_all.size}. {ctx}"
        with np.errstate(divide="ignore", invalid="ignore"):
            sig_exp = np.sqrt((1.0 - abar_all) / abar_all)
            sig_rel = tolerances.sigma_relative(np.concatenate([rel[ts], [rel[0] if abar_all[-1] < 1 else 0.0]]),
                                                abar_all)
            tol = np.where(np.isfinite(sig_exp), (sig_rel + 4 * tolerances.U_FLOAT32) * np.abs(sig_exp), 0.0)
        close(smp.sigmas, sig_exp, tol, "sigmas", ctx, record)
    if _ve(cfg) and smp.sigmas is not None:
        sig_exp = expect.sigmas(cfg)
        assert smp.sigmas.shape == sig_exp.shape, \
            f"sigmas: {smp.sigmas.size} values, expected S+1 = {sig_exp.size}. {ctx}"
        # tolerance of σ from that of ᾱ at the two neighbouring training steps
        sig_rel = tolerances.sigma_relative(rel, oracle.alphas_cumprod)
        ts = np.concatenate([ts_exp if kind is None else expected.spacing_timesteps(cfg), [0.0]])
        lo = np.floor(ts).astype(int)
        hi = np.minimum(lo + 1, cfg.num_train_timesteps - 1)
        lo, hi = np.clip(lo, 0, sig_rel.size - 1), np.clip(hi, 0, sig_rel.size - 1)
        # a model's log-spaced σ (diffusers' log_linear) ignore the timesteps; their count can still
        # equal S+1 by coincidence (trailing-extra-step's S+1 timesteps give S+2 σ as well)
        log_spaced = expect.overrides("sigmas") and cfg.option("interpolation_type", "linear") == "log_linear"
        if expected.sigma_schedule(cfg) != "timesteps":
            # Karras / exponential / Beta σ: means of the two endpoints (tolerances.converted_sigma_relative)
            # (from a model's log-spaced σ, the endpoints are σ(T-1) and σ(0), whatever the timesteps)
            ends = np.array([cfg.num_train_timesteps - 1.0, 0.0]) if log_spaced else ts[:-1]
            tol = tolerances.converted_sigma_relative(sig_rel, ends) * np.abs(sig_exp)
            tol[-1] = np.max(sig_rel[:1]) * abs(sig_exp[-1])  # the final σ: 0 or σ_0
        elif ts.size == sig_exp.size and not log_spaced:
            with np.errstate(invalid="ignore"):
                tol = np.maximum(sig_rel[lo], sig_rel[hi]) * np.abs(sig_exp) + 4 * tolerances.U_FLOAT32 * np.abs(sig_exp)
                tol = np.where(np.isinf(sig_exp), 0.0, tol)  # σ = inf (zero SNR) exactly
        else:
            # a model's own σ count (log-linear: exp of a linspace between log σ(0) and log σ(T-1)):
            # the endpoints' relative bounds carry over, plus 4 roundings of log, linspace and exp,
            # exp turning an absolute u·|log σ| into a relative one
            end = np.nanmax(sig_rel[[0, -1]][np.isfinite(sig_rel[[0, -1]])], initial=0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.where(sig_exp > 0, np.abs(np.log(np.abs(sig_exp))), 0.0)
            tol = (end + 4 * tolerances.U_FLOAT32 * (1 + logs)) * np.abs(sig_exp)
        close(smp.sigmas, sig_exp, tol, "sigmas", ctx, record)
        if kind is not None:  # model timesteps from σ: their bound follows from σ's
            with np.errstate(invalid="ignore", divide="ignore"):
                srel = np.nan_to_num(tol[:-1] / np.abs(sig_exp[:-1]), nan=0.0)
            t_tol = tolerances.model_timestep_abs(kind, ts_exp, sig_exp[:-1], srel, expect.alphas_cumprod(cfg), sig_rel)
            close(smp.timesteps, ts_exp, t_tol, "timesteps (from σ)", ctx, record)


def _alphas_cumprod_rel(cfg: SamplerConfig, u: float) -> np.ndarray:
    """The relative bound of the implementation's ᾱ (tolerances.alphas_cumprod_relative, or its
    rescaled form), as check_schedule uses it."""
    if cfg.rescale:
        base = ref.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
        return tolerances.rescaled_alphas_cumprod_relative(base.alphas_cumprod, base.betas, u)
    return tolerances.alphas_cumprod_relative(expected.schedule(cfg).betas, u)


# --- 2. step equivalence -------------------------------------------------------------------------


def check_step(impl, cfg: SamplerConfig, i: int, x, model_output, seed: int, predicted_variance=None,
               record: Record | None = None, expect=ORACLE):
    """One step from the same state, model output and noise matches the oracle's step at the
    implementation's own levels, within STEP_OPS·u·Σ|terms| + level sensitivity. A loop-level
    sampler runs the one-interval loop (step i alone) and must evaluate the model once, where the
    oracle's step does (for Euler with churn: after it)."""
    smp = impl.build(cfg)
    levels = _levels(cfg, smp, i, expect)
    if levels is None:
        return 0.0
    if cfg.prediction_type == "epsilon" and levels[0] == (math.inf if _ve(cfg) else 0.0):
        # the oracle refuses before the implementation is asked: ε at zero SNR is finite_at_T's job
        raise ref.EpsilonAtZeroSNR("ε-prediction at zero SNR (checked by finite_at_T)")
    q = impl.quantize
    ctx = f"config: {cfg}"
    state, native = smp.state, _native(cfg)
    _require_representable(impl, "the state", x, _scale(state, cfg, levels[0]))
    x_in = q(_to_state(cfg, levels, np.asarray(x, np.float64), smp))
    out = q(model_output)
    pv = None if predicted_variance is None else q(predicted_variance)
    got, z, calls = _one_step(impl, smp, cfg, i, x_in, out, seed, pv)
    x_nat = _convert(cfg, x_in, levels[0], state, native)
    want = _convert(cfg, expect.step(cfg, i, levels, x_nat, out, z, pv), levels[1], native, state)
    _require_representable(impl, "the exact result of the step", want[np.isfinite(want)])
    tol = expect.step_tolerance(cfg, i, levels, x_nat, out, z, pv, impl.unit_roundoff, _subnormal(impl))
    if state != native:  # the bound in the implementation's scale, and 2 roundings of each conversion
        tol = _convert(cfg, tol, levels[1], native, state) + 4 * impl.unit_roundoff * np.abs(want)
    worst = _closer(expect)(got, want, tol, f"step {i} of {len(smp.timesteps)} (t={smp.timesteps[i]:g}, "
                            f"levels {levels})", ctx, record)
    if calls is not None:
        _check_model_calls(cfg, i, levels, x_nat, z, calls, impl.unit_roundoff, expect, ctx, record)
    return worst


# --- 3. chaining ---------------------------------------------------------------------------------


def _probe(impl, cfg, smp, i, a_t, a_next, x0_value, seed, shape):
    """Step i from a noiseless state with x̂₀ = x0_value and ε̂ = 0 (VP samplers): returns the
    implementation's output as a VP x_t and the (x, model output, z, predicted variance) it was
    given (x as a VP x_t)."""
    alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
    x = np.full(shape, alpha * x0_value)
    out = {"sample": np.full(shape, x0_value), "epsilon": np.zeros(shape),
           "v_prediction": np.full(shape, -sigma * x0_value)}[cfg.prediction_type]
    pv = None
    if cfg.option("variance_type", "").startswith("learned"):
        pv = np.full(shape, 0.5)
    got, z, _ = _one_step(impl, smp, cfg, i, _convert(cfg, x, a_t, "vp", smp.state), out, seed, pv)
    return _convert(cfg, got, a_next, smp.state, "vp"), (x, out, z, pv)


def check_chaining(impl, cfg: SamplerConfig, record: Record | None = None, shape=(1, 2, 2, 2), expect=ORACLE):
    """Each step lands on the level the next one starts from; the last lands on clean data
    (ᾱ = 1, or ᾱ_0 for set_alpha_to_one=False; σ = 0, or σ_min for final_sigmas_type="sigma_min")
    with no noise left."""
    smp = impl.build(cfg)
    S = len(smp.timesteps)
    ctx = f"config: {cfg}"
    close = _closer(expect)
    if _nonfinite(expect, smp.timesteps, "timesteps", ctx,
                  want=expect.timesteps(cfg) if expect is not ORACLE else None):
        return
    abar = smp.alphas_cumprod
    if _ve(cfg):
        sig = _sigmas_of(cfg, smp, expect)
        want_abar = expect.alphas_cumprod(cfg)  # where a model's ᾱ is 0 early or rises, so may the implementation's
        need = expect.chain_sigmas(cfg, abar, smp.timesteps).size if abar is not None else S + 1
        assert sig.size == need, f"{sig.size} sigmas for {S} timesteps (need {need}). {ctx}"
        if _nonfinite(expect, sig, "sigmas", ctx):
            return
        # (continuous timesteps ¼·ln σ are not training steps: any real value)
        outside = (smp.timesteps < 0) | (smp.timesteps > cfg.num_train_timesteps - 1) \
            if expect.timestep_kind(cfg) != "continuous" else np.zeros(smp.timesteps.shape, bool)
        if expect is not ORACLE:  # only where the model has them (diffusers' t = -1)
            outside &= ~np.isin(smp.timesteps, expect.timesteps(cfg))
        assert not outside.any(), f"timesteps outside [0, T-1]: {smp.timesteps[outside]}. {ctx}"
        if abar is not None:  # its ᾱ table: no early zero, no rise, and σ of each step σ(t) of that table
            own_sigmas = expect.chain_sigmas(cfg, abar, smp.timesteps)
            zeros = np.flatnonzero(abar[:-1] == 0)
            allowed = np.flatnonzero(want_abar[:-1] == 0) if want_abar.size == abar.size else []
            assert np.isin(zeros, allowed).all(), \
                f"the implementation's ᾱ is 0 before t = T-1 (at t = {zeros[:5]}). {ctx}"
            rises = np.flatnonzero(np.diff(abar) > 0)
            allowed = np.flatnonzero(np.diff(want_abar) > 0) if want_abar.size == abar.size else []
            assert np.isin(rises, allowed).all(), \
                f"the implementation's ᾱ rises at t = {rises[:5] + 1}: σ is not monotone. {ctx}"
            if smp.sigmas is not None:
                tol = 8 * tolerances.U_FLOAT32 * np.abs(own_sigmas)
                kind = expect.timestep_kind(cfg)
                if kind is not None:  # σ recomputed from model timesteps (t(σ), or ¼·ln σ): their rounding too
                    u32 = tolerances.U_FLOAT32
                    table_rel = tolerances.sigma_relative(
                        tolerances.alphas_cumprod_relative(expected.schedule(cfg).betas), np.asarray(abar, np.float64))
                    rel = tolerances.chain_sigma_relative(kind, smp.timesteps, abar, table_rel, u32)
                    extra = np.zeros(own_sigmas.shape)  # (a model's σ that ignore the timesteps: none of theirs)
                    extra[:min(rel.size, extra.size - 1)] = rel[:extra.size - 1]
                    tol = tol + extra * np.abs(own_sigmas)
                if cfg.option("interpolation_type") == "log_linear" and expect is not ORACLE:
                    # exp of a float32 linspace of log σ: its error 4u·max|log σ| (2 roundings of the ends,
                    # 2 of the linspace) turns into a relative one
                    with np.errstate(divide="ignore"):
                        logs = np.abs(np.log(own_sigmas[own_sigmas > 0]))
                    tol = tol + 4 * tolerances.U_FLOAT32 * np.max(logs, initial=0.0) * np.abs(own_sigmas)
                tol = np.where(np.isinf(own_sigmas), 0.0, tol)
                close(smp.sigmas, own_sigmas, tol, "σ of each step vs σ(t) of its timestep (and the final σ)",
                      ctx, record)
        else:  # σ only: each step's σ is below the previous one's (the schedule property has their values)
            up = np.flatnonzero(np.diff(sig) > 0)
            assert expect is not ORACLE or not up.size, f"σ rises at step {up[:5] + 1}: {sig[up[:5] + 1]}. {ctx}"
        churn = cfg.sampler == "euler" and (cfg.option("s_churn") or 0) > 0 and \
            (cfg.option("s_tmin", 0.0) or 0) <= sig[S - 1] <= cfg.option("s_tmax", math.inf)
        eps_at_inf = cfg.prediction_type == "epsilon" and math.isinf(sig[S - 1])  # x̂₀ undefined: finite_at_T's
        if not churn and not eps_at_inf:  # with churn the last step adds noise before the model removes it
            lv = float(sig[S - 1]), float(sig[S])
            _require_representable(impl, f"the state scale at σ = {lv[0]:.6g}", [], _scale(smp.state, cfg, lv[0]))
            last, z_last, _ = _one_step(impl, smp, cfg, S - 1, np.zeros(shape), np.zeros(shape), 0)
            want, tol = 0.0, 0.0
            if expect is not ORACLE:  # a model's last level may be above 0, where Euler ancestral adds noise
                z_last = np.zeros(shape) if z_last is None else z_last
                want = _convert(cfg, expect.step(cfg, S - 1, lv, np.zeros(shape), np.zeros(shape), z_last, None),
                                lv[1], _native(cfg), smp.state)
                if np.any(want != 0):
                    tol = expect.step_tolerance(cfg, S - 1, lv, np.zeros(shape), np.zeros(shape), z_last, None,
                                                impl.unit_roundoff, _subnormal(impl))
            close(last, want, tol, "last step from x = 0, x̂₀ = 0 (no noise may be added)", ctx, record)
        return
    ts = expect.timesteps(cfg).astype(int)
    u = impl.unit_roundoff
    if abar is None:  # σ only: the levels of its σ, which must number S+1
        assert smp.sigmas.size == S + 1, f"{smp.sigmas.size} sigmas for {S} timesteps (need S+1). {ctx}"
        if _nonfinite(expect, smp.sigmas, "sigmas", ctx):
            return
    for i in range(S):
        if abar is None:
            a_t, a_next = _vp_pair(cfg, smp, i, expect)
            if i == S - 1:
                a_next = float(expect.final_alpha_bar(cfg, expect.alphas_cumprod(cfg)))
        else:
            a_t = float(abar[ts[i]]) if i < ts.size else float(abar[int(smp.timesteps[i])])
            a_next = expect.vp_levels(cfg, abar, i)[1] if i < ts.size else 1.0
        if cfg.prediction_type == "epsilon" and a_t == 0.0:
            continue  # x̂₀ undefined; the finite-at-T property covers this step
        lv = (a_t, a_next)
        degenerate = math.isnan(a_t) or math.isnan(a_next) or not (a_next > 0.0 and a_next >= a_t)
        if degenerate and abar is not None and expect.unchecked_levels(cfg, abar, lv):
            continue
        if _nonfinite(expect, lv, f"ᾱ at step {i}", ctx):
            continue
        # (a float32 ᾱ that underflowed to 0 before t = T-1 lands a step on pure noise)
        assert a_next > 0.0 and a_next >= a_t, \
            f"the implementation's levels for step {i} are not a denoising step: ᾱ {a_t!r} -> {a_next!r}. {ctx}"
        with_signal, args_a = _probe(impl, cfg, smp, i, a_t, a_next, 1.0, seed=i, shape=shape)
        without, args_b = _probe(impl, cfg, smp, i, a_t, a_next, 0.0, seed=i, shape=shape)
        landed = with_signal - without  # same seed: the noise cancels, √ᾱ_landing remains
        # each run errs by its own derived step tolerance (at the oracle's levels)
        tol = sum(expect.step_tolerance(cfg, i, lv, *a[:3], a[3], u, _subnormal(impl)) for a in (args_a, args_b))
        if expect is ORACLE:
            want_landed, want_without = math.sqrt(a_next), 0.0
        else:  # the model's two steps, at its levels
            want_a, want_without = (expect.step(cfg, i, lv, *a) for a in (args_a, args_b))
            want_landed = want_a - want_without
        close(landed, want_landed, tol, f"√ᾱ landed on by step {i} (t={smp.timesteps[i]:g})", ctx, record)
        if i == S - 1 and (a_next == 1.0 or expect is not ORACLE):  # lands on clean data: nothing stochastic may remain
            exact_zero = np.all(np.asarray(want_without) == 0)
            close(without, want_without, 0.0 if exact_zero else tol,
                  "last step from x = 0, x̂₀ = 0: noise left in the final sample", ctx, record)


# --- 4, 5. zero terminal SNR, starts at T --------------------------------------------------------


def check_zero_snr(impl, cfg: SamplerConfig, record: Record | None = None, expect=ORACLE):
    """With the zero-SNR rescale on, ᾱ_T is exactly 0 (SNR(T) = 0; σ_T = inf for Euler samplers)."""
    smp = impl.build(cfg)
    want = 0.0 if expect is ORACLE else float(expect.alphas_cumprod(cfg)[-1])  # a model's floor, exactly
    if smp.alphas_cumprod is not None:
        a_T = float(smp.alphas_cumprod[-1])
        assert a_T == want or (math.isnan(a_T) and math.isnan(want)), \
            (f"SNR(T) = {a_T / (1 - a_T):.6g}, not {want / (1 - want):.6g}: ᾱ_T = {a_T!r} "
             f"(σ_T = {math.sqrt((1 - a_T) / a_T) if a_T > 0 else math.inf:.6g}). config: {cfg}")
    # the first σ is at t = T-1 (trailing; linspace with S >= 2); a σ-only sampler's, also for S = 1
    at_T = len(smp.timesteps) > 1 or (smp.alphas_cumprod is None and cfg.spacing == "trailing")
    if smp.sigmas is not None and cfg.spacing in ("trailing", "linspace") and at_T:
        if math.isnan(smp.sigmas[0]) and expect.nonfinite_excused:
            return
        if want == 0.0:
            assert math.isinf(smp.sigmas[0]), f"σ at t = T is {smp.sigmas[0]:.6g}, not inf. config: {cfg}"
        else:  # σ_T of the floored ᾱ_T, within float32's rounding of σ (3 operations) and of ᾱ
            sig = math.sqrt((1 - want) / want)
            assert abs(smp.sigmas[0] - sig) <= 8 * tolerances.U_FLOAT32 * sig, \
                f"σ at t = T is {smp.sigmas[0]:.9g}, not the floor's {sig:.9g}. config: {cfg}"


def check_starts_at_T(impl, cfg: SamplerConfig, record: Record | None = None, expect=ORACLE):
    """The first model evaluation is at t = T-1 (trailing; linspace with S >= 2)."""
    smp = impl.build(cfg)
    T = cfg.num_train_timesteps
    kind = expect.timestep_kind(cfg)
    if kind is not None:  # model timesteps from σ: t of σ at t = T-1, within the bound derived from σ's
        want = float(expect.timesteps(cfg)[0]) if (kind == "continuous" or expect is not ORACLE) else T - 1.0
        if math.isnan(want):  # a deviation's model with a NaN σ table (never the oracle): NaN is what it predicts
            assert math.isnan(float(smp.timesteps[0])), \
                f"first timestep {smp.timesteps[0]:.9g}, not the model's NaN. config: {cfg}"
            return
        sig = float(expect.sigmas(cfg)[0])
        abar = expect.alphas_cumprod(cfg)
        table_rel = tolerances.sigma_relative(_alphas_cumprod_rel(cfg, _schedule_u(impl)), expected.schedule(cfg).alphas_cumprod)
        first = int(np.clip(round(float(expected.spacing_timesteps(cfg)[0])), 0, T - 1))
        srel = float(np.nan_to_num(table_rel[first], posinf=0.0)) + 4 * tolerances.U_FLOAT32
        tol = float(tolerances.model_timestep_abs(kind, want, sig, srel, abar, table_rel))
        what = "¼·ln σ(T-1)" if kind == "continuous" else "t(σ_max) = T-1" if expect is ORACLE else "the model's t(σ_max)"
        assert abs(float(smp.timesteps[0]) - want) <= tol, \
            f"first timestep {smp.timesteps[0]:.9g}, not {what} = {want:.9g} (tol {tol:.3g}). config: {cfg}"
        return
    want = T - 1 if expect is ORACLE else float(expect.timesteps(cfg)[0])
    assert float(smp.timesteps[0]) == want, \
        f"first timestep {smp.timesteps[0]:g}, not {'T-1 = ' if want == T - 1 else ''}{want:g}. config: {cfg}"


# --- 6. finite at T ------------------------------------------------------------------------------


def _first_level(cfg: SamplerConfig, smp, expect, ctx: str):
    """The level of the implementation's own step 0: σ_0 (Euler family), or ᾱ at its first
    timestep (an index into its ᾱ table; else the level of its first σ, else its table at the
    configuration's first timestep). None: NaN, excused by a declared non-finite deviation."""
    if _ve(cfg):
        sig = _sigmas_of(cfg, smp, expect)
        lv = (float(sig[0]), float(sig[1]))
        return None if _nonfinite(expect, lv, "levels of step 0", ctx) else lv
    t0, abar = float(smp.timesteps[0]), smp.alphas_cumprod
    if _nonfinite(expect, [t0], "first timestep", ctx):
        return None
    if abar is not None and t0 == int(t0) and 0 <= t0 < abar.size:
        a_T = float(abar[int(t0)])
    elif smp.sigmas is not None:
        a_T = float(_alpha_bars_of(smp.sigmas[:1])[0])
    else:  # a fractional or out-of-table timestep (starts_at_T judges it): the level step 0 should use
        a_T = float(expect.vp_levels(cfg, abar, 0)[0])
    return a_T, 0.0  # (a NaN ᾱ_T: the caller asks the expectation whether it is unchecked first)


def check_finite_at_T(impl, cfg: SamplerConfig, x, model_output, seed: int, predicted_variance=None,
                      record: Record | None = None, expect=ORACLE):
    """Step 0 (t = T-1, SNR 0) is finite for v and x₀ prediction; for ε prediction the
    implementation must raise or warn: a silent NaN, inf or a silently clamped result fails.
    Under a deviation's model: non-finite exactly where the model's step is, and ε-prediction's
    silent result equal to the model's. At σ = inf a VE state is handed over in its finite form."""
    smp = impl.build(cfg)
    if expect is not ORACLE:  # a generic class a model describes is checked as its sampler kind
        kind = expected.as_kind(cfg)
        if kind is None:
            expect = ORACLE if not expect.nonfinite_excused else expect
        else:
            cfg = kind
    ctx = f"config: {cfg}"
    # only step 0's own levels matter here (its count of timesteps is the schedule property's)
    levels = _first_level(cfg, smp, expect, ctx)
    if levels is None:
        return
    _require_representable(impl, "the state at t = T", x, _scale(smp.state, cfg, levels[0]))
    x_in = impl.quantize(_to_state(cfg, levels, np.asarray(x, np.float64), smp))
    out = impl.quantize(model_output)
    pv = None if predicted_variance is None else impl.quantize(predicted_variance)
    if expect is not ORACLE and not _ve(cfg):
        levels = (levels[0], _vp_pair(cfg, smp, 0, expect)[1])
        if any(math.isnan(v) for v in levels) and smp.alphas_cumprod is not None \
                and expect.unchecked_levels(cfg, smp.alphas_cumprod, levels):
            return
    if _nonfinite(expect, levels[:1], "level of step 0", ctx):
        return

    def step():
        got, z, _ = _one_step(impl, smp, cfg, 0, x_in, out, seed, pv)
        return got, z

    x_nat = _convert(cfg, x_in, levels[0], smp.state, _native(cfg))
    if cfg.prediction_type != "epsilon":
        got, z = step()
        bad = ~np.isfinite(got)
        if expect is not ORACLE:
            if expect.nonfinite_excused:
                return
            want = expect.step(cfg, 0, levels, x_nat, out, z, pv)
            expected_bad = ~np.isfinite(want)
            assert np.array_equal(bad, expected_bad), \
                (f"step at t = T: {int(bad.sum())} of {got.size} values NaN/inf where the model has "
                 f"{int(expected_bad.sum())}. {ctx}")
            return
        assert not bad.any(), f"step at t = T is not finite: {int(bad.sum())} of {got.size} values " \
                              f"NaN/inf (e.g. {got[bad].ravel()[:3]}). {ctx}"
        return
    refused, result = refuses(step)
    if refused:
        return  # raised or warned: the implementation refuses ε-prediction at SNR 0, as it should
    got, z = result
    finite = np.isfinite(got).all()
    silent = expect.silent_at_T(cfg, levels, x_nat, out, z, pv, impl.unit_roundoff, _subnormal(impl))
    message = (f"ε-prediction at zero SNR returned {'a silently clamped finite result' if finite else 'NaN/inf'} "
               f"without raising or warning (x̂₀ = (x_t - σ·ε)/α divides by α = 0). {ctx}")
    assert silent is not None, message
    want, tol = silent
    _closer(expect)(got, want, tol, "the silent result of ε-prediction at zero SNR", ctx, record)


def refuses(fn, *args):
    """(refused, result) of fn(*args): refused if it raised or warned (deprecation notices do not
    count), as an implementation must for ε-prediction at zero SNR; else its result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args)
        except Exception:  # noqa: BLE001 -- any exception is a refusal, which is what is asked
            return True, None
    warned = any(not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
                 for w in caught)
    return warned, (None if warned else result)


# --- 7. full loop --------------------------------------------------------------------------------


def check_loop(impl, cfg: SamplerConfig, mean, var, x_T, seed: int, record: Record | None = None, expect=ORACLE):
    """A whole sampling loop with the exact Gaussian denoiser matches the oracle's loop run on the
    implementation's own levels and noise. Tolerance: each step's derived tolerance, carried
    through the later steps by their gains |∂x_next/∂x| (the loop is affine in this case).

    Step level: the suite runs the loop, the model evaluated at ``model_input(i, x)`` before each
    step. Loop level: the implementation runs its own loop (``sample``), calling the suite's
    denoiser (the exact Gaussian denoiser at what it passes) and noise source."""
    smp = impl.build(cfg)
    S = len(smp.timesteps)
    q = impl.quantize
    denoiser = ref.gaussian_denoiser(mean, var, cfg.prediction_type)
    ctx = f"config: {cfg}"
    loop_level = is_loop_level(smp)
    if _nonfinite(expect, smp.timesteps, "timesteps", ctx,
                  want=expect.timesteps(cfg) if expect is not ORACLE else None):
        return 0.0

    if _ve(cfg):
        sig = _sigmas_of(cfg, smp, expect)
        n_sig = expect.chain_sigmas(cfg, smp.alphas_cumprod, smp.timesteps).size \
            if smp.alphas_cumprod is not None else S + 1
        assert sig.size == n_sig, f"{sig.size} sigmas for {S} timesteps (need {n_sig}). {ctx}"
        if _nonfinite(expect, sig[:S + 1], "sigmas", ctx):
            return 0.0
        levels = ref.alpha_bars_from_sigmas(sig[:S + 1])
        pairs = [(levels[k], levels[k + 1]) for k in range(S)]
        own = sig  # the implementation's level of each step, of the configuration's kind
    else:
        ts = expect.timesteps(cfg).astype(int)
        assert S == ts.size, f"{S} timesteps, expected S = {ts.size}. {ctx}"
        pairs = [_vp_pair(cfg, smp, i, expect) for i in range(ts.size)]
        levels = np.array([p[0] for p in pairs] + [pairs[-1][1]])
        if smp.alphas_cumprod is None and _nonfinite(expect, levels, "levels", ctx):
            return 0.0
        own = levels

    def scale(k):  # the implementation's state scale at its k-th level (VE: √(σ_k²+1), 1 at σ = inf)
        return _scale(smp.state, cfg, float(own[k]))

    with np.errstate(invalid="ignore"):
        ok = np.all(~np.isnan(pairs)) and all(b >= a for a, b in pairs)
    if not ok and smp.alphas_cumprod is not None and expect.unchecked_levels(cfg, smp.alphas_cumprod, levels):
        return 0.0
    # σ may rise only on steps where a model's σ rise too (a floor above ᾱ_{T-2}; a float32 σ_min
    # one ulp above the last converted σ), as _levels checks them
    rises_allowed = expect is not ORACLE and _ve(cfg) and \
        all(_levels(cfg, smp, k, expect) is not None for k in range(S) if pairs[k][1] < pairs[k][0])
    assert ok or (rises_allowed and np.all(~np.isnan(levels))), \
        f"the implementation's levels are not a denoising sequence (ᾱ: {levels[:4]}...). {ctx}"
    _require_representable(impl, f"the initial state x_T·{scale(0):.6g} (the state scale at its first level)",
                           x_T, scale(0))
    x = q(np.asarray(x_T) * scale(0))
    x_start = x / scale(0)
    maps = [expect.loop_map(cfg, k, pairs[k], denoiser, S) for k in range(S)]

    def exact_model(x_vp, a):
        out = denoiser(np.where(np.isfinite(x_vp), x_vp, 0.0), None, a)  # (a model's NaN stays)
        _require_representable(impl, "the model output", out)
        return q(out)

    noise = []
    if loop_level:
        source = SuiteNoise(impl, seed, np.shape(x))
        den = SuiteDenoiser(impl, cfg, smp, np.shape(x), exact_model)
        x = np.asarray(smp.sample(x, den, source, 0, S), np.float64)
        noise = [source.draw(k) for k in range(S)]
        stray = sorted(set(source.asked) - set(range(S)))
        assert not stray, f"the loop drew noise for step indices {stray[:4]} outside 0..S-1 = {S - 1}. {ctx}"
        steps = [S - 1]
    else:
        steps = range(S)
    for i in steps:
        if not loop_level:
            a = 1.0 / (1.0 + smp.sigmas[i] ** 2) if _ve(cfg) and smp.sigmas is not None else levels[i]
            seen = smp.model_input(i, x)
            x, z = smp.step(i, x, exact_model(seen, a), seed + i)
            noise.append(z)
        bad = ~np.isfinite(x)
        if bad.any():
            # the exact state after this step, at the implementation's scale: if the dtype cannot
            # hold it, no implementation can, and the case is outside the dtype's range
            truth = x_start
            for k in range(i + 1):
                truth = maps[k](truth, noise[k])
            _require_representable(impl, f"the exact state after step {i}", truth[np.isfinite(truth)], scale(i + 1))
            if expect is not ORACLE and not np.array_equal(bad, ~np.isfinite(truth * scale(i + 1))) \
                    and not expect.nonfinite_excused:
                raise AssertionError(f"the implementation's state is not finite after step {i} of {S} "
                                     f"(t={smp.timesteps[i]:g}): {int(bad.sum())} NaN/inf where the model has "
                                     f"{int((~np.isfinite(truth)).sum())}. {ctx}")
        assert expect is not ORACLE or not bad.any(), (
            f"the implementation's state is not finite after step {i} of {S} "
            f"(t={smp.timesteps[i]:g}): {int(bad.sum())} NaN/inf. {ctx}")
    x = x / scale(S)  # the state at the final level (σ = 0, or σ_min) as the VP sample
    path = [x_start]
    for k in range(S):
        path.append(maps[k](path[-1], noise[k]))
    want = path[-1]
    tol = np.zeros(np.shape(want))
    u = impl.unit_roundoff
    for i in range(S):
        zero = np.zeros(np.shape(want))
        with np.errstate(invalid="ignore"):
            gain = np.abs(maps[i](zero + 1.0, noise[i]) - maps[i](zero, noise[i]))
        own_tol = _loop_step_tolerance(cfg, pairs[i], path[i], denoiser, noise[i], u, _subnormal(impl), expect, i) \
            + _model_level_tolerance(cfg, pairs[i], path[i], denoiser, noise[i], u if loop_level else tolerances.U_FLOAT64,
                                     expect, i)
        tol = gain * tol + own_tol
    if smp.state != _native(cfg):  # the state's conversions (2 roundings each way)
        tol = tol + 4 * u * np.abs(want)
    return _closer(expect)(x, want, tol, f"sample after {S} steps", ctx, record)


def _model_level_tolerance(cfg, pair, x_vp, denoiser, z, u_convert: float, expect=ORACLE, i=0):
    """The step's error from the level its model is evaluated at: in a loop the model output is a
    function of the level, and the implementation's model and the oracle's see that level through
    different conversions. The implementation's denoiser call converts its own level to ᾱ (loop
    level: the implementation, in its dtype; step level: the suite, 1/(1 + σ²) in float64),
    <= LEVEL_OPS roundings at ``u_convert``; the oracle's step converts ᾱ -> σ -> ᾱ (√((1-ᾱ)/ᾱ),
    √(σ²+1), its square and reciprocal: 2·LEVEL_OPS roundings at u₆₄). The two levels differ by at
    most δ = LEVEL_OPS·u_convert + 2·LEVEL_OPS·u₆₄ relative, and the step's result by
    |∂x_next/∂ln ᾱ of the model output|·δ (measured by perturbing the model's level and stepping
    on the same levels; first order, like the level terms of tolerances.step). It matters where
    the model output is sensitive to ᾱ and multiplied by O(1): x₀-prediction at ᾱ near 1
    (x̂₀ = 1 - ᾱ for mean 1, var 1, x_t = 0: a 2-ulp difference in ᾱ = 0.98 is 64 ulp of x̂₀)."""
    a, a_next = float(pair[0]), float(pair[1])
    if a in (0.0, 1.0):  # exact in every conversion (σ = inf, σ = 0)
        return 0.0
    x_vp = np.where(np.isfinite(x_vp), x_vp, 0.0)
    if _ve(cfg):
        sig, sig_next = math.sqrt((1 - a) / a), math.sqrt((1 - a_next) / a_next)
        xs = x_vp * math.sqrt(sig * sig + 1.0)

        def result(lv):
            return expect.step(cfg, i, (sig, sig_next), xs, denoiser(x_vp, None, lv[0]), z, None) \
                / math.sqrt(sig_next**2 + 1.0)
    else:
        def result(lv):
            return expect.step(cfg, i, (a, a_next), x_vp, denoiser(x_vp, None, lv[0]), z, None)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d_result, d_level = tolerances._perturbed(result, (a,), 0, 1e-6)
        delta = tolerances.LEVEL_OPS * u_convert + 2 * tolerances.LEVEL_OPS * tolerances.U_FLOAT64
        return np.where(np.isfinite(d_result), d_result / d_level * delta, 0.0)


def _loop_step_tolerance(cfg, pair, x_vp, denoiser, z, u, sub, expect=ORACLE, i=0):
    a, a_next = float(pair[0]), float(pair[1])
    x_vp = np.where(np.isfinite(x_vp), x_vp, 0.0)  # a model's NaN: compared as NaN, no tolerance needed
    out = denoiser(x_vp, None, a)
    if expect is not ORACLE and not (_ve(cfg) and a == 0):
        if _ve(cfg):
            sig, sig_next = math.sqrt((1 - a) / a), math.sqrt((1 - a_next) / a_next)
            xs = x_vp * math.sqrt(sig * sig + 1.0)
            return (expect.step_tolerance(cfg, i, (sig, sig_next), xs, out, z, None, u, sub) + 2 * u * np.abs(xs)) \
                / math.sqrt(sig_next**2 + 1.0)
        return expect.step_tolerance(cfg, i, (a, a_next), x_vp, out, z, None, u, sub) + 2 * u * np.abs(x_vp)
    if _ve(cfg):
        sig = math.inf if a == 0 else math.sqrt((1 - a) / a)
        sig_next = math.sqrt((1 - a_next) / a_next)
        if math.isinf(sig):  # from σ = inf, in the finite form (the VP x_t): the limit update's bound
            return tolerances.step(cfg, (sig, sig_next), x_vp, out, z, u, subnormal=sub) / math.sqrt(sig_next**2 + 1.0) \
                + 2 * u * np.abs(x_vp)
        lv = (sig, sig_next)
        xs = x_vp * math.sqrt(sig * sig + 1.0)
        # the denoiser's input is rounded to the dtype too: its output moves by up to u·|gain|·|x|
        return (tolerances.step(cfg, lv, xs, out, z, u, subnormal=sub) + 2 * u * np.abs(xs)) \
            / math.sqrt(sig_next**2 + 1.0)
    return tolerances.step(cfg, (a, a_next), x_vp, out, z, u, subnormal=sub) + 2 * u * np.abs(x_vp)


# --- 8. guidance rescale -------------------------------------------------------------------------


def check_guidance(impl, x_cfg, x_pos, phi: float, record: Record | None = None, expect=ORACLE):
    """Algorithm 2 per sample, against the oracle on the same (dtype-rounded) inputs."""
    q = impl.quantize
    x_cfg, x_pos = q(x_cfg), q(x_pos)
    got = impl.guidance_rescale(x_cfg, x_pos, phi)
    want = ref.rescale_guidance(x_cfg, x_pos, phi)
    # the implementation's bound, plus the oracle's own computation: the same bound at float64's u
    tol = tolerances.guidance(x_cfg, x_pos, phi, impl.unit_roundoff, _subnormal(impl)) \
        + tolerances.guidance(x_cfg, x_pos, phi, tolerances.U_FLOAT64, 2.0**-1074)
    return _closer(expect)(got, want, tol, f"guidance rescale (φ = {phi})",
                        f"batch of {x_cfg.shape[0]}, shape {x_cfg.shape}", record)
