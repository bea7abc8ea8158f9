"""A replacement class that subclasses a diffusers scheduler inherits that class's declared
deviations; one that does not starts with none."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)

from properties.adapters.diffusers import DiffusersImplementation


class MyDDIM(DDIMScheduler):
    pass


class NotASubclass:  # a scheduler of one's own (never built here)
    pass


def _ids(impl, sampler):
    return {d.id for d in impl.deviations if sampler in d.samplers}


def test_a_subclass_keeps_the_deviations_of_its_diffusers_class():
    own, sub = DiffusersImplementation(), DiffusersImplementation(ddim=MyDDIM)
    assert _ids(own, "ddim") and _ids(sub, "ddim") == _ids(own, "ddim")
    assert sub.subclassed == {"ddim": "DDIMScheduler"}
    assert {"ddim-prev-timestep", "ddim-eta1-zero-snr-nan"} <= sub.inherited_deviations
    # deviations whose examples run on diffusers' own classes are not inherited
    assert not {"ddpm-fixed-large-log-nan", "euler-terminal-floor"} & sub.inherited_deviations
    assert own.inherited_deviations == frozenset()


def test_a_replacement_that_is_not_a_subclass_starts_with_none():
    impl = DiffusersImplementation(ddim=NotASubclass)
    assert _ids(impl, "ddim") == set()
    assert _ids(impl, "ddpm") == _ids(DiffusersImplementation(), "ddpm")  # the others keep theirs
    assert impl.subclassed == {} and impl.inherited_deviations == frozenset()
    for d in impl.deviations:  # no example left that would run on the replacement
        assert d.example is None or d.example.sampler != "ddim", d.id


def test_unmodified_subclasses_of_all_four_pass_with_zero_fail(tmp_path):
    (tmp_path / "zsnr_sub_adapter.py").write_text(textwrap.dedent("""
        from diffusers import (DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler,
                               EulerDiscreteScheduler)
        from properties.adapters.diffusers import DiffusersImplementation
        class A(DDPMScheduler): pass
        class B(DDIMScheduler): pass
        class C(EulerDiscreteScheduler): pass
        class D(EulerAncestralDiscreteScheduler): pass
        impl = DiffusersImplementation(ddpm=A, ddim=B, euler=C, euler_ancestral=D)
    """))
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "properties", "--impl", "zsnr_sub_adapter:impl",
                           "--hypothesis-profile", "dev", "-k", "not generic", "--json", str(out)], check=False,
                          cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=600)
    records = json.loads(out.read_text())
    failed = [r["node_id"] for r in records if r["outcome"] == "failed"]
    assert not failed, proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    inherited = [r for r in records if r.get("inherited")]
    assert all(r["outcome"] in ("passed", "skipped") for r in inherited)  # float16-only ones skip
    holding = [r["deviation_id"] for r in inherited if r["outcome"] == "passed" and r.get("deviations")]
    assert "ddim-prev-timestep" in holding and "euler-terminal-floor" in holding, holding
    assert "still hold: " in proc.stdout and "ddim-prev-timestep" in proc.stdout


def test_all_four_classes_are_recognised():
    impl = DiffusersImplementation(ddpm=type("A", (DDPMScheduler,), {}), ddim=MyDDIM,
                                   euler=type("C", (EulerDiscreteScheduler,), {}),
                                   euler_ancestral=type("D", (EulerAncestralDiscreteScheduler,), {}))
    assert set(impl.subclassed) == {"ddpm", "ddim", "euler", "euler_ancestral"}
    assert {d.id for d in impl.deviations} == {d.id for d in DiffusersImplementation().deviations}
