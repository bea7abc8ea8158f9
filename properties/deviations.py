"""Known deviations of an implementation from the oracle, declared narrowly.

A :class:`Deviation` names the properties and samplers it affects, a predicate that picks out
exactly the configurations where it shows, the reason, an upstream link, and one configuration
that reproduces it. Inside a property test, a configuration the predicate matches is still run:
if the check fails, the failure is recorded as this deviation (not a test failure); every other
configuration is tested as usual. Separately, each deviation's example is run as a strict
expected failure (``properties/conformance/test_deviations.py``), so an upstream fix is noticed.
An implementation lists its deviations in an attribute ``deviations`` (an "expected failures file").
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .contract import SamplerConfig

PROPERTIES = ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop",
              "guidance", "generic")


@dataclass(frozen=True)
class Deviation:
    id: str
    properties: tuple[str, ...]
    samplers: tuple[str, ...]
    applies: Callable[[SamplerConfig], bool]
    reason: str
    link: str
    example: SamplerConfig | None = None
    example_args: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        unknown = set(self.properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"deviation {self.id}: unknown properties {sorted(unknown)}; allowed {PROPERTIES}")


def matching(impl, cfg: SamplerConfig | None, prop: str, sampler: str | None = None) -> list[Deviation]:
    sampler = sampler or (cfg.sampler if cfg is not None else None)
    return [d for d in getattr(impl, "deviations", ()) if prop in d.properties and sampler in d.samplers
            and d.applies(cfg)]


@contextmanager
def tolerated(impl, cfg: SamplerConfig | None, prop: str, record=None, sampler: str | None = None):
    """Run a property check; if it fails where a declared deviation applies, record it instead."""
    devs = matching(impl, cfg, prop, sampler)
    if not devs:
        yield
        return
    worst = record.worst if record is not None else None
    try:
        yield
    except (AssertionError, FloatingPointError, ArithmeticError) as exc:
        if record is not None:
            record.worst = worst  # a tolerated failure's error is the deviation's, not a pass's
            for d in devs:
                record.deviation(d, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
