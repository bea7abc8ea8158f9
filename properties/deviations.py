"""Known deviations of an implementation from the oracle, declared narrowly.

A :class:`Deviation` names the properties and samplers it affects, a predicate that picks out
exactly the configurations where it shows, the reason, an upstream link, one configuration that
reproduces it, and optionally its symptom (a regular expression the failure message must match:
a NaN deviation excuses a non-finite result, not a result that is finite and wrong). Inside a
property test, a configuration the predicate matches is still run: if the check fails with the
deviation's symptom, the failure is recorded as this deviation (not a test failure); any other
failure, and every other configuration, is tested as usual. Separately, each deviation's example is run as a strict
expected failure (``properties/conformance/test_deviations.py``), so an upstream fix is noticed.
An implementation lists its deviations in an attribute ``deviations`` (an "expected failures file").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .contract import SamplerConfig

PROPERTIES = ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop",
              "guidance", "generic", "add_noise", "add_noise_in_loop", "velocity", "training_snr", "min_snr")


@dataclass(frozen=True)
class Deviation:
    id: str
    properties: tuple[str, ...]
    samplers: tuple[str, ...]
    applies: Callable[[SamplerConfig], bool]
    reason: str
    link: str
    example: SamplerConfig | None = None
    #: for the strict reproduction: ``step_index``, and optionally ``x`` (the VP-scaled state) and
    #: ``model_output`` as fill values where their size matters
    example_args: dict = field(default_factory=dict, hash=False, compare=False)
    #: a regular expression the failure message must match (re.search); None: any failure of a
    #: declared property in a matched configuration
    symptom: str | None = None
    #: the implementation dtypes it shows in (and was confirmed in); None: every dtype, confirmed
    #: in the implementation's ``deviations_dtype``
    dtypes: tuple[str, ...] | None = None

    def __post_init__(self):
        unknown = set(self.properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"deviation {self.id}: unknown properties {sorted(unknown)}; allowed {PROPERTIES}")
        if self.symptom is not None:
            try:
                re.compile(self.symptom)
            except re.error as exc:
                raise ValueError(f"deviation {self.id}: symptom {self.symptom!r} is not a regular "
                                 f"expression ({exc})") from None

    def explains(self, message: str) -> bool:
        """Whether a failure with this message is this deviation's symptom."""
        return self.symptom is None or re.search(self.symptom, message) is not None


#: the checks' wording for a NaN/inf result (see properties/conformance/checks.py)
NON_FINITE = r"non-finite|not finite"


def matching(impl, cfg: SamplerConfig | None, prop: str, sampler: str | None = None) -> list[Deviation]:
    sampler = sampler or (cfg.sampler if cfg is not None else None)
    dtype = getattr(impl, "dtype", None)
    return [d for d in getattr(impl, "deviations", ()) if prop in d.properties and sampler in d.samplers
            and (d.dtypes is None or dtype in d.dtypes) and d.applies(cfg)]


def confirmed_in(impl, dev: Deviation) -> tuple[str, ...] | None:
    """The dtypes a deviation's example must reproduce in (None: not stated by the implementation)."""
    if dev.dtypes is not None:
        return dev.dtypes
    dtype = getattr(impl, "deviations_dtype", None)
    return None if dtype is None else (dtype,)


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
        message = str(exc) or type(exc).__name__
        explained = [d for d in devs if d.explains(message)]
        if not explained:
            raise
        if record is not None:
            record.worst = worst  # a tolerated failure's error is the deviation's, not a pass's
            for d in explained:
                record.deviation(d, message.splitlines()[0])
