"""The zsnr pytest plug-in (entry point ``pytest11: zsnr``).

Installed, it is inert: it adds its options and fixtures, and changes nothing in a run that holds
none of zsnr's tests (no header, no Hypothesis profile loaded, no global setting touched).

- **Profiles** (:mod:`properties.profiles`): ``zsnr-dev`` / ``zsnr-ci`` / ``zsnr-thorough``, applied
  to zsnr's own tests only. Chosen by ``--zsnr-profile`` (env ``ZSNR_PROFILE``), else by
  ``--hypothesis-profile`` when it names one of them (``dev``, ``ci``, ``thorough`` or ``zsnr-*``),
  else ``ci`` when the environment variable CI is set, else ``dev``. zsnr's tests run without
  Hypothesis's constants mined from local source (:func:`properties.profiles.no_local_constants`).
- ``--impl module:attribute`` (or ``ZSNR_IMPL``): the implementation under test -- an object
  following :mod:`properties.contract`, or a class or factory returning one; default diffusers.
  ``--impl-dtype`` / ``--impl-device`` (``ZSNR_DTYPE`` / ``ZSNR_DEVICE``) are passed to a factory
  that takes ``dtype`` / ``device``. An implementation that is given explicitly is checked before
  any test: a missing contract attribute, or a dtype or device the installed torch cannot provide,
  is a usage error.
- ``--impl-timeout SECONDS`` (``ZSNR_TIMEOUT``; default 60, 0 = none): the time limit of one call
  into the implementation (:mod:`properties.guard`).
- fixtures ``impl`` (session; the implementation behind :class:`properties.guard.Guarded`) and
  ``zsnr_record`` (the worst error and deviations of one test, attached to its report for
  ``python -m properties``). A failing conformance test's report is short: property, sampler,
  minimal configuration and inputs, worst point and a reproducing snippet (``--tb=long`` for the
  traceback).
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import pytest

from . import guard, profiles, report
from .compare import Record

DEFAULT_IMPL = "properties.adapters.diffusers:DiffusersImplementation"

_PACKAGE = Path(__file__).resolve().parent
_ROOT = _PACKAGE.parent


def _zsnr_dirs() -> tuple[Path, ...]:
    """Where zsnr's own tests live: the installed package, and in a checkout its other test folders."""
    dirs = [_PACKAGE]
    if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "reference").is_dir():
        dirs += [_ROOT / "notebooks", _ROOT / "benchmarks", _ROOT / "reference"]
    return tuple(dirs)


def is_zsnr_item(item) -> bool:
    path = Path(str(getattr(item, "path", None) or item.fspath)).resolve()
    return any(path.is_relative_to(d) for d in _zsnr_dirs())


def pytest_addoption(parser):
    group = parser.getgroup("zsnr", "zsnr conformance suite")
    group.addoption("--impl", default=None,
                    help=f"implementation under test as module:attribute (env ZSNR_IMPL; default {DEFAULT_IMPL})")
    group.addoption("--impl-dtype", default=None, help="dtype passed to the implementation factory (env ZSNR_DTYPE)")
    group.addoption("--impl-device", default=None, help="device passed to the implementation factory (env ZSNR_DEVICE)")
    group.addoption("--impl-timeout", default=None, type=float,
                    help=f"time limit in seconds of one call into the implementation (env ZSNR_TIMEOUT; "
                         f"default {guard.DEFAULT_TIMEOUT:g}; 0: none)")
    group.addoption("--zsnr-profile", default=None,
                    help="Hypothesis profile of zsnr's tests: dev, ci or thorough (env ZSNR_PROFILE; default ci "
                         "when CI is set, else dev; --hypothesis-profile=<one of these> also selects it)")


def _choose_profile(config) -> str:
    for name in (config.getoption("zsnr_profile"), os.environ.get("ZSNR_PROFILE")):
        if name:
            if profiles.canonical(name) is None:
                raise pytest.UsageError(f"--zsnr-profile / ZSNR_PROFILE must be one of {profiles.PROFILES}; got {name!r}")
            return name
    hyp = config.getoption("hypothesis_profile", default=None)
    if profiles.canonical(hyp):
        return hyp
    return "ci" if os.environ.get("CI") else "dev"


def _registered(name: str) -> bool:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        settings.get_profile(name)
    except InvalidArgument:
        return False
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "zsnr_property(name, sampler): the conformance property a test checks")
    profiles.activate(_choose_profile(config))
    # --hypothesis-profile=dev (or thorough) names zsnr's profile; Hypothesis's own plug-in would
    # fail on a name nobody registered, so the option is taken here (a registered name, such as
    # Hypothesis's own "ci" or a project's, is left for Hypothesis to load as asked)
    hyp = config.getoption("hypothesis_profile", default=None)
    if hyp and profiles.canonical(hyp) and not _registered(hyp):
        config.option.hypothesis_profile = None
    if _explicit_impl(config):
        implementation(config)  # usage errors before any test


def _explicit_impl(config) -> bool:
    return any(config.getoption(o) for o in ("impl", "impl_dtype", "impl_device")) or \
        any(os.environ.get(v) for v in ("ZSNR_IMPL", "ZSNR_DTYPE", "ZSNR_DEVICE"))


def _impl_spec(config) -> str:
    return config.getoption("impl") or os.environ.get("ZSNR_IMPL") or DEFAULT_IMPL


def _impl_key(config):
    return (_impl_spec(config), config.getoption("impl_dtype") or os.environ.get("ZSNR_DTYPE"),
            config.getoption("impl_device") or os.environ.get("ZSNR_DEVICE"))


def _timeout(config) -> float:
    value = config.getoption("impl_timeout")
    if value is None:
        env = os.environ.get("ZSNR_TIMEOUT")
        try:
            value = float(env) if env else guard.DEFAULT_TIMEOUT
        except ValueError:
            raise pytest.UsageError(f"ZSNR_TIMEOUT must be a number of seconds; got {env!r}") from None
    if value < 0:
        raise pytest.UsageError(f"--impl-timeout must be >= 0 seconds (0: no limit); got {value:g}")
    return value


def _check_torch(spec, dtype: str | None, device: str | None):
    """A dtype or device the installed torch cannot provide is a usage error, not test failures."""
    if dtype is None and device is None:
        return
    try:
        import torch
    except ImportError:
        return  # not a torch implementation: the implementation's own factory judges dtype and device
    tdtype = getattr(torch, dtype, None) if dtype else torch.float32
    if not isinstance(tdtype, torch.dtype):
        raise pytest.UsageError(f"--impl-dtype {dtype!r} is not a torch dtype (e.g. float32, float16, bfloat16)")
    try:
        torch.zeros(2, dtype=tdtype, device=device or "cpu") + 1
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        raise pytest.UsageError(
            f"--impl {spec}: the installed torch {torch.__version__} cannot compute in {dtype or 'float32'} on device "
            f"{device or 'cpu'!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def load_implementation(spec, dtype: str | None = None, device: str | None = None):
    """Resolve ``module:attribute`` (or an object) to an implementation instance, checked against
    the contract (every usage error names what is wrong)."""
    obj = spec
    if isinstance(spec, str):
        module, _, attr = spec.partition(":")
        if not attr:
            raise pytest.UsageError(f"--impl must be module:attribute; got {spec!r}")
        try:
            obj = importlib.import_module(module)
        except ImportError as exc:
            raise pytest.UsageError(f"--impl {spec!r}: cannot import {module!r}: {exc}") from None
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise pytest.UsageError(f"--impl {spec!r}: {module!r} has no attribute {attr!r}") from None
    _check_torch(spec, dtype, device)
    if not hasattr(obj, "build") or inspect.isclass(obj):
        if not callable(obj):
            raise pytest.UsageError(f"--impl {spec!r} is neither an implementation nor a factory")
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {k: v for k, v in (("dtype", dtype), ("device", device)) if v is not None and k in params}
        try:
            obj = obj(**kwargs)
        except (ValueError, TypeError) as exc:
            raise pytest.UsageError(f"--impl {spec!r}{''.join(f' --impl-{k} {v}' for k, v in kwargs.items())}: "
                                    f"the factory refused: {exc}") from None
    missing = guard.missing_attributes(obj)
    if missing:
        raise pytest.UsageError(f"--impl {spec!r} gave {type(obj).__name__}, which lacks {', '.join(missing)} "
                                f"(an implementation needs {', '.join(guard.REQUIRED)}; see properties/contract.py)")
    u = obj.unit_roundoff
    if not isinstance(u, float | int) or not 0 < u < 1:
        raise pytest.UsageError(f"--impl {spec!r}: unit_roundoff must be a number in (0, 1) (2**-24 for float32); "
                                f"got {u!r}")
    return obj


_LOADED: dict = {}


def implementation(config):
    """The implementation under test for this pytest run (--impl / ZSNR_IMPL, with dtype and
    device), loaded once: the ``impl`` fixture and the modules that parametrize over its
    generic samplers or deviations share it."""
    key = _impl_key(config)
    if key not in _LOADED:
        _LOADED[key] = load_implementation(*key)
    return _LOADED[key]


@pytest.fixture(scope="session")
def impl(pytestconfig):
    """The implementation under test (see --impl), behind the guard (time limit, contract checks,
    its warnings captured)."""
    return guard.Guarded(implementation(pytestconfig), _timeout(pytestconfig))


@pytest.fixture
def zsnr_record(request):
    """Collects a test's worst error and the declared deviations it met, for the matrix."""
    rec = Record()
    request.node._zsnr_record = rec
    before = sum(guard.WARNINGS.values())
    yield rec
    request.node.user_properties.append(("zsnr_worst_error", rec.worst))
    request.node.user_properties.append(("zsnr_deviations", dict(rec.deviations)))
    request.node.user_properties.append(("zsnr_deviation_worst", dict(rec.deviation_worst)))
    request.node.user_properties.append(("zsnr_fixed", dict(rec.fixed)))
    request.node.user_properties.append(("zsnr_impl_deprecation_warnings", sum(guard.WARNINGS.values()) - before))


def pytest_itemcollected(item):
    marker = item.get_closest_marker("zsnr_property")
    if marker is not None:
        item.user_properties.append(("zsnr_property", marker.args[0]))
        item.user_properties.append(("zsnr_sampler", marker.args[1] if len(marker.args) > 1 else "-"))
    dev_id = getattr(getattr(item, "callspec", None), "params", {}).get("deviation_id")
    if dev_id is not None:
        impl = implementation(item.config)
        item.user_properties.append(("zsnr_deviation_id", dev_id))
        item.user_properties.append(("zsnr_inherited", dev_id in getattr(impl, "inherited_deviations", ())))


def pytest_collection_modifyitems(session, config, items):
    from hypothesis import settings

    verbosity = config.getoption("hypothesis_verbosity", default=None)
    base = profiles.active()
    if verbosity:  # --hypothesis-verbosity applies to zsnr's tests too
        from hypothesis import Verbosity
        base = settings(base, verbosity=Verbosity[verbosity] if isinstance(verbosity, str) else verbosity)
    ours = 0
    for item in items:
        if is_zsnr_item(item):
            item._zsnr = True
            ours += 1
            profiles.apply(getattr(item, "obj", None), base)
            # a test that probes support around its Hypothesis test (test_conformance.py)
            profiles.apply(getattr(getattr(item, "obj", None), "zsnr_inner", None), base)
    config._zsnr_items = ours


def pytest_collection_finish(session):
    n = getattr(session.config, "_zsnr_items", 0)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if n and tr is not None and session.config.getoption("verbose") >= 0:
        tr.write_line(f"zsnr: {n} tests under Hypothesis profile {profiles.active_name()}; "
                      f"implementation {_impl_spec(session.config)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not getattr(item, "_zsnr", False):
        return (yield)
    from hypothesis.errors import Unsatisfiable

    with profiles.no_local_constants():
        try:
            return (yield)
        except Unsatisfiable:
            # support is probed per configuration: a property none of whose drawn configurations
            # the implementation supports is skipped with the first refusal's reason
            rec = getattr(item, "_zsnr_record", None)
            reason = rec.unsupported_everywhere() if rec is not None else None
            if reason:
                pytest.skip(reason)
            raise


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    rec = getattr(item, "_zsnr_record", None)
    if call.when != "call" or not rep.failed or rec is None or call.excinfo is None:
        return
    spec, dtype, device = _impl_key(item.config)
    seen = rec.failure or {"call": rec.last_call, "error": report.message(call.excinfo.value),
                           "worst_point": rec.worst_point}
    if rec.failure and isinstance(call.excinfo.value, guard.ImplementationTimeout):
        seen = {"call": rec.last_call, "error": report.message(call.excinfo.value), "worst_point": None}
    failure = {"property": dict(item.user_properties).get("zsnr_property"),
               "sampler": dict(item.user_properties).get("zsnr_sampler"),
               "error": seen["error"], "worst_point": seen["worst_point"],
               "call": report.encode_call(*seen["call"]) if seen["call"] else None}
    if failure["property"] == "declared_deviation":
        failure["sampler"] = dict(item.user_properties).get("zsnr_deviation_id", "-")
    if failure["call"]:
        if failure["sampler"] == "generic":
            failure["sampler"] = failure["call"]["target"]
        failure["snippet"] = report.snippet(failure["call"], spec, dtype, device, failure["error"])
    rep.user_properties.append(("zsnr_failure", failure))
    if item.config.getoption("tbstyle", "auto") == "auto":
        rep.longrepr = report.summary(failure)
