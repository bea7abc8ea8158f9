"""The suite's own machinery: how declared deviations excuse failures, and how cases outside a
dtype's range or precision are treated. Each test fails on the behaviour it guards against."""

from __future__ import annotations

import numpy as np
import pytest

from properties.adapters.diffusers import DiffusersImplementation
from properties.compare import Record, assert_close
from properties.conformance import checks
from properties.contract import SamplerConfig, Unsupported
from properties.deviations import NON_FINITE, Deviation, judge, matching

SHAPE = (2, 3, 2, 2)


class _Impl:
    def __init__(self, deviations):
        self.deviations = deviations


def _nan_dev():
    return Deviation("nan-dev", ("step",), ("ddim",), lambda c: c.num_inference_steps == 5, "reason", "link",
                     symptom=NON_FINITE)


def _check_returning(actual, expected=1.0):
    """A check of ``actual`` against the expectation's ``timesteps`` piece (a stand-in value)."""
    def check(expect, rec):
        want = expect.timesteps(None) if expect.sources else expected
        assert_close(np.asarray(actual, np.float64), want, 1e-12, "value", record=rec,
                     excuse_nonfinite=expect.nonfinite_excused)
    return check


def _model_dev(value):
    return Deviation("model-dev", ("step",), ("ddim",), lambda c: True, "reason", "link",
                     model={"timesteps": lambda E, c: np.asarray(value, np.float64)})


CFG5 = SamplerConfig("ddim", num_inference_steps=5)


def test_a_nan_deviation_excuses_non_finite_elements():
    rec = Record()
    judge(_check_returning([np.nan, 1.0]), _Impl([_nan_dev()]), CFG5, "step", rec)
    assert list(rec.deviations) == ["nan-dev"]


def test_a_nan_deviation_still_checks_the_finite_elements():
    with pytest.raises(AssertionError, match="matches neither"):
        judge(_check_returning([np.nan, 3.0]), _Impl([_nan_dev()]), CFG5, "step", Record())


def test_a_deviation_applies_only_to_its_configurations():
    with pytest.raises(AssertionError, match="non-finite"):
        judge(_check_returning([np.nan, 1.0]), _Impl([_nan_dev()]), SamplerConfig("ddim", num_inference_steps=6),
              "step", Record())


def test_three_outcomes_oracle_model_neither():
    impl = _Impl([_model_dev([2.0, 2.0])])
    rec = Record()
    assert judge(_check_returning([2.0, 2.0]), impl, CFG5, "step", rec) == "deviation"
    assert list(rec.deviations) == ["model-dev"] and rec.deviation_worst["model-dev"] == 0.0
    rec = Record()
    assert judge(_check_returning([1.0, 1.0]), impl, CFG5, "step", rec) == "fixed"
    assert list(rec.fixed) == ["model-dev"] and not rec.deviations
    with pytest.raises(AssertionError, match="vs the oracle.*\n.*vs the model"):
        judge(_check_returning([3.0, 3.0]), impl, CFG5, "step", Record())


def test_a_half_precision_deviation_matches_only_in_its_dtype():
    dev = Deviation("half-only", ("step",), ("ddim",), lambda c: True, "reason", "link", dtypes=("float16",),
                    symptom=NON_FINITE)
    cfg = SamplerConfig("ddim")
    half, single = _Impl([dev]), _Impl([dev])
    half.dtype, single.dtype = "float16", "float32"
    assert [d.id for d in matching(half, cfg, "step")] == ["half-only"]
    assert matching(single, cfg, "step") == []
    with pytest.raises(AssertionError):
        judge(_check_returning([np.nan]), single, cfg, "step", Record())


@pytest.mark.parametrize("kw", [{"symptom": "beyond tolerance"}, {}, {"model": {"no_such_piece": None}},
                                {"symptom": NON_FINITE, "model": {"timesteps": None}}])
def test_a_declaration_without_model_or_non_finite_symptom_is_a_value_error(kw):
    with pytest.raises(ValueError, match="model|symptom|piece"):
        Deviation("bad", ("step",), ("ddim",), lambda c: True, "reason", "link", **kw)


# a linear schedule this steep has σ_T = 1.08e6 (S = 1, trailing): far beyond float16's 65504
STEEP = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0078125, "beta_end": 0.046875,
         "rescale": False, "spacing": "trailing", "num_inference_steps": 1, "prediction_type": "v_prediction"}


def test_a_state_beyond_the_dtype_range_is_rejected_not_failed():
    cfg = SamplerConfig("euler", **STEEP)
    x, out = np.full(SHAPE, 0.5), np.full(SHAPE, 0.25)
    with pytest.raises(Unsupported, match="overflows float16"):
        checks.check_step(DiffusersImplementation(dtype="float16"), cfg, 0, x, out, 0)
    checks.check_step(DiffusersImplementation(dtype="float32"), cfg, 0, x, out, 0)  # in range: checked


def test_a_state_scale_beyond_the_dtype_range_is_rejected_even_from_zero():
    # x = 0 is representable, but no unit sample is at σ = 81165: float16 diffusers forms σ·ε̂ in
    # float16 (inf, then 0·inf = NaN); the case is outside the dtype's range
    cfg = SamplerConfig("euler_ancestral", num_train_timesteps=4000, beta_schedule="squaredcos_cap_v2",
                        spacing="trailing", num_inference_steps=1, prediction_type="epsilon", rescale=False)
    with pytest.raises(Unsupported, match="state scale"):
        checks.check_chaining(DiffusersImplementation(dtype="float16"), cfg)


def test_float16_subnormal_model_output_is_within_the_derived_tolerance():
    # ᾱ_T ≈ 2e-12: the exact ε̂ at x_T = 0 is ≈ -1.4e-6, subnormal in float16 (error up to 3e-8
    # absolute, 2 %), and x̂₀ multiplies it by σ/α ≈ 7e5. The step is correct; the tolerance must
    # carry the subnormal rounding through the coefficient (the old bound was exceeded 4.6-fold).
    cfg = SamplerConfig("ddim", **{**STEEP, "prediction_type": "epsilon"},
                        options=(("clip_sample", False), ("eta", 0.0), ("set_alpha_to_one", False)))
    rec = Record()
    checks.check_loop(DiffusersImplementation(dtype="float16"), cfg, np.full(SHAPE, 1.0), 0.0625,
                      np.zeros(SHAPE), 0, record=rec)
    assert 0 < rec.worst < 1
