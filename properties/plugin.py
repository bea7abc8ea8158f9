"""The zsnr pytest plug-in (entry point ``pytest11: zsnr``).

Registers the Hypothesis profiles (``--hypothesis-profile=dev|ci|thorough``; default ``ci`` when
the environment variable CI is set, else ``dev``).
"""

from __future__ import annotations

import os

from hypothesis import settings

from . import profiles  # noqa: F401  (registers the profiles at import, before Hypothesis reads them)


def pytest_configure(config):
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_report_header(config):
    return f"zsnr: hypothesis profile {settings._current_profile}"
