"""Each declared deviation of the implementation, run on its own example: it must still reproduce
its declared *values* (those of its model), not just fail.

A deviation whose example matches the oracle fails here ("fixed": the declaration should be removed
or narrowed so the configurations it covered are tested again), unless the implementation inherits
it (``impl.inherited_deviations``: a subclass of a diffusers class carries diffusers' known issues),
in which case it is recorded as fixed by the subclass. An example that matches neither the oracle
nor the model fails as well: the implementation no longer does what the declaration says.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from properties.compare import Record
from properties.conformance import checks, training
from properties.contract import SAMPLERS, SamplerConfig
from properties.deviations import FAILURES, confirmed_in, declared, matching
from properties.expected import ORACLE
from properties.plugin import implementation

SHAPE = (2, 3, 2, 2)


def _deviations(config):
    impl = implementation(config)
    return [d for d in declared(impl) if d.example is not None or "guidance" in d.properties]


def pytest_generate_tests(metafunc):
    if "deviation_id" in metafunc.fixturenames:
        ids = [d.id for d in _deviations(metafunc.config)]
        metafunc.parametrize("deviation_id", ids or ["(none declared)"])


def _inputs(cfg: SamplerConfig, shape=SHAPE):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    out = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    vt = cfg.option("variance_type") or ""
    pv = np.full(shape, 0.5) if vt.startswith("learned") else None
    return x, out, pv


def _runs(impl, dev):
    """The deviation's properties on its example, each as run(expect, record)."""
    if "guidance" in dev.properties:
        x_cfg = np.stack([np.full((4, 2, 2), 0.5), np.arange(16.0).reshape(4, 2, 2)])
        x_pos = np.stack([np.arange(16.0).reshape(4, 2, 2) / 4, np.arange(16.0).reshape(4, 2, 2)[::-1] / 2])
        return {"guidance": lambda e, r: checks.check_guidance(impl, x_cfg, x_pos, 0.7, record=r, expect=e)}
    cfg = dev.example
    target = impl if cfg.sampler in SAMPLERS else checks.GenericImplementation(impl, cfg.sampler)
    # an example may fix the sample's shape (rank), the (VP-scaled) state and the model output
    shape = tuple(dev.example_args.get("shape", SHAPE))
    x, out, pv = _inputs(cfg, shape)
    x = np.full(shape, dev.example_args["x"]) if "x" in dev.example_args else x
    out = np.full(shape, dev.example_args["model_output"]) if "model_output" in dev.example_args else out
    i = dev.example_args.get("step_index", 0)
    return {
        "schedule": lambda e, r: checks.check_schedule(target, cfg, record=r, expect=e),
        "step": lambda e, r: checks.check_step(target, cfg, i, x, out, 0, pv, record=r, expect=e),
        "chaining": lambda e, r: checks.check_chaining(target, cfg, record=r, expect=e),
        "zero_snr": lambda e, r: checks.check_zero_snr(target, cfg, record=r, expect=e),
        "starts_at_T": lambda e, r: checks.check_starts_at_T(target, cfg, record=r, expect=e),
        "finite_at_T": lambda e, r: checks.check_finite_at_T(target, cfg, x, out, 0, pv, record=r, expect=e),
        "loop": lambda e, r: checks.check_loop(target, cfg, np.full(shape, 0.2), 0.25, x, 0, record=r, expect=e),
        "add_noise_in_loop": lambda e, r: training.check_add_noise_in_loop(
            target, cfg, x, out, dev.example_args.get("begin", 0), dev.example_args.get("steps_taken", 0),
            record=r, expect=e),
        "velocity": lambda e, r: training.check_velocity(target, cfg, x, out, np.array([0, 1]), record=r, expect=e),
        "min_snr": lambda e, r: training.check_min_snr_weights(
            target, cfg, np.array([cfg.num_train_timesteps - 1, 0]), 5.0, record=r, expect=e),
    }


def _reproduce(impl, dev):
    """Each declared property on the deviation's example, against the oracle and against the
    declared model (with the models of the other deviations that apply there too):
    {property: ("deviation", worst |impl - model|/tol, oracle's message) | ("oracle", ...) |
    ("neither", message) | ("refused", ...)}."""
    sampler = "guidance-degenerate" if "guidance" in dev.properties else dev.example.sampler
    cfg = None if "guidance" in dev.properties else dev.example
    outcomes = {}
    for prop, run in _runs(impl, dev).items():
        if prop not in dev.properties:
            continue
        if prop == "finite_at_T" and not (cfg.rescale and cfg.spacing == "trailing"):
            continue  # the property is about t = T at zero SNR (as test_conformance draws it)
        others = [d for d in matching(impl, cfg, prop, sampler)
                  if d.id != dev.id and not d.nonfinite_only and not d.crash]
        deviant = ORACLE.with_models([dev] + others)
        if dev.nonfinite_only:
            deviant = deviant.excusing_nonfinite()
        try:
            try:
                run(ORACLE, Record())
                oracle_msg = None
            except dev.raises as exc:  # a declared crash: it must still raise, with the declared type
                outcomes[prop] = ("deviation", 0.0, f"raised {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            except (*FAILURES, ValueError) as exc:
                if isinstance(exc, ref.EpsilonAtZeroSNR):
                    raise
                oracle_msg = (str(exc) or type(exc).__name__).splitlines()[0]
            rec = Record()
            try:
                run(deviant, rec)
            except (*FAILURES, ValueError) as exc:
                if isinstance(exc, ref.EpsilonAtZeroSNR):
                    raise
                model_msg = (str(exc) or type(exc).__name__).splitlines()[0]
                outcomes[prop] = ("oracle", 0.0, model_msg) if oracle_msg is None else \
                    ("neither", 0.0, f"vs the oracle: {oracle_msg}; vs the model: {model_msg}")
                continue
            outcomes[prop] = ("oracle", rec.worst, "") if oracle_msg is None else ("deviation", rec.worst, oracle_msg)
        except ref.EpsilonAtZeroSNR:  # the oracle refuses the example for this property (ε at SNR 0)
            outcomes[prop] = ("refused", 0.0, "")
    return outcomes


@pytest.mark.zsnr_property("declared_deviation", "-")
def test_declared_deviation_reproduces(impl, zsnr_record, deviation_id):
    """The deviation's example shows the declared model's values (within the derived tolerance) in
    at least one of its properties, where the oracle's fail; no property matches neither. An
    example that matches the oracle everywhere is "fixed": a failure (remove the declaration),
    or, for a deviation the implementation inherits from a class it subclasses, recorded as fixed
    by the subclass."""
    devs = {d.id: d for d in declared(impl)}
    if deviation_id not in devs:
        pytest.skip("the implementation declares no deviations")
    dev = devs[deviation_id]
    confirmed = confirmed_in(impl, dev)
    if confirmed is not None and getattr(impl, "dtype", confirmed[0]) not in confirmed:
        if dev.dtypes is not None:
            pytest.skip(f"{dev.id} shows only in {', '.join(dev.dtypes)}; this run is {impl.dtype}")
        pytest.skip(f"{dev.id} was confirmed in {', '.join(confirmed)}; in {impl.dtype} the tolerances "
                    "differ and its example need not reproduce")
    if dev.example is not None:
        assert dev.in_region(dev.example), f"{dev.id}: its example {dev.example} is outside its own region"
    outcomes = _reproduce(impl, dev)
    neither = {p: o[2] for p, o in outcomes.items() if o[0] == "neither"}
    assert not neither, (f"declared deviation {dev.id!r} does not reproduce its declared values on its example "
                         f"{dev.example}: " + "; ".join(f"{p}: {m}" for p, m in neither.items()))
    shown = {p: o for p, o in outcomes.items() if o[0] == "deviation"}
    if not shown:
        message = f"matches the oracle on its example {dev.example}, not the model ({dev.summary})"
        if dev.id in getattr(impl, "inherited_deviations", frozenset()):
            zsnr_record.fix(dev, f"fixed by the subclass: {message}")
            return
        raise AssertionError(f"declared deviation {dev.id!r} is fixed: it {message}. Remove or narrow it "
                             f"({dev.link}).")
    _prop, (_, _worst, _msg) = max(shown.items(), key=lambda kv: kv[1][1])
    for p, (_, w, m) in shown.items():
        zsnr_record.deviation(dev, f"{p}: {m}", w)
