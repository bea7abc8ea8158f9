"""Noise schedules, Algorithm 1 (zero terminal SNR), terminal floors and the paper's Table 1."""

import math
from fractions import Fraction

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import U, assert_within
from properties.strategies import ScheduleConfig
from reference import (
    COMFYUI_FLOOR,
    DIFFUSERS_EULER_FLOOR,
    make_schedule,
    rescale_zero_terminal_snr_sigmas,
)

SD = ScheduleConfig("scaled_linear", 1000)
SD_ZERO = ScheduleConfig("scaled_linear", 1000, rescale=True)


def _cond(cfg: ScheduleConfig):
    """Per-step amplification of rounding by Algorithm 1: r_t = (s_t - s_T)/(s_1 - s_T) loses
    (s_t + s_T)/(s_t - s_T) in relative accuracy (cancellation of s_t - s_T); 0 if not rescaled.
    +inf at t = T, whose values are set exactly and checked separately."""
    if not cfg.rescale:
        return np.zeros(cfg.num_train_timesteps)
    s = make_schedule(cfg.name, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end).alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s + s[-1]) / (s - s[-1])


@given(cfg=zs.schedule_configs())
@example(cfg=SD)
@example(cfg=SD_ZERO)
@example(cfg=ScheduleConfig("cosine_unclipped", 1))
@example(cfg=ScheduleConfig("squaredcos_cap_v2", 2, rescale=True))
def test_alpha_bar_is_a_schedule(cfg):
    """ᾱ in [0, 1], non-increasing, β in (0, 1], ᾱ + (1 - ᾱ) = 1 within 2 ulp of 1."""
    s = cfg.build()
    abar, comp = s.alphas_cumprod, s.one_minus_alphas_cumprod
    assert s.num_train_timesteps == cfg.num_train_timesteps
    assert np.all((abar >= 0) & (abar <= 1)) and np.all((comp >= 0) & (comp <= 1))
    assert np.all(np.diff(abar) <= 0), "alpha_bar rises"
    assert np.all((s.betas > 0) & (s.betas <= 1)), "beta outside (0, 1]"
    # ᾱ and 1-ᾱ are computed separately (no cancellation), each to ~1 u relative: their sum is 1
    # to within 2 ulp of 1 (ulp(1) = 2u above 1). After Algorithm 1 each carries up to ~4 u·(1 + c_t)
    # (r_t and its complement lose accuracy by c_t, see _cond): 2 ulp + 8·u·(1 + c_t).
    c = _cond(cfg)
    c[-1] = 0.0  # t = T is set exactly (checked in test_rescale_zero_terminal_snr)
    assert_within(abar + comp, 1.0, 2 * np.spacing(1.0) + np.where(c > 0, 8 * U * (1 + c), 0.0),
                  "abar + (1 - abar)")


@given(cfg=zs.schedule_configs())
@example(cfg=SD)
@example(cfg=SD_ZERO)
@example(cfg=ScheduleConfig("squaredcos_cap_v2", 1000, rescale=True))
def test_betas_consistent_with_alpha_bar(cfg):
    """ᾱ_t = ᾱ_{t-1}·(1 - β_t). fl(1-β) is exact or within u relative (Sterbenz for β >= 1/2), the
    product rounds once, ᾱ and β are each within a few u relative of their exact values -- times the
    rescale amplification _cond: bound 32·u·(ᾱ_t·(1 + c_t) + ᾱ_{t-1}·(1 + c_{t-1}))."""
    s = cfg.build()
    abar, betas, c = s.alphas_cumprod, s.betas, _cond(cfg)
    assert_within(abar[0], 1.0 - betas[0], 2 * U, "abar_0 = 1 - beta_0")
    last = len(abar) - 1 if cfg.rescale else len(abar)
    t = np.arange(1, last)
    bound = 32 * U * (abar[t] * (1 + c[t]) + abar[t - 1] * (1 + c[t - 1]))
    assert_within(abar[t], abar[t - 1] * (1.0 - betas[t]), bound, f"{cfg}: abar_t vs abar_(t-1)(1-beta_t)")


@given(cfg=zs.schedule_configs(rescale=True))
@example(cfg=SD_ZERO)
@example(cfg=ScheduleConfig("linear", 2, rescale=True))
def test_rescale_zero_terminal_snr(cfg):
    """Algorithm 1: SNR(T) = 0, ᾱ_T = 0, β_T = 1 exactly; the first step is kept bitwise."""
    base, s = make_schedule(cfg.name, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end), cfg.build()
    assert s.snr[-1] == 0.0 and s.alphas_cumprod[-1] == 0.0 and s.betas[-1] == 1.0
    assert s.one_minus_alphas_cumprod[-1] == 1.0
    assert s.alphas_cumprod[0] == base.alphas_cumprod[0]
    assert s.one_minus_alphas_cumprod[0] == base.one_minus_alphas_cumprod[0]
    # β'_1 = 1 - ᾱ'_1 by definition; the base schedule's own β_1 agrees with 1 - ᾱ_1 to 2 u relative
    assert s.betas[0] == s.one_minus_alphas_cumprod[0]
    assert_within(s.betas[0], base.betas[0], 2 * U * base.betas[0], "beta_1")
    assert np.isinf(s.euler_sigma[-1]) and np.all(np.isfinite(s.euler_sigma[:-1]))


@given(T=zs.num_train_timesteps())
@example(T=1)
@example(T=1000)
def test_cosine_unclipped_reaches_zero_snr(T):
    s = make_schedule("cosine_unclipped", T)
    assert s.alphas_cumprod[-1] == 0.0 and s.snr[-1] == 0.0 and s.betas[-1] == 1.0


def test_clipped_cosine_closed_form():
    """T = 1000: only the last β is clipped (to 0.999), so ᾱ_T = f((T-1)/T)/f(0)·0.001 =
    sin²(c/T)/sin²(c)·0.001, c = π/(2·1.008). Four roundings of sin and products and one of the
    oracle: 8·u relative."""
    s = make_schedule("squaredcos_cap_v2", 1000)
    c = math.pi / (2 * 1.008)
    # the clip is β = fl(0.999), so the kept factor is 1 - fl(0.999) (exact by Sterbenz), which is
    # 0.001·(1 + 4.4u), not fl(0.001)
    expected = math.sin(c / 1000) ** 2 / math.sin(c) ** 2 * (1.0 - 0.999)
    assert np.sum(s.betas == 0.999) == 1 and s.betas[-1] == 0.999
    assert_within(s.alphas_cumprod[-1], expected, 8 * U * expected, "clipped cosine abar_T")
    # the unclipped ᾱ at t = T-1 agrees with the same closed form
    u = make_schedule("cosine_unclipped", 1000)
    head = math.sin(c / 1000) ** 2 / math.sin(c) ** 2
    assert_within(u.alphas_cumprod[-2], head, 8 * U * head, "cosine abar_(T-1)")
    assert u.alphas_cumprod[-2] == s.alphas_cumprod[-2]


@given(cfg=zs.schedule_configs(rescale=True, min_T=3),
       floor=st.one_of(st.sampled_from([DIFFUSERS_EULER_FLOOR, COMFYUI_FLOOR]), st.floats(1e-12, 1e-3)))
@example(cfg=SD_ZERO, floor=DIFFUSERS_EULER_FLOOR)
@example(cfg=SD_ZERO, floor=COMFYUI_FLOOR)
def test_terminal_floor(cfg, floor):
    zero = cfg.build()
    if floor > zero.alphas_cumprod[-2]:
        return  # not a floor for this schedule (checked in test_bad_input)
    s = make_schedule(cfg.name, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end, rescale=True,
                      terminal_floor=floor)
    assert s.alphas_cumprod[-1] == floor
    # 1 - floor is kept exact (a double-double) and the ratio rounds once: correctly rounded
    assert s.snr[-1] == float(Fraction(floor) / (1 - Fraction(floor)))
    assert np.isfinite(s.euler_sigma[-1])
    assert_array_equal(s.alphas_cumprod[:-1], zero.alphas_cumprod[:-1])


@given(cfg=zs.schedule_configs(rescale=True),
       floor=st.one_of(st.none(), st.sampled_from([DIFFUSERS_EULER_FLOOR, COMFYUI_FLOOR])))
@example(cfg=SD_ZERO, floor=None)
@example(cfg=SD_ZERO, floor=COMFYUI_FLOOR)
def test_rescale_sigmas_agrees_with_alpha_bar_rescale(cfg, floor):
    """ComfyUI's route (σ → ᾱ = 1/(σ²+1) → Algorithm 1 → σ) equals rescaling ᾱ directly. The
    round trip through σ perturbs ᾱ and 1-ᾱ by a few u relative; Algorithm 1 amplifies that by c_t;
    σ = √((1-ᾱ)/ᾱ) halves it: bound 32·u·(1 + c_t)·σ_t."""
    zero = cfg.build()
    if cfg.name == "cosine_unclipped":
        return  # its σ_T is already inf: rescale_zero_terminal_snr_sigmas takes finite σ (test_bad_input)
    if floor is not None and (cfg.num_train_timesteps < 3 or floor > zero.alphas_cumprod[-2]):
        return
    base = make_schedule(cfg.name, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
    got = rescale_zero_terminal_snr_sigmas(base.euler_sigma, terminal_floor=floor)
    want = (zero if floor is None else make_schedule(cfg.name, cfg.num_train_timesteps, cfg.beta_start,
                                                     cfg.beta_end, rescale=True, terminal_floor=floor)).euler_sigma
    if floor is None:
        assert np.isinf(got[-1]) and np.isinf(want[-1])
        got, want = got[:-1], want[:-1]
    else:
        assert got[-1] == want[-1]
    c = _cond(cfg)[: len(want)]
    assert_within(got, want, 32 * U * (1 + c) * want, f"{cfg} sigmas")


def _printed(x, sig):
    return float(f"{x:.{sig - 1}e}")


def test_table1_linear_and_scaled_linear():
    """Table 1 as printed: SNR(T) to 7 significant digits (linear) or 4 (SD), √ᾱ_T to 4 or 5; the SD
    terminal x_T = 0.068265·x₀ + 0.997667·ε and σ_max = 14.6146 (paper Sec. 3)."""
    lin = make_schedule("linear", 1000)
    assert _printed(lin.snr[-1], 7) == 4.035993e-05
    assert _printed(lin.alpha[-1], 4) == 0.006353
    sd = make_schedule("scaled_linear", 1000)
    assert _printed(sd.snr[-1], 4) == 0.004682
    assert _printed(sd.alpha[-1], 5) == 0.068265
    assert _printed(sd.sigma[-1], 6) == 0.997667
    assert _printed(sd.euler_sigma[-1], 6) == 14.6146
