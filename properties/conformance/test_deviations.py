"""Each declared deviation of the implementation, run on its own example: it must still reproduce.

A deviation that no longer reproduces fails here ("strict expected failure"): the upstream bug was
fixed, and the declaration should be removed or narrowed so the configurations it covered are
tested again.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from properties.conformance import checks, training
from properties.contract import SAMPLERS, SamplerConfig
from properties.deviations import confirmed_in
from properties.plugin import implementation

SHAPE = (2, 3, 2, 2)


def _deviations(config):
    impl = implementation(config)
    return [d for d in getattr(impl, "deviations", ()) if d.example is not None or "guidance" in d.properties]


def pytest_generate_tests(metafunc):
    if "deviation_id" in metafunc.fixturenames:
        ids = [d.id for d in _deviations(metafunc.config)]
        metafunc.parametrize("deviation_id", ids or ["(none declared)"])


def _inputs(cfg: SamplerConfig):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32).astype(np.float64)
    out = rng.standard_normal(SHAPE).astype(np.float32).astype(np.float64)
    vt = cfg.option("variance_type") or ""
    pv = np.full(SHAPE, 0.5) if vt.startswith("learned") else None
    return x, out, pv


def _reproduce(impl, dev):
    """The failures of the deviation's properties on its example (empty: it no longer reproduces)."""
    failures = []
    if "guidance" in dev.properties:
        x_cfg = np.stack([np.full((4, 2, 2), 0.5), np.arange(16.0).reshape(4, 2, 2)])
        x_pos = np.stack([np.arange(16.0).reshape(4, 2, 2) / 4, np.arange(16.0).reshape(4, 2, 2)[::-1] / 2])
        runs = {"guidance": lambda: checks.check_guidance(impl, x_cfg, x_pos, 0.7)}
    else:
        cfg = dev.example
        target = impl if cfg.sampler in SAMPLERS else checks.GenericImplementation(impl, cfg.sampler)
        x, out, pv = _inputs(cfg)
        # an example may fix the (VP-scaled) state and the model output, where its size matters
        x = np.full(SHAPE, dev.example_args["x"]) if "x" in dev.example_args else x
        out = np.full(SHAPE, dev.example_args["model_output"]) if "model_output" in dev.example_args else out
        i = dev.example_args.get("step_index", 0)
        runs = {
            "schedule": lambda: checks.check_schedule(target, cfg),
            "step": lambda: checks.check_step(target, cfg, i, x, out, 0, pv),
            "chaining": lambda: checks.check_chaining(target, cfg),
            "zero_snr": lambda: checks.check_zero_snr(target, cfg),
            "starts_at_T": lambda: checks.check_starts_at_T(target, cfg),
            "finite_at_T": lambda: checks.check_finite_at_T(target, cfg, x, out, 0, pv),
            "loop": lambda: checks.check_loop(target, cfg, np.full(SHAPE, 0.2), 0.25, x, 0),
            "velocity": lambda: training.check_velocity(target, cfg, x, out, np.array([0, 1])),
            "min_snr": lambda: training.check_min_snr_weights(target, cfg, np.array([cfg.num_train_timesteps - 1, 0]),
                                                              5.0),
        }
    for prop in dev.properties:
        try:
            runs[prop]()
        except (AssertionError, ArithmeticError) as exc:
            message = str(exc) or type(exc).__name__
            if dev.explains(message):  # a failure with another symptom is not this deviation
                failures.append((prop, message.splitlines()[0]))
        except ref.EpsilonAtZeroSNR:  # the oracle refuses the example for this property (ε at SNR 0)
            pass
    return failures


@pytest.mark.zsnr_property("declared_deviation", "-")
def test_declared_deviation_reproduces(impl, zsnr_record, deviation_id):
    """The deviation's example still fails at least one of the properties it declares, with its
    declared symptom."""
    devs = {d.id: d for d in getattr(impl, "deviations", ())}
    if deviation_id not in devs:
        pytest.skip("the implementation declares no deviations")
    dev = devs[deviation_id]
    confirmed = confirmed_in(impl, dev)
    if confirmed is not None and getattr(impl, "dtype", confirmed[0]) not in confirmed:
        if dev.dtypes is not None:
            pytest.skip(f"{dev.id} shows only in {', '.join(dev.dtypes)}; this run is {impl.dtype}")
        pytest.skip(f"{dev.id} was confirmed in {', '.join(confirmed)}; in {impl.dtype} the tolerances "
                    "differ and its example need not reproduce")
    failures = _reproduce(impl, dev)
    assert failures, (f"declared deviation {dev.id!r} no longer reproduces on its example "
                      f"{dev.example}: fixed upstream? Remove or narrow it ({dev.link}).")
    zsnr_record.deviation(dev, f"{failures[0][0]}: {failures[0][1]}")
