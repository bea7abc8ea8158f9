"""The suite's own machinery: how declared deviations excuse failures, and how cases outside a
dtype's range or precision are treated. Each test fails on the behaviour it guards against."""

from __future__ import annotations

import numpy as np
import pytest

from properties.adapters.diffusers import DiffusersImplementation
from properties.compare import Record
from properties.conformance import checks
from properties.contract import SamplerConfig, Unsupported
from properties.deviations import NON_FINITE, Deviation, matching, tolerated

SHAPE = (2, 3, 2, 2)


class _Impl:
    def __init__(self, deviations):
        self.deviations = deviations


def _dev(symptom=None):
    return Deviation("nan-dev", ("step",), ("ddim",), lambda c: c.num_inference_steps == 5, "reason", "link",
                     symptom=symptom)


@pytest.mark.parametrize("message", ["step 0: 3 of 4 values non-finite (worst 0)",
                                     "the implementation's state is not finite after step 2"])
def test_a_nan_deviation_excuses_non_finite_failures(message):
    rec = Record()
    with tolerated(_Impl([_dev(NON_FINITE)]), SamplerConfig("ddim", num_inference_steps=5), "step", rec):
        raise AssertionError(message)
    assert list(rec.deviations) == ["nan-dev"]


def test_a_nan_deviation_does_not_excuse_a_finite_wrong_result():
    impl, cfg = _Impl([_dev(NON_FINITE)]), SamplerConfig("ddim", num_inference_steps=5)
    with pytest.raises(AssertionError, match="beyond tolerance"), tolerated(impl, cfg, "step", Record()):
        raise AssertionError("step 0: 4 of 4 values beyond tolerance (worst |diff|/tol = 3)")


def test_a_deviation_applies_only_to_its_configurations():
    impl, cfg = _Impl([_dev()]), SamplerConfig("ddim", num_inference_steps=6)
    with pytest.raises(AssertionError, match="non-finite"), tolerated(impl, cfg, "step", Record()):
        raise AssertionError("step 0: 3 of 4 values non-finite")


def test_a_deviation_without_symptom_excuses_any_failure_of_its_properties():
    rec = Record()
    with tolerated(_Impl([_dev()]), SamplerConfig("ddim", num_inference_steps=5), "step", rec):
        raise AssertionError("step 0: 4 of 4 values beyond tolerance")
    assert "nan-dev" in rec.deviations


def test_a_half_precision_deviation_matches_only_in_its_dtype():
    dev = Deviation("half-only", ("step",), ("ddim",), lambda c: True, "reason", "link", dtypes=("float16",))
    cfg = SamplerConfig("ddim")
    half, single = _Impl([dev]), _Impl([dev])
    half.dtype, single.dtype = "float16", "float32"
    assert [d.id for d in matching(half, cfg, "step")] == ["half-only"]
    assert matching(single, cfg, "step") == []
    with pytest.raises(AssertionError), tolerated(single, cfg, "step", Record()):
        raise AssertionError("step 0: 4 of 4 values non-finite")


def test_a_bad_symptom_is_a_value_error():
    with pytest.raises(ValueError, match="not a regular expression"):
        _dev("non-finite(")


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
