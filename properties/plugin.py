"""The zsnr pytest plug-in (entry point ``pytest11: zsnr``).

- Hypothesis profiles ``dev`` / ``ci`` / ``thorough`` (``--hypothesis-profile``; default ``ci``
  when the environment variable CI is set, else ``dev``).
- ``--impl module:attribute`` (or ``ZSNR_IMPL``): the implementation under test -- an object
  following :mod:`properties.contract`, or a class or factory returning one; default diffusers.
  ``--impl-dtype`` / ``--impl-device`` (``ZSNR_DTYPE`` / ``ZSNR_DEVICE``) are passed to a factory
  that takes ``dtype`` / ``device``.
- fixtures ``impl`` (session) and ``zsnr_record`` (the worst error and deviations of one test,
  attached to its report for ``python -m properties``).
"""

from __future__ import annotations

import importlib
import inspect
import os

import pytest
from hypothesis import settings

from . import profiles  # noqa: F401  (registers the profiles at import, before Hypothesis reads them)
from .compare import Record

DEFAULT_IMPL = "properties.adapters.diffusers:DiffusersImplementation"


def pytest_addoption(parser):
    group = parser.getgroup("zsnr", "zsnr conformance suite")
    group.addoption("--impl", default=None,
                    help=f"implementation under test as module:attribute (env ZSNR_IMPL; default {DEFAULT_IMPL})")
    group.addoption("--impl-dtype", default=None, help="dtype passed to the implementation factory (env ZSNR_DTYPE)")
    group.addoption("--impl-device", default=None, help="device passed to the implementation factory (env ZSNR_DEVICE)")


def pytest_configure(config):
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    config.addinivalue_line("markers", "zsnr_property(name, sampler): the conformance property a test checks")


def pytest_report_header(config):
    return f"zsnr: hypothesis profile {settings._current_profile}; implementation {_impl_spec(config)}"


def _impl_spec(config) -> str:
    return config.getoption("impl") or os.environ.get("ZSNR_IMPL") or DEFAULT_IMPL


def load_implementation(spec, dtype: str | None = None, device: str | None = None):
    """Resolve ``module:attribute`` (or an object) to an implementation instance."""
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
    if not hasattr(obj, "build") or inspect.isclass(obj):
        if not callable(obj):
            raise pytest.UsageError(f"--impl {spec!r} is neither an implementation nor a factory")
        params = inspect.signature(obj).parameters
        kwargs = {k: v for k, v in (("dtype", dtype), ("device", device)) if v is not None and k in params}
        obj = obj(**kwargs)
    if not hasattr(obj, "build"):
        raise pytest.UsageError(f"--impl {spec!r} gave {obj!r}, which has no build(config) method")
    return obj


_LOADED: dict = {}


def implementation(config):
    """The implementation under test for this pytest run (--impl / ZSNR_IMPL, with dtype and
    device), loaded once: the ``impl`` fixture and the modules that parametrize over its
    generic samplers or deviations share it."""
    key = (_impl_spec(config), config.getoption("impl_dtype") or os.environ.get("ZSNR_DTYPE"),
           config.getoption("impl_device") or os.environ.get("ZSNR_DEVICE"))
    if key not in _LOADED:
        _LOADED[key] = load_implementation(*key)
    return _LOADED[key]


@pytest.fixture(scope="session")
def impl(pytestconfig):
    """The implementation under test (see --impl)."""
    return implementation(pytestconfig)


@pytest.fixture
def zsnr_record(request):
    """Collects a test's worst error and the declared deviations it met, for the matrix."""
    rec = Record()
    yield rec
    request.node.user_properties.append(("zsnr_worst_error", rec.worst))
    request.node.user_properties.append(("zsnr_deviations", dict(rec.deviations)))
    request.node.user_properties.append(("zsnr_deviation_worst", dict(rec.deviation_worst)))
    request.node.user_properties.append(("zsnr_fixed", dict(rec.fixed)))


def pytest_itemcollected(item):
    marker = item.get_closest_marker("zsnr_property")
    if marker is not None:
        item.user_properties.append(("zsnr_property", marker.args[0]))
        item.user_properties.append(("zsnr_sampler", marker.args[1] if len(marker.args) > 1 else "-"))
