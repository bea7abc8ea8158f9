"""Sample-step selection (Table 2), σ interpolation and Karras σ."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import U, assert_within
from properties.strategies import SpacingConfig
from reference import karras_sigmas, make_schedule, sigma_at, timesteps, to_paper_timesteps


def _exact(cfg: SpacingConfig):
    """Independent exact computation with Fraction and Python's round (half to even)."""
    T, S, off = cfg.num_train_timesteps, cfg.num_inference_steps, cfg.steps_offset
    if cfg.spacing == "linspace":
        return [0] if S == 1 else [round(Fraction(k * (T - 1), S - 1)) for k in range(S - 1, -1, -1)]
    if cfg.spacing == "leading":
        return [k * (T // S) + off for k in range(S - 1, -1, -1)]
    return [round(Fraction(T) - k * Fraction(T, S)) - 1 for k in range(S)]


@given(cfg=zs.spacing_configs())
@example(cfg=SpacingConfig("trailing", 1000, 1))
@example(cfg=SpacingConfig("linspace", 1000, 1000))
@example(cfg=SpacingConfig("leading", 1000, 50, 1))
@example(cfg=SpacingConfig("trailing", 1, 1))
@example(cfg=SpacingConfig("linspace", 7, 2))
def test_timesteps(cfg):
    ts = cfg.build()
    T, S = cfg.num_train_timesteps, cfg.num_inference_steps
    assert ts.dtype == np.int64 and ts.shape == (S,)
    assert np.all(np.diff(ts) < 0), "not strictly decreasing"
    assert ts.min() >= 0 and ts.max() <= T - 1
    if cfg.spacing == "trailing" or (cfg.spacing == "linspace" and S >= 2):
        assert ts[0] == T - 1
    if cfg.spacing == "leading":
        assert ts[-1] == cfg.steps_offset
    assert ts.tolist() == _exact(cfg)


def test_table2():
    """Table 2 (T = 1000, S = 10), in the paper's 1-based numbering."""
    paper = {"leading": list(range(1, 1000, 100)),
             "linspace": [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000],
             "trailing": list(range(100, 1001, 100))}
    for spacing, want in paper.items():
        assert sorted(to_paper_timesteps(timesteps(spacing, 1000, 10)).tolist()) == want


@given(cfg=zs.schedule_configs(min_T=2), data=st.data())
def test_sigma_at(cfg, data):
    """Exact at integer t; between the neighbours' σ at fractional t; inf next to an inf σ."""
    s = cfg.build()
    T = s.num_train_timesteps
    interp = data.draw(st.sampled_from(["linear", "log_linear"]), label="interpolation")
    t_int = data.draw(st.integers(0, T - 1), label="t_int")
    assert_array_equal(sigma_at(s, [float(t_int)], interp), s.euler_sigma[[t_int]])
    t = data.draw(st.floats(0.0, T - 1, exclude_max=True), label="t")
    lo, hi = s.euler_sigma[int(np.floor(t))], s.euler_sigma[int(np.floor(t)) + 1]
    got = sigma_at(s, [t], interp)[0]
    if np.isinf(hi) and t != np.floor(t):
        assert np.isinf(got)
    elif interp == "linear":
        assert lo <= got <= hi, (lo, got, hi)  # lo + w·(hi - lo), w in [0, 1): monotone rounding
    else:
        # exp(log lo + w·(log hi - log lo)): log rounds with absolute error ~u·|log σ|, exp turns
        # that into a relative error: within [lo, hi] up to 4·u·(1 + |log σ|)·σ
        slack = 4 * U * (1 + abs(np.log(hi))) * hi
        assert lo - slack <= got <= hi + slack, (lo, got, hi)


def test_sigma_at_zero_snr():
    s = make_schedule("scaled_linear", 1000, rescale=True)
    got = sigma_at(s, [998.0, 998.5, 999.0])
    assert np.isfinite(got[0]) and np.isinf(got[1]) and np.isinf(got[2])


@given(lo=st.floats(1e-4, 10.0), ratio=st.floats(1.0, 1e5), S=st.integers(1, 500),
       rho=st.one_of(st.just(7.0), st.floats(0.5, 20.0)))
@example(lo=0.0291675, ratio=14.6146 / 0.0291675, S=1, rho=7.0)
@example(lo=0.0291675, ratio=4096 / 0.0291675, S=1000, rho=7.0)
@example(lo=1.0, ratio=1.0, S=5, rho=7.0)
def test_karras_sigmas(lo, ratio, S, rho):
    """Non-increasing, inside [σ_min, σ_max], endpoints within 2 ulp."""
    hi = lo * ratio
    k = karras_sigmas(lo, hi, S, rho)
    assert k.shape == (S,) and np.all(np.diff(k) <= 0) and k.min() >= lo and k.max() <= hi
    assert_within(k[0], hi, 2 * np.spacing(hi), "sigma_max")
    if S > 1:
        assert_within(k[-1], lo, 2 * np.spacing(lo), "sigma_min")


def test_karras_rejects_inf_sigma_max():
    s = make_schedule("scaled_linear", 1000, rescale=True)
    with pytest.raises(ValueError, match="sigma_max.*inf|inf.*with_terminal_floor"):
        karras_sigmas(s.euler_sigma[0], s.euler_sigma[-1], 10)
