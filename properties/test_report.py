"""A failure report says what to fix, from the check's own record (not from Hypothesis's output,
whose wording differs between versions): property, sampler, configuration, inputs, worst point,
and a snippet that reproduces the failure standalone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from properties import report

BUGGY = """
from diffusers import DDIMScheduler
from properties.adapters.diffusers import DiffusersImplementation

class Buggy(DDIMScheduler):  # planted bug: the result is 0.1 % too large
    def step(self, *args, **kwargs):
        out = super().step(*args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.prev_sample).mul_(1.001)
        return out

impl = DiffusersImplementation(ddim=Buggy)
"""


def test_a_failure_report_names_the_configuration_and_reproduces(tmp_path):
    (tmp_path / "zsnr_buggy_adapter.py").write_text(BUGGY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "properties", "--impl", "zsnr_buggy_adapter:impl", "-k",
                           "test_step_ddim", "--json", str(out)], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    (rec,) = [r for r in json.loads(out.read_text()) if r["outcome"] == "failed"]
    failure = rec["failure"]
    assert failure["property"] == "step" and failure["sampler"] == "ddim"
    assert failure["call"]["config"].startswith("SamplerConfig(sampler='ddim'")
    assert rec["counterexample"]
    point = failure["worst_point"]
    assert point["ratio"] > 1 and abs(point["actual"] - point["expected"]) == point["diff"] > point["tol"]
    assert "Traceback" not in proc.stdout and len(proc.stdout.splitlines()) < 80  # short by default
    run = subprocess.run([sys.executable, "-c", failure["snippet"]], check=False, cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "AssertionError" in run.stderr and "beyond tolerance" in run.stderr, run.stderr


def test_a_snippet_literal_round_trips_arrays_exactly():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32).astype(np.float64)
    assert np.array_equal(eval(report._literal(x), {"np": np}), x)
    assert np.array_equal(eval(report._literal(np.full((2, 2), 0.5)), {"np": np}), np.full((2, 2), 0.5))


def test_the_matrix_header_names_the_implementations_own_dtype():
    """A float64 implementation run without --impl-dtype is reported as float64, not the option's
    float32 default; without a ``dtype`` attribute its unit roundoff names it."""
    from types import SimpleNamespace

    from properties.__main__ import _dtype_name

    assert _dtype_name(SimpleNamespace(dtype="float64", unit_roundoff=2.0**-53)) == "float64"
    assert _dtype_name(SimpleNamespace(dtype="torch.bfloat16", unit_roundoff=2.0**-8)) == "bfloat16"
    assert _dtype_name(SimpleNamespace(unit_roundoff=2.0**-53)) == "float64"
    assert _dtype_name(SimpleNamespace(unit_roundoff=1e-10)) == "unit roundoff 1e-10"


def test_a_non_finite_mismatch_is_not_reported_as_a_zero_difference():
    """NaN where the oracle is finite: the row and the worst point say non-finite, not |diff| = 0."""
    import pytest

    from properties.compare import Record, assert_close

    rec = Record()
    with pytest.raises(AssertionError, match="non-finite") as info:
        assert_close([np.nan, 1.0], [0.055, 1.0], 1e-6, "√ᾱ", record=rec)
    assert "0.000e+00" not in str(info.value)
    assert rec.worst_point["nonfinite"] and rec.worst_point["index"] == (0,)
    line = report.worst_point_line(rec.worst_point)
    assert "non-finite values must match exactly" in line and "|diff|" not in line
