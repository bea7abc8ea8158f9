"""Bugs planted in the new paths of the contract must fail; the unmodified oracle adapter (and its
VP-state, σ-only and ᾱ-only variants) must pass on the same configurations.

- a loop that evaluates the model before Euler's churn while claiming (declaring nothing) after;
- a VE state mis-scaled at σ = inf (the finite form taken for the floored diffusers state);
- a σ-only implementation with a wrong σ_T (a floor, not inf);
- NaN levels from the implementation: a clear FAIL (AssertionError, never the oracle's
  ValueError), which a NON_FINITE deviation covers;
- a VP-algorithm sampler reporting a fractional or out-of-table first timestep (no IndexError).

The checks are called directly (no Hypothesis search), so this stays fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference as ref
from properties.adapters.reference import ReferenceImplementation, ReferenceSampler
from properties.compare import Record
from properties.conformance import checks
from properties.conformance.test_conformance import per_configuration_support
from properties.contract import SamplerConfig
from properties.deviations import NON_FINITE, Deviation, judge

SHAPE = (2, 3, 2, 2)
RNG = np.random.default_rng(0)
X, OUT = RNG.standard_normal(SHAPE).astype(np.float32), RNG.standard_normal(SHAPE).astype(np.float32)
MEAN = np.full(SHAPE, 0.2)

CHURN = SamplerConfig("euler", num_inference_steps=10, prediction_type="v_prediction",
                      options=(("s_churn", 5.0), ("s_noise", 1.0), ("s_tmax", math.inf), ("s_tmin", 0.0)))
ZERO_SNR = [SamplerConfig(s, prediction_type=p).with_options(**o)
            for s, o in (("euler", {}), ("euler", {"s_churn": 5.0}), ("euler_ancestral", {}),
                         ("euler_ancestral", {"eta": 0.4}))
            for p in ("v_prediction", "sample")]


def _verdict(check, impl, cfg, prop, *args):
    """'oracle' / 'deviation' (judge's outcome), or the failure's exception."""
    try:
        return judge(lambda e, r: check(impl, cfg, *args, record=r, expect=e), impl, cfg, prop, Record())
    except (AssertionError, ValueError) as exc:
        return exc


def _all_checks(impl, cfg, i=0):
    """Each property on cfg (zero_snr and finite_at_T where the suite draws them: zero-SNR trailing)."""
    out = {
        "schedule": _verdict(checks.check_schedule, impl, cfg, "schedule"),
        "step": _verdict(checks.check_step, impl, cfg, "step", i, X, OUT, 7, None),
        "chaining": _verdict(checks.check_chaining, impl, cfg, "chaining"),
        "loop": _verdict(checks.check_loop, impl, cfg, "loop", MEAN, 0.25, X, 3),
    }
    if cfg.rescale:
        out["zero_snr"] = _verdict(checks.check_zero_snr, impl, cfg, "zero_snr")
    if cfg.rescale and cfg.spacing == "trailing":
        out["finite_at_T"] = _verdict(checks.check_finite_at_T, impl, cfg, "finite_at_T", X, OUT, 7, None)
    return out


# --- the unmodified oracle, its VP-state, σ-only and ᾱ-only variants pass ------------------------

VARIANTS = {
    "oracle": ReferenceImplementation("float32"),
    "vp-state Euler": ReferenceImplementation("float32", euler_state="vp"),
    "σ only": ReferenceImplementation("float32", report=("sigmas",), vp_sigmas=True),
    "ᾱ only": ReferenceImplementation("float32", report=("alphas_cumprod",)),
    "float64 vp-state σ only": ReferenceImplementation("float64", euler_state="vp", report=("sigmas",),
                                                       vp_sigmas=True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("cfg", ZERO_SNR + [CHURN.with_options(s_churn=0.3), SamplerConfig("ddim").with_options(eta=1.0),
                                            SamplerConfig("ddpm", prediction_type="sample"),
                                            SamplerConfig("euler", rescale=False, spacing="leading", steps_offset=1)],
                         ids=repr)
def test_the_oracle_and_its_variants_pass(variant, cfg):
    verdicts = _all_checks(VARIANTS[variant], cfg)
    bad = {k: v for k, v in verdicts.items() if v != "oracle"}
    assert not bad, bad


# --- planted bugs ------------------------------------------------------------------------------------


class _Planted(ReferenceImplementation):
    sampler_class = ReferenceSampler

    def build(self, config):
        return self.sampler_class(self, config)


class ModelBeforeChurn(ReferenceSampler):
    """Euler with churn, the model evaluated at (x, σ) *before* the churn and its output then used
    at (x̂, σ̂) -- diffusers' order, but this implementation declares nothing (so claims Karras')."""

    def sample(self, x, denoiser, noise, start=0, stop=None):
        cfg, S = self.cfg, len(self.timesteps)
        stop = S if stop is None else stop
        x = np.asarray(x, np.float64)
        for i in range(start, stop):
            sig, sig_n = float(self.sigmas[i]), float(self.sigmas[i + 1])
            gamma = min(cfg.option("s_churn", 0.0) / S, math.sqrt(2) - 1)
            out = denoiser(x, sigma=sig)  # BEFORE the churn
            xh = x + cfg.option("s_noise", 1.0) * sig * math.sqrt(gamma * (2 + gamma)) * noise(i)
            sh = sig * (1 + gamma)
            x0 = ref.predict_x0_and_eps(xh / math.hypot(sh, 1), out, cfg.prediction_type, 1 / (1 + sh * sh))[0]
            x = self.impl.quantize(xh + (sig_n - sh) * (xh - x0) / sh)
        return x


class MisScaledAtInfinity(ReferenceSampler):
    """At σ = inf it takes the finite form for the floored state x·√(4096²+1) (diffusers' σ_T)."""

    def _scale(self, k):
        return math.hypot(4096.0, 1.0) if self._levels[k] == 0.0 else super()._scale(k)


class SigmaOnlyFloored(ReferenceSampler):
    """σ only, with σ_T = 4096 (ᾱ_T = 2⁻²⁴) reported instead of inf; it steps from there."""

    def __init__(self, impl, cfg):
        super().__init__(impl, cfg)
        self.alphas_cumprod = None
        if self.sigmas is not None and math.isinf(self.sigmas[0]):
            self.sigmas = self.sigmas.copy()
            self.sigmas[0] = 4096.0
            self._levels = ref.alpha_bars_from_sigmas(self.sigmas)


class NaNSigmaT(ReferenceSampler):
    """k-diffusion's DiscreteSchedule at ᾱ_T = 0: σ_T = (1-0)·inf + 0·inf = NaN."""

    def __init__(self, impl, cfg):
        super().__init__(impl, cfg)
        if self.sigmas is not None and math.isinf(self.sigmas[0]):
            self.sigmas = self.sigmas.copy()
            self.sigmas[0] = math.nan


class FractionalFirstTimestep(ReferenceSampler):
    """A VP sampler that reports its first timestep as T (1-based) or T - 0.5 (fractional)."""

    shift = 1.0

    def __init__(self, impl, cfg):
        super().__init__(impl, cfg)
        self.timesteps = self.timesteps.copy()
        self.timesteps[0] += self.shift


def _planted(cls, **kw):
    return type(f"Planted{cls.__name__}", (_Planted,), {"sampler_class": cls})("float32", **kw)


def test_model_before_the_churn_fails():
    impl = _planted(ModelBeforeChurn)
    cfg = SamplerConfig("euler", rescale=False, num_inference_steps=10, prediction_type="v_prediction",
                        options=(("s_churn", 5.0),))
    verdicts = _all_checks(impl, cfg, i=3)
    assert isinstance(verdicts["step"], AssertionError) and "evaluated the model at" in str(verdicts["step"])
    assert isinstance(verdicts["loop"], AssertionError), verdicts["loop"]
    # the same loop without churn evaluates the model where Karras does: it passes
    plain = _all_checks(impl, SamplerConfig("euler", rescale=False, prediction_type="v_prediction"), i=3)
    assert plain["step"] == "oracle" and plain["loop"] == "oracle", plain


@pytest.mark.parametrize("cfg", ZERO_SNR, ids=repr)
def test_ve_state_mis_scaled_at_infinity_fails(cfg):
    verdicts = _all_checks(_planted(MisScaledAtInfinity), cfg)
    assert isinstance(verdicts["step"], AssertionError), verdicts["step"]
    if cfg.sampler == "euler_ancestral" and cfg.option("eta", 1.0) == 1.0:
        # from σ = inf with η = 1, σ_down = 0 and the exact x̂₀ is the data mean: the sample does not
        # depend on the state there, so only the model's input (the step property) shows the bug
        return
    assert isinstance(verdicts["loop"], AssertionError), verdicts["loop"]


@pytest.mark.parametrize("cfg", ZERO_SNR[:3] + [SamplerConfig("ddim", prediction_type="sample")], ids=repr)
def test_sigma_only_with_a_wrong_sigma_T_fails(cfg):
    verdicts = _all_checks(_planted(SigmaOnlyFloored, report=("sigmas",), vp_sigmas=True), cfg)
    assert isinstance(verdicts["zero_snr"], AssertionError) and "not inf" in str(verdicts["zero_snr"])
    assert isinstance(verdicts["schedule"], AssertionError), verdicts["schedule"]


@pytest.mark.parametrize("cfg", ZERO_SNR[:3], ids=repr)
def test_nan_levels_are_a_failure_that_a_non_finite_deviation_covers(cfg):
    impl = _planted(NaNSigmaT)
    verdicts = _all_checks(impl, cfg)
    for prop in ("schedule", "step", "zero_snr", "finite_at_T", "loop"):
        assert type(verdicts[prop]) is AssertionError, (prop, verdicts[prop])  # a FAIL, not the oracle's ValueError
    impl.deviations = (Deviation("nan-sigma-T", ("schedule", "step", "chaining", "zero_snr", "finite_at_T", "loop"),
                                 ("euler", "euler_ancestral"), lambda c: c.rescale, "σ_T = NaN at ᾱ_T = 0",
                                 "https://example.invalid", symptom=NON_FINITE),)
    covered = _all_checks(impl, cfg)
    assert all(v in ("oracle", "deviation") for v in covered.values()), covered
    assert covered["zero_snr"] == covered["step"] == covered["loop"] == "deviation", covered


@pytest.mark.parametrize("shift", [1.0, -0.5])
def test_vp_first_timestep_outside_the_table_is_no_index_error(shift):
    cls = type("Shifted", (FractionalFirstTimestep,), {"shift": shift})
    impl = _planted(cls)
    cfg = SamplerConfig("ddim", prediction_type="v_prediction")
    # step 0 is finite at the level of the configuration's first timestep; the timestep itself fails
    assert _verdict(checks.check_finite_at_T, impl, cfg, "finite_at_T", X, OUT, 0, None) == "oracle"
    assert isinstance(_verdict(checks.check_starts_at_T, impl, cfg, "starts_at_T"), AssertionError)
    assert isinstance(_verdict(checks.check_schedule, impl, cfg, "schedule"), AssertionError)


def test_support_is_probed_per_configuration():
    """A property none of whose drawn configurations is supported is skipped with the reason; one
    that ran some is not."""
    rec = Record()
    rec.unsupported = "no clipping"
    with pytest.raises(pytest.skip.Exception, match="no clipping"), per_configuration_support(rec, "ddim"):
        pass
    rec.supported = 3
    with per_configuration_support(rec, "ddim"):
        pass


def test_float64_churned_model_input_carries_its_level_error():
    """Found by the thorough profile on the float64 oracle adapter: at σ ≈ 0.01 (T = 2, linspace,
    S = 1) the adapter's σ comes back from ᾱ = 1/(1+σ²), 6e-13 relative off; the churned model
    input x̂ ∝ σ inherits it, which its tolerance must count (the level's error, as in a step's)."""
    from properties.adapters.reference import impl64

    cfg = SamplerConfig("euler", num_train_timesteps=2, beta_schedule="linear", rescale=False, spacing="linspace",
                        num_inference_steps=1, prediction_type="epsilon",
                        options=(("s_churn", 1.0), ("s_noise", 1.0), ("s_tmax", math.inf), ("s_tmin", 0.0)))
    assert _verdict(checks.check_step, impl64, cfg, "step", 0, np.zeros(SHAPE), np.zeros(SHAPE), 0, None) == "oracle"


class _SigmaOnlyStepEuler:
    """A step-level float64 Euler (the VE state, σ only, no churn): x + (σ' - σ)·(x - x̂₀)/σ on the
    oracle's σ, its x₀-prediction taken as it comes; ``x0_error`` plants a relative error in x̂₀."""

    state, alphas_cumprod = "ve", None

    def __init__(self, cfg, x0_error=0.0):
        from properties import expected

        self.timesteps = expected.timesteps(cfg)
        self.sigmas = expected.sigmas(cfg, expected.schedule(cfg))
        self.x0_error = x0_error

    def model_input(self, i, x):
        return np.asarray(x, np.float64) / math.hypot(self.sigmas[i], 1.0)

    def step(self, i, x, model_output, seed, predicted_variance=None):
        sig, sig_n = self.sigmas[i], self.sigmas[i + 1]
        x0 = np.asarray(model_output, np.float64) * (1 + self.x0_error)
        return x + (sig_n - sig) * (x - x0) / sig, None


class _SigmaOnlyStepImpl(ReferenceImplementation):
    def __init__(self, x0_error=0.0):
        super().__init__("float64")
        self.x0_error = x0_error

    def build(self, config):
        return _SigmaOnlyStepEuler(config, self.x0_error)


#: T = 2, S = 1, x₀-prediction, data mean 1, variance 1, x_T = 0: the sample is x̂₀ = 1 - ᾱ_t, 50×
#: as sensitive to ᾱ_t = 0.98 as to itself (found in skrample's float64 loop by the dev profile)
_X0_NEAR_ONE = SamplerConfig("euler", num_train_timesteps=2, beta_schedule="linear", beta_start=0.00390625,
                             beta_end=0.015625, rescale=False, num_inference_steps=1, prediction_type="sample")


def test_float64_loop_carries_the_model_level_conversion():
    """An exact step-level float64 σ-only Euler passes the loop where its model sees ᾱ = 1/(1+σ²)
    and the oracle's step sees ᾱ through σ(ᾱ) and back (2 ulp apart, 64 ulp of x̂₀ = 1 - ᾱ): the
    loop tolerance counts the model output's sensitivity to its level's conversion (its worst
    |diff|/tol is 0.16 here). A planted 2⁻⁴⁰ = 9.1e-13 relative error in x̂₀ still fails, at 12× the
    tolerance (1.4e-15, 7.3e-14 of x̂₀: 12 roundings of ᾱ, times the conditioning 50)."""
    args = (np.full((1, 1), 1.0), 1.0, np.zeros((1, 1)), 0)
    assert _verdict(checks.check_loop, _SigmaOnlyStepImpl(), _X0_NEAR_ONE, "loop", *args) == "oracle"
    assert isinstance(_verdict(checks.check_loop, _SigmaOnlyStepImpl(2.0**-40), _X0_NEAR_ONE, "loop", *args),
                      AssertionError)
