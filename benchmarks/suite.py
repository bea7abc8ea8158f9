"""Speed of the conformance suite: examples per second per property and total time per profile.

Runs ``pytest -p no:cacheprovider -q properties/conformance --hypothesis-profile=P
--hypothesis-show-statistics`` in a subprocess and parses Hypothesis' statistics: per test, the
"N passing examples" of every phase and the phase durations ("during generate phase (X seconds)").
Examples per second of a property = its passing examples / the sum of its phase durations.
The suite's examples per second = all passing examples / the wall time of the whole pytest run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import REPO, markdown_table

SUITE = "properties/conformance"

_TEST = re.compile(r"^(\S+::\S+):\s*$")
_PHASE = re.compile(r"^\s*- during (\w+) phase \(([\d.]+) seconds\):")
_COUNTS = re.compile(r"^\s*- (\d+) passing examples?, (\d+) failing examples?, (\d+) invalid examples?")
_SUMMARY = re.compile(r"=*\s*(.*\b(?:passed|failed|error|errors|skipped|no tests ran)\b.*?) in ([\d.]+)s")


def parse_statistics(text: str) -> dict[str, dict]:
    """{test id: {"passing": int, "failing": int, "invalid": int, "seconds": float, "phases": {...}}}
    from pytest output with ``--hypothesis-show-statistics``."""
    stats: dict[str, dict] = {}
    current = None
    phase = None
    in_section = False
    for line in text.splitlines():
        if "Hypothesis Statistics" in line:
            in_section = True
            continue
        if not in_section:
            continue
        m = _TEST.match(line)
        if m:
            current = stats.setdefault(m.group(1), {"passing": 0, "failing": 0, "invalid": 0,
                                                    "seconds": 0.0, "phases": {}})
            continue
        if current is None:
            continue
        m = _PHASE.match(line)
        if m:
            phase = m.group(1)
            current["phases"][phase] = {"seconds": float(m.group(2))}
            current["seconds"] += float(m.group(2))
            continue
        m = _COUNTS.match(line)
        if m and phase is not None:
            p, f, i = (int(g) for g in m.groups())
            current["phases"][phase].update(passing=p, failing=f, invalid=i)
            current["passing"] += p
            current["failing"] += f
            current["invalid"] += i
    return stats


def parse_summary(text: str) -> tuple[str, float] | None:
    """('3 passed, 1 failed', seconds) of pytest's last summary line, or None."""
    found = None
    for line in text.splitlines():
        m = _SUMMARY.search(line)
        if m:
            found = (m.group(1).strip(), float(m.group(2)))
    return found


def has_conformance_tests(path: Path | None = None) -> bool:
    root = path or REPO / SUITE
    return root.is_dir() and any(root.rglob("test_*.py"))


def run_profile(profile: str, suite: str = SUITE, timeout: float = 1800, extra_args=(), repo: Path | None = None,
                env: dict | None = None) -> dict:
    """Run the suite under one Hypothesis profile (in the checkout ``repo``: its own ``properties``
    comes first on the path); returns parsed statistics and timings."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", suite,
           f"--hypothesis-profile={profile}", "--hypothesis-show-statistics", *extra_args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo or REPO, check=False, capture_output=True, text=True, timeout=timeout,
                          env=env)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    stats = parse_statistics(out)
    return {"profile": profile, "returncode": proc.returncode, "wall": wall, "stats": stats,
            "summary": parse_summary(out), "command": " ".join(cmd[2:]), "tail": out[-2000:]}


def run(profiles=("dev",), suite: str = SUITE) -> dict:
    """Measure each profile. If the suite has no tests yet, say so (no numbers are made up)."""
    if not has_conformance_tests(REPO / suite):
        msg = (f"no conformance tests found under {suite}/ (no test_*.py): the suite speed "
               "cannot be measured yet")
        return {"available": False, "message": msg, "table": msg, "examples_per_second": None}
    runs = [run_profile(p, suite) for p in profiles]
    rows, per_test = [], []
    for r in runs:
        total = sum(s["passing"] for s in r["stats"].values())
        eps = total / r["wall"] if r["wall"] > 0 else float("nan")
        r["examples_per_second"] = eps
        summary = r["summary"][0] if r["summary"] else f"(no pytest summary; exit code {r['returncode']})"
        rows.append([r["profile"], f"{r['wall']:.1f} s", summary, len(r["stats"]), total, f"{eps:.3g}"])
        for name, s in sorted(r["stats"].items()):
            rate = s["passing"] / s["seconds"] if s["seconds"] > 0 else float("nan")
            per_test.append([r["profile"], f"`{name}`", s["passing"], s["invalid"], s["failing"],
                             f"{s['seconds']:.2f} s", f"{rate:.3g}"])
    md = markdown_table(["profile", "wall time (pytest subprocess)", "pytest summary", "Hypothesis tests",
                         "passing examples", "examples / s (wall)"], rows)
    if per_test:
        md += "\n\n" + markdown_table(["profile", "property", "passing", "invalid", "failing",
                                       "Hypothesis phase time", "examples / s"], per_test)
    bad = [r for r in runs if r["returncode"] not in (0,)]
    notes = [f"profile {r['profile']}: pytest exit code {r['returncode']} (tests failed or errored; "
             "timings are of what ran)" for r in bad]
    return {"available": True, "runs": runs, "table": md + ("\n\n" + "\n".join(notes) if notes else ""),
            "examples_per_second": runs[0]["examples_per_second"], "headline_profile": runs[0]["profile"]}


#: for an earlier checkout whose plug-in does not neutralise Hypothesis's local constants: the same
#: neutralisation (properties.profiles.no_local_constants) for every test, so both sides draw the same
#: examples and the ratio measures the code, not a change of draws
_NEUTRALISE = """
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        yield
        return
    original, empty = providers._get_local_constants, Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()
"""


def compare(other: Path, profile: str = "ci", rounds: int = 1) -> dict:
    """suite_examples_per_second of ``profile`` in another checkout (e.g. an earlier commit, from
    ``git archive``) and in this one, alternately in one run on the same machine. Both run without
    Hypothesis's local constants (see _NEUTRALISE), so they draw the same examples."""
    import os
    import tempfile

    results = {"other": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "zsnr_bench_neutralise.py").write_text(_NEUTRALISE)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))}
        for _ in range(rounds):
            for key, repo, extra in (("other", other, ("-p", "zsnr_bench_neutralise")), ("this", None, ())):
                r = run_profile(profile, repo=repo, env=env, extra_args=extra)
                total = sum(s["passing"] for s in r["stats"].values())
                results[key].append({"wall": r["wall"], "passing": total, "eps": total / r["wall"],
                                     "summary": r["summary"], "returncode": r["returncode"]})
    best = {k: max(v, key=lambda x: x["eps"]) for k, v in results.items()}
    return {"runs": results, "ratio": best["this"]["eps"] / best["other"]["eps"], "best": best}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="suite_examples_per_second of a profile; --compare DIR: "
                                            "against another checkout, in the same run")
    p.add_argument("--profile", default="ci")
    p.add_argument("--compare", type=Path, default=None, metavar="DIR")
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args(argv)
    if a.compare is None:
        r = run_profile(a.profile)
        total = sum(s["passing"] for s in r["stats"].values())
        print(f"{a.profile}: {total} passing examples in {r['wall']:.1f} s; {r['summary']}")
        print(f"suite_examples_per_second: {total / r['wall']:.4g}")
        return 0
    res = compare(a.compare, a.profile, a.rounds)
    for key, runs in res["runs"].items():
        for r in runs:
            print(f"{key:5} {a.profile}: {r['passing']} passing examples in {r['wall']:.1f} s "
                  f"= {r['eps']:.4g} examples/s; {r['summary']}")
    print(f"suite_examples_per_second ({a.profile}): {res['best']['other']['eps']:.4g} -> "
          f"{res['best']['this']['eps']:.4g}; ratio {res['ratio']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
