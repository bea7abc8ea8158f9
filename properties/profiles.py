"""Hypothesis profiles. ``dev``: fast, for editing. ``ci``: derandomized, the CI default (chosen
when the environment variable CI is set). ``thorough``: deep, for a nightly or a release."""

from hypothesis import HealthCheck, settings

# filter_too_much: configurations an implementation does not support are rejected by design (an
# implementation of DDIM alone rejects most clip/variance options); function_scoped_fixture: the
# per-test record fixture is meant to span all examples of a test.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture,
                                                   HealthCheck.filter_too_much]}

settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)

PROFILES = ("dev", "ci", "thorough")
