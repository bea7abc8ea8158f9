"""``python -m reference``: terminal SNR before/after Algorithm 1 and Table 2's timesteps."""

import re
import subprocess
import sys

import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "reference", *args], check=False, capture_output=True, text=True, timeout=60)


def test_default_run_prints_snr_and_table2():
    r = _run()
    assert r.returncode == 0, r.stderr
    rows = {m.group(1).strip(): float(m.group(2)) for m in
            re.finditer(r"^(original|rescaled \(Algorithm 1\))\s+(\S+)", r.stdout, re.MULTILINE)}
    assert float(f"{rows['original']:.3e}") == 0.004682  # paper Table 1, SD
    assert rows["rescaled (Algorithm 1)"] == 0.0
    one_based = {m.group(1): [int(v) for v in m.group(2).split()] for m in
                 re.finditer(r"^(\w+)\s+0-based.*\n\s+1-based \[([^\]]*)\]", r.stdout, re.MULTILINE)}
    assert sorted(one_based["leading"]) == list(range(1, 1000, 100))
    assert sorted(one_based["linspace"]) == [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000]
    assert sorted(one_based["trailing"]) == list(range(100, 1001, 100))


@pytest.mark.parametrize("args,text", [(["-S", "0"], "num_inference_steps"),
                                       (["-S", "2000"], "num_inference_steps"),
                                       (["-T", "0"], "num_train_timesteps"),
                                       (["nope"], "invalid choice"),
                                       (["linear", "--beta-start", "-1"], "beta_start"),
                                       (["-S", "ten"], "invalid int value")])
def test_bad_argument_exits_2(args, text):
    r = _run(*args)
    assert r.returncode == 2
    assert text in r.stderr and "Traceback" not in r.stderr, r.stderr
