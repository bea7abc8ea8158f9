"""What a failure report says, built from the test's own record (never parsed from Hypothesis's
output, whose wording differs between versions): the property, the sampler, the minimal
configuration and inputs (the last call of the check: Hypothesis replays the shrunk example last),
the worst point, and a snippet that reproduces the failure standalone."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np


def _control(exc) -> bool:
    """Exceptions that are not failures: Hypothesis's rejection, pytest's skip."""
    from hypothesis.errors import UnsatisfiedAssumption

    return isinstance(exc, UnsatisfiedAssumption) or type(exc).__module__.startswith("_pytest")


def message(exc) -> str:
    """'Type: first line' of an exception (the last of a group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[-1]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}" + (" ..." if "\n" in text else "")


@contextmanager
def recording(record, check, cfg, args, target: str = "impl"):
    """Note the call ``check(impl[, cfg], *args)`` in the record; if it fails, keep it with its
    message and worst point as the record's ``failure`` (the last failing call: after shrinking,
    Hypothesis replays the minimal example last)."""
    record.last_call, record.worst_point = (check, target, cfg, args), None
    try:
        yield
    except BaseException as exc:
        if not _control(exc):
            record.failure = {"call": record.last_call, "error": message(exc), "worst_point": record.worst_point}
        raise


def run_recorded(check, impl, cfg, prop, record, *args, target: str = "impl"):
    """checks.run_check, recorded (see :func:`recording`)."""
    from .conformance import checks

    with recording(record, check, cfg, args, target):
        checks.run_check(check, impl, cfg, prop, record, *args)


def _literal(value) -> str:
    """Python source that evaluates (with numpy as np) to ``value``."""
    if isinstance(value, np.ndarray):
        flat = [float(v) for v in value.ravel()]
        if flat and all(v == flat[0] for v in flat):
            return f"np.full({value.shape}, {flat[0]!r})"
        return f"np.array({flat!r}).reshape{value.shape}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def encode_call(check, target: str, cfg, args) -> dict:
    """A serialisable description of one call ``check(impl, cfg, *args)`` (for user_properties,
    which pytest-xdist sends between processes)."""
    return {"check": check.__name__, "module": check.__module__, "target": target,
            "config": None if cfg is None else repr(cfg),
            "args": [_literal(a) for a in args]}


def snippet(call: dict, impl_spec: str, dtype: str | None, device: str | None, error: str = "") -> str:
    """Copy-pasteable Python that reruns the failing check on the same configuration and inputs."""
    opts = "".join(f", {k}={v!r}" for k, v in (("dtype", dtype), ("device", device)) if v)
    impl = f"Guarded(load_implementation({impl_spec!r}{opts}))"
    if call["target"] != "impl":
        impl = f"checks.GenericImplementation({impl}, {call['target']!r})"
    args = "".join(f", {a}" for a in call["args"])
    module = call.get("module", "properties.conformance.checks")
    lines = ["import numpy as np", "from properties.contract import SamplerConfig",
             "from properties.conformance import checks", f"from {module} import {call['check']}",
             "from properties.guard import Guarded",
             "from properties.plugin import load_implementation",
             f"impl = {impl}"]
    if call["config"] is not None:
        lines.append(f"cfg = {call['config']}")
        args = ", cfg" + args
    raises = error.split(":", 1)[0] or "AssertionError"
    return "\n".join(lines + [f"{call['check']}(impl{args})  # raises {raises}: the failure"])


def worst_point_line(point: dict | None) -> str:
    if not point:
        return ""
    where = f"worst point {point['what']} at index {point['index']}: got {point['actual']:.17g}, " \
        f"want {point['expected']:.17g}"
    if point.get("nonfinite"):  # NaN/inf against another value: no |diff| to give
        return where + " (non-finite values must match exactly)"
    return where + f", |diff| = {point['diff']:.3e}, tol = {point['tol']:.3e}, |diff|/tol = {point['ratio']:.3g}"


def summary(failure: dict) -> str:
    """The short failure text: what failed, where, on what, and how to reproduce it."""
    lines = [f"zsnr: property {failure.get('property')} of sampler {failure.get('sampler')} FAILED",
             f"  {failure.get('error', '')}"]
    call = failure.get("call")
    if call:
        if call["config"] is not None:
            lines.append(f"  minimal configuration: {call['config']}")
        if call["args"]:
            lines.append(f"  inputs ({call['check']} after the configuration): " + ", ".join(
                a if len(a) <= 80 else a[:77] + "..." for a in call["args"]))
    if failure.get("worst_point"):
        lines.append("  " + worst_point_line(failure["worst_point"]))
    if failure.get("snippet"):
        lines += ["  reproduce:", *("    " + ln for ln in failure["snippet"].splitlines())]
    lines.append("  (full traceback: --tb=long)")
    return "\n".join(lines)
