"""zsnr's Hypothesis profiles, namespaced so that they never collide with a project's own:
``zsnr-dev`` (fast, for editing), ``zsnr-ci`` (derandomized, no database: the CI default, chosen when
the environment variable CI is set) and ``zsnr-thorough`` (deep, for a nightly or a release).

Registering them loads nothing: the zsnr pytest plug-in applies the chosen one to zsnr's own tests
only (:func:`apply`), so a project that has zsnr installed keeps its own Hypothesis settings. The
short names ``dev`` / ``ci`` / ``thorough`` are accepted wherever zsnr asks for a profile.

:func:`no_local_constants` keeps the draws of zsnr's tests independent of source code outside zsnr.
"""

from __future__ import annotations

from contextlib import contextmanager

from hypothesis import HealthCheck, settings

# filter_too_much: configurations an implementation does not support are rejected by design (an
# implementation of DDIM alone rejects most clip/variance options); function_scoped_fixture: the
# per-test record fixture is meant to span all examples of a test.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture,
                                                   HealthCheck.filter_too_much]}

PROFILES = ("dev", "ci", "thorough")
PREFIX = "zsnr-"

_DEFINITIONS = {
    "dev": settings(max_examples=15, **_common),
    "ci": settings(max_examples=40, derandomize=True, database=None, print_blob=True, **_common),
    "thorough": settings(max_examples=1000, **_common),
}
for _name, _s in _DEFINITIONS.items():
    settings.register_profile(PREFIX + _name, _s)


def canonical(name: str | None) -> str | None:
    """'ci' or 'zsnr-ci' -> 'zsnr-ci'; None for a name that is not zsnr's."""
    if name is None:
        return None
    short = name.removeprefix(PREFIX)
    return PREFIX + short if short in PROFILES else None


_active: list[str] = [PREFIX + "dev"]


def activate(name: str) -> None:
    """Choose the profile zsnr's tests run under (the plug-in does this at configure time)."""
    full = canonical(name)
    if full is None:
        raise ValueError(f"profile must be one of {PROFILES} (or zsnr-<name>); got {name!r}")
    _active[0] = full


def active_name() -> str:
    return _active[0]


def active() -> settings:
    """The settings of the active zsnr profile (a parent for a zsnr test's own @settings)."""
    return settings.get_profile(_active[0])


def apply(test, base: settings | None = None) -> None:
    """Make a @given test run under the active zsnr profile, unless it carries its own @settings
    (zsnr's tests that do derive theirs from :func:`active`)."""
    if not getattr(test, "is_hypothesis_test", False) or getattr(test, "_hypothesis_internal_settings_applied", False):
        return
    test._hypothesis_internal_use_settings = base or active()


try:
    from hypothesis.internal.conjecture import providers as _providers
    #: Hypothesis's own function (None where this Hypothesis has none)
    HYPOTHESIS_LOCAL_CONSTANTS = getattr(_providers, "_get_local_constants", None)
except ImportError:  # pragma: no cover
    HYPOTHESIS_LOCAL_CONSTANTS = None


@contextmanager
def no_local_constants():
    """Run without Hypothesis's local constants.

    Hypothesis (since 6.131; checked in 6.155.2's ``hypothesis/internal/conjecture/providers.py``)
    mixes literal constants mined from every *local* module in ``sys.modules`` (not site-packages,
    not test files; cached under ``.hypothesis/constants``) into integer and float draws
    (``HypothesisProvider._maybe_draw_constant``, p = 0.05 / 0.15). Even a derandomized profile's
    draws then depend on the source of the adapter under test and on what else was imported. Inside
    this context the local pool is empty (Hypothesis's global constants, fixed per version, stay),
    and the provider's per-constraint cache is cleared on entry and exit so neither side sees the
    other's pool. Without that internal (older or newer Hypothesis), nothing is changed.
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if original is None:
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    if cache is not None:
        cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        if cache is not None:
            cache.clear()
