"""Fast tests of the measuring code of benchmarks/ (not of the implementations it measures)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common, suite
from benchmarks._common import (
    HEADLINE_RE,
    headline,
    linear_terms_scale,
    normalised_rel_error,
    rel_error_series,
    time_call,
)

REPO = Path(__file__).resolve().parents[1]


def test_relative_error_known_values():
    # |1.5 - 1| / 2 = 0.25 beats |3 - 3| / 1 = 0
    assert normalised_rel_error([1.5, 3.0], [1.0, 3.0], [2.0, 1.0]) == 0.25
    assert normalised_rel_error([0.0], [0.0], [0.0]) == 0.0  # 0/0 counts as exact
    assert normalised_rel_error([1e-30], [0.0], [0.0]) == math.inf  # any error on a zero scale
    assert normalised_rel_error([np.nan, 1.0], [1.0, 1.0], [1.0, 1.0]) == math.inf
    assert normalised_rel_error([np.inf], [1.0], [1.0]) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        normalised_rel_error([1.0, 2.0], [1.0], [1.0])


def test_rel_error_series_elementwise():
    got = rel_error_series([1.0, 0.0, 2e-8, np.nan], [0.5, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(got, [1.0, 0.0, np.inf, np.inf])


def test_terms_scale_is_sum_of_absolute_terms_not_of_result():
    # f = 3x - 2m: at x = m = 1 the result 1 cancels, the terms sum to 5
    f = lambda x, m: 3 * x - 2 * m
    scale = linear_terms_scale(f, {"x": np.ones(2), "m": np.array([1.0, -1.0])})
    np.testing.assert_array_equal(scale, [5.0, 5.0])
    # an error of 5e-8 on the cancelled result is 1e-8 of the terms
    assert normalised_rel_error([1.0 + 5e-8], [1.0], scale[:1]) == pytest.approx(1e-8, rel=1e-6)


def test_unit_roundoff_matches_machine_epsilon():
    for name in ("float16", "float32", "float64"):
        assert _common.unit_roundoff(name) == np.finfo(name).eps / 2
    assert _common.unit_roundoff("bfloat16") == 2.0 ** -8


def test_time_call_reports_median_and_spread():
    t = time_call(lambda: sum(range(100)), repeats=5, min_time=0.002)
    assert len(t["repeats"]) == 5 and t["number"] >= 1
    assert t["min"] <= t["median"] <= t["max"] and t["min"] > 0


def test_headline_line_format():
    line = headline("step_speed_ratio_vs_diffusers", 1.234567891)
    assert line == "step_speed_ratio_vs_diffusers: 1.23457"
    assert HEADLINE_RE.match(line).groups() == ("step_speed_ratio_vs_diffusers", "1.23457")
    assert headline("oracle_worst_ulp", "n/a (missing)") == "oracle_worst_ulp: n/a (missing)"
    with pytest.raises(ValueError):
        headline("Bad Name", 1.0)


STATS = """\
.. [100%]
============================ Hypothesis Statistics =============================
properties/conformance/test_a.py::test_one:

  - during reuse phase (0.10 seconds):
    - Typical runtimes: < 1ms, of which < 1ms in data generation
    - 2 passing examples, 0 failing examples, 0 invalid examples

  - during generate phase (0.90 seconds):
    - Typical runtimes: ~ 1ms, of which < 1ms in data generation
    - 13 passing examples, 0 failing examples, 4 invalid examples

  - Stopped because settings.max_examples=15


properties/conformance/test_a.py::test_two[ddim]:

  - during generate phase (2.00 seconds):
    - Typical runtimes: ~ 10ms, of which < 1ms in data generation
    - 40 passing examples, 0 failing examples, 0 invalid examples

  - Stopped because settings.max_examples=40

2 passed, 1 skipped in 3.51s
"""


def test_parse_hypothesis_statistics():
    s = suite.parse_statistics(STATS)
    assert set(s) == {"properties/conformance/test_a.py::test_one",
                      "properties/conformance/test_a.py::test_two[ddim]"}
    one = s["properties/conformance/test_a.py::test_one"]
    assert (one["passing"], one["invalid"], one["failing"]) == (15, 4, 0)
    assert one["seconds"] == pytest.approx(1.0)
    assert s["properties/conformance/test_a.py::test_two[ddim]"]["passing"] == 40
    assert suite.parse_summary(STATS) == ("2 passed, 1 skipped", 3.51)


def test_suite_speed_on_a_tiny_hypothesis_suite(tmp_path, monkeypatch):
    d = tmp_path / "properties" / "conformance"
    d.mkdir(parents=True)
    (d / "test_tiny.py").write_text(
        "from hypothesis import given, strategies as st\n"
        "@given(st.integers())\n"
        "def test_int(x):\n    assert x == x\n")
    monkeypatch.setattr(suite, "REPO", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not suite.has_conformance_tests(empty)
    r = suite.run(("dev",))
    assert r["available"], r
    stats = r["runs"][0]["stats"]
    assert len(stats) == 1 and next(iter(stats.values()))["passing"] > 0
    assert r["examples_per_second"] > 0


def test_suite_degrades_without_tests(monkeypatch, tmp_path):
    monkeypatch.setattr(suite, "REPO", tmp_path)
    r = suite.run(("dev",))
    assert not r["available"] and "no conformance tests" in r["message"]


def test_impl_accuracy_float32_step_is_near_roundoff_and_half_is_worse():
    from benchmarks import impl_accuracy as ia

    # DDIM η = 0 on the plain SD schedule: float32 inputs should give a few float32 units of
    # roundoff relative to the terms (coefficients are float32-rounded: < 64 u is generous for the
    # ~10 roundings of the step and of ᾱ), float16 at least 100× more.
    f32 = ia.step_errors("ddim_eta0", False, "float32", 10, shape=(1, 2, 4, 4))
    f16 = ia.step_errors("ddim_eta0", False, "float16", 10, shape=(1, 2, 4, 4))
    assert np.all(np.isfinite(f32.err)) and f32.err.max() < 64 * 2.0 ** -24
    assert f16.err.max() > 100 * f32.err.max()


def test_impl_accuracy_schedule_errors_shape_and_zero_at_t0():
    from benchmarks import impl_accuracy as ia

    e = ia.schedule_errors("vp", True)
    assert e["alphas_cumprod"].shape == (1000,)
    assert e["alphas_cumprod"][-1] == 0.0  # ᾱ_T = 0 exactly in both
    assert e["alphas_cumprod"].max() < 1e-3


def test_gpu_check_runs_on_cpu_and_writes_a_report(tmp_path):
    out = tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--shape", "1,2,4,4", "--steps", "1,4", "--dtypes", "float32,bfloat16",
                           "--suite-profile", "none", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "device: cpu" in text and "diffusers" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "sampler" not in ln]
    assert len(rows) == 2 * 5 * 2  # dtypes × samplers × step counts
    # DDPM η-free, float32, S = 4: finite, and its error is a small multiple of u
    row = next(r for r in rows if r.startswith("| ddpm | float32 | 4 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "yes" and cells[4] == "yes" and float(cells[6]) < 64


def test_gpu_check_runs_the_suite_per_dtype(tmp_path):
    # part 1: the conformance suite's finiteness/equivalence properties in float16, one row and
    # that dtype's full matrix beside the report
    out = tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--shape", "1,2,2,2", "--steps", "1", "--dtypes", "float16", "--samplers", "ddim_eta0",
                           "--suite-profile", "dev", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = out.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| float16 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    tests, passed, deviations, skipped, failed = (int(c) for c in cells[1:6])
    assert failed == 0 and tests == passed + deviations + skipped and passed > 0
    matrix = (tmp_path / "gpu_suite_float16.md").read_text()
    assert "dtype float16, device cpu" in matrix and "| ddim |" in matrix


def test_gpu_check_rejects_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--dtypes", "float8", "--out", str(tmp_path / "x.md")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "float8" in proc.stderr


def test_runner_prints_headline_lines(tmp_path):
    # the runner's plumbing, without its slow parts: every headline is a `name: value` line
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--skip",
                           "impl,speed", "--out", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if HEADLINE_RE.match(ln)]
    names = [HEADLINE_RE.match(ln).group(1) for ln in lines]
    assert names == ["oracle_worst_ulp", "suite_examples_per_second"]
    assert (tmp_path / "summary_quick.md").exists()
