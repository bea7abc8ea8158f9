"""``python -m properties``: run the conformance suite and print the conformance matrix.

Sampler x property: pass / known deviation / FAIL / skip, with the worst error seen (as a
fraction of the derived tolerance, |diff|/tol) and, for a failure, the minimal counterexample.
``--markdown PATH`` and ``--json PATH`` write it (JSON: one record per test).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

import pytest

from .deviations import PROPERTIES
from .plugin import DEFAULT_IMPL

COLUMNS = [p for p in PROPERTIES if p != "generic"]


class _Collector:
    def __init__(self):
        self.records: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        rec = self.records.setdefault(report.nodeid, {"node_id": report.nodeid, "outcome": "passed",
                                                      "duration_s": 0.0})
        rec["duration_s"] += report.duration
        props = dict(report.user_properties)
        rec["property"] = props.get("zsnr_property", rec.get("property"))
        sampler = props.get("zsnr_sampler", rec.get("sampler"))
        param = re.search(r"\[(.*)\]$", report.nodeid)
        if sampler == "generic" and param:
            sampler = param.group(1)
        rec["sampler"] = sampler
        if "zsnr_worst_error" in props:
            rec["worst_error"] = props["zsnr_worst_error"]
            rec["deviations"] = props.get("zsnr_deviations", {})
            rec["deviation_worst"] = props.get("zsnr_deviation_worst", {})
            rec["fixed"] = props.get("zsnr_fixed", {})
        if report.skipped and rec["outcome"] == "passed":
            rec["outcome"] = "skipped"
            rec["reason"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if report.failed:
            rec["outcome"] = "failed"
            text = str(report.longrepr)
            first = next((ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")), "")
            rec["error"] = first
            m = re.search(r"Falsifying (?:explicit )?example:(.*?)(?:\n\S|\Z)", text, re.DOTALL)
            rec["counterexample"] = m.group(1).replace("\nE", "\n").strip() if m else ""


def _cell(recs, compact=False):
    if not recs:
        return "–"
    if any(r["outcome"] == "failed" for r in recs):
        return "FAIL"
    ran = [r for r in recs if r["outcome"] == "passed"]
    if not ran:
        return "skip"
    devs = sorted({d for r in ran for d in r.get("deviations", {})})
    worst = max((r.get("worst_error", 0.0) for r in ran), default=0.0)
    label = (f"dev[{len(devs)}]" if compact else f"deviation: {', '.join(devs)}") if devs else "pass"
    return label + (f" ({worst:.2g})" if worst else "")


def matrix(records, compact=False):
    rows: dict[str, dict[str, list]] = {}
    for r in records:
        if r.get("property") in COLUMNS:
            rows.setdefault(r["sampler"] or "-", {}).setdefault(r["property"], []).append(r)
    cols = [c for c in COLUMNS if any(c in v for v in rows.values())]
    return [[name] + [_cell(props.get(c, []), compact) for c in cols] for name, props in rows.items()], cols


def to_markdown(table, cols, records, header):
    out = [header, "", "| sampler | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in table]
    devs = {}
    for r in records:
        devs.update(r.get("deviations", {}))
    fails = [r for r in records if r["outcome"] == "failed"]
    if fails:
        out += ["", "## Failures", ""]
        for r in fails:
            out += [f"### `{r['node_id']}`", "", r.get("error", ""), "", "```", r.get("counterexample", ""), "```", ""]
    if devs:
        out += ["", "## Known deviations met", ""] + [f"- **{k}**: {v}" for k, v in sorted(devs.items())]
    worst, fixed = _model_summary(records)
    if worst:
        out += ["", "## Worst |impl - model| / tolerance inside each deviation's region", ""]
        out += [f"- **{k}**: {v:.3g}" for k, v in sorted(worst.items())]
    if fixed:
        out += ["", "## Matched the oracle, not the declared model (fixed here)", ""]
        out += [f"- **{k}**: {v}" for k, v in sorted(fixed.items())]
    return "\n".join(out) + "\n"


def _model_summary(records):
    """Per deviation: the worst |impl - model| / tolerance seen, and where it was found fixed."""
    worst, fixed = {}, {}
    for r in records:
        for d, w in r.get("deviation_worst", {}).items():
            worst[d] = max(worst.get(d, 0.0), w)
        for d, m in r.get("fixed", {}).items():
            fixed.setdefault(d, f"{r['node_id'].split('::')[-1]}: {m}")
    return worst, fixed


def _plugin_installed() -> bool:
    """Whether pytest will load the plug-in through its entry point (scanned as pluggy does)."""
    from importlib.metadata import distributions

    return any(ep.group == "pytest11" and ep.name == "zsnr" for d in distributions() for ep in d.entry_points)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m properties", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default=None, help=f"module:attribute (default {DEFAULT_IMPL}; env ZSNR_IMPL)")
    p.add_argument("--impl-dtype", default=None, help="float32 (default), float16, bfloat16")
    p.add_argument("--impl-device", default=None, help="cpu (default), cuda")
    p.add_argument("--hypothesis-profile", default="ci", choices=("dev", "ci", "thorough"))
    p.add_argument("--markdown", metavar="PATH")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression (a subset of the suite)")
    args = p.parse_args(argv)
    pyargs = ["--pyargs", "properties.conformance", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
              f"--hypothesis-profile={args.hypothesis_profile}"]
    if not _plugin_installed():  # a plain checkout (a bare GPU machine): load the plug-in by name
        pyargs += ["-p", "properties.plugin"]
    for opt, val in (("--impl", args.impl), ("--impl-dtype", args.impl_dtype), ("--impl-device", args.impl_device),
                     ("-k", args.keyword)):
        if val:
            pyargs += [opt, val]
    collector = _Collector()
    start = time.perf_counter()
    code = pytest.main(pyargs, plugins=[collector])
    elapsed = time.perf_counter() - start
    records = list(collector.records.values())
    if not records:
        print("no conformance test ran", file=sys.stderr)
        return int(code) or 1
    table, cols = matrix(records, compact=True)
    header = (f"# zsnr conformance matrix\n\nimplementation: {args.impl or DEFAULT_IMPL}"
              f" (dtype {args.impl_dtype or 'float32'}, device {args.impl_device or 'cpu'}); "
              f"hypothesis profile {args.hypothesis_profile}; {len(records)} tests in {elapsed:.1f} s.\n"
              f"Cells: pass / deviation: declared known deviations met / FAIL / skip, with the worst "
              f"|impl - oracle| / tolerance seen in parentheses.")
    widths = [max(len(str(r[i])) for r in table + [["sampler"] + cols]) for i in range(len(cols) + 1)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(["sampler"] + cols, widths)))
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    met = {}
    reproduced = [r for r in records if r.get("property") == "declared_deviation"]
    if reproduced:
        ok = sum(r["outcome"] == "passed" for r in reproduced)
        skipped = sum(r["outcome"] == "skipped" for r in reproduced)
        print(f"\ndeclared deviations whose example still reproduces: {ok} of {len(reproduced) - skipped}"
              + (f" ({skipped} not checked in this dtype)" if skipped else ""))
    for r in records:
        if r.get("property") == "declared_deviation":
            continue
        for d in r.get("deviations", {}):
            met.setdefault(r.get("sampler"), set()).add(d)
    if met:
        print("\ndev[n]: declared known deviations met (python -m properties --markdown for details):")
        for sampler, ids in met.items():
            print(f"  {sampler}: {', '.join(sorted(ids))}")
    worst, fixed = _model_summary(records)
    if worst:
        print("\nworst |impl - model| / tolerance inside each deviation's region:")
        for d, w in sorted(worst.items()):
            print(f"  {d}: {w:.3g}")
    if fixed:
        print("\nmatched the oracle, not the declared model (fixed here):")
        for d, m in sorted(fixed.items()):
            print(f"  {d}: {m}")
    fails = [r for r in records if r["outcome"] == "failed"]
    for r in fails:
        print(f"\nFAIL {r['node_id']}\n  {r.get('error', '')}\n  counterexample: {r.get('counterexample', '')[:2000]}")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(to_markdown(*matrix(records), records, header))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1, default=str)
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
