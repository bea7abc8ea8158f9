"""Every Python example in README.md runs as written: each ```python block is executed in a fresh
namespace (a block headed ``# my_pkg/<module>.py`` is a module of the reader's package: it must run
on its own too), and every ``test_*`` function a block defines is called."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE) \
    if README.is_file() else []


def test_the_readme_has_python_examples():
    if not README.is_file():
        pytest.skip("not a checkout (README.md is not installed)")
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]
    namespace: dict = {"__name__": f"readme_example_{index}"}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)  # noqa: S102 -- the point
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    for test in tests:
        test()
    if "DiffusersImplementation(" in code:
        impl = namespace["impl"]
        assert impl.subclassed and impl.inherited_deviations  # the subclass keeps diffusers' deviations
