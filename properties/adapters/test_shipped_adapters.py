"""The shipped k-diffusion and skrample adapters pass the conformance suite with no undeclared FAIL
and no Unsatisfiable, and every declared deviation still reproduces -- each run in its own venv
(k-diffusion needs torch 2.14.1 + torchvision, skrample Python >= 3.12), which ``.ci/adapter-venvs``
creates and ``.ci/run`` points these tests at (ZSNR_KDIFFUSION_PYTHON, ZSNR_SKRAMPLE_PYTHON).

Outside CI a missing venv skips with the reason; with ZSNR_REQUIRE_ADAPTER_VENVS=1 (set by
``.ci/run``) it fails, unless ``.ci/adapter-venvs`` found no interpreter of the Python version the
library needs (ZSNR_KDIFFUSION_SKIP / ZSNR_SKRAMPLE_SKIP give the reason; the test skips).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ADAPTERS = {
    "kdiffusion": ("ZSNR_KDIFFUSION_PYTHON", "properties.adapters.kdiffusion:impl",
                   "properties.adapters.kdiffusion_repro"),
    "skrample": ("ZSNR_SKRAMPLE_PYTHON", "properties.adapters.skrample:impl", "properties.adapters.skrample_repro"),
}


def _python(name: str) -> str:
    var = ADAPTERS[name][0]
    skip = os.environ.get(var.replace("_PYTHON", "_SKIP"))
    if skip:  # .ci/adapter-venvs found no interpreter of the version this library needs
        pytest.skip(f"{name}: {skip}")
    path = os.environ.get(var)
    if path and Path(path).is_file():
        return path
    why = (f"{var} is not set" if not path else f"{var}={path} does not exist") + \
        f": the {name} venv was not created (bash .ci/adapter-venvs prints its export line)"
    if os.environ.get("ZSNR_REQUIRE_ADAPTER_VENVS") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZSNR_IMPL", "PYTEST_"))}
    env["PYTHONPATH"] = str(ROOT)  # the suite from this checkout, not an installed copy
    return env


def _run(python: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


#: what the suite runs for an adapter: the samplers it serves and the declared deviations (for
#: k-diffusion not starts_at_T / finite_at_T, which draw trailing spacing only, where it has
#: linspace: they only skip, after ~15 s of refused draws)
SELECT = {"kdiffusion": "(euler and not starts_at_T and not finite_at_T) or deviation",
          "skrample": "euler or deviation"}


def _start(name: str, out: Path) -> subprocess.Popen:
    cmd = [_python(name), "-W", "ignore::DeprecationWarning", "-m", "properties", "--impl", ADAPTERS[name][1],
           "--hypothesis-profile", "ci", "--quiet", "-k", SELECT[name], "--json", str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


#: known gaps of the suite itself (not of the library), each stated in the README's "Known
#: limitations": the test fails on any other FAIL, and also once a listed one no longer fails
#: (strict), so that it is removed here and there
KNOWN_GAPS: dict[str, dict[str, str]] = {}


def _check(name: str, code: int, text: str, out: Path) -> None:
    report = f"{name}:\n" + text[-8000:]
    assert out.is_file(), report
    records = json.loads(out.read_text())
    failed = {r["node_id"] for r in records if r["outcome"] == "failed"}
    known = set(KNOWN_GAPS.get(name, {}))
    assert failed <= known and (code == 0 or failed), f"{name}: undeclared FAILs: {sorted(failed - known)}\n{report}"
    assert known <= failed, f"{name}: known gaps no longer fail, remove them from KNOWN_GAPS: {sorted(known - failed)}"
    assert "Unsatisfiable" not in text, report
    ran = [r for r in records if r["outcome"] == "passed" and r.get("property") != "declared_deviation"]
    assert len(ran) >= 10, f"{name}: only {len(ran)} conformance tests ran (the rest skipped):\n{report}"
    reproduced = [r for r in records if r.get("property") == "declared_deviation"]
    assert reproduced and all(r["outcome"] == "passed" for r in reproduced), report


def test_shipped_adapters_pass_the_suite(tmp_path):
    """Both adapters' suites at once (one core each, ~1 min each with the ci profile on an idle
    machine; one test, so that pytest-xdist does not start them twice)."""
    names = []
    for name in sorted(ADAPTERS):
        try:
            _python(name)
            names.append(name)
        except pytest.skip.Exception as exc:
            skipped = str(exc)
    if not names:
        pytest.skip(skipped)
    runs = {name: (_start(name, tmp_path / f"{name}.json"), tmp_path / f"{name}.json") for name in names}
    for name, (proc, out) in runs.items():
        try:
            text, _ = proc.communicate(timeout=1200)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
        _check(name, proc.returncode, text, out)
    if len(names) < len(ADAPTERS):
        pytest.skip(f"ran {', '.join(names)}; {skipped}")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_shipped_adapter_reproductions(name):
    """``python -m properties.adapters.<name>_repro``: every standalone reproduction still shows
    the deviation (exit code 0)."""
    python = _python(name)
    run = _run(python, "-W", "ignore::DeprecationWarning", "-m", ADAPTERS[name][2], timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "DOES NOT REPRODUCE" not in run.stdout, run.stdout
