"""``python -m benchmarks.history``: replay zsnr's conformance suite over diffusers' releases.

For each release in ``--releases`` (default :data:`RELEASES`: the last patch of every minor series
0.25 ... 0.42, plus 0.27.0, whose Euler ``add_noise`` used the begin index, #7348), the command

1. makes (or reuses) a cached virtual environment ``benchmarks/.history/diffusers-<release>``
   (git-ignored). The heavy, release-independent packages (torch 2.13.0 from local disk, NumPy,
   Hypothesis, pytest, ...) are installed once, pinned by ``.ci/constraints.txt``, into
   ``benchmarks/.history/base``, which each release's environment sees through a ``.pth`` file;
   the release's own environment gets diffusers at that release, with the pins of :data:`PINS`;
2. runs ``python -m properties --json ... --hypothesis-profile ci`` there (``CI=1``), under
   ``nice``, one release at a time unless ``--jobs`` says otherwise;
3. writes ``benchmarks/results/history.md`` and ``history.json``: release x sampler x property ->
   verdict (pass / dev[n] / FAIL / skip), each undeclared FAIL with its minimal configuration and,
   where :data:`EXPLANATIONS` has it, what it is (a bug fixed in a later release, with the fix; an
   open bug; ...), the declared deviations met per release and what the release cannot be tested
   for.

The driver itself needs only the standard library (a fresh clone, any Python >= 3.11). Nothing is
installed or run by the tests: ``benchmarks/test_benchmarks.py`` checks the table-writing on a
synthetic result.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".history"
RESULTS = ROOT / "benchmarks" / "results"
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"

#: the last patch of every minor series from 0.25 to 0.42, plus 0.27.0 (#7348: Euler add_noise with
#: the begin index, 0.27.0-0.27.1)
RELEASES = ("0.25.1", "0.26.3", "0.27.0", "0.27.2", "0.28.2", "0.29.2", "0.30.3", "0.31.0", "0.32.2",
            "0.33.1", "0.34.0", "0.35.2", "0.36.0", "0.37.1", "0.38.0", "0.39.0", "0.40.0", "0.41.0",
            "0.42.1")

#: packages installed once into the shared base environment (versions from .ci/constraints.txt)
BASE_PACKAGES = ("torch", "numpy", "hypothesis", "pytest", "pytest-xdist", "execnet", "mpmath", "scipy",
                 "packaging")

#: (release range, extra pins, why): what an old release needs beside it, found by installing and
#: importing each (torch 2.13.0 and NumPy 2.4.6 from .ci/constraints.txt work with every release
#: from 0.25 on: no numpy<2 pin is needed)
PINS = (
    ("<0.29", ("huggingface_hub<0.26",),
     "diffusers < 0.29 imports huggingface_hub.cached_download, which huggingface_hub 0.26 removed"),
    ("<0.35", ("transformers==4.46.3",),
     ("before 0.35 rescale_noise_cfg lives only in the pipelines, whose modules import transformers "
      "(4.46.3: the last 4.46 patch, which takes huggingface_hub < 0.26 and NumPy 2)")),
)

#: undeclared FAILs of the replay, explained: (release range, sampler, property, what, link).
#: A FAIL that matches none is reported as unexplained.
EXPLANATIONS: tuple[tuple[str, str, str, str, str], ...] = ()


# --- versions and ranges (standard library only) ----------------------------------------------


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


def in_range(release: str, spec: str) -> bool:
    """Whether ``release`` satisfies a comma-separated specifier such as ">=0.25,<0.31"
    (operators >=, >, <=, <, ==)."""
    v = _version(release)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"(>=|<=|==|>|<)\s*([\d.]+)", part)
        if m is None:
            raise ValueError(f"release range {spec!r}: cannot read {part!r} (use >=, >, <=, <, == and a version)")
        op, w = m.group(1), _version(m.group(2))
        ok = {">=": v >= w, ">": v > w, "<=": v <= w, "<": v < w, "==": v == w}[op]
        if not ok:
            return False
    return True


def pins_for(release: str) -> list[str]:
    return [p for spec, pins, _ in PINS if in_range(release, spec) for p in pins]


# --- environments --------------------------------------------------------------------------------


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    out = subprocess.run([str(_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _constraints(release: str | None, pins: list[str], path: Path) -> Path:
    """.ci/constraints.txt with diffusers at ``release`` (or dropped), less what ``pins`` re-pins."""
    pinned = {re.split(r"[<>=!~\[ ]", p, maxsplit=1)[0].lower().replace("_", "-") for p in pins}
    lines = []
    for line in CONSTRAINTS.read_text().splitlines():
        name = re.split(r"[<>=!~\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if name == "diffusers":
            if release is not None:
                lines.append(f"diffusers=={release}")
            continue
        if name not in pinned:
            lines.append(line.strip())
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(cmd, log: Path, check: bool = False, **kw):
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        return subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, check=check, **kw)


def ensure_base(log: Path) -> Path:
    """The shared environment with torch and the suite's other packages, made once."""
    base = CACHE / "base"
    ready = base / ".zsnr-ready"
    if ready.exists():
        return base
    if not base.exists():
        _run([sys.executable, "-m", "venv", base], log, check=True)
    cons = _constraints(None, [], CACHE / "constraints-base.txt")
    _run([_python(base), "-m", "pip", "install", "-q", "-c", cons, *BASE_PACKAGES], log, check=True)
    ready.write_text(" ".join(BASE_PACKAGES) + "\n")
    return base


def ensure_release(release: str, base: Path, log: Path) -> tuple[Path, dict]:
    """The release's cached environment (reused when it was made with the same pins), and the
    versions installed there of the packages that matter."""
    venv = CACHE / f"diffusers-{release}"
    ready = venv / ".zsnr-ready"
    pins = pins_for(release)
    want = json.dumps({"diffusers": release, "pins": pins})
    if not (ready.exists() and ready.read_text() == want):
        if not venv.exists():
            _run([sys.executable, "-m", "venv", venv], log, check=True)
        # the base's packages, visible after the release's own (which take precedence)
        (_site_packages(venv) / "_zsnr_history_base.pth").write_text(str(_site_packages(base)) + "\n")
        cons = _constraints(release, pins, CACHE / f"constraints-{release}.txt")
        _run([_python(venv), "-m", "pip", "install", "-q", "-c", cons, f"diffusers=={release}", *pins],
             log, check=True)
        ready.write_text(want)
    probe = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
             "('diffusers', 'huggingface_hub', 'transformers', 'torch', 'numpy', 'hypothesis') "
             "if __import__('importlib.util').util.find_spec(n.replace('-', '_'))}))")
    out = subprocess.run([str(_python(venv)), "-c", probe], capture_output=True, text=True, check=True)
    installed = json.loads(out.stdout)
    if installed.get("diffusers") != release:
        raise RuntimeError(f"{venv}: diffusers {installed.get('diffusers')} installed, not {release}")
    return venv, installed


def run_release(release: str, base: Path, timeout: float) -> dict:
    """Install (or reuse) the release's environment and run the suite there with the ci profile."""
    runs = CACHE / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / f"{release}.log"
    log.write_text("")
    out = {"release": release, "pins": pins_for(release)}
    start = time.perf_counter()
    try:
        venv, out["installed"] = ensure_release(release, base, log)
        out["install_s"] = round(time.perf_counter() - start, 1)  # ~0 when the cached one is reused
    except (subprocess.CalledProcessError, RuntimeError, ValueError) as exc:
        out.update(status="install failed", error=f"{type(exc).__name__}: {exc} (log: {log})")
        return out
    report = runs / f"{release}.json"
    report.unlink(missing_ok=True)
    # offline, and Hugging Face's caches inside the replay's own folder (transformers < 5 migrates one)
    env = dict(os.environ, CI="1", PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(CACHE / "hf-home"))
    start = time.perf_counter()
    try:
        proc = _run([_python(venv), "-m", "properties", "--hypothesis-profile", "ci", "--json", report], log,
                    cwd=ROOT, env=env, timeout=timeout)
        out["exit_code"] = proc.returncode
    except subprocess.TimeoutExpired:
        out["exit_code"] = None
        out["error"] = f"timed out after {timeout:g} s (log: {log})"
    out["elapsed_s"] = round(time.perf_counter() - start, 1)
    text = log.read_text()
    out["limitations"] = _limitations(text)
    if not report.exists():
        out.update(status="crashed", error=out.get("error") or _tail(text))
        return out
    out["status"] = "ran"
    out["records"] = json.loads(report.read_text())
    return out


def _limitations(log_text: str) -> list[str]:
    """The lines ``python -m properties`` printed under 'not testable on the installed release:'."""
    lines = log_text.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("not testable on the installed release:"):
            out = []
            for ln in lines[k + 1:]:
                if not ln.startswith("  "):
                    break
                out.append(ln.strip())
            return out
    return []


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


# --- the table -----------------------------------------------------------------------------------

#: the columns, in the matrix's order (properties.deviations.PROPERTIES less "generic")
PROPERTY_ORDER = ("schedule", "step", "chaining", "zero_snr", "starts_at_T", "finite_at_T", "loop", "guidance",
                  "add_noise", "add_noise_in_loop", "velocity", "training_snr", "min_snr")
SAMPLER_ORDER = ("ddpm", "ddim", "euler", "euler_ancestral", "rescale_noise_cfg")


def verdict(records: list[dict]) -> str:
    """One cell, as ``python -m properties`` gives it: FAIL, skip, dev[n] (n declared deviations
    met) or pass."""
    if not records:
        return "–"
    if any(r.get("outcome") == "failed" for r in records):
        return "FAIL"
    ran = [r for r in records if r.get("outcome") == "passed"]
    if not ran:
        return "skip"
    devs = {d for r in ran for d in r.get("deviations") or {}}
    return f"dev[{len(devs)}]" if devs else "pass"


def explain(release: str, sampler: str, prop: str) -> tuple[str, str] | None:
    for spec, smp, p, what, link in EXPLANATIONS:
        if smp == sampler and p == prop and in_range(release, spec):
            return what, link
    return None


def summarize(run: dict) -> dict:
    """A release's run reduced to what the table shows: cells, undeclared FAILs (with the minimal
    configuration and the explanation), the declared deviations met and reproduced."""
    release = run["release"]
    out = {k: run[k] for k in ("release", "status", "pins", "installed", "install_s", "elapsed_s", "exit_code",
                               "error", "limitations") if k in run}
    records = run.get("records") or []
    cells: dict[str, dict[str, list]] = {}
    for r in records:  # the generic checks' records name their scheduler class as the sampler
        prop, sampler = r.get("property"), r.get("sampler") or "-"
        if prop in PROPERTY_ORDER:
            cells.setdefault(sampler, {}).setdefault(prop, []).append(r)
    out["cells"] = {s: {p: verdict(rs) for p, rs in props.items()} for s, props in cells.items()}
    fails = []
    for r in records:
        if r.get("outcome") != "failed":
            continue
        sampler, prop = r.get("sampler") or "-", r.get("property") or "-"
        if prop == "declared_deviation":
            sampler = r.get("deviation_id") or sampler
        failure = r.get("failure") or {}
        call = failure.get("call") or {}
        fail = {"node_id": r.get("node_id"), "sampler": sampler, "property": prop,
                "configuration": call.get("config") or r.get("counterexample") or "",
                "inputs": ", ".join(call.get("args", [])),
                "error": (r.get("error") or "").strip().splitlines()[0] if r.get("error") else ""}
        known = explain(release, sampler, prop)
        if known is not None:
            fail["explanation"], fail["link"] = known
        fails.append(fail)
    out["fails"] = fails
    met: dict[str, set] = {}
    for r in records:
        if r.get("property") == "declared_deviation":
            continue
        for d in r.get("deviations") or {}:
            met.setdefault(r.get("sampler") or "-", set()).add(d)
    out["deviations_met"] = {s: sorted(v) for s, v in sorted(met.items())}
    repro = [r for r in records if r.get("property") == "declared_deviation"]
    out["deviations_reproduced"] = sorted(r["deviation_id"] for r in repro
                                          if r.get("outcome") == "passed" and r.get("deviations"))
    out["counts"] = {k: sum(r.get("outcome") == k for r in records) for k in ("passed", "failed", "skipped")}
    return out


def reexplain(summary: dict) -> dict:
    """A stored summary with its FAILs' explanations taken from the current EXPLANATIONS."""
    fails = []
    for f in summary.get("fails", []):
        f = {k: v for k, v in f.items() if k not in ("explanation", "link")}
        known = explain(summary["release"], f["sampler"], f["property"])
        if known is not None:
            f["explanation"], f["link"] = known
        fails.append(f)
    return {**summary, "fails": fails}


def _sorted_releases(results: dict) -> list[str]:
    return sorted(results, key=_version)


def to_markdown(results: dict, header: str = "") -> str:
    """history.md: a summary per release, the release x property table per sampler, each
    undeclared FAIL with its minimal configuration and explanation, and the deviations met."""
    rels = _sorted_releases(results)
    out = ["# zsnr across diffusers releases", ""]
    if header:
        out += [header, ""]
    out += ["| release | status | tests | passed | skipped | FAIL | unexplained FAIL | declared deviations met | time (s) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v in rels:
        s = results[v]
        c = s.get("counts", {})
        fails = s.get("fails", [])
        unexplained = sum("explanation" not in f for f in fails)
        n_met = len({d for ids in s.get("deviations_met", {}).values() for d in ids})
        out.append(f"| {v} | {s.get('status', '?')} | {sum(c.values())} | {c.get('passed', 0)} | "
                   f"{c.get('skipped', 0)} | {len(fails)} | {unexplained} | {n_met} | {s.get('elapsed_s', '')} |")
    samplers = [x for x in SAMPLER_ORDER if any(x in results[v].get("cells", {}) for v in rels)]
    samplers += sorted({x for v in rels for x in results[v].get("cells", {})} - set(samplers))
    for sampler in samplers:
        props = [p for p in PROPERTY_ORDER if any(p in results[v].get("cells", {}).get(sampler, {}) for v in rels)]
        out += ["", f"## {sampler}", "", "| release | " + " | ".join(props) + " |", "|---" * (len(props) + 1) + "|"]
        for v in rels:
            row = results[v].get("cells", {}).get(sampler, {})
            out.append(f"| {v} | " + " | ".join(row.get(p, "–") for p in props) + " |")
    fails = [(v, f) for v in rels for f in results[v].get("fails", [])]
    out += ["", "## Undeclared FAILs", ""]
    if not fails:
        out.append("None.")
    for v, f in fails:
        what = (f"**{f['explanation']}** ({f['link']})" if "explanation" in f else "**unexplained**")
        out += [f"- **{v}** `{f['sampler']}` / `{f['property']}`: {what}",
                f"  - minimal configuration: `{f['configuration'] or '?'}`"
                + (f"; inputs `{f['inputs']}`" if f.get("inputs") else ""),
                f"  - {f['error']}" if f.get("error") else "  - (no message)"]
    out += ["", "## Declared deviations met, per release", ""]
    every = sorted({d for v in rels for ids in results[v].get("deviations_met", {}).values() for d in ids})
    if every:
        out += ["| deviation | " + " | ".join(rels) + " |", "|---" * (len(rels) + 1) + "|"]
        for d in every:
            cells = ["x" if any(d in ids for ids in results[v].get("deviations_met", {}).values()) else ""
                     for v in rels]
            out.append(f"| `{d}` | " + " | ".join(cells) + " |")
    else:
        out.append("None.")
    out += ["", "## Not testable, per release", ""]
    for v in rels:
        s = results[v]
        lines = s.get("limitations") or []
        extra = [s["error"]] if s.get("status") != "ran" and s.get("error") else []
        pins = s.get("pins") or []
        out.append(f"- **{v}**" + (f" (pins: {', '.join(pins)})" if pins else "") + ": "
                   + ("; ".join(re.sub(r"^diffusers \S+: ", "", ln) for ln in lines + extra)
                      or "everything testable"))
    return "\n".join(out) + "\n"


def write(results: dict, md: Path, js: Path, header: str = "") -> None:
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(to_markdown(results, header))
    js.write_text(json.dumps({"header": header, "releases": {v: results[v] for v in _sorted_releases(results)}},
                             indent=1, sort_keys=True) + "\n")


def main(argv=None) -> int:
    global CACHE
    p = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--releases", default=",".join(RELEASES),
                   help="comma-separated diffusers releases (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=1, help="releases run at once (default 1)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per release's run (default 3600)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the installs and runs (default 10)")
    p.add_argument("--out", default=str(RESULTS / "history"),
                   help="output path without suffix (default benchmarks/results/history)")
    p.add_argument("--cache", default=str(CACHE),
                   help="where the environments and run logs are kept (default benchmarks/.history)")
    p.add_argument("--rewrite", action="store_true",
                   help="install and run nothing: rewrite OUT.md/.json from OUT.json with the current EXPLANATIONS")
    p.add_argument("--merge", action="store_true",
                   help="keep the other releases' results already in OUT.json (re-run only --releases)")
    args = p.parse_args(argv)
    releases = [r.strip() for r in args.releases.split(",") if r.strip()]
    for r in releases:
        if not re.fullmatch(r"\d+\.\d+\.\d+", r):
            p.error(f"--releases: {r!r} is not a release such as 0.25.1")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    out = Path(args.out)
    if args.rewrite:
        data = json.loads(out.with_suffix(".json").read_text())
        results = {v: reexplain(s) for v, s in data["releases"].items()}
        write(results, out.with_suffix(".md"), out.with_suffix(".json"), data.get("header", ""))
        print(f"rewrote {out}.md and .json")
        return 0
    if args.nice:
        os.nice(args.nice)
    CACHE = Path(args.cache).resolve()
    CACHE.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = ensure_base(CACHE / "base.log")
    results = {}
    if args.merge and out.with_suffix(".json").exists():
        results = json.loads(out.with_suffix(".json").read_text())["releases"]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_release, r, base, args.timeout): r for r in releases}
        for fut in concurrent.futures.as_completed(futures):
            s = summarize(fut.result())
            results[s["release"]] = s
            print(f"{s['release']}: {s.get('status')}, {len(s.get('fails', []))} FAIL "
                  f"({sum('explanation' not in f for f in s.get('fails', []))} unexplained), "
                  f"{s.get('elapsed_s', '-')} s", flush=True)
            write(results, out.with_suffix(".md"), out.with_suffix(".json"), _header(args))
    print(f"{len(releases)} releases in {time.perf_counter() - start:.0f} s; wrote {out}.md and .json")
    bad = [v for v, s in results.items() if s.get("status") != "ran"]
    return 1 if bad else 0


def _header(args) -> str:
    return (f"`python -m benchmarks.history` (ci profile, float32, CPU; torch 2.13.0), "
            f"{datetime.date.today().isoformat()}. Cells: pass / dev[n] (n declared deviations met) / "
            f"FAIL (undeclared) / skip / – (not run).")


if __name__ == "__main__":
    raise SystemExit(main())
