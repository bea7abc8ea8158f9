"""GPU check: diffusers' samplers in float32 / float16 / bfloat16 on a device, against the oracle.

Two parts, one report (--out):

1. The conformance suite's finiteness and equivalence properties (step, finite at T, zero SNR,
   whole loop, guidance rescale; ``python -m properties -k ...`` with --impl-device and
   --impl-dtype) for each dtype, ci profile: a summary table here, each dtype's full matrix in
   ``<out stem>_suite_<dtype>.md`` beside the report.
2. Whole loops at production size: for the SD schedule rescaled to zero terminal SNR, v-prediction, trailing spacing, every sampler
(DDPM, DDIM η = 0 and η = 1, Euler, Euler ancestral), S in --steps, latents --shape: runs the
whole S-step loop from t = T on the device (model output: a fixed N(0, I) tensor in the dtype),
checks that the step at t = T and the whole loop stay finite, and compares every step with the
float64 oracle given the same (dtype-rounded) inputs and noise, as the normalised relative error
|impl - oracle| / Σ|terms| (benchmarks/_common.py). Writes a Markdown report to --out.

    python benchmarks/gpu_check.py                       # CUDA, the full configuration
    python benchmarks/gpu_check.py --device cpu --shape 1,4,8,8 --steps 1,10 --out /tmp/gpu.md
    python benchmarks/gpu_check.py --suite-profile none  # part 2 only

Needs torch, diffusers, numpy, and for part 1 pytest and hypothesis; this repository need not be
pip-installed (the suite loads its plug-in by name then). Exit status 1 if part 1 has a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks._common import (
    fmt_err,
    linear_terms_scale,
    markdown_table,
    normalised_rel_error,
    unit_roundoff,
)
from benchmarks.impl_accuracy import (
    DTYPES,
    SAMPLERS,
    _torch,
    diffusers_step,
    is_ve,
    make_scheduler,
    oracle_schedule,
    oracle_step,
)


def check_loop(sampler: str, dtype: str, S: int, shape, device: str, T: int = 1000, seed: int = 0) -> dict:
    """Run the S-step loop on ``device``; finiteness and per-step error against the oracle."""
    torch = _torch()
    tdt = getattr(torch, dtype)
    sch = make_scheduler(sampler, True, T)
    sch.set_timesteps(S, device=device)
    if hasattr(sch, "is_scale_input_called"):
        sch.is_scale_input_called = True
    orc = oracle_schedule(sampler, True, T)
    ts = sch.timesteps.cpu().numpy()
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(shape, generator=g, dtype=torch.float32)
    if is_ve(sampler):
        sample = sample * sch.init_noise_sigma
    sample = sample.to(tdt).to(device)
    mo = torch.randn(shape, generator=g, dtype=torch.float32).to(tdt).to(device)
    errs, first_bad = [], None
    for i in range(S):
        t = ts[i]
        ti = round(float(t))
        tn = round(float(ts[i + 1])) if i + 1 < S else -1
        s_seed = seed * 100003 + i
        z = torch.randn(shape, generator=torch.Generator().manual_seed(s_seed), dtype=tdt)
        out = diffusers_step(sch, sampler, i, mo, sample, torch.Generator().manual_seed(s_seed))
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        got = out.double().cpu().numpy()
        finite = bool(np.isfinite(got).all())
        if not finite and first_bad is None:
            first_bad = ti
        f, noisy = oracle_step(sampler, orc, ti, tn, T, S)
        inputs = {"x": sample.double().cpu().numpy(), "m": mo.double().cpu().numpy()}
        if noisy:
            inputs["z"] = z.double().numpy()
        if np.isfinite(inputs["x"]).all():
            want = f(**inputs)
            errs.append(normalised_rel_error(got, want, linear_terms_scale(f, inputs)))
        else:
            errs.append(math.inf)
        sample = out
    return {"sampler": sampler, "dtype": dtype, "S": S, "first_t": round(float(ts[0])),
            "first_step_finite": math.isfinite(errs[0]), "loop_finite": first_bad is None,
            "first_bad_t": first_bad, "err_first": errs[0],
            "err_worst_finite": max([e for e in errs if math.isfinite(e)], default=math.inf)}


#: the suite's finiteness and equivalence properties (pytest -k over the conformance tests)
SUITE_PROPERTIES = "test_step_ or finite_at_T or zero_snr or test_loop_ or guidance"


def run_suite(dtype: str, device: str, profile: str, matrix_path: Path) -> dict:
    """``python -m properties`` for one dtype on ``device``: counts of tests per outcome, the time,
    and the failures (test, first error line)."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        js = Path(tmp) / "suite.json"
        cmd = [sys.executable, "-m", "properties", "--impl-dtype", dtype, "--impl-device", device,
               "--hypothesis-profile", profile, "-k", SUITE_PROPERTIES, "--json", str(js),
               "--markdown", str(matrix_path)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  [str(repo), *filter(None, [os.environ.get("PYTHONPATH")])])})
        elapsed = time.perf_counter() - t0
        if not js.exists():
            raise RuntimeError(f"{' '.join(cmd)} wrote no results (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        records = json.loads(js.read_text())
    ran = [r for r in records if r["outcome"] == "passed"]
    return {"dtype": dtype, "elapsed": elapsed, "tests": len(records),
            "pass": sum(not r.get("deviations") for r in ran),
            "deviation": sum(bool(r.get("deviations")) for r in ran),
            "skip": sum(r["outcome"] == "skipped" for r in records),
            "failures": [(r["node_id"].split("::")[-1], r.get("error", "")) for r in records
                         if r["outcome"] == "failed"],
            "worst": max((r.get("worst_error", 0.0) for r in ran), default=0.0),
            "matrix": matrix_path.name}


def suite_section(suites, device: str, profile: str) -> list[str]:
    rows = [[s["dtype"], s["tests"], s["pass"], s["deviation"], s["skip"],
             f"**{len(s['failures'])}**" if s["failures"] else "0", f"{s['worst']:.2g}",
             f"{s['elapsed']:.0f}", f"[{s['matrix']}]({s['matrix']})"] for s in suites]
    lines = ["## 1. Conformance suite: finiteness and equivalence properties", "",
             (f"`python -m properties --impl-device {device} --impl-dtype <dtype> --hypothesis-profile "
              f"{profile} -k \"{SUITE_PROPERTIES}\"`; tolerances derived from each dtype's unit roundoff "
              "(properties/tolerances.py). worst = largest |impl − oracle| / tolerance over passing tests."), "",
             markdown_table(["dtype", "tests", "pass", "declared deviation", "skip", "FAIL", "worst",
                             "wall s", "matrix"], rows), ""]
    for s in suites:
        for name, err in s["failures"]:
            lines.append(f"- FAIL ({s['dtype']}) `{name}`: {err[:300]}")
    return lines + ([""] if any(s["failures"] for s in suites) else [])


def report(results, device_name: str, shape, steps, elapsed: float, suites=(), device: str = "cuda",
           profile: str = "ci") -> str:
    import diffusers

    torch = _torch()
    rows = []
    for r in results:
        u = unit_roundoff(r["dtype"])
        rows.append([r["sampler"], r["dtype"], r["S"], "yes" if r["first_step_finite"] else "**NO**",
                     "yes" if r["loop_finite"] else f"**NO** (first at t={r['first_bad_t']})",
                     fmt_err(r["err_first"]),
                     f"{r['err_first'] / u:.3g}" if math.isfinite(r["err_first"]) else "-",
                     fmt_err(r["err_worst_finite"])])
    n_bad = sum(not r["loop_finite"] for r in results)
    lines = [
        "# GPU check: diffusers samplers at zero terminal SNR against the float64 oracle", "",
        f"- device: {device_name}",
        f"- torch {torch.__version__}, diffusers {diffusers.__version__}, numpy {np.__version__}",
        f"- latents {'×'.join(map(str, shape))}, trailing S ∈ {{{', '.join(map(str, steps))}}}, T = 1000",
        "- schedule: SD scaled_linear (0.00085, 0.012) + rescale_betas_zero_snr, prediction_type v_prediction",
        ("- model output: one fixed N(0, I) tensor in the dtype; noise: diffusers' CPU-generator draw, "
        "reproduced and given to the oracle"),
        ("- error: max over elements of |impl − oracle| / Σ|terms| (terms of the step as a linear map of "
        "x, model output and noise), oracle given the same dtype-rounded inputs; u = unit roundoff of the "
        "dtype (float32 2⁻²⁴, float16 2⁻¹¹, bfloat16 2⁻⁸)"),
        "- Euler / Euler ancestral are compared with the oracle's schedule carrying diffusers' ᾱ_T = 2⁻²⁴ floor",
        f"- wall time of the check: {elapsed:.1f} s; loops with a non-finite value: {n_bad} of {len(results)}",
        "",
        *(suite_section(suites, device, profile) if suites else []),
        "## 2. Whole loops at production size", "",
        markdown_table(["sampler", "dtype", "S", "step at t=T finite", "whole loop finite",
                        "error at t=T", "error at t=T / u", "worst finite error over the loop"], rows),
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="torch device (default cuda; cpu for testing)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu.md"))
    p.add_argument("--shape", default="4,4,64,64", help="latent shape, comma-separated")
    p.add_argument("--steps", default="1,10,50", help="trailing step counts S, comma-separated")
    p.add_argument("--dtypes", default=",".join(DTYPES))
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--suite-profile", default="ci", choices=("dev", "ci", "thorough", "none"),
                   help="Hypothesis profile of part 1 (the conformance suite); none skips it")
    a = p.parse_args(argv)
    torch = _torch()
    shape = tuple(int(v) for v in a.shape.split(","))
    steps = [int(v) for v in a.steps.split(",")]
    dtypes = a.dtypes.split(",")
    samplers = a.samplers.split(",")
    for d in dtypes:
        if d not in DTYPES:
            p.error(f"--dtypes: {d!r} is not one of {DTYPES}")
    for s in samplers:
        if s not in SAMPLERS:
            p.error(f"--samplers: {s!r} is not one of {SAMPLERS}")
    if a.device.startswith("cuda"):
        if not torch.cuda.is_available():
            p.error("--device cuda: CUDA is not available here (use --device cpu to test the script)")
        device_name = torch.cuda.get_device_name(torch.device(a.device))
    else:
        from benchmarks._common import cpu_model

        device_name = f"{a.device} ({cpu_model()})"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    suites = [] if a.suite_profile == "none" else \
        [run_suite(d, a.device, a.suite_profile, out.with_name(f"{out.stem}_suite_{d}.md")) for d in dtypes]
    results = [check_loop(s, d, S, shape, a.device) for d in dtypes for s in samplers for S in steps]
    text = report(results, device_name, shape, steps, time.perf_counter() - t0, suites, a.device,
                  a.suite_profile)
    out.write_text(text)
    print(text)
    print(f"written: {out}" + "".join(f", {out.with_name(s['matrix'])}" for s in suites))
    return 1 if any(s["failures"] for s in suites) else 0


if __name__ == "__main__":
    sys.exit(main())
