"""Known deviations of an implementation from the oracle, declared as models of what it computes.

A :class:`Deviation` says what the implementation computes *instead* of the oracle: its ``model``
replaces some named pieces of the oracle's expectation (:class:`properties.expected.Expectation`:
``timesteps``, ``alphas_cumprod``, ``sigmas``, ``vp_levels``, ``ddim_coefficients``, ...). Inside
its region (``applies``, or, where it can, the configurations where the model's schedule values
differ from the oracle's) every check is run twice if need be, with the same derived tolerances:

1. against the oracle: it passes -- the deviation is not present here; if the model would have
   failed, this is recorded as *fixed* (the strict reproduction of the deviation's example turns
   "fixed" into a failure, so the declaration gets removed);
2. against the *deviant expectation* (the oracle with the models of every deviation that applies):
   it passes -- recorded as the deviation, with its worst |impl - model| / tolerance;
3. neither: an ordinary failure, whose message gives the distance to both.

A precision-loss deviation (a cancellation) widens the tolerance by a stated, derived bound
(model pieces ``step_widening`` / ``alphas_cumprod_abs``), never "anything goes". A deviation
without a model may only declare a non-finite symptom (``symptom=NON_FINITE``): it then excuses
the non-finite *elements* of a result, and every finite element is still checked against the
oracle. The strict reproduction (``properties/conformance/test_deviations.py``) runs each
example against the model and requires the model's values. An implementation lists its
deviations in an attribute ``deviations``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import reference as ref

from .contract import SamplerConfig

PROPERTIES = ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop",
              "guidance", "generic", "add_noise", "add_noise_in_loop", "velocity", "training_snr", "min_snr")

#: the one symptom a deviation without a model may declare: a non-finite result (NaN/inf)
NON_FINITE = r"non-finite|not finite"

#: the symptom of a declared crash: the implementation raises one of the deviation's ``raises``
#: exception types inside the region (a loud refusal, never a wrong value); a deviation without a
#: model may declare it instead of NON_FINITE. Its example must still raise (the strict reproduction).
RAISES = "raises"

#: the failures a check raises (ValueError: the oracle refuses a deviant input, e.g. levels that rise)
FAILURES = (AssertionError, FloatingPointError, ArithmeticError)


@dataclass(frozen=True)
class Deviation:
    id: str
    properties: tuple[str, ...]
    samplers: tuple[str, ...]
    #: the region: the configurations where the deviation shows. None: where the model's schedule
    #: pieces (timesteps, alphas_cumprod, sigmas) differ from the oracle's
    applies: Callable[[SamplerConfig], bool] | None
    reason: str
    link: str
    example: SamplerConfig | None = None
    #: for the strict reproduction: ``step_index``, and optionally ``x`` (the VP-scaled state) and
    #: ``model_output`` as fill values where their size matters
    example_args: dict = field(default_factory=dict, hash=False, compare=False)
    #: only NON_FINITE, and only for a deviation without a model: excuses non-finite elements
    symptom: str | None = None
    #: the implementation dtypes it shows in (and was confirmed in); None: every dtype, confirmed
    #: in the implementation's ``deviations_dtype``
    dtypes: tuple[str, ...] | None = None
    #: what the implementation computes instead: {piece name: fn(E, *piece args)}, see
    #: properties.expected.Expectation (E is the whole deviant expectation; E.oracle the oracle's)
    model: dict = field(default_factory=dict, hash=False, compare=False)
    #: one line stating the model, for the report and the standalone reproduction
    summary: str = ""
    #: the implementation's releases it applies to, a PEP 440 version specifier matched against the
    #: implementation's ``version`` (e.g. ">=0.25,<0.31"); None: every release. Outside the range it
    #: neither applies nor is its example reproduced
    releases: str | None = None
    #: for symptom=RAISES: the exception types the implementation raises inside the region
    raises: tuple = ()

    def __post_init__(self):
        from .expected import PIECES

        unknown = set(self.properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"deviation {self.id}: unknown properties {sorted(unknown)}; allowed {PROPERTIES}")
        if self.symptom is not None and self.symptom not in (NON_FINITE, RAISES):
            raise ValueError(f"deviation {self.id}: symptom {self.symptom!r} is not allowed: a deviation "
                             "states a model of what the implementation computes; only a non-finite outcome "
                             "or a declared crash may be declared by its symptom alone (symptom=NON_FINITE "
                             "or RAISES)")
        if (self.symptom == RAISES) != bool(self.raises) or not all(
                isinstance(t, type) and issubclass(t, Exception) and not issubclass(t, (AssertionError, ValueError))
                for t in self.raises):
            raise ValueError(f"deviation {self.id}: symptom=RAISES needs raises=(exception types), and only it; "
                             "AssertionError and ValueError (a check's failure, the oracle's refusal) cannot be "
                             "declared")
        if self.symptom is not None and self.model:
            raise ValueError(f"deviation {self.id}: give a model or symptom=NON_FINITE, not both")
        if self.symptom is None and not self.model:
            raise ValueError(f"deviation {self.id}: needs a model (what the implementation computes "
                             "instead) or symptom=NON_FINITE")
        bad = set(self.model) - set(PIECES)
        if bad:
            raise ValueError(f"deviation {self.id}: unknown model pieces {sorted(bad)}; allowed {PIECES}")
        if self.releases is not None:
            from packaging.specifiers import InvalidSpecifier, SpecifierSet

            try:
                SpecifierSet(self.releases)
            except InvalidSpecifier:
                raise ValueError(f"deviation {self.id}: releases={self.releases!r} is not a version "
                                 "specifier (e.g. '>=0.25,<0.31')") from None
        if self.applies is None and not set(self.model) & {"timesteps", "alphas_cumprod", "sigmas"}:
            raise ValueError(f"deviation {self.id}: its region cannot follow from a model of "
                             f"{sorted(self.model)}; give applies")

    @property
    def nonfinite_only(self) -> bool:
        return self.symptom == NON_FINITE

    def in_releases(self, version: str | None) -> bool:
        """Whether the implementation's release ``version`` lies in the deviation's range."""
        if self.releases is None:
            return True
        if version is None:
            raise ValueError(f"deviation {self.id} applies to releases {self.releases!r}, but the "
                             "implementation states no version (give it a `version` attribute)")
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.releases).contains(str(version), prereleases=True)

    @property
    def crash(self) -> bool:
        return self.symptom == RAISES

    def in_region(self, cfg: SamplerConfig | None) -> bool:
        if self.applies is not None:
            return bool(self.applies(cfg))
        return model_differs(self, cfg)


def model_differs(dev: Deviation, cfg: SamplerConfig) -> bool:
    """Whether the deviation's schedule pieces give other values than the oracle's for cfg."""
    import numpy as np

    from .expected import ORACLE

    deviant = ORACLE.with_models([dev])
    for name in ("timesteps", "alphas_cumprod", "sigmas"):
        if name not in dev.model:
            continue
        if name == "sigmas":
            if cfg.sampler not in ("euler", "euler_ancestral"):
                continue
            a, b = ORACLE.sigmas(cfg), deviant.sigmas(cfg)
        else:
            a, b = getattr(ORACLE, name)(cfg), getattr(deviant, name)(cfg)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            return True
    return False


def declared(impl) -> list[Deviation]:
    """The implementation's declared deviations that apply to its release (``impl.version``)."""
    version = getattr(impl, "version", None)
    return [d for d in getattr(impl, "deviations", ()) if d.in_releases(version)]


def matching(impl, cfg: SamplerConfig | None, prop: str, sampler: str | None = None) -> list[Deviation]:
    sampler = sampler or (cfg.sampler if cfg is not None else None)
    dtype = getattr(impl, "dtype", None)
    return [d for d in declared(impl) if prop in d.properties and sampler in d.samplers
            and (d.dtypes is None or dtype in d.dtypes) and d.in_region(cfg)]


def confirmed_in(impl, dev: Deviation) -> tuple[str, ...] | None:
    """The dtypes a deviation's example must reproduce in (None: not stated by the implementation)."""
    if dev.dtypes is not None:
        return dev.dtypes
    dtype = getattr(impl, "deviations_dtype", None)
    return None if dtype is None else (dtype,)


def _first_line(exc) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def judge(check: Callable, impl, cfg: SamplerConfig | None, prop: str, record=None, sampler: str | None = None):
    """Run ``check(expect, record)`` against the oracle, and, where declared deviations apply and
    it fails, against their deviant expectation: the three outcomes described in this module's
    docstring. Returns the outcome: "oracle", "deviation" or "fixed"."""
    from .compare import Record
    from .expected import ORACLE

    devs = matching(impl, cfg, prop, sampler)
    if not devs:
        check(ORACLE, record)
        return "oracle"
    crashes = [d for d in devs if d.crash]
    declared_crash = tuple(t for d in crashes for t in d.raises)
    models = [d for d in devs if not d.nonfinite_only and not d.crash]
    symptoms = [d for d in devs if d.nonfinite_only]
    deviant = ORACLE.with_models(models)
    own = Record()
    try:
        check(ORACLE, own)
    except declared_crash as exc:  # the declared crash: recorded as its deviation, never a pass
        if record is not None:
            for d in crashes:
                if isinstance(exc, d.raises):
                    record.deviation(d, f"raised {type(exc).__name__}: {_first_line(exc)}", 0.0)
        return "deviation"
    except FAILURES as oracle_exc:
        oracle_msg = _first_line(oracle_exc)
    except ValueError as oracle_exc:  # the oracle refuses what a deviant implementation did (e.g. σ rises)
        if isinstance(oracle_exc, ref.EpsilonAtZeroSNR):
            raise
        oracle_msg = _first_line(oracle_exc)
    else:
        if record is not None:
            record.error(own.worst)
        if models:  # matches the oracle: if the model would have failed here, the deviation is fixed
            try:
                check(deviant, Record())
            except (*FAILURES, ValueError) as exc:
                if record is not None:
                    for d in models:
                        record.fix(d, f"matches the oracle, not the model ({_first_line(exc)})")
                return "fixed"
        return "oracle"
    attempts = []
    if models:
        attempts.append(("the model", deviant, models))
    if symptoms:
        attempts.append(("the oracle" if not models else "the model", deviant.excusing_nonfinite(),
                         models + symptoms))
    messages = []
    for label, expect, explained in attempts:
        rec = Record()
        try:
            check(expect, rec)
        except (*FAILURES, ValueError) as exc:
            if isinstance(exc, ref.EpsilonAtZeroSNR):
                raise
            messages.append(f"  vs {label}{' (non-finite elements excused)' if expect.nonfinite_excused else ''}: "
                            f"{_first_line(exc)}")
            continue
        if record is not None:
            for d in explained:
                record.deviation(d, oracle_msg, rec.worst)
        return "deviation"
    ids = ", ".join(d.id for d in devs)
    if record is not None and getattr(own, "worst_point", None) is not None:
        record.worst_point = own.worst_point  # the oracle's worst point, for the failure report
    raise AssertionError(f"matches neither the oracle nor the declared deviations ({ids}).\n"
                         f"  vs the oracle: {oracle_msg}\n" + "\n".join(messages))
