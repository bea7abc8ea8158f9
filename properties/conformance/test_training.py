"""Training-side conformance properties (properties/conformance/training.py), per sampler:
add_noise (the training / img2img path and the in-loop path of img2img and inpainting), the v
target, SNR and the Min-SNR-γ loss weights. The sample's rank (2-D to 5-D) and batch size are
drawn: implementations that assume 4-D latents fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from properties import strategies as zst
from properties.conformance import training
from properties.contract import SAMPLERS, SamplerConfig, Unsupported
from properties.report import run_recorded

VP_SAMPLERS = ("ddpm", "ddim")


@st.composite
def noise_cases(draw, sampler, **kw):
    cfg = draw(zst.sampler_configs(sampler, max_T=1000, **kw), label="config")
    shape = draw(zst.sample_shapes(), label="sample shape")
    x0 = draw(zst.latents(shape), label="x0")
    eps = draw(zst.latents(shape), label="eps")
    pick = draw(st.lists(st.integers(0, 2**31 - 1), min_size=shape[0], max_size=shape[0]), label="timestep picks")
    return cfg, x0, eps, np.array(pick)


@st.composite
def loop_noise_cases(draw, sampler):
    cfg = draw(zst.sampler_configs(sampler, max_T=1000, max_S=30), label="config")
    shape = draw(zst.sample_shapes(), label="sample shape")
    x0 = draw(zst.latents(shape), label="x0")
    eps = draw(zst.latents(shape), label="eps")
    begin = draw(st.integers(0, 2**16), label="begin step (mod S)")
    taken = draw(st.integers(0, 2**16), label="steps taken (mod S - begin)")
    return cfg, x0, eps, begin, taken


@st.composite
def weight_cases(draw, sampler):
    cfg = draw(zst.sampler_configs(sampler, max_T=1000), label="config")
    batch = draw(st.integers(1, 8), label="batch")
    pick = draw(st.lists(st.integers(0, 2**31 - 1), min_size=batch, max_size=batch), label="timestep picks")
    gamma = draw(st.sampled_from([1.0, 5.0]) | st.floats(0.5, 20.0), label="gamma")
    return cfg, np.array(pick), gamma


def _ones(shape=(2, 4, 3, 3)):
    return np.ones(shape)


def _terminal(sampler, **kw):
    """Zero SNR, trailing: the first pick lands on t = T-1 (VP: pick T-1; VE: index 0)."""
    return SamplerConfig(sampler, rescale=True, spacing="trailing", **kw)


#: the optional contract method behind each property, and whether the sampler or the implementation has it
_METHODS = {"add_noise": "add_noise", "add_noise_in_loop": "add_noise_in_loop", "velocity": "velocity",
            "training_snr": "training_snr", "min_snr": "min_snr_weights"}
_SUPPORT: dict = {}


def _probe(impl, sampler, prop):
    """Skip (with the reason) a property whose optional method the implementation or its sampler
    lacks, probed once per sampler on a default configuration."""
    key = (id(impl), sampler, prop)
    if key not in _SUPPORT:
        name, x = _METHODS[prop], np.zeros((1, 2))
        _SUPPORT[key] = None
        try:
            if prop in ("training_snr", "min_snr"):
                fn = getattr(impl, name, None)
                if fn is None:
                    raise Unsupported(f"the implementation has no {name}()")
                fn(SamplerConfig(sampler), np.array([0]), *((5.0,) if prop == "min_snr" else ()))
            else:
                smp = impl.build(SamplerConfig(sampler))
                fn = getattr(smp, name, None)
                if fn is None:
                    raise Unsupported(f"its {sampler} sampler has no {name}()")
                if prop == "add_noise_in_loop":
                    fn(x, x, 0, 0)
                else:
                    fn(x, x, np.asarray(smp.timesteps[:1]) if sampler not in VP_SAMPLERS else np.array([0.0]))
        except Unsupported as exc:
            _SUPPORT[key] = str(exc)
    if _SUPPORT[key] is not None:
        pytest.skip(f"{prop} is not tested: {_SUPPORT[key]}")


@pytest.fixture
def training_support(request, impl):
    """Skips, in the test's set-up (before Hypothesis runs any example), a property whose
    optional method the implementation lacks."""
    prop, sampler = request.node.get_closest_marker("zsnr_property").args[:2]
    _probe(impl, sampler, prop)


def _make(prop, sampler, strategy, examples, body):
    def test(impl, zsnr_record, training_support, case):
        body(impl, zsnr_record, case)

    test.__name__ = test.__qualname__ = f"test_{prop}_{sampler}"
    test.__doc__ = body.__doc__
    test = given(case=strategy)(test)
    for ex in examples:
        test = example(case=ex)(test)
    return pytest.mark.zsnr_property(prop, sampler)(test)


def _add_noise(impl, rec, case):
    """add_noise (training / img2img path) equals the forward process at the implementation's
    own levels, for any sample rank; at SNR 0 (VP) x_t = ε."""
    cfg, x0, eps, pick = case
    run_recorded(training.check_add_noise, impl, cfg, "add_noise", rec, x0, eps, pick)


def _add_noise_in_loop(impl, rec, case):
    """add_noise while sampling lands on the level of the current step (img2img, inpainting)."""
    cfg, x0, eps, begin, taken = case
    run_recorded(training.check_add_noise_in_loop, impl, cfg, "add_noise_in_loop", rec, x0, eps, begin, taken)


def _velocity(impl, rec, case):
    """The v target √ᾱ·ε - √(1-ᾱ)·x₀ at the timestep given; -x₀ at SNR 0."""
    cfg, x0, eps, pick = case
    run_recorded(training.check_velocity, impl, cfg, "velocity", rec, x0, eps, pick)


def _training_snr(impl, rec, case):
    """SNR(t) = ᾱ/(1-ᾱ) of the implementation's ᾱ; exactly 0 at t = T-1 with zero SNR."""
    cfg, pick, _ = case
    run_recorded(training.check_training_snr, impl, cfg, "training_snr", rec, pick)


def _min_snr(impl, rec, case):
    """Min-SNR-γ weights on the prediction type's loss; an ε weight at SNR 0 must be refused."""
    cfg, pick, gamma = case
    run_recorded(training.check_min_snr_weights, impl, cfg, "min_snr", rec, pick, gamma)


for _s in SAMPLERS:
    _x = _ones()
    _t = [np.array([999, 0])] if _s in VP_SAMPLERS else [np.array([0, 9])]
    _tests = [
        ("add_noise", noise_cases(_s), [(_terminal(_s), _x, -_x, _t[0]),
                                        (_terminal(_s), np.ones((3, 5)), np.ones((3, 5)), np.array([0, 1, 2])),
                                        (_terminal(_s), np.ones((1, 2, 3, 2, 2)), np.ones((1, 2, 3, 2, 2)),
                                         np.array([1]))],
         _add_noise),
        ("add_noise_in_loop", loop_noise_cases(_s), [(_terminal(_s), _x, -_x, 0, 0), (_terminal(_s), _x, -_x, 2, 3),
                                                     (SamplerConfig(_s, num_inference_steps=10), _x, -_x, 0, 1)],
         _add_noise_in_loop),
        ("velocity", noise_cases(_s), [(_terminal(_s), _x, -_x, _t[0])], _velocity),
    ]
    if _s in VP_SAMPLERS:
        _tests += [
            ("training_snr", weight_cases(_s), [(_terminal(_s), np.array([999, 0, 500]), 5.0)], _training_snr),
            ("min_snr", weight_cases(_s), [(_terminal(_s), np.array([999, 0]), 5.0),
                                           (_terminal(_s, prediction_type="epsilon"), np.array([999, 0]), 5.0),
                                           (_terminal(_s, prediction_type="sample"), np.array([999, 0]), 5.0)],
             _min_snr),
        ]
    for _prop, _strategy, _examples, _body in _tests:
        globals()[f"test_{_prop}_{_s}"] = _make(_prop, _s, _strategy, _examples, _body)
