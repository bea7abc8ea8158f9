"""Run every benchmark; write Markdown tables and PNG plots to benchmarks/results/.

    python benchmarks/run.py            # full run
    python benchmarks/run.py --quick    # a minute or two on 2 CPU cores
    python benchmarks/run.py --out DIR  # write the results elsewhere

Besides its tables it prints one line per headline figure as ``name: value``:
``oracle_worst_ulp``, ``step_speed_ratio_vs_diffusers``, ``suite_examples_per_second``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import HEADLINE_RE, REPO, RESULTS, headline, machine_markdown


def oracle_accuracy(quick: bool) -> dict:
    """Part 1: benchmarks/oracle_accuracy.py run as a script (same sweep in both modes, ~40 s):
    its tables and its ``oracle_worst_ulp: value`` line."""
    cmd = [sys.executable, "-m", "benchmarks.oracle_accuracy"]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"table": f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}):\n\n```\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}\n```",
                "worst": "n/a (oracle_accuracy failed)"}
    worst, body = "n/a (no oracle_worst_ulp line)", []
    for line in proc.stdout.splitlines():
        m = HEADLINE_RE.match(line)
        if m and m.group(1) == "oracle_worst_ulp":
            worst = m.group(2)
        else:
            body.append(line)
    return {"table": "\n".join(body).strip(), "worst": worst}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, dev profile only")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: oracle,impl,speed,suite")
    a = p.parse_args(argv)
    skip = {s for s in a.skip.split(",") if s}
    unknown = skip - {"oracle", "impl", "speed", "suite"}
    if unknown:
        p.error(f"--skip: unknown parts {sorted(unknown)}; allowed: oracle, impl, speed, suite")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    sections, heads, timings = [], {}, {}

    def part(name, title, fn):
        t0 = time.perf_counter()
        res = fn()
        timings[name] = time.perf_counter() - t0
        print(f"\n## {title}  ({timings[name]:.1f} s)\n", flush=True)
        return res

    if "oracle" not in skip:
        r = part("oracle", "1. Oracle accuracy (ULP vs mpmath)", lambda: oracle_accuracy(a.quick))
        print(r["table"])
        sections.append(("1. Oracle accuracy (ULP against mpmath)", r["table"]))
        heads["oracle_worst_ulp"] = r["worst"]
    if "impl" not in skip:
        from benchmarks import impl_accuracy

        r = part("impl", "2. Implementation accuracy", lambda: impl_accuracy.run(a.quick, out))
        text = ("Relative error = max over elements of |impl − oracle| / Σ|terms| (the terms of the exact "
                "step as a linear map of sample, model output and noise; for ᾱ and σ: |oracle|). "
                f"Step inputs: latents {'×'.join(map(str, r['shape']))}, fresh N(0, I) per step. "
                "Euler/EA are compared with the oracle carrying diffusers' 2⁻²⁴ floor of ᾱ_T.\n\n"
                "Schedule (float32, built by diffusers):\n\n" + r["schedule_table"] +
                "\n\nOne step() per scheduled timestep (trailing spacing; u = unit roundoff of the dtype):\n\n"
                + r["step_table"] + "\n\nPlots: " + ", ".join(f"![{n}]({n})" for n in r.get("plots", [])))
        print(r["schedule_table"] + "\n\n" + r["step_table"])
        sections.append(("2. Implementation accuracy (diffusers vs oracle)", text))
    if "speed" not in skip:
        from benchmarks import speed

        r = part("speed", "3a. Step speed", lambda: speed.run(a.quick))
        text = (speed.__doc__.split("\n", 2)[2].strip() + "\n\n" + r["bandwidth_line"] +
                "\n\nTimes per call: median [min – max] of " + str(r["repeats"]) + " repeats.\n\n" + r["table"] +
                "\n\nBandwidth bound = (inputs read + output written, float64) / copy bandwidth. "
                "The headline ratio is the geometric mean of the median ratios above.")
        print(r["bandwidth_line"] + "\n\n" + r["table"])
        sections.append(("3a. Step speed: oracle vs diffusers", text))
        heads["step_speed_ratio_vs_diffusers"] = r["ratio_geomean"]
    if "suite" not in skip:
        from benchmarks import suite

        profiles = ("dev",) if a.quick else ("dev", "ci")
        r = part("suite", "3b. Conformance suite speed", lambda: suite.run(profiles))
        print(r["table"])
        sections.append(("3b. Conformance suite speed", r["table"]))
        heads["suite_examples_per_second"] = (r["examples_per_second"] if r["available"] else
                                              "n/a (no conformance tests yet)")
    total = time.perf_counter() - t_all
    md = [f"# Benchmark results ({'--quick' if a.quick else 'full run'})", "",
          (f"Command: `python benchmarks/run.py{' --quick' if a.quick else ''}`; total {total:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})."), "", "Machine:", "",
          machine_markdown(), "", "Headline figures:", "", "```"]
    md += [headline(k, v) for k, v in heads.items()] + ["```", ""]
    for title, text in sections:
        md += [f"## {title}", "", text, ""]
    name = "summary_quick.md" if a.quick else "summary.md"
    (out / name).write_text("\n".join(md))
    print(f"\nResults in {out / name} (total {total:.1f} s)\n")
    for k, v in heads.items():
        print(headline(k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
