"""The oracle behind the contract (properties/adapters/reference.py) passes every conformance
property with no declared deviation: the suite's own consistency check. Any property an exact
implementation cannot pass is a bug of the suite.

The float64 adapter runs the whole conformance package (ci profile), the float32 one the step,
chaining, finite-at-T and loop properties (the ones whose tolerances depend on the dtype); the
limit update at σ = inf, which both use, is checked here against the finite-σ updates it is the
limit of."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

import reference as ref
from properties import expected
from properties.contract import SamplerConfig

#: the only skips allowed: the oracle declares no deviations and has no generic samplers
ALLOWED_SKIPS = ("declares no deviations", "lists no generic samplers", "not checked in this dtype",
                 "supports none of the drawn", "has no ")


def _run(spec: str, *extra: str):
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:warnings",
           "--pyargs", "properties.conformance", "--impl", spec, "--zsnr-profile=ci", *extra]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    return run, run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""


def _skips_explained(stdout: str) -> list[str]:
    reasons = [ln for ln in stdout.splitlines() if ln.startswith("SKIPPED")]
    return [r for r in reasons if not any(a in r for a in ALLOWED_SKIPS)]


def test_oracle_float64_passes_every_property():
    run, tail = _run("properties.adapters.reference:impl64")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "failed" not in tail and "error" not in tail and "passed" in tail, tail
    passed = int(re.search(r"(\d+) passed", tail).group(1))
    assert passed >= 40, tail  # schedule ... loop for 4 samplers, guidance, training
    assert not _skips_explained(run.stdout), _skips_explained(run.stdout)


def test_oracle_float32_passes_the_dtype_dependent_properties():
    run, tail = _run("properties.adapters.reference:impl32", "-k", "step or chaining or finite_at_T or loop")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "failed" not in tail and "passed" in tail, tail
    assert int(re.search(r"(\d+) passed", tail).group(1)) >= 16, tail


# --- the update from σ = inf is the limit of the finite-σ updates --------------------------------


def _finite_sigma_step(cfg, sigma, sigma_next, x_t, out, z):
    """The oracle's VE step at a finite σ from the VP state x_t (converted exactly), as a VE state."""
    return expected.step(cfg, (sigma, sigma_next), x_t * math.hypot(sigma, 1.0), out, z)


@pytest.mark.parametrize("sampler, options", [("euler", {}), ("euler", {"s_churn": 3.0}),
                                              ("euler", {"s_churn": 40.0, "s_noise": 0.5}),
                                              ("euler_ancestral", {}), ("euler_ancestral", {"eta": 0.5})])
@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_step_from_infinity_is_the_limit(sampler, options, prediction_type):
    """σ → inf: the finite-σ step from x_t·√(σ²+1) converges to the step from the finite form at
    σ = inf, as O(1/σ) (checked at σ = 1e6 and 1e7: the difference shrinks tenfold)."""
    cfg = SamplerConfig(sampler, num_inference_steps=10, prediction_type=prediction_type).with_options(**options)
    rng = np.random.default_rng(3)
    x_t, out, z = (rng.standard_normal((2, 3)) for _ in range(3))
    limit = expected.step(cfg, (math.inf, 2.5), x_t, out, z)
    gaps = [np.max(np.abs(_finite_sigma_step(cfg, s, 2.5, x_t, out, z) - limit)) for s in (1e6, 1e7)]
    assert gaps[1] < 2e-6 and gaps[1] < 0.2 * gaps[0] + 1e-12, gaps


def test_churn_in_the_vp_variable_equals_the_ve_churn():
    """reference.samplers.euler_churn_vp at a finite level equals euler_churn of the VE state,
    converted: x̂/√(σ̂²+1) and 1/(σ̂²+1)."""
    x_t, z = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -0.7])
    for a in (0.9, 0.2, 1e-4):
        sigma = math.sqrt((1 - a) / a)
        xh, sh = ref.euler_churn(x_t * math.hypot(sigma, 1.0), sigma, num_inference_steps=4, noise=z, s_churn=1.0)
        vp, a_hat = ref.samplers.euler_churn_vp(x_t, a, num_inference_steps=4, noise=z, s_churn=1.0)
        np.testing.assert_allclose(vp, xh / math.hypot(sh, 1.0), rtol=1e-13)
        assert math.isclose(a_hat, 1.0 / (1.0 + sh * sh), rel_tol=1e-13)
    # at σ = inf: (x_t + √(γ(2+γ))·z)/(1+γ), γ = min(1/4, √2 - 1)
    vp, a_hat = ref.samplers.euler_churn_vp(x_t, 0.0, num_inference_steps=4, noise=z, s_churn=1.0)
    g = 0.25
    np.testing.assert_allclose(vp, (x_t + math.sqrt(g * (2 + g)) * z) / (1 + g), rtol=1e-15)
    assert a_hat == 0.0
