"""The diffusers adapter across releases, tested on the installed one (0.42.1 in CI) with
replacement classes that look like older releases: an option or method the class lacks is
Unsupported with the reason (never dropped), and declared deviations apply only inside their
release range. The replay over real releases is ``python -m benchmarks.history``."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from properties.adapters import diffusers as adapter
from properties.adapters.diffusers import DiffusersImplementation
from properties.contract import SamplerConfig, Unsupported
from properties.deviations import NON_FINITE, Deviation, declared, matching


class DDIMWithoutRescale(DDIMScheduler):
    """DDIM as before the zero-SNR rescale existed (no rescale_betas_zero_snr)."""

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 clip_sample=True, set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon",
                 timestep_spacing="leading"):
        super().__init__(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule=beta_schedule, clip_sample=clip_sample, set_alpha_to_one=set_alpha_to_one,
                         steps_offset=steps_offset, prediction_type=prediction_type,
                         timestep_spacing=timestep_spacing)


class DDIMWithoutSpacing(DDIMWithoutRescale):
    """... and before timestep_spacing existed."""

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 clip_sample=True, set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon"):
        super().__init__(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule=beta_schedule, clip_sample=clip_sample, set_alpha_to_one=set_alpha_to_one,
                         steps_offset=steps_offset, prediction_type=prediction_type)


class EulerBefore028(EulerDiscreteScheduler):
    """Euler as in diffusers 0.25-0.27: no final_sigmas_type, no set_begin_index."""

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 prediction_type="epsilon", interpolation_type="linear", timestep_spacing="linspace",
                 steps_offset=0, rescale_betas_zero_snr=False):
        super().__init__(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule=beta_schedule, prediction_type=prediction_type,
                         interpolation_type=interpolation_type, timestep_spacing=timestep_spacing,
                         steps_offset=steps_offset, rescale_betas_zero_snr=rescale_betas_zero_snr)

    @property
    def set_begin_index(self):  # absent, as before 0.27: hasattr() is False
        raise AttributeError("set_begin_index")


def test_option_the_class_lacks_is_unsupported_with_its_name():
    impl = DiffusersImplementation(ddim=DDIMWithoutRescale)
    with pytest.raises(Unsupported, match=r"DDIMWithoutRescale.__init__ of diffusers \S+ takes no "
                                          r"'rescale_betas_zero_snr'"):
        impl.build(SamplerConfig("ddim", rescale=True, spacing="leading"))
    impl.build(SamplerConfig("ddim", rescale=False, spacing="trailing"))  # what it takes is still built
    with pytest.raises(Unsupported, match="takes no 'timestep_spacing': timestep_spacing='trailing'"):
        DiffusersImplementation(ddim=DDIMWithoutSpacing).build(SamplerConfig("ddim", rescale=False))


def test_option_off_is_what_a_class_without_it_computes():
    # rescale=False and steps_offset=0 are the behaviour of a class without the options
    impl = DiffusersImplementation(euler=EulerBefore028)
    smp = impl.build(SamplerConfig("euler", rescale=False, spacing="trailing",
                                   options=(("final_sigmas_type", "zero"),)))
    assert smp.sigmas[-1] == 0.0  # "zero" is what Euler before 0.28 always appended
    with pytest.raises(Unsupported, match="takes no 'final_sigmas_type': final_sigmas_type='sigma_min'"):
        impl.build(SamplerConfig("euler", options=(("final_sigmas_type", "sigma_min"),)))


def test_accepted_reads_the_signature():
    kw = {"num_train_timesteps": 10, "rescale_betas_zero_snr": False, "steps_offset": 0, "use_karras_sigmas": None}
    assert adapter._accepted(DDIMWithoutRescale, kw) == {"num_train_timesteps": 10, "steps_offset": 0}
    with pytest.raises(Unsupported, match="'use_beta_sigmas'"):
        adapter._accepted(DDIMWithoutRescale, {"use_beta_sigmas": True})


def test_step_option_the_step_lacks_is_unsupported():
    class NoEta(DDIMScheduler):
        def step(self, model_output, timestep, sample, generator=None, return_dict=True):
            return super().step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    impl = DiffusersImplementation(ddim=NoEta)
    with pytest.raises(Unsupported, match="NoEta.step of diffusers .* takes no 'eta'"):
        impl.build(SamplerConfig("ddim", options=(("eta", 0.5),)))
    impl.build(SamplerConfig("ddim"))  # no eta asked: built


def test_step_index_without_set_begin_index_is_found_by_timestep():
    """Before 0.27 the Euler family has no set_begin_index: step i is reached through the timestep
    lookup of a fresh set_timesteps, and gives the same result as set_begin_index(i)."""
    cfg = SamplerConfig("euler", rescale=False, spacing="trailing", num_inference_steps=7,
                        prediction_type="epsilon")
    old, new = DiffusersImplementation(euler=EulerBefore028).build(cfg), DiffusersImplementation().build(cfg)
    x, out = np.linspace(-1, 1, 8).reshape(2, 4), np.linspace(0.5, -0.5, 8).reshape(2, 4)
    for i in (3, 0, 5, 5):  # out of order and repeated: each is a fresh lookup
        a, b = old.step(i, x, out, seed=1)[0], new.step(i, x, out, seed=1)[0]
        np.testing.assert_array_equal(a, b)
    # a step whose timestep occurs twice cannot be reached so: refused, with the reason
    old.timesteps = np.array([999.0, 500.0, 500.0, 0.0])
    with pytest.raises(Unsupported, match="set_begin_index .*locates step 1 by its timestep 500, which is step 2"):
        old._reset(1)


def test_add_noise_in_loop_needs_set_begin_index():
    smp = DiffusersImplementation(euler=EulerBefore028).build(SamplerConfig("euler"))
    with pytest.raises(Unsupported, match="no set_begin_index"):
        smp.add_noise_in_loop(np.zeros((1, 2)), np.zeros((1, 2)), 0, 1)


def test_limitations_name_what_the_release_lacks():
    lines = DiffusersImplementation(euler=EulerBefore028).limitations()
    assert any("EulerBefore028" in ln and "final_sigmas_type" in ln and "use_karras_sigmas" in ln for ln in lines)
    assert any("EulerBefore028" in ln and "set_begin_index" in ln for ln in lines)
    assert all(ln.startswith(f"diffusers {adapter.diffusers_version()}: ") for ln in lines)


def _dev(releases):
    return Deviation("d", ("step",), ("ddim",), lambda c: True, "r", "l", symptom=NON_FINITE, releases=releases)


class _Impl:
    def __init__(self, version, devs):
        self.version, self.deviations, self.dtype = version, devs, "float32"


def test_deviation_release_range():
    dev = _dev(">=0.25,<0.32")
    assert dev.in_releases("0.31.0") and not dev.in_releases("0.32.0") and not dev.in_releases("0.24.0")
    assert _dev(None).in_releases(None)
    with pytest.raises(ValueError, match="releases='0.31' is not a version specifier"):
        _dev("0.31")
    with pytest.raises(ValueError, match="states no version"):
        dev.in_releases(None)
    cfg = SamplerConfig("ddim")
    assert [d.id for d in matching(_Impl("0.31.0", [dev]), cfg, "step")] == ["d"]
    assert matching(_Impl("0.42.1", [dev]), cfg, "step") == []
    always = _dev(None)
    assert declared(_Impl("0.42.1", [dev, always])) == [always]


def test_adapter_keeps_only_the_installed_releases_deviations():
    impl = DiffusersImplementation()
    assert impl.version == adapter.diffusers_version()
    ids = {d.id for d in impl.deviations}
    from properties.adapters.diffusers_deviations import DEVIATIONS, TRAINING_DEVIATIONS

    for d in DEVIATIONS + TRAINING_DEVIATIONS:
        assert (d.id in ids) == d.in_releases(impl.version), d.id
    generic = set(impl.generic_samplers())
    assert all(set(d.samplers) <= generic for d in impl.deviations
               if d.samplers and d.samplers[0][0].isupper() and "Scheduler" in d.samplers[0])


class EulerExponential031(EulerDiscreteScheduler):
    """Euler as in 0.31: exponential σ in float32 torch (0.32.0's PR #9954 made them NumPy float64);
    ``scale`` plants an error in the interior σ."""

    scale = 1.0

    def _convert_to_exponential(self, in_sigmas, num_inference_steps):
        import math

        import torch

        lo, hi = in_sigmas[-1].item(), in_sigmas[0].item()
        sigmas = torch.linspace(math.log(hi), math.log(lo), num_inference_steps).exp()
        sigmas[1:-1] *= self.scale
        return sigmas


class EulerExponential031Planted(EulerExponential031):
    scale = 1.0 + 1e-4


#: zero SNR, so σ_max = ∞ and diffusers builds the exponential σ from its floor 4096
EXPONENTIAL_AT_ZERO_SNR = SamplerConfig("euler", beta_schedule="linear", beta_start=0.0078125, beta_end=0.03125,
                                        spacing="linspace", prediction_type="epsilon",
                                        options=(("use_exponential_sigmas", True),))


@pytest.mark.parametrize("release, cls, want", [("0.31.0", EulerExponential031, "deviation"),
                                                ("0.42.1", EulerExponential031, AssertionError),
                                                ("0.31.0", EulerExponential031Planted, AssertionError),
                                                ("0.42.1", EulerDiscreteScheduler, "deviation"),
                                                ("0.31.0", EulerDiscreteScheduler, AssertionError)])
def test_converted_sigmas_floor_model_follows_the_release(monkeypatch, release, cls, want):
    """euler-converted-sigmas-floor models each release's arithmetic: 0.31's float32 σ_max = 4096
    with a float32 ln σ maps to t = T-1, 0.32+'s float64 one to t = 883.9 (the floored table's first
    passage); each release's own behaviour matches its model only, and a planted 1e-4 in the
    interior σ fails inside the deviation's region."""
    from properties.adapters import diffusers_deviations
    from properties.compare import Record
    from properties.conformance import checks
    from properties.deviations import judge

    monkeypatch.setattr(diffusers_deviations, "_installed_release", lambda: release)
    impl = DiffusersImplementation(euler=cls)
    for check, prop in ((checks.check_schedule, "schedule"), (checks.check_starts_at_T, "starts_at_T")):
        if cls is EulerExponential031Planted and prop == "starts_at_T":
            continue  # the first σ is not planted
        try:
            got = judge(lambda e, r, check=check: check(impl, EXPONENTIAL_AT_ZERO_SNR, r, e), impl,
                        EXPONENTIAL_AT_ZERO_SNR, prop, Record())
        except AssertionError as exc:
            got = exc
        assert got == want if isinstance(want, str) else isinstance(got, want), (prop, got)
