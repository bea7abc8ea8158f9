"""The history replay's table-writing logic (benchmarks/history.py) on a synthetic result: no
environment is made and nothing is installed or run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import history


def _rec(node, prop, sampler, outcome="passed", deviations=None, **kw):
    return {"node_id": node, "property": prop, "sampler": sampler, "outcome": outcome,
            "deviations": deviations or {}, **kw}


def _run(release, records, limitations=()):
    return {"release": release, "status": "ran", "pins": history.pins_for(release), "elapsed_s": 12.5,
            "exit_code": 1, "limitations": list(limitations), "records": records}


FAIL_CONFIG = "SamplerConfig(sampler='ddpm', num_inference_steps=3)"

OLD = [
    _rec("t::test_step_ddpm", "step", "ddpm", "failed", error="AssertionError: step 1: |diff| 0.3 > tol",
         failure={"call": {"config": FAIL_CONFIG, "args": ["x", "out"]}}),
    _rec("t::test_step_ddim", "step", "ddim", deviations={"ddim-prev-timestep": "..."}),
    _rec("t::test_schedule_ddim", "schedule", "ddim"),
    _rec("t::test_velocity_euler", "velocity", "euler", "skipped", reason="no get_velocity"),
    _rec("t::test_generic_zero_snr[LCMScheduler]", "zero_snr", "LCMScheduler"),
    _rec("t::test_declared_deviation_reproduces[ddim-prev-timestep]", "declared_deviation", "-",
         deviations={"ddim-prev-timestep": "..."}, deviation_id="ddim-prev-timestep"),
]
NEW = [
    _rec("t::test_step_ddpm", "step", "ddpm"),
    _rec("t::test_step_ddim", "step", "ddim", deviations={"ddim-prev-timestep": "...", "trailing-extra-step": "."}),
    _rec("t::test_schedule_ddim", "schedule", "ddim"),
    _rec("t::test_velocity_euler", "velocity", "euler"),
]


def test_verdicts():
    assert history.verdict([]) == "–"
    assert history.verdict([_rec("a", "step", "ddpm", "skipped")]) == "skip"
    assert history.verdict([_rec("a", "step", "ddpm"), _rec("b", "step", "ddpm", "failed")]) == "FAIL"
    assert history.verdict([_rec("a", "step", "ddpm", deviations={"x": "", "y": ""}),
                            _rec("b", "step", "ddpm", deviations={"x": ""})]) == "dev[2]"
    assert history.verdict([_rec("a", "step", "ddpm")]) == "pass"


def test_ranges_and_pins():
    assert history.in_range("0.27.0", ">=0.27.0,<0.27.2")
    assert not history.in_range("0.27.2", ">=0.27.0,<0.27.2")
    assert history.in_range("0.31.0", "<0.32") and not history.in_range("0.32.2", "<0.32")
    assert history.in_range("0.9.0", "<0.10")  # numeric, not string, comparison
    with pytest.raises(ValueError, match="cannot read"):
        history.in_range("0.30.0", "~=0.30")
    assert "huggingface_hub<0.26" in history.pins_for("0.25.1")
    assert "huggingface_hub<0.26" not in history.pins_for("0.42.1")


def test_summary_and_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "EXPLANATIONS", (
        ("<0.32", "ddpm", "step", "DDPM previous_timestep is t - T//S", "https://example.org/fix"),))
    results = {s["release"]: s for s in (history.summarize(_run("0.31.0", OLD, ["diffusers 0.31.0: euler: no get_velocity()"])),
                                         history.summarize(_run("0.42.1", NEW)))}
    old, new = results["0.31.0"], results["0.42.1"]
    assert old["cells"]["ddpm"]["step"] == "FAIL" and new["cells"]["ddpm"]["step"] == "pass"
    assert old["cells"]["ddim"]["step"] == "dev[1]" and new["cells"]["ddim"]["step"] == "dev[2]"
    assert old["cells"]["euler"]["velocity"] == "skip"
    assert old["cells"]["LCMScheduler"]["zero_snr"] == "pass"  # a generic check, under its class
    assert "declared_deviation" not in old["cells"].get("-", {})
    (fail,) = old["fails"]
    assert fail["configuration"] == FAIL_CONFIG and fail["inputs"] == "x, out"
    assert fail["explanation"].startswith("DDPM previous_timestep") and fail["link"] == "https://example.org/fix"
    assert old["deviations_reproduced"] == ["ddim-prev-timestep"]
    assert old["deviations_met"] == {"ddim": ["ddim-prev-timestep"]}
    assert old["counts"] == {"passed": 4, "failed": 1, "skipped": 1}

    md, js = tmp_path / "h.md", tmp_path / "h.json"
    history.write(results, md, js, "header line")
    text = md.read_text()
    lines = text.splitlines()
    # releases in version order, one summary row each: FAIL and unexplained counts
    assert "| 0.31.0 | ran | 6 | 4 | 1 | 1 | 0 | 1 | 12.5 |" in lines
    assert "| 0.42.1 | ran | 4 | 4 | 0 | 0 | 0 | 2 | 12.5 |" in lines
    ddpm = lines.index("## ddpm")
    assert lines[ddpm + 2] == "| release | step |"
    assert lines[ddpm + 4:ddpm + 6] == ["| 0.31.0 | FAIL |", "| 0.42.1 | pass |"]
    assert f"minimal configuration: `{FAIL_CONFIG}`" in text
    assert "DDPM previous_timestep is t - T//S** (https://example.org/fix)" in text
    assert "| `trailing-extra-step` |  | x |" in lines
    assert "- **0.31.0** (pins: transformers==4.46.3): euler: no get_velocity()" in lines
    assert "- **0.42.1**: everything testable" in lines
    data = json.loads(js.read_text())
    assert list(data["releases"]) == ["0.31.0", "0.42.1"] and data["header"] == "header line"


def test_unexplained_fail_is_flagged(monkeypatch):
    monkeypatch.setattr(history, "EXPLANATIONS", ())
    s = history.summarize(_run("0.25.1", OLD))
    assert "explanation" not in s["fails"][0]
    assert "**unexplained**" in history.to_markdown({"0.25.1": s})


def test_rewrite_takes_the_current_explanations(monkeypatch):
    monkeypatch.setattr(history, "EXPLANATIONS", ())
    s = history.summarize(_run("0.31.0", OLD))
    monkeypatch.setattr(history, "EXPLANATIONS", (("<0.32", "ddpm", "step", "why", "link"),))
    (fail,) = history.reexplain(s)["fails"]
    assert (fail["explanation"], fail["link"]) == ("why", "link")
    monkeypatch.setattr(history, "EXPLANATIONS", (("<0.31", "ddpm", "step", "why", "link"),))
    assert "explanation" not in history.reexplain(s)["fails"][0]


def test_crashed_release_is_reported():
    s = history.summarize({"release": "0.30.3", "status": "install failed", "pins": [],
                           "error": "CalledProcessError: pip install failed"})
    text = history.to_markdown({"0.30.3": s})
    assert "| 0.30.3 | install failed | 0 |" in text and "pip install failed" in text
