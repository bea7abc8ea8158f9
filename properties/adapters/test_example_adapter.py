"""The worked adapter (properties/adapters/example.py) passes the DDIM properties: the suite is not
tied to diffusers, and a correct float32 implementation passes with the derived tolerances."""

import subprocess
import sys


def test_example_adapter_passes_the_ddim_properties():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "--pyargs",
         "properties.conformance", "--impl", "properties.adapters.example:impl", "-k", "ddim or deviation",
         "--hypothesis-profile=ci"],
        capture_output=True, text=True, timeout=600, check=False)
    tail = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # schedule, step, chaining, zero_snr, starts_at_T, finite_at_T, loop, and its declared deviation
    assert "8 passed" in tail, tail
