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
from ..contract import SamplerConfig, Unsupported
from ..deviations import judge
from ..expected import ORACLE

VE = expected.VE_SAMPLERS


class GenericImplementation:
    """An implementation whose build() is one of its ``generic_samplers()`` factories (property 9)."""

    def __init__(self, impl, name: str):
        self._impl, self.name = impl, name
        self.build = getattr(impl, "generic_samplers", dict)()[name]

    def __getattr__(self, attr):
        return getattr(self._impl, attr)


def run_check(check, impl, cfg: SamplerConfig, prop: str, record, *args):
    """Run a check inside a Hypothesis test: an unsupported configuration is rejected (never
    failed), and a failure where a declared deviation applies is recorded as that deviation."""
    from hypothesis import reject

    try:
        judge(lambda expect, rec: check(impl, cfg, *args, record=rec, expect=expect), impl, cfg, prop, record)
    except Unsupported:
        reject()
    except ref.EpsilonAtZeroSNR:  # the oracle refuses: ε-prediction at zero SNR is another property's job
        reject()


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


def _state_scale(cfg: SamplerConfig, levels) -> float:
    """√(σ²+1) for the Euler family's VE state at levels[0] = σ; 1 for VP samplers."""
    return math.sqrt(levels[0] ** 2 + 1.0) if cfg.sampler in VE else 1.0


def _levels(cfg: SamplerConfig, smp, i: int, expect=ORACLE):
    """The levels step i should use, read from the implementation's own schedule values (None:
    the expectation says these degenerate levels have no value to compare)."""
    S = expect.timesteps(cfg).size
    assert len(smp.timesteps) == S, f"{len(smp.timesteps)} timesteps, expected S = {S}. config: {cfg}"
    if cfg.sampler in VE:
        lv = float(smp.sigmas[i]), float(smp.sigmas[i + 1])
        # σ rises only where the expected σ do (a model of a floor above ᾱ_{T-2})
        want = expect.sigmas(cfg) if expect is not ORACLE else None
        rises = want is not None and want.size == smp.sigmas.size and want[i + 1] > want[i] * (1 - 8 * tolerances.U_FLOAT32)
        ok = not any(math.isnan(v) for v in lv) and (lv[1] <= lv[0] or rises)
    else:
        lv = expect.vp_levels(cfg, smp.alphas_cumprod, i)
        ok = not any(math.isnan(v) for v in lv) and lv[0] <= lv[1]
    if not ok and expect.unchecked_levels(cfg, smp.alphas_cumprod, lv):
        return None
    assert ok, f"the implementation's own levels for step {i} are not a denoising step: {lv}. config: {cfg}"
    return lv


def _to_state(cfg, levels, x_vp):
    """A VP-scaled draw as the sampler's state (VE: x·√(σ²+1))."""
    return x_vp * _state_scale(cfg, levels)


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
    abar_exp = expect.alphas_cumprod(cfg)
    with np.errstate(invalid="ignore"):
        abar_tol = rel * np.abs(oracle.alphas_cumprod) + expect.alphas_cumprod_abs(cfg)
    if smp.alphas_cumprod is not None:
        close(smp.alphas_cumprod, abar_exp, abar_tol, "alphas_cumprod", ctx, record)
    if cfg.sampler in VE and smp.sigmas is not None:
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
            tol = tolerances.converted_sigma_relative(sig_rel, ts[:-1]) * np.abs(sig_exp)
            tol[-1] = np.max(sig_rel[:1]) * abs(sig_exp[-1])  # the final σ: 0 or σ_0
        elif ts.size == sig_exp.size and not log_spaced:
            with np.errstate(invalid="ignore"):
                tol = np.maximum(sig_rel[lo], sig_rel[hi]) * np.abs(sig_exp) + 4 * tolerances.U_FLOAT32 * np.abs(sig_exp)
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
    implementation's own levels, within STEP_OPS·u·Σ|terms| + level sensitivity."""
    smp = impl.build(cfg)
    levels = _levels(cfg, smp, i, expect)
    if levels is None:
        return 0.0
    q = impl.quantize
    _require_representable(impl, "the state", x, _state_scale(cfg, levels))
    x_in = q(_to_state(cfg, levels, np.asarray(x, np.float64)))
    out = q(model_output)
    pv = None if predicted_variance is None else q(predicted_variance)
    got, z = smp.step(i, x_in, out, seed, pv)
    want = expect.step(cfg, i, levels, x_in, out, z, pv)
    _require_representable(impl, "the exact result of the step", want[np.isfinite(want)])
    tol = expect.step_tolerance(cfg, i, levels, x_in, out, z, pv, impl.unit_roundoff, _subnormal(impl))
    return _closer(expect)(got, want, tol, f"step {i} of {len(smp.timesteps)} (t={smp.timesteps[i]:g}, "
                        f"levels {levels})", f"config: {cfg}", record)


# --- 3. chaining ---------------------------------------------------------------------------------


def _probe(cfg, smp, i, a_t, x0_value, seed, shape):
    """Step i from a noiseless state with x̂₀ = x0_value and ε̂ = 0 (VP samplers): returns the
    implementation's output and the (x, model output, z, predicted variance) it was given."""
    alpha, sigma = math.sqrt(a_t), math.sqrt(1.0 - a_t)
    x = np.full(shape, alpha * x0_value)
    out = {"sample": np.full(shape, x0_value), "epsilon": np.zeros(shape),
           "v_prediction": np.full(shape, -sigma * x0_value)}[cfg.prediction_type]
    pv = None
    if cfg.option("variance_type", "").startswith("learned"):
        pv = np.full(shape, 0.5)
    got, z = smp.step(i, x, out, seed, pv)
    return got, (x, out, z, pv)


def check_chaining(impl, cfg: SamplerConfig, record: Record | None = None, shape=(1, 2, 2, 2), expect=ORACLE):
    """Each step lands on the level the next one starts from; the last lands on clean data
    (ᾱ = 1, or ᾱ_0 for set_alpha_to_one=False; σ = 0, or σ_min for final_sigmas_type="sigma_min")
    with no noise left."""
    smp = impl.build(cfg)
    S = len(smp.timesteps)
    ctx = f"config: {cfg}"
    close = _closer(expect)
    if cfg.sampler in VE:
        want_abar = expect.alphas_cumprod(cfg)  # where a model's ᾱ is 0 early or rises, so may the implementation's
        own_sigmas = expect.chain_sigmas(cfg, smp.alphas_cumprod, smp.timesteps)
        assert smp.sigmas.size == own_sigmas.size, \
            f"{smp.sigmas.size} sigmas for {S} timesteps (need {own_sigmas.size}). {ctx}"
        # (continuous timesteps ¼·ln σ are not training steps: any real value)
        outside = (smp.timesteps < 0) | (smp.timesteps > cfg.num_train_timesteps - 1) \
            if expect.timestep_kind(cfg) != "continuous" else np.zeros(smp.timesteps.shape, bool)
        if expect is not ORACLE:  # only where the model has them (diffusers' t = -1)
            outside &= ~np.isin(smp.timesteps, expect.timesteps(cfg))
        assert not outside.any(), f"timesteps outside [0, T-1]: {smp.timesteps[outside]}. {ctx}"
        zeros = np.flatnonzero(smp.alphas_cumprod[:-1] == 0)
        allowed = np.flatnonzero(want_abar[:-1] == 0) if want_abar.size == smp.alphas_cumprod.size else []
        assert np.isin(zeros, allowed).all(), \
            f"the implementation's ᾱ is 0 before t = T-1 (at t = {zeros[:5]}). {ctx}"
        rises = np.flatnonzero(np.diff(smp.alphas_cumprod) > 0)
        allowed = np.flatnonzero(np.diff(want_abar) > 0) if want_abar.size == smp.alphas_cumprod.size else []
        assert np.isin(rises, allowed).all(), \
            f"the implementation's ᾱ rises at t = {rises[:5] + 1}: σ is not monotone. {ctx}"
        tol = 8 * tolerances.U_FLOAT32 * np.abs(own_sigmas)
        kind = expect.timestep_kind(cfg)
        if kind is not None:  # σ recomputed from model timesteps (t(σ), or ¼·ln σ): their rounding too
            u32 = tolerances.U_FLOAT32
            table_rel = tolerances.sigma_relative(tolerances.alphas_cumprod_relative(expected.schedule(cfg).betas),
                                                  np.asarray(smp.alphas_cumprod, np.float64))
            rel = tolerances.chain_sigma_relative(kind, smp.timesteps, smp.alphas_cumprod, table_rel, u32)
            extra = np.zeros(own_sigmas.shape)  # (a model's σ that ignore the timesteps: none of theirs)
            extra[:min(rel.size, extra.size - 1)] = rel[:extra.size - 1]
            tol = tol + extra * np.abs(own_sigmas)
        if cfg.option("interpolation_type") == "log_linear" and expect is not ORACLE:
            # exp of a float32 linspace of log σ: its error 4u·max|log σ| (2 roundings of the ends, 2 of
            # the linspace) turns into a relative one
            with np.errstate(divide="ignore"):
                logs = np.abs(np.log(own_sigmas[own_sigmas > 0]))
            tol = tol + 4 * tolerances.U_FLOAT32 * np.max(logs, initial=0.0) * np.abs(own_sigmas)
        close(smp.sigmas, own_sigmas, tol, "σ of each step vs σ(t) of its timestep (and the final σ)", ctx, record)
        churn = cfg.sampler == "euler" and (cfg.option("s_churn") or 0) > 0 and \
            (cfg.option("s_tmin", 0.0) or 0) <= smp.sigmas[S - 1] <= cfg.option("s_tmax", math.inf)
        if not churn:  # with churn the last step adds noise before the model removes it (Karras Alg. 2)
            _require_representable(impl, f"the state scale at σ = {smp.sigmas[S - 1]:.6g}", [],
                                   _state_scale(cfg, (smp.sigmas[S - 1],)))
            last = smp.step(S - 1, np.zeros(shape), np.zeros(shape), 0)[0]
            lv = float(smp.sigmas[S - 1]), float(smp.sigmas[S])
            want = expect.step(cfg, S - 1, lv, np.zeros(shape), np.zeros(shape), np.zeros(shape), None) \
                if expect is not ORACLE else 0.0
            close(last, want, 0.0, "last step from x = 0, x̂₀ = 0 (no noise may be added)", ctx, record)
        return
    ts = expect.timesteps(cfg).astype(int)
    abar = smp.alphas_cumprod
    u = impl.unit_roundoff
    for i in range(S):
        a_t = float(abar[ts[i]]) if i < ts.size else float(abar[int(smp.timesteps[i])])
        if cfg.prediction_type == "epsilon" and a_t == 0.0:
            continue  # x̂₀ undefined; the finite-at-T property covers this step
        a_next = expect.vp_levels(cfg, abar, i)[1] if i < ts.size else 1.0
        lv = (a_t, a_next)
        degenerate = math.isnan(a_t) or math.isnan(a_next) or not (a_next > 0.0 and a_next >= a_t)
        if degenerate and expect.unchecked_levels(cfg, abar, lv):
            continue
        assert not (math.isnan(a_t) or math.isnan(a_next)), f"the implementation's ᾱ at step {i} is NaN. {ctx}"
        # (a float32 ᾱ that underflowed to 0 before t = T-1 lands a step on pure noise)
        assert a_next > 0.0 and a_next >= a_t, \
            f"the implementation's levels for step {i} are not a denoising step: ᾱ {a_t!r} -> {a_next!r}. {ctx}"
        with_signal, args_a = _probe(cfg, smp, i, a_t, 1.0, seed=i, shape=shape)
        without, args_b = _probe(cfg, smp, i, a_t, 0.0, seed=i, shape=shape)
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
    if smp.sigmas is not None and cfg.spacing in ("trailing", "linspace") and len(smp.timesteps) > 1:
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


def check_finite_at_T(impl, cfg: SamplerConfig, x, model_output, seed: int, predicted_variance=None,
                      record: Record | None = None, expect=ORACLE):
    """Step 0 (t = T-1, SNR 0) is finite for v and x₀ prediction; for ε prediction the
    implementation must raise or warn: a silent NaN, inf or a silently clamped result fails.
    Under a deviation's model: non-finite exactly where the model's step is, and ε-prediction's
    silent result equal to the model's."""
    smp = impl.build(cfg)
    if expect is not ORACLE:  # a generic class a model describes is checked as its sampler kind
        kind = expected.as_kind(cfg)
        if kind is None:
            expect = ORACLE if not expect.nonfinite_excused else expect
        else:
            cfg = kind
    # only step 0's own levels matter here (its count of timesteps is the schedule property's)
    levels = (float(smp.sigmas[0]), float(smp.sigmas[1])) if cfg.sampler in VE else \
        (float(smp.alphas_cumprod[int(smp.timesteps[0])]), 0.0)
    _require_representable(impl, "the state at t = T", x, _state_scale(cfg, levels))
    x_in = impl.quantize(_to_state(cfg, levels, np.asarray(x, np.float64)))
    out = impl.quantize(model_output)
    pv = None if predicted_variance is None else impl.quantize(predicted_variance)
    ctx = f"config: {cfg}"
    if expect is not ORACLE and cfg.sampler not in VE:
        levels = (levels[0], expect.vp_levels(cfg, smp.alphas_cumprod, 0)[1])
        if any(math.isnan(v) for v in levels) and expect.unchecked_levels(cfg, smp.alphas_cumprod, levels):
            return
    if cfg.prediction_type != "epsilon":
        got, z = smp.step(0, x_in, out, seed, pv)
        bad = ~np.isfinite(got)
        if expect is not ORACLE:
            if expect.nonfinite_excused:
                return
            want = expect.step(cfg, 0, levels, x_in, out, z, pv)
            expected_bad = ~np.isfinite(want)
            assert np.array_equal(bad, expected_bad), \
                (f"step at t = T: {int(bad.sum())} of {got.size} values NaN/inf where the model has "
                 f"{int(expected_bad.sum())}. {ctx}")
            return
        assert not bad.any(), f"step at t = T is not finite: {int(bad.sum())} of {got.size} values " \
                              f"NaN/inf (e.g. {got[bad].ravel()[:3]}). {ctx}"
        return
    refused, result = refuses(smp.step, 0, x_in, out, seed, pv)
    if refused:
        return  # raised or warned: the implementation refuses ε-prediction at SNR 0, as it should
    got, z = result
    finite = np.isfinite(got).all()
    silent = expect.silent_at_T(cfg, levels, x_in, out, z, pv, impl.unit_roundoff, _subnormal(impl))
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
    through the later steps by their gains |∂x_next/∂x| (the loop is affine in this case)."""
    smp = impl.build(cfg)
    S = len(smp.timesteps)
    q = impl.quantize
    denoiser = ref.gaussian_denoiser(mean, var, cfg.prediction_type)
    ctx = f"config: {cfg}"

    def scale(k):  # the implementation's state scale at its k-th level (VE: √(σ_k²+1); VP: 1)
        return _state_scale(cfg, (smp.sigmas[k],)) if cfg.sampler in VE else 1.0

    if cfg.sampler in VE:
        n_sig = expect.chain_sigmas(cfg, smp.alphas_cumprod, smp.timesteps).size
        assert smp.sigmas.size == n_sig, f"{smp.sigmas.size} sigmas for {S} timesteps (need {n_sig}). {ctx}"
        levels = ref.alpha_bars_from_sigmas(smp.sigmas[:S + 1])
        pairs = [(levels[k], levels[k + 1]) for k in range(S)]
        _require_representable(impl, f"the initial state x_T·√(σ_max² + 1) (σ_max = {smp.sigmas[0]:.6g})",
                               x_T, scale(0))
        x = q(np.asarray(x_T) * scale(0))
    else:
        ts = expect.timesteps(cfg).astype(int)
        assert S == ts.size, f"{S} timesteps, expected S = {ts.size}. {ctx}"
        pairs = [expect.vp_levels(cfg, smp.alphas_cumprod, i) for i in range(ts.size)]
        levels = np.array([p[0] for p in pairs] + [pairs[-1][1]])
        x = q(x_T)
    with np.errstate(invalid="ignore"):
        ok = np.all(~np.isnan(pairs)) and all(b >= a for a, b in pairs)
    if not ok and expect.unchecked_levels(cfg, smp.alphas_cumprod, levels):
        return 0.0
    # σ may rise only on steps where a model's σ rise too (a floor above ᾱ_{T-2}; a float32 σ_min
    # one ulp above the last converted σ), as _levels checks them
    rises_allowed = expect is not ORACLE and cfg.sampler in VE and \
        all(_levels(cfg, smp, k, expect) is not None for k in range(S) if pairs[k][1] < pairs[k][0])
    assert ok or (rises_allowed and np.all(~np.isnan(levels))), \
        f"the implementation's levels are not a denoising sequence (ᾱ: {levels[:4]}...). {ctx}"
    x_start = x / scale(0) if cfg.sampler in VE else x
    maps = [expect.loop_map(cfg, k, pairs[k], denoiser, S) for k in range(S)]
    noise = []
    for i in range(S):
        a = 1.0 / (1.0 + smp.sigmas[i] ** 2) if cfg.sampler in VE else levels[i]
        seen = smp.model_input(i, x)
        exact_out = denoiser(np.where(np.isfinite(seen), seen, 0.0), smp.timesteps[i], a)  # (a model's NaN stays)
        _require_representable(impl, f"the model output at step {i}", exact_out)
        x, z = smp.step(i, x, q(exact_out), seed + i)
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
    if cfg.sampler in VE:  # the VE state at the final σ (0, or σ_min) as the VP sample
        x = x / scale(S)
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
        own = _loop_step_tolerance(cfg, pairs[i], path[i], denoiser, noise[i], u, _subnormal(impl), expect, i)
        tol = gain * tol + own
    return _closer(expect)(x, want, tol, f"sample after {S} steps", ctx, record)


def _loop_step_tolerance(cfg, pair, x_vp, denoiser, z, u, sub, expect=ORACLE, i=0):
    a, a_next = float(pair[0]), float(pair[1])
    x_vp = np.where(np.isfinite(x_vp), x_vp, 0.0)  # a model's NaN: compared as NaN, no tolerance needed
    out = denoiser(x_vp, None, a)
    if expect is not ORACLE and not (cfg.sampler in VE and a == 0):
        if cfg.sampler in VE:
            sig, sig_next = math.sqrt((1 - a) / a), math.sqrt((1 - a_next) / a_next)
            xs = x_vp * math.sqrt(sig * sig + 1.0)
            return (expect.step_tolerance(cfg, i, (sig, sig_next), xs, out, z, None, u, sub) + 2 * u * np.abs(xs)) \
                / math.sqrt(sig_next**2 + 1.0)
        return expect.step_tolerance(cfg, i, (a, a_next), x_vp, out, z, None, u, sub) + 2 * u * np.abs(x_vp)
    if cfg.sampler in VE:
        sig = math.inf if a == 0 else math.sqrt((1 - a) / a)
        sig_next = math.sqrt((1 - a_next) / a_next)
        if math.isinf(sig):  # σ = inf never reaches an implementation (they floor σ); VP form
            vp = SamplerConfig("ddim", options=(("eta", 0.0 if cfg.sampler == "euler" else 1.0),),
                               prediction_type=cfg.prediction_type)
            return tolerances.step(vp, (a, a_next), x_vp, out, z, u, subnormal=sub)
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
    tol = tolerances.guidance(x_cfg, x_pos, phi, impl.unit_roundoff, _subnormal(impl))
    return _closer(expect)(got, want, tol, f"guidance rescale (φ = {phi})",
                        f"batch of {x_cfg.shape[0]}, shape {x_cfg.shape}", record)
