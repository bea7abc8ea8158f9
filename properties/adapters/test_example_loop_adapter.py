"""The worked loop-level adapter (properties/adapters/example_loop.py) passes the Euler and
Euler-ancestral properties, and its adapter part stays under 60 lines: a k-diffusion-style sampler
(``sample_euler(model, x, sigmas, ...)``) fits the loop-level contract in that much."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).with_name("example_loop.py")


def test_example_loop_adapter_passes_the_euler_properties():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "--pyargs",
         "properties.conformance", "--impl", "properties.adapters.example_loop:impl",
         "-k", "(euler and not velocity and not add_noise) or deviation", "--zsnr-profile=ci"],
        capture_output=True, text=True, timeout=600, check=False)
    tail = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # schedule, step, chaining, zero_snr, starts_at_T, finite_at_T, loop for each of the two samplers
    assert re.search(r"\b14 passed", tail), tail


def test_the_adapter_part_is_under_60_lines():
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# --- ADAPTER"))
    code = [ln for ln in lines[start:] if ln.strip()]
    assert len(code) < 60, f"{len(code)} non-blank lines from the ADAPTER marker"
