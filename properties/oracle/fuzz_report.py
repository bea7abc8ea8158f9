"""Counts of the reference fuzzer (properties/oracle/test_fuzz.py) per function, shared with the
terminal summary of properties/oracle/conftest.py."""

from __future__ import annotations

from collections import Counter, defaultdict

KINDS = ("clean", "clear error", "defect")
COUNTS: defaultdict[str, Counter] = defaultdict(Counter)


def summary_lines() -> list[str]:
    if not COUNTS:
        return []
    width = max(len(f) for f in COUNTS)
    lines = [f"{'function':<{width}}  " + "  ".join(f"{k:>11}" for k in KINDS)]
    total = Counter()
    for fname in sorted(COUNTS):
        c = COUNTS[fname]
        total.update(c)
        lines.append(f"{fname:<{width}}  " + "  ".join(f"{c[k]:>11}" for k in KINDS))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{total[k]:>11}" for k in KINDS))
    return lines
