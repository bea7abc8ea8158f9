"""Top-level pytest configuration of the zsnr repository.

The zsnr plug-in (Hypothesis profiles, the ``--impl`` option, the ``impl`` fixture) is loaded
through its entry point, so it also works from an installed copy (``pytest --pyargs properties``).
This file only checks that it is there: run ``pip install -e .`` first.
"""

import pytest


def pytest_configure(config):
    # "zsnr": the entry point; "properties.plugin": loaded by name (python -m properties does this
    # in a checkout that was not pip-installed)
    if not (config.pluginmanager.has_plugin("zsnr") or config.pluginmanager.has_plugin("properties.plugin")):
        raise pytest.UsageError("the zsnr pytest plug-in is not installed: run `pip install -e '.[all]'` "
                                "in the repository first (see README.md)")
