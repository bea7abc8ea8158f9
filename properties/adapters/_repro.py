"""The runner the standalone reproduction modules share (``python -m properties.adapters.<lib>_repro``)."""

from __future__ import annotations

from collections.abc import Callable


def run_reproductions(reproductions: dict[str, Callable[[], bool]]) -> int:
    """Run each reproduction (a function printing its values and returning whether the deviation
    still shows); exit status 0 iff every one reproduces."""
    failed = []
    for name, fn in reproductions.items():
        print(name)
        ok = fn()
        print(f"  -> {'reproduces' if ok else 'DOES NOT REPRODUCE (fixed upstream? remove the declaration)'}\n")
        if not ok:
            failed.append(name)
    print(f"{len(reproductions) - len(failed)} of {len(reproductions)} reproduce")
    return 1 if failed else 0
