"""The guard around an implementation: a hang becomes a failure of its example, a broken contract
is an error naming the method, the implementation's deprecation notices stay inside its calls, and
what the installed torch cannot provide is a usage error before any test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from properties import guard
from properties.adapters.diffusers import DiffusersImplementation
from properties.contract import SamplerConfig
from properties.plugin import load_implementation


class _Sampler:
    state = "vp"

    def __init__(self, step):
        self.timesteps = np.array([1.0, 0.0])
        self.alphas_cumprod = np.array([0.9, 0.5])
        self.sigmas = None
        self._step = step

    def model_input(self, i, x):
        return x

    def step(self, i, x, out, seed, pv=None):
        return self._step(x)


class _Impl:
    unit_roundoff = 2.0**-24

    def __init__(self, step):
        self._s = step

    def build(self, config):
        return _Sampler(self._s)

    def guidance_rescale(self, a, b, phi):
        return a

    def quantize(self, x):
        return np.asarray(x, np.float64)


def test_a_hang_fails_within_the_time_limit_and_the_sampler_is_not_run_again():
    def hang(x):
        while True:
            time.sleep(0.01)

    g = guard.Guarded(_Impl(hang), timeout=0.3)
    smp = g.build(SamplerConfig("hangs"))
    t0 = time.perf_counter()
    with pytest.raises(guard.ImplementationTimeout, match="time limit of 0.3 s"):
        smp.step(0, np.zeros(3), np.zeros(3), 0)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(guard.ImplementationTimeout, match="not run"):
        g.build(SamplerConfig("hangs"))
    assert g.build(SamplerConfig("other")) is not None  # other samplers still run


@pytest.mark.parametrize("result, match", [((np.zeros(3),), r"must return \(x_next, z\)"),
                                           ((np.zeros(4), np.zeros(3)), "x_next of shape"),
                                           (([0.0] * 3, np.zeros(3)), "NumPy array")])
def test_a_wrong_return_is_a_contract_error_naming_the_method(result, match):
    smp = guard.Guarded(_Impl(lambda x: result)).build(SamplerConfig("x"))
    with pytest.raises(guard.ContractError, match=match) as info:
        smp.step(0, np.zeros(3), np.zeros(3), 0)
    assert "step(i=0)" in str(info.value)


def test_a_sampler_without_timesteps_is_a_contract_error():
    impl = _Impl(lambda x: (x, x))
    impl.build = lambda c: type("S", (), {"step": lambda *a: None, "model_input": lambda *a: None,
                                          "timesteps": [1, 0]})()
    with pytest.raises(guard.ContractError, match="timesteps is list"):
        guard.Guarded(impl).build(SamplerConfig("x"))


def test_deprecation_notices_are_captured_other_warnings_pass():
    def noisy(x):
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        warnings.warn("ε at SNR 0", UserWarning, stacklevel=1)
        return x, x

    smp = guard.Guarded(_Impl(noisy)).build(SamplerConfig("x"))
    before = sum(guard.WARNINGS.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smp.step(0, np.zeros(3), np.zeros(3), 0)
    assert [w.category for w in caught] == [UserWarning]
    assert sum(guard.WARNINGS.values()) == before + 1


def test_a_missing_contract_attribute_is_one_usage_error_naming_it():
    class NoQuantize:
        unit_roundoff = 2.0**-24

        def build(self, c):
            pass

        def guidance_rescale(self, *a):
            pass

    with pytest.raises(pytest.UsageError, match="lacks quantize"):
        load_implementation(NoQuantize())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_a_device_torch_cannot_provide_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="cannot compute in float32 on device 'cuda'"):
        load_implementation(DiffusersImplementation, device="cuda")
    with pytest.raises(pytest.UsageError, match="not a torch dtype"):
        load_implementation(DiffusersImplementation, dtype="float8")


def test_a_hanging_implementation_gives_a_finished_report(tmp_path):
    (tmp_path / "zsnr_hang_adapter.py").write_text(
        "import time\nfrom diffusers import DDIMScheduler\n"
        "from properties.adapters.diffusers import DiffusersImplementation\n"
        "class Hangs(DDIMScheduler):\n    def step(self, *a, **k):\n        while True:\n            time.sleep(0.01)\n"
        "impl = DiffusersImplementation(ddim=Hangs)\n")
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "properties", "--impl", "zsnr_hang_adapter:impl", "--impl-timeout",
                           "1", "-k", "step_ddim or loop_ddim", "--json", str(out)], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    records = {r["node_id"].split("::")[-1]: r for r in json.loads(out.read_text())}
    assert records["test_step_ddim"]["outcome"] == "failed"
    assert "time limit" in records["test_step_ddim"]["error"] or "time limit" in records["test_loop_ddim"]["error"]
    assert "SamplerConfig(sampler='ddim'" in proc.stdout  # the configuration it hung on
