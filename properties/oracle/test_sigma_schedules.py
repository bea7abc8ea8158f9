"""The σ schedules people sample with (reference/spacing.py): exponential and Beta σ, the σ → t
conversion of the Euler family, EDM's continuous conditioning, and the assembled converted Euler
schedule -- against mpmath and against each other, with their zero-SNR behaviour."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from properties import strategies as zs
from properties.oracle._tol import U, assert_within
from properties.oracle.mp import ulp_error
from reference import (
    SIGMA_SCHEDULES,
    beta_sigmas,
    continuous_timesteps,
    converted_euler_sigmas,
    exponential_sigmas,
    fractional_timesteps,
    make_schedule,
    sigma_at,
    timestep_from_sigma,
)

sigma_ranges = st.tuples(st.floats(1e-4, 0.99), st.floats(1.01, 2e4))


@given(rng=sigma_ranges, S=st.integers(1, 60))
@example(rng=(0.0292, 14.6146), S=10)
@example(rng=(0.0292, 4096.0), S=2)
def test_exponential_sigmas_within_budget_of_mpmath(rng, S):
    """exp((1-r)·ln σ_max + r·ln σ_min): each log within u·|ln σ|, the combination within
    2u·(|ln σ_max| + |ln σ_min|), exp turns that absolute error of its argument into a relative one
    and adds its own rounding: budget 3·(|ln σ_max| + |ln σ_min|) + 1 ULP."""
    lo, hi = rng
    got = exponential_sigmas(lo, hi, S)
    r = [mpmath.mpf(k) / (S - 1) if S > 1 else mpmath.mpf(0) for k in range(S)]
    want = [mpmath.exp((1 - x) * mpmath.log(hi) + x * mpmath.log(lo)) for x in r]
    budget = 3 * (abs(math.log(hi)) + abs(math.log(lo))) + 1
    assert np.max(ulp_error(got, want)) <= budget
    assert got[0] == hi and (S == 1 or got[-1] == lo) and np.all(np.diff(got) <= 0)


@given(rng=sigma_ranges, S=st.integers(2, 30), ab=st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)))
@example(rng=(0.0292, 14.6146), S=10, ab=(0.6, 0.6))
@example(rng=(0.5, 2.0), S=3, ab=(1.75, 1.75))  # scipy's betaincinv alone: 1e-12 off the symmetric 1/2
def test_beta_sigmas_sit_at_the_beta_quantiles(rng, S, ab):
    """(σ - σ_min)/(σ_max - σ_min) is the Beta(α, β) quantile of 1 - k/(S-1): the forward
    regularised incomplete Beta function (scipy.special.betainc, an independent evaluation from
    the inverse the oracle uses) maps it back to that level, within the rounding of σ (3u
    relative, divided by σ_max - σ_min) carried through the density, plus 1e-13 for betainc's own
    accuracy."""
    from scipy.special import beta as beta_fn
    from scipy.special import betainc

    lo, hi = rng
    a, b = ab
    got = beta_sigmas(lo, hi, S, a, b)
    assert got[0] == hi and got[-1] == lo and np.all(np.diff(got) <= 0)
    for k, sig in enumerate(got[1:-1], start=1):
        p = (sig - lo) / (hi - lo)
        level = 1 - k / (S - 1)
        pdf = p ** (a - 1) * (1 - p) ** (b - 1) / beta_fn(a, b) if 0 < p < 1 else np.inf
        tol = 1e-13 + pdf * 8 * U * (hi + lo) / (hi - lo)
        assert abs(betainc(a, b, p) - level) <= tol, (k, betainc(a, b, p), level, tol)


@given(cfg=zs.schedule_configs(min_T=2, max_T=1000, rescale=False), u=st.lists(st.floats(0.0, 1.0), min_size=1,
                                                                                    max_size=8))
def test_timestep_from_sigma_inverts_log_linear_sigma(cfg, u):
    """t → σ(t) (sigma_at, log_linear) → t: the log-linear σ errs by ~4u·(|ln σ_lo| + |Δ|), its log by
    u·|ln σ| more, and the interpolation weight divides these by Δ = ln σ_hi - ln σ_lo:
    |Δt| <= 8u·(|ln σ_lo| + |ln σ_hi| + |Δ|)/|Δ| (+ 1e-12·T for the weight's own roundings)."""
    sched = cfg.build()
    T = sched.num_train_timesteps
    table = np.log(sched.euler_sigma)
    t = np.array(u) * (T - 1)
    lo = np.clip(np.floor(t).astype(int), 0, T - 2)
    keep = np.isfinite(table[lo + 1])  # σ = inf at zero SNR: test_timestep_from_sigma_at_zero_snr
    t, lo = t[keep], lo[keep]
    sig = sigma_at(sched, t, "log_linear")
    back = timestep_from_sigma(sched, sig)
    d = np.abs(table[lo + 1] - table[lo])
    bound = 8 * U * (np.abs(table[lo]) + np.abs(table[lo + 1]) + d) / d + 1e-12 * T
    assert_within(back, t, bound, "t(σ(t))")


def test_timestep_from_sigma_at_zero_snr():
    """σ_{T-1} = inf: finite σ above σ_{T-2} map to T-2, σ = inf to T-1, σ = 0 to 0."""
    z = make_schedule("scaled_linear", 1000, rescale=True)
    s_tm2 = float(z.euler_sigma[-2])
    got = timestep_from_sigma(z, [0.0, s_tm2, 10 * s_tm2, 1e300, math.inf])
    assert got.tolist() == [0.0, 998.0, 998.0, 998.0, 999.0]


@given(sig=st.lists(st.floats(1e-300, 1e300), min_size=1, max_size=8))
def test_continuous_timesteps_within_one_ulp(sig):
    """¼·ln σ: the log's rounding (<= 1 ULP for NumPy's log), the ¼ is exact."""
    got = continuous_timesteps(sig)
    assert np.max(ulp_error(got, [mpmath.log(s) / 4 for s in sig])) <= 1.0


def test_converted_schedules_at_zero_snr():
    """σ_max = inf at zero SNR: Karras, exponential and Beta σ are undefined (a clear error), the
    plain σ of the timesteps start at inf; with diffusers' floor σ_max is 4096."""
    z = make_schedule("scaled_linear", 1000, rescale=True)
    ts = fractional_timesteps("trailing", 1000, 10)
    for kind in ("karras", "exponential", "beta"):
        with pytest.raises(ValueError, match="sigma_schedule"):
            converted_euler_sigmas(z, ts, kind)
    with pytest.raises(ValueError, match="sigma_max"):
        exponential_sigmas(0.03, math.inf, 10)
    t, sig = converted_euler_sigmas(z, ts, "timesteps")
    assert math.isinf(sig[0]) and t[0] == 999.0
    with pytest.raises(ValueError, match="sigmas"):
        continuous_timesteps(sig[:-1])


@given(cfg=zs.schedule_configs(min_T=2, max_T=1000, rescale=False), kind=st.sampled_from(SIGMA_SCHEDULES),
       S=st.integers(1, 30), final=st.sampled_from(["zero", "sigma_min"]))
def test_converted_schedule_structure(cfg, kind, S, final):
    """S timesteps in [0, T-1] and S+1 non-increasing σ from σ(t_0) down to σ(t_{S-1}), then the
    final σ; each model timestep is the σ → t of its σ."""
    sched = cfg.build()
    T = sched.num_train_timesteps
    S = min(S, T)
    ts = fractional_timesteps("trailing", T, S)
    if kind != "timesteps" and not np.isfinite(sigma_at(sched, ts[:1])[0]):
        with pytest.raises(ValueError, match="sigma_schedule"):  # zero SNR (the unclipped cosine)
            converted_euler_sigmas(sched, ts, kind, final_sigma=final)
        return
    t, sig = converted_euler_sigmas(sched, ts, kind, final_sigma=final)
    assert t.shape == (S,) and sig.shape == (S + 1,)
    assert np.all((t >= 0) & (t <= T - 1))
    base = sigma_at(sched, ts)
    assert sig[0] == base[0] and (S == 1 or sig[S - 1] == base[-1])
    assert np.all(np.diff(sig[:-1]) <= 0)
    assert sig[-1] == (0.0 if final == "zero" else sched.euler_sigma[0])
    if kind != "timesteps":
        np.testing.assert_array_equal(t, timestep_from_sigma(sched, sig[:-1]))
