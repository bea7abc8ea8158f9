"""Conformance properties 1-8 of an implementation against the oracle, per sampler.

Each property is one Hypothesis test per sampler (``test_<property>_<sampler>``), with ``@example``
edge cases: S = 1, S = T, zero terminal SNR, η = 0 and 1. Configurations an implementation does
not support are rejected (never failed); where a declared deviation applies, a failing check is
recorded as that deviation and every other configuration is tested as usual.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import assume, example, given, seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from properties import strategies as zst
from properties.conformance import checks
from properties.contract import SAMPLERS, SamplerConfig, Unsupported
from properties.deviations import judge
from properties.profiles import active as active_profile
from properties.report import recording, run_recorded

SHAPE = (2, 3, 2, 2)


def _ones(value=1.0):
    return np.full(SHAPE, value)


def _edge_configs(sampler: str) -> list[SamplerConfig]:
    """S = 1, S = T, zero SNR, and η = 0 / 1 for DDIM."""
    base = SamplerConfig(sampler)
    out = [base, SamplerConfig(sampler, num_inference_steps=1),
           SamplerConfig(sampler, num_train_timesteps=20, num_inference_steps=20),
           SamplerConfig(sampler, rescale=False, spacing="leading", steps_offset=1, prediction_type="epsilon")]
    if sampler == "ddim":
        out += [base.with_options(eta=0.0), base.with_options(eta=1.0)]
    return out


def _underflow(sampler: str) -> SamplerConfig:
    """A schedule whose float32 ᾱ underflows to 0 well before t = T-1 (steps would land on ᾱ = 0)."""
    return SamplerConfig(sampler, num_train_timesteps=4000, beta_schedule="linear", beta_start=0.0078125,
                         beta_end=0.046875, rescale=False, spacing="linspace", num_inference_steps=30,
                         prediction_type="sample")


_run = run_recorded


@contextmanager
def per_configuration_support(record, what: str):
    """Support is probed per configuration: each configuration the implementation refuses
    (``Unsupported``) is rejected, never failed; a property none of whose drawn configurations is
    supported is skipped, with the first refusal's reason (Hypothesis finds nothing to run)."""
    try:
        yield
    except Unsatisfiable:
        if record.unsupported_everywhere(what):
            pytest.skip(record.unsupported_everywhere(what))
        raise
    if record.unsupported_everywhere(what):
        pytest.skip(record.unsupported_everywhere(what))


@st.composite
def step_cases(draw, sampler, **kw):
    cfg = draw(zst.sampler_configs(sampler, max_T=1000, **kw), label="config")
    i = draw(st.integers(0, cfg.num_inference_steps - 1), label="step_index")
    # the sample's rank (2-D tokens to 5-D video latents) and batch size, as the training properties draw them
    shape = draw(zst.sample_shapes(), label="sample shape")
    x = draw(zst.latents(shape), label="x_t (VP scale)")
    out = draw(zst.latents(shape), label="model_output")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    vt = cfg.option("variance_type")
    pv = draw(zst.predicted_variances(vt, shape), label="predicted_variance") if vt else None
    return cfg, i, x, out, seed, pv


def _learned_range_last_step(sampler):
    """DDPM learned_range noise on a last step at t > 0 (T = 1000, S = 1): the float32 rounding of
    f = (v + 1)/2 times |log β - log 1e-20| in the modelled std (found by the thorough profile)."""
    if sampler != "ddpm":
        return []
    cfg = SamplerConfig("ddpm", beta_schedule="linear", rescale=False, num_inference_steps=1, prediction_type="epsilon",
                        options=(("variance_type", "learned_range"),))
    return [(cfg, 0, _ones(0.0), _ones(0.0), 0, _ones(0.8808929602427846))]


def _clipped_eps_rederived(sampler):
    """DDIM ε̂ re-derived from a clipped x̂₀ at σ_t = 0.011 (T = 2, β = 2⁻¹⁴): its terms |x_t|/σ_t
    count in the tolerance (found by the thorough profile)."""
    if sampler != "ddim":
        return []
    cfg = SamplerConfig("ddim", num_train_timesteps=2, beta_schedule="linear", beta_start=6.103515625e-05,
                        beta_end=6.103515625e-05, rescale=False, spacing="linspace", num_inference_steps=2,
                        prediction_type="epsilon", options=(("clip_sample", True), ("eta", 1.0),
                                                            ("set_alpha_to_one", False), ("use_clipped_model_output", True)))
    return [(cfg, 0, _ones(2.0), _ones(0.0), 0, None)]


def _step_examples(sampler):
    # the last: a large step from σ_max = 20291 (cosine, T = 1000) with ε̂ = 4, where σ·ε̂ and x̂₀
    # leave float16's range although the result does not
    steep = SamplerConfig(sampler, num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", rescale=False,
                          spacing="trailing", num_inference_steps=10, prediction_type="epsilon")
    return [(cfg, 0, _ones(), _ones(0.5), 0, None) for cfg in _edge_configs(sampler)
            if not (cfg.prediction_type == "epsilon" and cfg.rescale)] + \
           [(SamplerConfig(sampler, num_train_timesteps=20, num_inference_steps=20), 19, _ones(), _ones(0.5), 1, None),
            (steep, 0, _ones(3.0), _ones(4.0), 0, None),
            # Euler's floored σ_T = 4096 and σ at the fractional second timestep 995.23 (4096.01)
            (SamplerConfig(sampler, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, spacing="linspace",
                           num_inference_steps=266), 0, _ones(), _ones(0.5), 0, None)]


def _shape_examples(sampler: str) -> list:
    """The sample's rank at its ends: 2-D (batch, features) and 5-D (video latents); for DDPM / DDIM
    with dynamic thresholding, where diffusers' percentile reshape assumes >= 3-D (Imagen's 0.995,
    and the ratio 1: the maximum of |x̂₀|)."""
    out = []
    for shape in ((2, 3), (1, 2, 2, 2, 2)):
        x, m = np.full(shape, 1.5), np.linspace(-3.0, 3.0, int(np.prod(shape))).reshape(shape)
        opts = {"thresholding": True, "dynamic_thresholding_ratio": 0.995 if len(shape) == 2 else 1.0,
                "sample_max_value": 2.0} if sampler in ("ddpm", "ddim") else {}
        out.append((SamplerConfig(sampler, prediction_type="sample").with_options(**opts), 3, x, m, 0, None))
    return out


def _sigma_schedule_examples(sampler: str) -> list[SamplerConfig]:
    """Euler σ schedules at their edges: Karras at zero SNR (σ_max = diffusers' floored 4096), S = 1,
    log-linear σ converted to Karras at S = 1 (σ_max = σ(T-1), not σ at the one timestep), the
    exponential and Beta σ, continuous timesteps at zero SNR (c_noise(4096) = 2.08) and for ε (ignored
    by diffusers), and Karras σ from a floor above ᾱ_{T-2} (diffusers' float32 ln σ table maps
    σ_max = 4096 to t = 883.9), also from log-linear σ at S = 1."""
    if sampler not in ("euler", "euler_ancestral"):
        return []
    karras = (("use_karras_sigmas", True),)
    return [SamplerConfig(sampler, options=karras),
            SamplerConfig(sampler, rescale=False, num_inference_steps=1, options=karras),
            SamplerConfig(sampler, num_train_timesteps=2, beta_schedule="linear", rescale=False, spacing="linspace",
                          num_inference_steps=1, prediction_type="epsilon",
                          options=karras + (("interpolation_type", "log_linear"),)),
            SamplerConfig(sampler, rescale=False, spacing="leading", options=(("use_exponential_sigmas", True),)),
            SamplerConfig(sampler, num_inference_steps=2, options=(("use_beta_sigmas", True),)),
            SamplerConfig(sampler, options=(("timestep_type", "continuous"),)),
            SamplerConfig(sampler, rescale=False, prediction_type="epsilon", options=(("timestep_type", "continuous"),)),
            SamplerConfig(sampler, beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125, spacing="linspace",
                          prediction_type="epsilon", options=karras),
            # log-linear σ start at σ(T-1) = 4096 whatever the timesteps (thorough: linspace S = 1 at zero SNR)
            SamplerConfig(sampler, beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125, spacing="linspace",
                          num_inference_steps=1, prediction_type="epsilon",
                          options=karras + (("interpolation_type", "log_linear"),)),
            # found by the thorough profile: Karras σ of a float32 ᾱ that underflowed (NaN σ and timesteps);
            # continuous timesteps ignored for ε next to log-linear σ (S+2 σ, S timesteps), with churn;
            # t(σ_max) at T = 2, where float32's ln σ table leaves it one float32 ulp below T-1
            _underflow(sampler).with_options(use_karras_sigmas=True),
            SamplerConfig(sampler, num_train_timesteps=2, beta_schedule="squaredcos_cap_v2", rescale=False,
                          spacing="linspace", num_inference_steps=2, prediction_type="epsilon",
                          options=(("interpolation_type", "log_linear"), ("s_churn", 1.0),
                                   ("timestep_type", "continuous"))),
            SamplerConfig(sampler, num_train_timesteps=2, beta_schedule="linear", beta_start=0.0078125,
                          beta_end=0.03125, rescale=False, num_inference_steps=1, prediction_type="epsilon",
                          options=karras),
            # found by the dev profile (schedule): Karras σ converted from log-linear σ, whose endpoints are
            # σ(T-1) and σ(0) whatever the (leading, offset) timesteps
            SamplerConfig(sampler, beta_schedule="squaredcos_cap_v2", spacing="leading", steps_offset=12,
                          prediction_type="epsilon", options=karras + (("interpolation_type", "log_linear"),)),
            # found by the dev profile (starts_at_T): Karras σ of an underflowed float32 ᾱ, trailing, without
            # rescale: diffusers' first timestep is NaN, the underflow model's too
            SamplerConfig(sampler, num_train_timesteps=4000, beta_schedule="linear", beta_start=0.0078125,
                          beta_end=0.046875, rescale=False, num_inference_steps=1, prediction_type="epsilon",
                          options=karras)]


def _sigma_loop_examples(sampler: str) -> list:
    """A loop whose last converted σ and final σ_min coincide (linspace ends at t = 0) and round one
    float32 ulp apart, upwards (thorough: T = 4, zero SNR, log-linear σ converted to Karras); and one
    whose sample x̂₀ = 1 - ᾱ is 50× as sensitive to the level the model sees (T = 2, S = 1: found in
    skrample's float64 loop, where ᾱ = 1/(1+σ²) and the oracle's σ(ᾱ) round trip are 2 ulp apart)."""
    if sampler not in ("euler", "euler_ancestral"):
        return []
    cfg = SamplerConfig(sampler, num_train_timesteps=4, beta_schedule="linear", spacing="linspace",
                        num_inference_steps=4, prediction_type="sample",
                        options=(("final_sigmas_type", "sigma_min"), ("interpolation_type", "log_linear"),
                                 ("use_karras_sigmas", True)))
    near_one = SamplerConfig(sampler, num_train_timesteps=2, beta_schedule="linear", beta_start=0.00390625,
                             beta_end=0.015625, rescale=False, num_inference_steps=1, prediction_type="sample")
    return [(cfg, _ones(0.0), 1.0, _ones(0.0), 0), (near_one, _ones(1.0), 1.0, _ones(0.0), 0)]


def _silent_examples(sampler: str) -> list:
    """ε at zero SNR where the silent result composes with another deviation (found by the thorough
    profile): DDPM's one step from T = 2 adds last-step noise; DDIM at T = 25, S = 10 steps to
    t - T//S."""
    x, out = _ones(0.0), _ones(1.0)
    if sampler == "ddpm":
        cfg = SamplerConfig("ddpm", num_train_timesteps=2, beta_schedule="linear", beta_start=0.0078125,
                            beta_end=0.03125, num_inference_steps=1, prediction_type="epsilon",
                            options=(("clip_sample", True), ("variance_type", "fixed_large")))
    elif sampler == "ddim":
        cfg = SamplerConfig("ddim", num_train_timesteps=25, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                            options=(("clip_sample", True), ("set_alpha_to_one", False)))
        # the clipped x̂₀ with ε̂ = the model output: the tolerance of its c_ε·ε̂ term
        both = SamplerConfig("ddim", beta_schedule="linear", prediction_type="epsilon",
                             options=(("clip_sample", True), ("set_alpha_to_one", False)))
        return [(cfg, 0, x, out, 0, None), (both, 0, x, out, 0, None)]
    else:
        return []
    return [(cfg, 0, x, out, 0, None)]


def _schedule_examples(sampler: str) -> list[SamplerConfig]:
    """Euler, log-linear σ on the trailing extra step (T = 1000, S = 61: 62 timesteps, 63 σ), where
    the σ count equals the timesteps' + 1 by coincidence (found by the thorough profile)."""
    if sampler != "euler":
        return []
    return [SamplerConfig("euler", beta_schedule="squaredcos_cap_v2", spacing="trailing", num_inference_steps=61,
                          prediction_type="epsilon", options=(("interpolation_type", "log_linear"),))]


@st.composite
def loop_cases(draw, sampler):
    cfg = draw(zst.sampler_configs(sampler, max_T=1000, max_S=25), label="config")
    assume(not (cfg.rescale and cfg.prediction_type == "epsilon"))
    assume(not str(cfg.option("variance_type", "")).startswith("learned"))
    shape = draw(zst.sample_shapes(), label="sample shape")
    mean = draw(zst.latents(shape, 1.0), label="data mean")
    var = draw(st.floats(0.0625, 4.0, width=32), label="data variance")
    x_T = draw(zst.latents(shape), label="x_T")
    return cfg, mean, var, x_T, draw(st.integers(0, 2**31 - 1), label="seed")


#: the seed a derandomized profile (ci) gave these tests before their support probe moved around
#: the Hypothesis test (issue 12): Hypothesis derives it from the test function's source, and that
#: source changed. Kept, so ci draws the same cases as before and verdicts stay comparable.
_DERANDOMIZED_SEED = int(
    "30693060190340827766936071953022520128354481616099731475070879727150751990731084711434824641290598419297676286061506")


def _make(prop, sampler, strategy, examples, body):
    """test_<prop>_<sampler>: a Hypothesis test of ``body`` over ``strategy`` with the ``examples``."""

    def inner(impl, zsnr_record, case):
        body(impl, zsnr_record, case)

    inner = given(case=strategy)(inner)
    for ex in examples:
        inner = example(case=ex)(inner)
    if active_profile().derandomize:
        inner = seed(_DERANDOMIZED_SEED)(inner)

    def test(impl, zsnr_record):
        with per_configuration_support(zsnr_record, sampler):
            inner(impl, zsnr_record)

    test.__name__ = test.__qualname__ = f"test_{prop}_{sampler}"
    test.__doc__ = body.__doc__
    test.zsnr_inner = inner  # the Hypothesis test: the plug-in applies the zsnr profile to it
    # a Hypothesis test to pytest's Hypothesis plug-in (statistics, reports: it runs one)
    test.is_hypothesis_test, test.hypothesis = True, inner.hypothesis
    return pytest.mark.zsnr_property(prop, sampler)(test)


def _schedule(impl, rec, cfg):
    """1. ᾱ, σ and timesteps match the oracle (timesteps exactly)."""
    _run(checks.check_schedule, impl, cfg, "schedule", rec)


def _step(impl, rec, case):
    """2. One step from the same x_t, model output and noise matches the oracle."""
    cfg, i, x, out, seed, pv = case
    _run(checks.check_step, impl, cfg, "step", rec, i, x, out, seed, pv)


def _chaining(impl, rec, cfg):
    """3. Each step lands where the next starts; the last lands on clean data with no noise."""
    _run(checks.check_chaining, impl, cfg, "chaining", rec)


def _zero_snr(impl, rec, cfg):
    """4. With rescale on, SNR(T) is exactly 0."""
    _run(checks.check_zero_snr, impl, cfg, "zero_snr", rec)


def _starts_at_T(impl, rec, cfg):
    """5. The first model evaluation is at t = T-1 (trailing, linspace)."""
    _run(checks.check_starts_at_T, impl, cfg, "starts_at_T", rec)


def _finite_at_T(impl, rec, case):
    """6. Finite at t = T for v and x₀ prediction; ε prediction raises or warns."""
    cfg, _, x, out, seed, pv = case
    _run(checks.check_finite_at_T, impl, cfg, "finite_at_T", rec, x, out, seed, pv)


def _loop(impl, rec, case):
    """7. A whole loop with the exact Gaussian denoiser matches the oracle's loop."""
    cfg, mean, var, x_T, seed = case
    _run(checks.check_loop, impl, cfg, "loop", rec, mean, var, x_T, seed)


for _s in SAMPLERS:
    _edges = _edge_configs(_s)
    _zero = [c for c in _edges if c.rescale and c.spacing == "trailing"]
    _tests = [
        ("schedule", zst.sampler_configs(_s), _edges + _schedule_examples(_s) + _sigma_schedule_examples(_s),
         _schedule),
        ("step", step_cases(_s), _step_examples(_s) + _learned_range_last_step(_s) + _clipped_eps_rederived(_s)
         + _shape_examples(_s) + [(c, 0, _ones(), _ones(0.5), 0, None) for c in _sigma_schedule_examples(_s)], _step),
        ("chaining", zst.sampler_configs(_s, max_S=30), [c for c in _edges if c.num_inference_steps <= 30]
         + [_underflow(_s)] + _sigma_schedule_examples(_s), _chaining),
        ("zero_snr", zst.sampler_configs(_s, rescale=True), _zero, _zero_snr),
        ("starts_at_T", zst.sampler_configs(_s, spacing="trailing"),
         _zero + [c for c in _sigma_schedule_examples(_s) if c.spacing == "trailing"], _starts_at_T),
        ("finite_at_T", step_cases(_s, rescale=True, spacing="trailing"),
         [(c.with_options(**({"eta": 1.0} if _s == "ddim" else {})), 0, _ones(), _ones(0.5), 0, None)
          for c in _zero] + _silent_examples(_s), _finite_at_T),
        ("loop", loop_cases(_s), [(c, _ones(0.2), 0.25, _ones(), 0) for c in _edges
                                  if c.num_inference_steps <= 25 and not (c.rescale and c.prediction_type == "epsilon")]
         + _sigma_loop_examples(_s), _loop),
    ]
    for _prop, _strategy, _examples, _body in _tests:
        globals()[f"test_{_prop}_{_s}"] = _make(_prop, _s, _strategy, _examples, _body)


# --- 8. guidance rescale -------------------------------------------------------------------------

@st.composite
def guidance_cases(draw):
    batch = draw(st.integers(1, 4), label="batch")
    shape = (batch, *draw(st.sampled_from([(4, 2, 2), (1, 8), (16,)]), label="sample shape"))
    x_cfg = draw(zst.latents(shape, 10.0), label="x_cfg")
    x_pos = draw(zst.latents(shape, 10.0), label="x_pos")
    assume(np.all(np.std(x_cfg.reshape(batch, -1), axis=1) > 0))
    return x_cfg, x_pos, draw(zst.guidance_rescales, label="guidance_rescale")


def _smallest_normal(impl) -> float:
    """The dtype's smallest normal number: smallest subnormal / (2u) (float32's by default)."""
    sub = getattr(impl, "smallest_subnormal", 0.0)
    return sub / (2 * impl.unit_roundoff) if sub else 2.0**-126


@pytest.mark.zsnr_property("guidance", "guidance")
@given(case=guidance_cases())
@example(case=(np.arange(16.0).reshape(2, 8), np.arange(16.0).reshape(2, 8)[::-1].copy(), 0.7))
@example(case=(np.arange(16.0).reshape(2, 8), np.ones((2, 8)) * np.arange(8.0), 0.0))
def test_guidance_rescale(impl, zsnr_record, case):
    """8. Algorithm 2 per sample, batch > 1."""
    x_cfg, x_pos, phi = case
    # degenerate input (zero std, or a variance below the dtype's normal range, where the dtype's
    # std underflows to 0: 1e-38 in float32, 6e-5 in float16) is test_guidance_rescale_degenerate's
    x_q = impl.quantize(x_cfg)
    assume(np.all(np.var(x_q.reshape(x_q.shape[0], -1), axis=1) > _smallest_normal(impl)))
    try:
        with recording(zsnr_record, checks.check_guidance, None, (x_cfg, x_pos, phi)):
            checks.check_guidance(impl, x_cfg, x_pos, phi, record=zsnr_record)
    except Unsupported as exc:
        pytest.skip(str(exc))


@pytest.mark.zsnr_property("guidance", "guidance-degenerate")
@pytest.mark.parametrize("phi", [0.0, 0.7, 1.0])
def test_guidance_rescale_degenerate(impl, zsnr_record, phi):
    """8. A sample whose guided prediction has zero std: the oracle leaves it unrescaled; an
    implementation must return a finite result (the other sample of the batch is ordinary)."""
    x_cfg = np.stack([np.full((4, 2, 2), 0.5), np.arange(16.0).reshape(4, 2, 2)])
    x_pos = np.stack([np.arange(16.0).reshape(4, 2, 2) / 4, np.arange(16.0).reshape(4, 2, 2)[::-1] / 2])
    try:
        with recording(zsnr_record, checks.check_guidance, None, (x_cfg, x_pos, phi)):
            judge(lambda expect, rec: checks.check_guidance(impl, x_cfg, x_pos, phi, record=rec, expect=expect),
                  impl, None, "guidance", zsnr_record, sampler="guidance-degenerate")
    except Unsupported as exc:
        pytest.skip(str(exc))
