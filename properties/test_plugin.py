"""The plug-in in someone else's project: installed, it changes nothing there (no header, no
Hypothesis profile, no global setting); zsnr's own tests still run under zsnr's profile, also
under pytest-xdist; the downstream selection runs only conformance properties; and zsnr's draws do
not depend on local source code outside zsnr."""

from __future__ import annotations

import importlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties import profiles

pytest_plugins = ["pytester"]

FOREIGN_CONFTEST = """
from hypothesis import settings
settings.register_profile("foreign", max_examples=500, derandomize=False, database=None)
settings.load_profile("foreign")
"""

FOREIGN_TEST = """
import os
from hypothesis import given, settings, strategies as st

CALLS = []

@given(st.integers())
def check_settings(n):
    CALLS.append(n)
    s = settings()
    assert s.max_examples == 500, s
    assert s.derandomize is False, s

def test_foreign_settings_and_examples():
    check_settings()
    assert len(CALLS) == 500, len(CALLS)
"""


def _xdist() -> bool:
    return importlib.util.find_spec("xdist") is not None


@pytest.mark.parametrize("workers", [0, 2])
def test_a_foreign_project_keeps_its_own_hypothesis_settings(pytester, monkeypatch, workers):
    if workers and not _xdist():
        pytest.skip("pytest-xdist is not installed")
    monkeypatch.setenv("CI", "1")  # zsnr's ci profile would be chosen for zsnr's tests
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(test_foreign=FOREIGN_TEST)
    args = ["-p", "no:cacheprovider", "-p", "no:randomly"] + (["-n", str(workers)] if workers else [])
    result = pytester.runpytest_subprocess(*args, "--impl-timeout", "30")  # zsnr's option: the plug-in is loaded
    out = result.stdout.str()
    ours = [ln for ln in out.splitlines() if "zsnr" in ln and not ln.startswith("plugins:")]
    assert not ours, out  # no header, no line of zsnr's
    assert "zsnr-" in next(ln for ln in out.splitlines() if ln.startswith("plugins:"))  # but loaded
    result.assert_outcomes(passed=1)


def test_zsnr_tests_run_under_zsnr_profile_beside_foreign_tests(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(test_foreign=FOREIGN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_foreign.py", "--pyargs",
                                           "properties.conformance.test_conformance", "-k",
                                           "foreign or zero_snr_ddim", "--hypothesis-show-statistics")
    result.assert_outcomes(passed=2)
    stats = result.stdout.str().split("test_zero_snr_ddim", 1)[1]
    assert "40 passing examples" in stats.split("::", 1)[0], stats[:800]  # zsnr-ci: 40


def test_the_downstream_selection_is_the_conformance_suite_only(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pyargs", "properties.conformance",
                                           "--collect-only", "-q")
    ids = [ln for ln in result.stdout.lines if "::" in ln]
    assert ids, result.stdout.str()
    files = {i.split("::")[0].replace("\\", "/").rsplit("/", 1)[-1] for i in ids}
    assert files == {"test_conformance.py", "test_generic.py", "test_deviations.py", "test_training.py"}, files
    props = {i.split("::")[1].split("[")[0] for i in ids}
    assert {"test_step_ddim", "test_generic_finite_at_T", "test_declared_deviation_reproduces"} <= props
    assert not any("oracle" in i or "test_harness" in i for i in ids)


def test_zsnr_profile_names_are_namespaced_and_none_is_loaded():
    for short in profiles.PROFILES:
        assert settings.get_profile(f"zsnr-{short}") is not None
        assert profiles.canonical(short) == f"zsnr-{short}"
    assert profiles.canonical("foreign") is None
    assert not settings.get_current_profile_name().startswith("zsnr-")


def _draws(n=300):
    out = []

    @settings(derandomize=True, max_examples=n, database=None)
    @given(st.integers(0, 10**12), st.floats(0, 1e12))
    def t(i, f):
        out.append((i, f))

    t()
    return out


def test_draws_do_not_depend_on_local_source_constants(tmp_path, monkeypatch):
    """Hypothesis mines literal constants from local modules into draws (see
    profiles.no_local_constants): importing a local module full of new constants must not change
    zsnr's draws. Without the neutralisation the same import does change them."""
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants"):
        pytest.skip("this Hypothesis mines no local constants")
    # this test is zsnr's own, so it runs neutralised: restore Hypothesis's own function for it
    monkeypatch.setattr(providers, "_get_local_constants", profiles.HYPOTHESIS_LOCAL_CONSTANTS)
    with profiles.no_local_constants():
        before = _draws()
    (tmp_path / "zsnr_probe_adapter.py").write_text(
        "CONSTANTS = [" + ", ".join(str(123456789 + 7919 * k) for k in range(200)) + "]\n"
        "FLOATS = [" + ", ".join(f"{98765.4321 + 17.25 * k!r}" for k in range(200)) + "]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain_before = _draws()
    importlib.import_module("zsnr_probe_adapter")
    try:
        with profiles.no_local_constants():
            after = _draws()
        plain_after = _draws()
    finally:
        sys.modules.pop("zsnr_probe_adapter", None)
    assert after == before
    assert plain_after != plain_before  # the mechanism is real: unneutralised draws move


def test_xdist_gives_the_same_verdicts_and_one_merged_report(tmp_path):
    if not _xdist():
        pytest.skip("pytest-xdist is not installed")
    import json
    import subprocess

    def run(*extra):
        out = tmp_path / f"m{len(extra)}.json"
        proc = subprocess.run([sys.executable, "-m", "properties", "--quiet", "-k", "zero_snr",
                               "--json", str(out), *extra], check=False, capture_output=True,
                              text=True, timeout=600)
        assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
        return {r["node_id"]: (r["outcome"], r.get("worst_error"), sorted(r.get("deviations", {})))
                for r in json.loads(out.read_text())}, proc.stdout

    serial, _ = run()
    parallel, text = run("-n", "2")
    assert len(serial) > 10 and parallel == serial
    assert text.count("\nsampler ") == 1  # one merged matrix
