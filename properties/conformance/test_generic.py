"""Property 9: the generic flaw checks -- zero terminal SNR, starting at T, finite at T -- over every
further sampler an implementation lists in ``generic_samplers()`` (for diffusers: every scheduler
class whose constructor takes ``rescale_betas_zero_snr``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as zst
from properties.conformance import checks
from properties.contract import SamplerConfig
from properties.plugin import implementation
from properties.report import run_recorded

SHAPE = (2, 3, 2, 2)


def pytest_generate_tests(metafunc):
    if "generic_name" in metafunc.fixturenames:
        names = sorted(getattr(implementation(metafunc.config), "generic_samplers", dict)())
        metafunc.parametrize("generic_name", names or ["(none)"])


def _Generic(impl, name):
    """The generic sampler ``name`` as an implementation. Support is probed per configuration: a
    configuration it cannot be driven with raises Unsupported and is rejected; a property none of
    whose drawn configurations can be driven is skipped with the reason (the plug-in)."""
    if name not in getattr(impl, "generic_samplers", dict)():
        pytest.skip("the implementation lists no generic samplers")
    return checks.GenericImplementation(impl, name)


def _configs(name, spacing="trailing"):
    # S <= 50: LCM and TCD refuse more steps than their 50-step origin schedule
    return zst.sampler_configs("generic", rescale=True, max_T=1000, max_S=50, spacing=spacing,
                               predictions=zst.finite_at_zero_snr_predictions).map(
        lambda c: SamplerConfig(name, *[getattr(c, f) for f in SamplerConfig.__dataclass_fields__][1:]))


def _run(check, gen, cfg, prop, record, *args):
    run_recorded(check, gen, cfg, prop, record, *args, target=gen.name)


def _property(prop):
    return pytest.mark.zsnr_property(prop, "generic")


@_property("zero_snr")
@given(data=st.data())
def test_generic_zero_snr(impl, zsnr_record, generic_name, data):
    """SNR(T) is exactly 0 with the zero-SNR rescale on."""
    gen = _Generic(impl, generic_name)
    cfg = data.draw(_configs(generic_name), label="config")
    _run(checks.check_zero_snr, gen, cfg, "zero_snr", zsnr_record)


@_property("starts_at_T")
@given(data=st.data())
def test_generic_starts_at_T(impl, zsnr_record, generic_name, data):
    """The first model evaluation is at t = T-1 with trailing spacing."""
    gen = _Generic(impl, generic_name)
    cfg = data.draw(_configs(generic_name), label="config")
    _run(checks.check_starts_at_T, gen, cfg, "starts_at_T", zsnr_record)


@_property("finite_at_T")
@given(data=st.data())
def test_generic_finite_at_T(impl, zsnr_record, generic_name, data):
    """The first step, at t = T-1 with SNR 0, is finite for v and x₀ prediction."""
    gen = _Generic(impl, generic_name)
    cfg = data.draw(_configs(generic_name), label="config")
    x = data.draw(zst.latents(SHAPE), label="x_t")
    out = data.draw(zst.latents(SHAPE), label="model_output")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    _run(checks.check_finite_at_T, gen, cfg, "finite_at_T", zsnr_record, x, out, seed)
