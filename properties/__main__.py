"""``python -m properties``: run the conformance suite and print the conformance matrix.

Sampler x property: pass / known deviation / FAIL / skip, with the worst error seen (as a
fraction of the derived tolerance, |diff|/tol). A line per test while it runs; for each failure,
the property, sampler, minimal configuration and inputs (from the check's own record), the worst
point and a snippet that reproduces it; the deviations a subclass inherited, which still hold and
which it fixed. ``--markdown PATH`` and ``--json PATH`` write it (JSON: one record per test);
``-n auto`` runs it on pytest-xdist.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time

import pytest

from . import report
from .deviations import PROPERTIES
from .plugin import DEFAULT_IMPL
from .profiles import PROFILES

COLUMNS = [p for p in PROPERTIES if p != "generic"]


_UNIT_ROUNDOFFS = {2.0**-53: "float64", 2.0**-24: "float32", 2.0**-11: "float16", 2.0**-8: "bfloat16"}


def _dtype_name(impl) -> str:
    """The dtype the implementation says it computes in (its ``dtype``, else the dtype of its
    ``unit_roundoff``), for the matrix's header."""
    name = getattr(impl, "dtype", None)
    if name is not None:
        return str(name).removeprefix("torch.")
    u = float(impl.unit_roundoff)
    return _UNIT_ROUNDOFFS.get(u, f"unit roundoff {u:.3g}")


def _where(collector, args) -> str:
    """'dtype ..., device ...' of the loaded implementation (the options' values where it did not load)."""
    if collector.impl_dtype is None:
        return f"dtype {args.impl_dtype or 'float32'}, device {args.impl_device or 'cpu'}"
    device = f", device {collector.impl_device}" if collector.impl_device is not None else ""
    return f"dtype {collector.impl_dtype}{device}"


class _Collector:
    """Collects one record per test from the reports (also those pytest-xdist's workers send),
    and prints progress as each test finishes."""

    def __init__(self, progress=True):
        self.impl_dtype: str | None = None  # what the loaded implementation computes in
        self.impl_device = None  # and where, if it says
        self.records: dict[str, dict] = {}
        self.total = 0
        self.done = 0
        self.progress = progress

    def pytest_sessionstart(self, session):
        """Say at start what the installed implementation cannot be tested for (its
        ``limitations()``: e.g. options and methods an older diffusers release lacks)."""
        from .plugin import implementation

        try:
            impl = implementation(session.config)
        except pytest.UsageError:
            return  # reported by the run itself
        self.impl_dtype = _dtype_name(impl)
        self.impl_device = getattr(impl, "device", None)
        lines = getattr(impl, "limitations", list)()
        if lines and self.progress is not None:
            print("not testable on the installed release:\n" + "\n".join(f"  {ln}" for ln in lines), flush=True)

    def pytest_collection_finish(self, session):
        self.total = self.total or len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.total = max(self.total, len(ids))

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        # no dots: this command prints a line per test instead
        category = report.outcome if report.when == "call" or report.failed or report.skipped else ""
        return category, "", ""

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
        for key, name in (("zsnr_deviation_id", "deviation_id"), ("zsnr_inherited", "inherited"),
                          ("zsnr_impl_deprecation_warnings", "impl_deprecation_warnings")):
            if key in props:
                rec[name] = props[key]
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
            failure = props.get("zsnr_failure")
            if failure:
                rec["failure"] = failure
                rec["error"] = failure.get("error", "")
                call = failure.get("call") or {}
                rec["counterexample"] = "; ".join(filter(None, [call.get("config"), ", ".join(call.get("args", []))]))
            elif "error" not in rec:
                text = str(report.longrepr)
                rec["error"] = next((ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")),
                                    text.strip().splitlines()[-1] if text.strip() else "")
        if report.when == "teardown":
            self.done += 1
            if self.progress:
                print(f"[{self.done:>3}/{self.total or '?'}] {rec.get('property') or '-':<18} "
                      f"{rec.get('deviation_id') or rec.get('sampler') or '-'!s:<32} {_status(rec)}  ({rec['duration_s']:.1f} s)",
                      flush=True)


def _status(rec) -> str:
    if rec["outcome"] == "failed":
        return "FAIL"
    if rec["outcome"] == "skipped":
        return "skip"
    if rec.get("property") == "declared_deviation":
        return "reproduces" if rec.get("deviations") else "does not reproduce"
    devs = rec.get("deviations") or {}
    worst = rec.get("worst_error") or 0.0
    return (f"dev[{len(devs)}]" if devs else "pass") + (f" ({worst:.2g})" if worst else "")


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
            body = report.summary(r["failure"]) if r.get("failure") else r.get("error", "")
            out += [f"### `{r['node_id']}`", "", "```", body, "```", ""]
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


def _inherited_lines(records) -> list[str]:
    """Which deviations inherited by a subclass still hold, and which the subclass fixed."""
    inherited = [r for r in records if r.get("property") == "declared_deviation" and r.get("inherited")]
    if not inherited:
        return []
    holds = sorted(r["deviation_id"] for r in inherited if r["outcome"] == "passed" and r.get("deviations"))
    fixed = sorted(r["deviation_id"] for r in inherited if r["outcome"] == "passed" and not r.get("deviations"))
    failed = sorted(r["deviation_id"] for r in inherited if r["outcome"] == "failed")
    out = [f"inherited deviations (declared for the diffusers class a replacement subclasses): {len(inherited)}",
           f"  still hold: {', '.join(holds) or 'none'}", f"  fixed by the subclass: {', '.join(fixed) or 'none'}"]
    if failed:
        out.append(f"  no longer reproduce (reported as FAIL): {', '.join(failed)}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m properties", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default=None, help=f"module:attribute (default {DEFAULT_IMPL}; env ZSNR_IMPL)")
    p.add_argument("--impl-dtype", default=None, help="float32 (default), float16, bfloat16")
    p.add_argument("--impl-device", default=None, help="cpu (default), cuda")
    p.add_argument("--impl-timeout", default=None, type=float,
                   help="time limit in seconds of one call into the implementation (default 60; 0: none)")
    p.add_argument("--hypothesis-profile", "--zsnr-profile", dest="profile", default="ci",
                   choices=PROFILES + tuple(f"zsnr-{n}" for n in PROFILES))
    p.add_argument("--markdown", metavar="PATH")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression (a subset of the suite)")
    p.add_argument("-n", "--workers", default=None,
                   help="run in parallel with pytest-xdist: a number of processes, or auto")
    p.add_argument("--full-traceback", action="store_true", help="print pytest's full tracebacks of failures")
    p.add_argument("--quiet", action="store_true", help="no progress line per test")
    args = p.parse_args(argv)
    pyargs = ["--pyargs", "properties.conformance", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
              f"--zsnr-profile={args.profile}", f"--tb={'long' if args.full_traceback else 'no'}"]
    if not args.full_traceback:
        pyargs.append("-rN")  # this command prints its own summary of each failure
    if not _plugin_installed():  # a plain checkout (a bare GPU machine): load the plug-in by name
        pyargs += ["-p", "properties.plugin"]
    if args.workers:
        if importlib.util.find_spec("xdist") is None:
            p.error("-n needs pytest-xdist: pip install pytest-xdist (or zsnr[conformance])")
        pyargs += ["-n", str(args.workers)]
    for opt, val in (("--impl", args.impl), ("--impl-dtype", args.impl_dtype), ("--impl-device", args.impl_device),
                     ("--impl-timeout", args.impl_timeout), ("-k", args.keyword)):
        if val is not None:
            pyargs += [opt, str(val)]
    collector = _Collector(progress=not args.quiet)
    start = time.perf_counter()
    code = pytest.main(pyargs, plugins=[collector])
    elapsed = time.perf_counter() - start
    records = sorted(collector.records.values(), key=lambda r: r["node_id"])
    if not records:
        print("no conformance test ran", file=sys.stderr)
        return int(code) or 1
    table, cols = matrix(records, compact=True)
    header = (f"# zsnr conformance matrix\n\nimplementation: {args.impl or DEFAULT_IMPL}"
              f" ({_where(collector, args)}); "
              f"hypothesis profile {args.profile}; {len(records)} tests in {elapsed:.1f} s"
              f"{f' on {args.workers} workers' if args.workers else ''}.\n"
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
        ok = sum(r["outcome"] == "passed" and bool(r.get("deviations")) for r in reproduced)
        skipped = sum(r["outcome"] == "skipped" for r in reproduced)
        print(f"\ndeclared deviations whose example still reproduces: {ok} of {len(reproduced) - skipped}"
              + (f" ({skipped} not checked in this dtype)" if skipped else ""))
    for line in _inherited_lines(records):
        print(line)
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
    quiet = sum(r.get("impl_deprecation_warnings", 0) for r in records)
    if quiet:
        print(f"\n{quiet} deprecation warnings raised inside the implementation's calls were captured "
              "(not shown; other warnings are).")
    fails = [r for r in records if r["outcome"] == "failed"]
    for r in fails:
        print(f"\nFAIL {r['node_id']}")
        if r.get("failure"):
            print(report.summary(r["failure"]).replace("(full traceback: --tb=long)", "(full traceback: --full-traceback)"))
        else:
            print(f"  {r.get('error', '')}")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(to_markdown(*matrix(records), records, header))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1, default=str)
    return 1 if fails or int(code) not in (0, 5) else 0


if __name__ == "__main__":
    raise SystemExit(main())
