"""Noise schedules: betas, ᾱ, SNR and σ, Algorithm 1 (zero terminal SNR) and terminal floors.

Everything is float64 and indexed by the 0-based training timestep t = 0..T-1 (the paper's
t = 1..T). A :class:`Schedule` keeps ᾱ_t *and* 1 - ᾱ_t, each computed without cancellation,
so that σ_t = √(1-ᾱ_t) is accurate near t = 0 (where ᾱ ≈ 1) and SNR(T) is exactly 0 after
rescaling (where ᾱ = 0).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from . import _checks, _dd

#: Beta schedules by name (diffusers' ``beta_schedule`` names, plus the unclipped cosine).
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine_unclipped", "sigmoid")

#: Default (beta_start, beta_end) of the schedules that take a range: DDPM's for linear and
#: sigmoid, Stable Diffusion's for scaled_linear.
DEFAULT_BETA_RANGE = {
    "linear": (0.0001, 0.02),
    "scaled_linear": (0.00085, 0.012),
    "sigmoid": (0.0001, 0.02),
}

#: The clip of improved DDPM's cosine schedule ("squaredcos_cap_v2"): β_t <= 0.999.
COSINE_MAX_BETA = 0.999
#: Improved DDPM's cosine offset s in f(t) = cos²(((t/T) + s)/(1 + s) · π/2).
COSINE_OFFSET = 0.008

#: ᾱ_T floor used by diffusers' Euler and Euler-ancestral schedulers with zero-SNR rescale (σ_T ≈ 4096).
DIFFUSERS_EULER_FLOOR = 2.0**-24
#: ᾱ_T floor used by ComfyUI and A1111 (σ_T ≈ 4518.76).
COMFYUI_FLOOR = 4.8973451890853435e-08


#: The oracle's own error bound, in ULPs (np.spacing of the exact value), on every array of a
#: :class:`Schedule` that :func:`make_schedule` builds -- β, α, ᾱ, 1-ᾱ, √ᾱ, √(1-ᾱ), SNR and
#: Euler σ, plain, rescaled (Algorithm 1) and with a terminal floor -- against the exact value
#: (mpmath, 60 digits) of the same float64 inputs, for the named schedules with their default
#: β range or β in [1e-5, 0.05], T <= 4000 (what properties/oracle/test_precision.py draws; the
#: derivation holds to T = 2**24). Each is a double-double rounded once: <= 0.5 ULP plus ε/u for
#: the double-double's own relative error ε, which is <= ~2⁻⁶⁰ -- sines ~3e-20 each (_dd.sin),
#: products T·2⁻¹⁰⁴, Algorithm 1's differences amplified by at most ~(ᾱ_i + ᾱ_j)/(ᾱ_i - ᾱ_j) <= 2/β
#: on values already ~2⁻⁹⁰ -- so <= 0.51 ULP; the bound leaves room to ε = 2⁻⁵⁴. Measured worst
#: (benchmarks/oracle_accuracy.py, T ∈ {1000, 4000} and T = 2…79, 97, 150, 333, 777): 0.54.
#: Float64 implementations checked against the oracle add this to their own error budget.
ORACLE_ULP_BOUND = 1.0
#: The same for log SNR: log(hi) + lo/hi of the SNR's double-double, NumPy's log (<= 1 ULP)
#: plus the final rounding (0.5) = 1.5, rounded up; measured worst 1.00.
ORACLE_LOG_SNR_ULP_BOUND = 2.0


# --- the running product ᾱ, in double-double ---------------------------------------------------


def _dd_cumprod(beta_hi: np.ndarray, beta_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running product of 1 - β, β = beta_hi + beta_lo, as a double-double (hi, lo), by a
    log-depth prefix scan.

    The factors 1 - β are formed exactly to ~106 bits and every product keeps ~106 bits, so
    ᾱ = hi + lo carries about T·2⁻¹⁰⁵ relative error before its final rounding.
    """
    hi, lo = _dd.two_sum(1.0, -beta_hi)
    hi, lo = _dd.fast_two_sum(hi, lo - beta_lo)
    shift = 1
    while shift < hi.size:
        p, q = _dd.mul((hi[shift:], lo[shift:]), (hi[:-shift], lo[:-shift]))
        hi, lo = np.concatenate([hi[:shift], p]), np.concatenate([lo[:shift], q])
        shift *= 2
    return hi, lo


# --- the schedule -------------------------------------------------------------------------------

#: Tolerance, in units u = 2⁻⁵³, of a Schedule's consistency checks |ᾱ + (1-ᾱ) - 1| and
#: |ᾱ_{t-1}(1-β_t) - ᾱ_t|/ᾱ_{t-1}: they tell arrays that describe one schedule from arrays that do
#: not (another T, a shifted or foreign array), not a precision claim. On the schedules
#: make_schedule builds the two are within 4u and 6u (measured: every name, rescaled, floored,
#: rebuilt from ᾱ, T = 1..4000). Algorithm 1 applied to inputs that carry their own rounding
#: (ᾱ and 1-ᾱ from σ, rescale_zero_terminal_snr_sigmas) amplifies that rounding by ᾱ/(ᾱ_i - ᾱ_j),
#: up to ~10⁴ (the cosine near t = 0), so the outputs' β and ᾱ agree only to ~10⁴·u (80u measured
#: for linear, T = 4000). 2²⁰ u ≈ 1.2e-10 leaves a factor ~100 above that.
CONSISTENCY_ULPS = 2**20
_U = 2.0**-53
_SUBNORMAL = 5e-324


def _validate_schedule(s) -> None:
    """The constructor checks of :class:`Schedule` (see its docstring); converts the fields."""
    arrays = {}
    for name in ("betas", "alphas_cumprod", "one_minus_alphas_cumprod"):
        arrays[name] = _checks.array(name, getattr(s, name), ndim=1)
        object.__setattr__(s, name, arrays[name])
    b, a, c = arrays["betas"], arrays["alphas_cumprod"], arrays["one_minus_alphas_cumprod"]
    if not b.size == a.size == c.size:
        raise ValueError(f"betas, alphas_cumprod and one_minus_alphas_cumprod must have one length T; got "
                         f"{b.size}, {a.size} and {c.size}")
    if b.size == 0:
        raise ValueError("betas must hold at least one value (T >= 1)")
    _checks.num_train_timesteps(b.size, "len(betas)")
    _checks.in_range("betas", b, 0.0, 1.0, low_open=True)
    _checks.in_range("alphas_cumprod", a, 0.0, 1.0)
    _checks.in_range("one_minus_alphas_cumprod", c, 0.0, 1.0)
    if a[0] == 1.0:
        raise ValueError("alphas_cumprod[0] must be < 1: ᾱ_0 = 1 means β_0 = 0, σ_0 = 0, infinite SNR")
    if np.any(np.diff(a) > 0):
        t = int(np.argmax(np.diff(a) > 0)) + 1
        raise ValueError(f"alphas_cumprod must be non-increasing; it rises at t={t}")
    if b.size > 1 and (np.any(b[:-1] == 1.0) or np.any(a[:-1] == 0.0)):
        t = int(np.argmax((b[:-1] == 1.0) | (a[:-1] == 0.0)))
        raise ValueError(f"betas reach 1 (alphas_cumprod reaches 0) at t={t}, before the last timestep "
                         f"t=T-1={b.size - 1}: ᾱ would stay 0 from there on and β be undefined; zero SNR is "
                         f"allowed only at t=T-1")
    tol = CONSISTENCY_ULPS * _U
    off = np.abs((a - 1.0) + c)
    if np.any(off > tol):
        t = int(np.argmax(off))
        raise ValueError(f"alphas_cumprod and one_minus_alphas_cumprod must sum to 1 (within 2⁻³³); "
                         f"at t={t}: {a[t]!r} + {c[t]!r}")
    prev = np.concatenate([[1.0], a[:-1]])
    gap = np.abs(prev * (1.0 - b) - a)
    bad = gap > tol * prev + 4 * _SUBNORMAL
    if np.any(bad):
        t = int(np.argmax(bad))
        raise ValueError(f"betas and alphas_cumprod disagree: ᾱ_t must be ᾱ_(t-1)·(1 - β_t) (within "
                         f"2⁻³³·ᾱ_(t-1)); at t={t}: β={b[t]!r}, ᾱ={a[t]!r}, ᾱ_(t-1)={prev[t]!r}")
    for name, hi in (("alphas_cumprod_lo", a), ("one_minus_alphas_cumprod_lo", c)):
        lo = getattr(s, name)
        if lo is None:
            continue
        lo = _checks.array(name, lo, ndim=1)
        if lo.size != hi.size:
            raise ValueError(f"{name} must have the length of {name[:-3]} ({hi.size}); got {lo.size}")
        if np.any(np.abs(lo) > np.spacing(hi)):
            t = int(np.argmax(np.abs(lo) > np.spacing(hi)))
            raise ValueError(f"{name} must be a low part, |lo| <= ulp({name[:-3]}); at t={t}: {lo[t]!r} "
                             f"against {hi[t]!r}")
        object.__setattr__(s, name, lo)
    if not isinstance(s.name, str):
        raise TypeError(f"name must be a string; got {type(s.name).__name__}")



@dataclass(frozen=True, eq=False)
class Schedule:
    """A variance-preserving noise schedule over training timesteps t = 0..T-1.

    ``alphas_cumprod`` is ᾱ_t; ``one_minus_alphas_cumprod`` is 1 - ᾱ_t, computed without
    cancellation (never as ``1 - alphas_cumprod``); ``betas`` is β_t = 1 - ᾱ_t/ᾱ_{t-1}.
    Build one with :func:`make_schedule`, :meth:`from_betas` or :meth:`from_alphas_cumprod`.

    A Schedule cannot be constructed invalid; the constructor checks (a ValueError/TypeError
    naming the field otherwise): three finite 1-D arrays of one length T, 1 <= T <= 2**24;
    β_t in (0, 1] and ᾱ_t in [0, 1), with β_t = 1 and ᾱ_t = 0 only at t = T-1 (zero terminal
    SNR; before it ᾱ would stay 0 and β be undefined); ᾱ non-increasing; ᾱ_t + (1 - ᾱ_t) = 1
    and ᾱ_{t-1}·(1 - β_t) = ᾱ_t to rounding (within 2⁻³³, :data:`CONSISTENCY_ULPS`);
    ``alphas_cumprod_lo`` and ``one_minus_alphas_cumprod_lo`` None or finite arrays of the same
    length, each entry at most one ULP of its float; ``name`` a string.

    The derived arrays (α, √ᾱ, σ, SNR, log SNR, Euler σ) are computed once, from ᾱ and 1 - ᾱ as
    double-doubles (their low parts where known, else the floats taken as exact), and rounded
    once; each property returns a fresh copy.
    """

    betas: np.ndarray
    alphas_cumprod: np.ndarray
    one_minus_alphas_cumprod: np.ndarray
    name: str = "custom"
    #: Low part of ᾱ where it was computed to double-double precision (exact ᾱ_t ≈
    #: alphas_cumprod[t] + alphas_cumprod_lo[t]); None where ᾱ is taken as exact as given.
    #: Algorithm 1 uses it for the differences ᾱ_t - ᾱ_T, which cancel near t = T.
    alphas_cumprod_lo: np.ndarray | None = field(default=None, repr=False)
    #: Low part of 1 - ᾱ likewise (exact 1 - ᾱ_t ≈ one_minus_alphas_cumprod[t] +
    #: one_minus_alphas_cumprod_lo[t]); None: derived from ᾱ's double-double where
    #: ``alphas_cumprod_lo`` is given, else 1 - ᾱ is taken as exact as given.
    one_minus_alphas_cumprod_lo: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        _validate_schedule(self)
        for name in ("betas", "alphas_cumprod", "one_minus_alphas_cumprod", "alphas_cumprod_lo",
                     "one_minus_alphas_cumprod_lo"):
            arr = getattr(self, name)
            if arr is not None:
                arr.flags.writeable = False

    @classmethod
    def from_betas(cls, betas, name: str = "custom") -> Schedule:
        """The schedule of the given betas, each in (0, 1]; ᾱ is their running product of 1 - β."""
        betas = _checks.array("betas", betas, ndim=1)
        if betas.size == 0:
            raise ValueError("betas must hold at least one value (T >= 1)")
        _checks.in_range("betas", betas, 0.0, 1.0, low_open=True)
        _checks.num_train_timesteps(betas.size, "len(betas)")
        try:
            return cls._from_dd_betas(betas, np.zeros_like(betas), name)
        except ValueError as exc:  # e.g. β_0 < 2⁻⁵³ (1 - β_0 rounds to 1), β = 1 before t = T-1
            raise ValueError(f"betas give no valid schedule: {exc}") from None

    @classmethod
    def _from_dd_betas(cls, beta_hi: np.ndarray, beta_lo: np.ndarray, name: str) -> Schedule:
        """The schedule of β = beta_hi + beta_lo (a double-double), ᾱ by a double-double product."""
        A = _dd_cumprod(beta_hi, beta_lo)
        abar, abar_lo = _dd.split_round(A)
        comp, comp_lo = _dd.split_round(_dd.sub(_dd.two_sum(1.0, -A[0]), (0.0, A[1])))
        return cls(beta_hi, abar, comp, name, abar_lo, comp_lo)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod, name: str = "custom") -> Schedule:
        """The schedule of the given ᾱ: in [0, 1), decreasing (every β > 0), 0 only at t = T-1.
        1 - ᾱ is taken as given."""
        abar = _checks.array("alphas_cumprod", alphas_cumprod, ndim=1)
        if abar.size == 0:
            raise ValueError("alphas_cumprod must hold at least one value (T >= 1)")
        _checks.in_range("alphas_cumprod", abar, 0.0, 1.0)
        if abar[0] == 1.0:
            raise ValueError("alphas_cumprod[0] must be < 1: ᾱ_0 = 1 means β_0 = 0, σ_0 = 0, infinite SNR")
        if np.any(np.diff(abar) >= 0):
            t = int(np.argmax(np.diff(abar) >= 0)) + 1
            raise ValueError(f"alphas_cumprod must be decreasing (every β > 0); it does not fall at t={t}")
        prev = np.concatenate([[1.0], abar[:-1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            betas = np.where(prev > 0, (prev - abar) / prev, 1.0)
        if np.any(prev == 0):
            raise ValueError("alphas_cumprod may be 0 only at the last timestep (after it, β is undefined)")
        return cls(betas, abar, 1.0 - abar, name)

    @property
    def num_train_timesteps(self) -> int:
        return self.betas.size

    def _pairs(self):
        """ᾱ and 1 - ᾱ as double-doubles (see the field docs)."""
        a, c = self.alphas_cumprod, self.one_minus_alphas_cumprod
        a_lo = np.zeros_like(a) if self.alphas_cumprod_lo is None else self.alphas_cumprod_lo
        if self.one_minus_alphas_cumprod_lo is not None:
            c_lo = self.one_minus_alphas_cumprod_lo
        elif self.alphas_cumprod_lo is not None:  # 1 - ᾱ = (1 - hi) - lo; c is its rounding
            exact = _dd.sub(_dd.two_sum(1.0, -a), (0.0, a_lo))
            c_lo = (exact[0] - c) + exact[1]
            c_lo = np.where(np.abs(c_lo) <= np.spacing(c), c_lo, 0.0)  # else c is taken as given
        else:
            c_lo = np.zeros_like(c)
        return (a, a_lo), (c, c_lo)

    def _derived(self, key: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_derived_cache", {})
        if key not in cache:
            out = _DERIVED[key](self)
            out.flags.writeable = False
            cache[key] = out
        return cache[key].copy()

    @property
    def alphas(self) -> np.ndarray:
        """Per-step α_t = 1 - β_t (diffusers' ``alphas``), as ᾱ_t/ᾱ_{t-1} where ᾱ is a double-double
        (1 - β cancels where β is near 1)."""
        return self._derived("alphas")

    @property
    def alpha(self) -> np.ndarray:
        """Signal scale √ᾱ_t."""
        return self._derived("alpha")

    @property
    def sigma(self) -> np.ndarray:
        """Noise scale √(1 - ᾱ_t) of the variance-preserving process."""
        return self._derived("sigma")

    @property
    def snr(self) -> np.ndarray:
        """SNR(t) = ᾱ_t / (1 - ᾱ_t); exactly 0 where ᾱ_t = 0."""
        return self._derived("snr")

    @property
    def log_snr(self) -> np.ndarray:
        """log SNR(t); exactly -inf where SNR is 0."""
        return self._derived("log_snr")

    @property
    def euler_sigma(self) -> np.ndarray:
        """The variance-exploding σ_t = √((1 - ᾱ_t)/ᾱ_t) of Karras/k-diffusion; +inf where SNR is 0."""
        return self._derived("euler_sigma")

    @property
    def terminal_snr(self) -> float:
        return float(self.snr[-1])


# Double-double arithmetic is exact-ish only away from the ends of the float64 range (Dekker's
# split overflows above 2⁹⁹⁶, low parts underflow below ~2⁻⁹⁶⁹): where ᾱ or 1 - ᾱ is below
# _DD_SAFE the derived arrays are the plain float64 formulas (one or two roundings).
_DD_SAFE = 2.0**-900


def _safe(x):
    return np.where(x >= _DD_SAFE, x, 1.0)


def _alphas(s: Schedule) -> np.ndarray:
    plain = 1.0 - s.betas
    if s.alphas_cumprod_lo is None:
        return plain
    A, _ = s._pairs()
    prev = (np.concatenate([[1.0], A[0][:-1]]), np.concatenate([[0.0], A[1][:-1]]))
    ok = (prev[0] >= _DD_SAFE) & (A[0] >= _DD_SAFE)
    q = _dd.to_float(_dd.div((np.where(ok, A[0], 1.0), np.where(ok, A[1], 0.0)),
                             (np.where(ok, prev[0], 1.0), np.where(ok, prev[1], 0.0))))
    return np.where(ok, q, plain)


def _sqrt_of(pair) -> np.ndarray:
    ok = pair[0] >= _DD_SAFE
    dd = _dd.to_float(_dd.sqrt_dd((_safe(pair[0]), np.where(ok, pair[1], 0.0))))
    return np.where(ok, dd, np.sqrt(pair[0]))


def _quotient(num, den):
    """num/den of two double-doubles, rounded once; the float quotient where either is tiny."""
    ok = (num[0] >= _DD_SAFE) & (den[0] >= _DD_SAFE)
    q = _dd.div((np.where(ok, num[0], 1.0), np.where(ok, num[1], 0.0)),
                (np.where(ok, den[0], 1.0), np.where(ok, den[1], 0.0)))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        plain = num[0] / den[0]
    return np.where(ok, q[0], plain), np.where(ok, q[1], 0.0)


def _snr_dd(s: Schedule):
    """SNR as a double-double, computed once per schedule (for snr and log_snr)."""
    cache = s.__dict__.setdefault("_derived_cache", {})
    if "snr_dd" not in cache:
        cache["snr_dd"] = _quotient(*s._pairs())
    return cache["snr_dd"]


def _snr(s: Schedule) -> np.ndarray:
    return _dd.to_float(_snr_dd(s))


def _log_snr(s: Schedule) -> np.ndarray:
    # log(hi + lo) = log(hi) + lo/hi to 2⁻¹⁰⁶: np.log's own error plus one rounding
    hi, lo = _snr_dd(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > 0, np.log(hi) + lo / np.where(hi > 0, hi, 1.0), -np.inf)


def _euler_sigma(s: Schedule) -> np.ndarray:
    A, C = s._pairs()
    ok = (A[0] >= _DD_SAFE) & (C[0] >= _DD_SAFE)
    q = _dd.div((np.where(ok, C[0], 1.0), np.where(ok, C[1], 0.0)),
                (np.where(ok, A[0], 1.0), np.where(ok, A[1], 0.0)))
    dd = _dd.to_float(_dd.sqrt_dd(q))
    with np.errstate(divide="ignore", over="ignore"):
        sig = np.sqrt(C[0] / A[0])
        # a subnormal ᾱ: the quotient overflows although σ is finite; take the roots first there
        tiny = np.isinf(sig) & (A[0] > 0)
        if tiny.any():
            sig[tiny] = np.sqrt(C[0][tiny]) / np.sqrt(A[0][tiny])
    return np.where(ok, dd, sig)


_DERIVED = {
    "alphas": _alphas,
    "alpha": lambda s: _sqrt_of(s._pairs()[0]),
    "sigma": lambda s: _sqrt_of(s._pairs()[1]),
    "snr": _snr,
    "log_snr": _log_snr,
    "euler_sigma": _euler_sigma,
}


# --- beta schedules -----------------------------------------------------------------------------


_PI = (math.pi, 1.2246467991473532e-16)  # π as a double-double


def _cosine_angles(T: int):
    """Angles of f((t+1)/T)/f(0) = sin²(a_t)/sin²(c), using cos(x·π/2) = sin((1-x)·π/2), as
    double-doubles: c = π/(2(1+s)), a_t = c·(T-1-t)/T, and -- formed directly, never as a
    difference -- the complement b_t = c - a_t = c·(t+1)/T and g = π/2 - c = π·s/(2(1+s))."""
    two_one_plus_s = _dd.two_sum(2.0, 2.0 * COSINE_OFFSET)
    c = _dd.div((np.float64(_PI[0]), np.float64(_PI[1])), two_one_plus_s)
    g = _dd.div(_dd.mul((np.float64(_PI[0]), np.float64(_PI[1])), _dd.const(COSINE_OFFSET)), two_one_plus_s)
    a = _dd.mul(c, _dd.ratio(np.arange(T - 1, -1, -1, dtype=np.float64), float(T)))
    b = _dd.mul(c, _dd.ratio(np.arange(1, T + 1, dtype=np.float64), float(T)))
    return a, b, c, g


@functools.lru_cache(maxsize=64)
def _cosine(T: int, clip: bool, name: str) -> Schedule:
    # cached: a Schedule is immutable, and the double-double sines make a cold build ~1-4 ms
    # Improved DDPM: ᾱ_t = f(t)/f(0), β_t = 1 - ᾱ_t/ᾱ_{t-1}. Written with sines so that ᾱ_T = 0
    # exactly, and with sin² p - sin² a = sin(p-a) sin(p+a) so that β and 1 - ᾱ do not cancel.
    # Near t = 0 the angles p + a and c + a approach π - 2g ≈ 3.09, where sin loses
    # π·eps/sin(2g) ≈ 2⁷ ULP; there sin(π - x) is used, π - x = 2g + (c-p) + (c-a), a sum.
    # Angles and sines are double-doubles (_dd.sin, ~3e-20 relative) and each output is rounded
    # once, so β, ᾱ and 1 - ᾱ are within ~0.5 ULP; ᾱ and 1 - ᾱ keep their low parts.
    a, b, c, g = _cosine_angles(T)
    prev = (np.concatenate([[c[0]], a[0][:-1]]), np.concatenate([[c[1]], a[1][:-1]]))  # angle of t-1
    bprev = (np.concatenate([[0.0], b[0][:-1]]), np.concatenate([[0.0], b[1][:-1]]))  # c - prev
    two_g = _dd.add(g, g)
    step = _dd.div(c, _dd.const(float(T)))
    # one call of _dd.sin for all the angles: sin c, sin(c/T), sin a, sin b, sin(prev + a),
    # sin(c + a); sin prev is sin c followed by sin a shifted
    pa = _dd.add(prev, a)
    pa_m = _dd.add(two_g, _dd.add(bprev, b))
    ca = _dd.add(c, a)
    ca_m = _dd.add(two_g, b)
    use_pa, use_ca = pa[0] <= math.pi / 2, ca[0] <= math.pi / 2
    parts = [(np.atleast_1d(c[0]), np.atleast_1d(c[1])), (np.atleast_1d(step[0]), np.atleast_1d(step[1])),
             a, b, (np.where(use_pa, pa[0], pa_m[0]), np.where(use_pa, pa[1], pa_m[1])),
             (np.where(use_ca, ca[0], ca_m[0]), np.where(use_ca, ca[1], ca_m[1]))]
    sines = _dd.sin((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    cut = np.cumsum([0] + [p[0].size for p in parts])
    sin_c, sin_step, sin_a, sin_b, sin_pa, sin_ca = (
        (sines[0][i:j], sines[1][i:j]) for i, j in itertools.pairwise(cut))
    sin_prev = (np.concatenate([sin_c[0], sin_a[0][:-1]]), np.concatenate([sin_c[1], sin_a[1][:-1]]))
    sin_c2 = _dd.mul(sin_c, sin_c)
    with np.errstate(divide="ignore", invalid="ignore"):  # sin(prev) = 0 never: prev >= c/T
        betas = _dd.to_float(_dd.div(_dd.mul(sin_step, sin_pa), _dd.mul(sin_prev, sin_prev)))
    q = _dd.div(sin_a, sin_c)
    abar, abar_lo = _dd.split_round(_dd.mul(q, q))
    one_minus, one_minus_lo = _dd.split_round(_dd.div(_dd.mul(sin_b, sin_ca), sin_c2))
    betas[-1] = 1.0  # f(1) = 0 exactly
    abar[-1] = abar_lo[-1] = one_minus_lo[-1] = 0.0
    one_minus[-1] = 1.0
    if clip:
        clipped = betas > COSINE_MAX_BETA  # β_t rises with t, so the clipped steps are a suffix
        if clipped.any():
            k = int(np.argmax(clipped))
            head = (abar[k - 1], abar_lo[k - 1]) if k > 0 else (1.0, 0.0)
            head_c = (one_minus[k - 1], one_minus_lo[k - 1]) if k > 0 else (0.0, 0.0)
            betas[k:] = COSINE_MAX_BETA
            # keep_n = (1 - 0.999)^n as a double-double running product (1 - 0.999 is exact, Sterbenz)
            keep = _dd_cumprod(np.full(T - k, COSINE_MAX_BETA), np.zeros(T - k))
            abar[k:], abar_lo[k:] = _dd.split_round(_dd.mul(head, keep))
            # 1 - head·keep = (1 - head) + head·(1 - keep), both terms >= 0
            one_minus_keep = _dd.sub(_dd.two_sum(1.0, -keep[0]), (0.0, keep[1]))
            one_minus[k:], one_minus_lo[k:] = _dd.split_round(_dd.add(head_c, _dd.mul(head, one_minus_keep)))
    return Schedule(betas, abar, one_minus, name, abar_lo, one_minus_lo)


def _dd_betas(name: str, T: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """β of the linear, scaled_linear and sigmoid schedules as double-doubles.

    In plain float64 the rounding of β_end - β_start and of √β is the same for every t, so it
    adds up over the running product: ~20 ULP in ᾱ_T of scaled_linear at T = 4000. Carried to
    ~106 bits here, each β is correctly rounded and ᾱ inherits no systematic error.
    """
    i = _dd.ratio(np.arange(T, dtype=np.float64), float(max(T - 1, 1)))  # i = t/(T-1)
    if name == "linear":  # β_start + (β_end - β_start)·i
        return _dd.add(_dd.const(start), _dd.mul(_dd.two_sum(end, -start), i))
    if name == "scaled_linear":  # (√β_start + (√β_end - √β_start)·i)²
        rs, re = _dd.sqrt(start), _dd.sqrt(end)
        root = _dd.add(rs, _dd.mul(_dd.add(re, (-rs[0], -rs[1])), i))
        return _dd.mul(root, root)
    # sigmoid: (β_end - β_start)/(1 + exp(-x)) + β_start, x = linspace(-6, 6, T)
    x = np.linspace(-6.0, 6.0, T)
    e = _dd.exp(-x)  # double-double: np.exp's own ~0.5 ULP would otherwise remain in every β
    den = _dd.add(_dd.const(1.0), e)
    return _dd.add(_dd.const(start), _dd.div(_dd.two_sum(end, -start), den))


@functools.lru_cache(maxsize=64)
def _ranged(name: str, T: int, start: float, end: float) -> Schedule:
    # cached like _cosine (an immutable result; errors are not cached)
    hi, lo = _dd_betas(name, T, start, end)
    try:
        _checks.in_range("betas", hi, 0.0, 1.0, low_open=True)  # e.g. a subnormal β_end squared
        return Schedule._from_dd_betas(hi, lo, name)
    except ValueError as exc:  # β = 0, β = 1 or ᾱ underflowing to 0 before t = T-1
        raise ValueError(f"beta_start={start}, beta_end={end} with num_train_timesteps={T} give no valid "
                         f"schedule: {exc}") from None


def make_betas(name: str, num_train_timesteps: int = 1000, beta_start: float | None = None,
               beta_end: float | None = None) -> np.ndarray:
    """β_t, t = 0..T-1, of a named schedule (see :data:`BETA_SCHEDULES`)."""
    return make_schedule(name, num_train_timesteps, beta_start, beta_end).betas.copy()


def make_schedule(
    name: str,
    num_train_timesteps: int = 1000,
    beta_start: float | None = None,
    beta_end: float | None = None,
    *,
    rescale: bool = False,
    terminal_floor: float | None = None,
) -> Schedule:
    """A named schedule, optionally rescaled to zero terminal SNR (Algorithm 1).

    ``linear``: β = β_start·(1-i) + β_end·i, i = t/(T-1) (Table 1, DDPM).
    ``scaled_linear``: β = (√β_start·(1-i) + √β_end·i)² (Stable Diffusion).
    ``squaredcos_cap_v2``: improved DDPM's cosine, β clipped at 0.999 (diffusers' name).
    ``cosine_unclipped``: the same cosine without the clip; its SNR(T) is exactly 0.
    ``sigmoid``: β = sigmoid(linspace(-6, 6, T))·(β_end - β_start) + β_start.

    ``terminal_floor`` replaces ᾱ_T by that value after rescaling, as real implementations that
    cannot represent σ = ∞ do (:data:`DIFFUSERS_EULER_FLOOR`, :data:`COMFYUI_FLOOR`); it is an
    explicit deviation from Algorithm 1 and is never applied by default.

    Accepted: 1 <= T <= 2**24 (T >= 2 with ``rescale``); β_start and β_end in (0, 1].
    β_start > β_end is allowed: it gives a decreasing β, still a valid schedule (β_t in (0, 1]).
    β may reach 1 only at t = T-1 (β_end = 1: ᾱ_T = 0, zero terminal SNR); a β_start of 1
    with T > 1, or a schedule whose ᾱ underflows to 0 before t = T-1, is a ValueError naming
    beta_start, beta_end and num_train_timesteps, since ᾱ would then stay 0 over several steps.
    """
    _checks.choice("name", name, BETA_SCHEDULES)
    T = _checks.num_train_timesteps(num_train_timesteps)
    rescale = _checks.boolean("rescale", rescale)
    if rescale and T < 2:
        raise ValueError("rescale=True needs num_train_timesteps T >= 2: with T = 1 the first and last step coincide")
    if terminal_floor is not None and not rescale:
        raise ValueError("terminal_floor only applies to a rescaled schedule; pass rescale=True")
    if name in ("squaredcos_cap_v2", "cosine_unclipped"):
        if beta_start is not None or beta_end is not None:
            raise ValueError(f"the {name} schedule has no beta range; leave beta_start and beta_end as None")
        sched = _cosine(T, clip=name == "squaredcos_cap_v2", name=name)
    else:
        start, end = DEFAULT_BETA_RANGE[name]
        start = start if beta_start is None else beta_start
        end = end if beta_end is None else beta_end
        start = _checks.real("beta_start", start, 0.0, 1.0, low_open=True)
        end = _checks.real("beta_end", end, 0.0, 1.0, low_open=True)
        sched = _ranged(name, T, start, end)
    if rescale:
        try:
            sched = rescale_zero_terminal_snr(sched)
        except ValueError as exc:
            raise ValueError(f"rescale=True: the {name} schedule with beta_start={beta_start}, beta_end={beta_end}, "
                             f"num_train_timesteps={T} cannot be rescaled: {exc}") from None
    if terminal_floor is not None:
        sched = _floored(sched, terminal_floor, "terminal_floor")
    return sched


# --- Algorithm 1 --------------------------------------------------------------------------------


def rescale_zero_terminal_snr(schedule: Schedule) -> Schedule:
    """Algorithm 1: shift and scale √ᾱ so that √ᾱ_T = 0 and √ᾱ_1 is unchanged.

    s'_t = (s_t - s_T)·s_1/(s_1 - s_T), s = √ᾱ. Written as ᾱ'_t = ᾱ_1·r_t², r_t = (s_t - s_T)/(s_1 - s_T),
    so ᾱ'_1 = ᾱ_1 and ᾱ'_T = 0 hold exactly; β' and 1 - ᾱ' are formed from differences of s
    that are computed without cancellation.
    """
    _checks.schedule("schedule", schedule)
    abar, comp = schedule.alphas_cumprod, schedule.one_minus_alphas_cumprod
    if schedule.num_train_timesteps < 2:
        raise ValueError("rescaling needs a schedule with T >= 2: with T = 1 the first and last step coincide")
    if abar[-1] == 0.0 and abar[0] > 0.0:
        # Already zero terminal SNR: s' = (s - 0)·s_1/(s_1 - 0) = s, Algorithm 1 is the identity.
        return Schedule(schedule.betas, abar, comp, f"{schedule.name}+zero_snr", schedule.alphas_cumprod_lo,
                        schedule.one_minus_alphas_cumprod_lo)
    lo = schedule.alphas_cumprod_lo
    # ᾱ and 1 - ᾱ as double-doubles: to ~106 bits where they were built that way, else as given.
    A, C = schedule._pairs()

    def diff(i, j):
        """ᾱ_i - ᾱ_j (i <= j), from whichever of ᾱ and 1 - ᾱ is the smaller: the float difference
        alone would carry the rounding of ᾱ, amplified by ᾱ/(ᾱ_i - ᾱ_j) (~100 near t = T for
        Stable Diffusion, ~10⁴ near t = 0 for the cosine)."""
        via_abar = _dd.sub(_dd.take(A, i), _dd.take(A, j))
        via_comp = _dd.sub(_dd.take(C, j), _dd.take(C, i))
        near_one = abar[i] > 0.5
        return np.where(near_one, via_comp[0], via_abar[0]), np.where(near_one, via_comp[1], via_abar[1])

    def step_diff():
        """ᾱ_{t-1} - ᾱ_t for t = 1..T-1: = ᾱ_{t-1}·β_t where ᾱ is only a float (no cancellation)."""
        if lo is not None:
            return diff(every[:-1], every[1:])
        return _dd.two_prod(abar[:-1], schedule.betas[1:])

    def over(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            q = _dd.div(a, b)
        zero = a[0] == 0  # 0/0 only at t = T when ᾱ_T = 0 already: s_T - s_T = 0
        return np.where(zero, 0.0, q[0]), np.where(zero, 0.0, q[1])

    # Everything below is double-double and rounded once, so each output carries ~0.5 ULP
    # plus what the inputs ᾱ, 1 - ᾱ carry.
    S = _dd.sqrt_dd(A)
    every, last = np.arange(abar.size), abar.size - 1
    S_last, S_first = _dd.take(S, [last]), _dd.take(S, [0])
    # s_t - s_T = (ᾱ_t - ᾱ_T)/(s_t + s_T) and s_1 - s_t likewise: differences of s never cancel.
    d_last = over(diff(every, last), _dd.add(S, S_last))
    span = _dd.take(d_last, [0])
    if not span[0][0] > 0:
        raise ValueError("cannot rescale the schedule: √ᾱ is constant over it")
    R = over(d_last, span)
    A0, C0 = _dd.take(A, [0]), _dd.take(C, [0])
    new_abar, new_abar_lo = _dd.split_round(_dd.mul(A0, _dd.mul(R, R)))
    # 1 - ᾱ' = (1 - ᾱ_1) + ᾱ_1 (1 - r)(1 + r), 1 - r = (s_1 - s_t)/span
    one_minus_r = over(over(diff(np.zeros_like(every), every), _dd.add(S_first, S)), span)
    new_comp, new_comp_lo = _dd.split_round(
        _dd.add(C0, _dd.mul(A0, _dd.mul(one_minus_r, _dd.add(_dd.const(1.0), R)))))
    # β'_t = 1 - (r_t/r_{t-1})² = (r_{t-1} - r_t)(r_{t-1} + r_t)/r_{t-1}²,
    # r_{t-1} - r_t = (s_{t-1} - s_t)/span = (ᾱ_{t-1} - ᾱ_t)/((s_{t-1} + s_t)·span).
    R_prev, R_this = _dd.take(R, every[:-1]), _dd.take(R, every[1:])
    dr = over(over(step_diff(), _dd.add(_dd.take(S, every[:-1]), _dd.take(S, every[1:]))),
              span)
    betas = np.empty_like(abar)
    betas[0] = comp[0]
    betas[1:] = _dd.to_float(over(_dd.mul(dr, _dd.add(R_prev, R_this)), _dd.mul(R_prev, R_prev)))
    betas[-1] = 1.0
    (new_abar[0], new_abar_lo[0]), (new_abar[-1], new_abar_lo[-1]) = (A[0][0], A[1][0]), (0.0, 0.0)
    (new_comp[0], new_comp_lo[0]), (new_comp[-1], new_comp_lo[-1]) = (C[0][0], C[1][0]), (1.0, 0.0)
    # 1 - ᾱ' < 1 exactly; its rounding can reach 1 + 2⁻⁵² where ᾱ' < u (seen on the σ route,
    # linear T = 4000): the nearest float64 <= 1 is 1
    over_one = (new_comp > 1.0) | ((new_comp == 1.0) & (new_comp_lo > 0))
    new_comp[over_one], new_comp_lo[over_one] = 1.0, 0.0
    try:
        return Schedule(betas, new_abar, new_comp, f"{schedule.name}+zero_snr", new_abar_lo, new_comp_lo)
    except ValueError as exc:  # e.g. ᾱ' underflowing to 0 before t = T-1 for a nearly constant ᾱ
        raise ValueError(f"the rescaled schedule is not representable in float64: {exc}") from None


def rescale_zero_terminal_snr_betas(betas) -> np.ndarray:
    """Algorithm 1 on betas (diffusers' ``rescale_zero_terminal_snr``); the last beta becomes 1.
    Needs at least two betas."""
    sched = Schedule.from_betas(betas)
    if sched.num_train_timesteps < 2:
        raise ValueError("rescaling needs at least two betas (T >= 2): with T = 1 the first and last step coincide")
    if not sched.alphas_cumprod[0] > sched.alphas_cumprod[-1]:
        raise ValueError("cannot rescale these betas: √ᾱ is constant over the schedule")
    return rescale_zero_terminal_snr(sched).betas.copy()


MAX_SIGMA = _checks.MAX_SIGMA


def rescale_zero_terminal_snr_sigmas(sigmas, terminal_floor: float | None = None) -> np.ndarray:
    """Algorithm 1 applied to Euler-family σ_t = √((1-ᾱ_t)/ᾱ_t), ordered by training timestep.

    As ComfyUI does: ᾱ = 1/(σ² + 1), rescale, back to σ. Returns +inf at t = T, or the σ of
    ``terminal_floor`` (an ᾱ_T, e.g. :data:`COMFYUI_FLOOR`) when one is given.
    ``sigmas``: at least two, increasing, in (0, 2**511] (σ² must not overflow).
    """
    sigmas = _checks.array("sigmas", sigmas, ndim=1)
    _checks.in_range("sigmas", sigmas, 0.0, MAX_SIGMA, low_open=True)
    if sigmas.size < 2:
        raise ValueError(f"sigmas must hold at least two values (T >= 2) to be rescaled; got {sigmas.size}")
    if np.any(np.diff(sigmas) <= 0):
        t = int(np.argmax(np.diff(sigmas) <= 0)) + 1
        raise ValueError(f"sigmas must be increasing in t (ᾱ decreasing, every β > 0); it does not rise at t={t}")
    if terminal_floor is not None:
        terminal_floor = _checks.real("terminal_floor", terminal_floor, 0.0, 1.0, low_open=True)
    abar = 1.0 / (sigmas * sigmas + 1.0)
    comp = np.minimum(sigmas * sigmas * abar, 1.0)  # σ²/(σ²+1) rounds to 1 + 2⁻⁵² for σ >~ 1e8
    try:
        sched = Schedule.from_alphas_cumprod(abar)
        sched = Schedule(sched.betas, abar, comp)
    except ValueError as exc:  # σ so close that ᾱ = 1/(σ²+1) rounds to equal values
        raise ValueError(f"sigmas give no valid schedule: {exc}") from None
    out = rescale_zero_terminal_snr(sched)
    if terminal_floor is not None:
        out = _floored(out, terminal_floor, "terminal_floor")
    with np.errstate(divide="ignore"):
        return out.euler_sigma


def with_terminal_floor(schedule: Schedule, alpha_bar_T: float) -> Schedule:
    """The schedule with ᾱ_T replaced by ``alpha_bar_T`` (> 0): the floor of implementations that
    cannot represent σ_T = ∞. SNR(T) becomes alpha_bar_T/(1 - alpha_bar_T), not 0.
    ``alpha_bar_T`` in (0, 1), below ᾱ_(T-2) (ᾱ must fall)."""
    _checks.schedule("schedule", schedule)
    return _floored(schedule, alpha_bar_T, "alpha_bar_T")


def _floored(schedule: Schedule, alpha_bar_T, name: str) -> Schedule:
    floor = _checks.real(name, alpha_bar_T, 0.0, 1.0, low_open=True)
    if floor == 1.0:
        raise ValueError(f"{name} must be < 1: ᾱ_T = 1 would mean no noise at t = T-1")
    A, C = schedule._pairs()
    abar, abar_lo, comp, comp_lo = A[0].copy(), A[1].copy(), C[0].copy(), C[1].copy()
    betas = schedule.betas.copy()
    if schedule.num_train_timesteps > 1 and floor >= abar[-2]:
        raise ValueError(f"{name}={floor} must be below ᾱ at t=T-2 ({abar[-2]}) of the schedule: ᾱ must fall "
                         f"(β_T > 0)")
    abar[-1], abar_lo[-1] = floor, 0.0
    comp[-1], comp_lo[-1] = _dd.split_round(_dd.two_sum(1.0, -floor))  # 1 - floor, exact as a pair
    prev = (abar[-2], abar_lo[-2]) if schedule.num_train_timesteps > 1 else (1.0, 0.0)
    # β_T = (ᾱ_(T-1) - floor)/ᾱ_(T-1) from ᾱ_(T-1)'s double-double, rounded once
    betas[-1] = _dd.to_float(_dd.div(_dd.sub(prev, (floor, 0.0)), prev)) if prev[0] >= _DD_SAFE \
        else (prev[0] - floor) / prev[0]
    return Schedule(betas, abar, comp, f"{schedule.name}+floor({floor:.6g})", abar_lo, comp_lo)
