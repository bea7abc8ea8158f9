"""Double-double arithmetic (error-free transformations, Dekker/Knuth) and sin, vectorised.

A double-double (hi, lo) stands for the unevaluated sum hi + lo with |lo| <= ulp(hi)/2, about
106 bits. The schedules use it where float64 alone would lose accuracy: the β formulas (whose
systematic rounding would add up over a running product of thousands of factors; the sigmoid's
exp and the cosine's sines are double-double too), the running product ᾱ, the differences
ᾱ_t - ᾱ_T of Algorithm 1, and the derived SNR, √ᾱ, σ, each rounded to float64 once at the end.
"""

from __future__ import annotations

import math

import numpy as np

_SPLITTER = 134217729.0  # 2**27 + 1 (Dekker)


def two_sum(a, b):
    """s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a, b):
    """s + e = a + b exactly, given |a| >= |b| (or a = 0)."""
    s = a + b
    return s, b - (s - a)


def two_prod(a, b):
    """p + e = a·b exactly (Dekker; no overflow for |a|, |b| < 2**996)."""
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def add(a, b):
    """(a_hi, a_lo) + (b_hi, b_lo)."""
    s, e = two_sum(a[0], b[0])
    return fast_two_sum(s, e + (a[1] + b[1]))


def mul(a, b):
    """(a_hi, a_lo)·(b_hi, b_lo)."""
    p, e = two_prod(a[0], b[0])
    return fast_two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def div(a, b):
    """(a_hi, a_lo)/(b_hi, b_lo): one Newton correction of the float quotient."""
    q = a[0] / b[0]
    p, e = mul((q, np.zeros_like(q)), b)
    r = ((a[0] - p) - e + a[1]) / b[0]
    return fast_two_sum(q, r)


def sqrt(a):
    """√a of a float (> 0) as a double-double: r + (a - r²)/(2r)."""
    a = np.asarray(a, dtype=np.float64)
    r = np.sqrt(a)
    p, e = two_prod(r, r)
    return fast_two_sum(r, ((a - p) - e) / (2.0 * r))


def ratio(num, den):
    """num/den of two floats (integers in practice) as a double-double."""
    num = np.asarray(num, dtype=np.float64)
    q = num / den
    p, e = two_prod(q, np.float64(den))
    return fast_two_sum(q, ((num - p) - e) / den)


def const(x):
    """A float (or array) as a double-double."""
    x = np.asarray(x, dtype=np.float64)
    return x, np.zeros_like(x)


def sub(a, b):
    """(a_hi, a_lo) - (b_hi, b_lo)."""
    return add(a, (-b[0], -b[1]))


def sqrt_dd(a):
    """√(a_hi + a_lo) as a double-double (a >= 0; exactly 0 at 0)."""
    r = np.sqrt(a[0])
    p, e = two_prod(r, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(r > 0, ((a[0] - p) - e + a[1]) / (2.0 * r), 0.0)
    return fast_two_sum(r, corr)


def to_float(a):
    """The double-double rounded to float64."""
    return a[0] + a[1]


def take(a, index):
    return a[0][index], a[1][index]


def split_round(a):
    """(f, r): the double-double rounded to float64, f = fl(hi + lo), and what is left, r ≈ a - f
    (exact to ~2⁻¹⁰⁶ relative): f is hi or a neighbour of it, so hi - f is exact."""
    f = a[0] + a[1]
    return f, (a[0] - f) + a[1]


def scale(a, k):
    """(a_hi, a_lo)·k for a float k: exact-product hi, then the low terms."""
    p, e = two_prod(a[0], k)
    return fast_two_sum(p, e + a[1] * k)


# --- sin of a double-double angle in [0, π/2] ----------------------------------------------------

PI = (np.float64(3.141592653589793), np.float64(1.2246467991473532e-16))  # π to ~107 bits
_PI_8 = (PI[0] / 8, PI[1] / 8)  # exact: a power-of-two scaling


def _factorial_reciprocals(ns):
    out, f = {}, 1.0
    for n in range(1, max(ns) + 1):
        f *= n  # exact while n! < 2⁵³ (n <= 18); beyond, only the float tails use it
        if n in ns:
            out[n] = ratio(1.0, f) if n <= 18 else (np.float64(1.0 / f), np.float64(0.0))
    return out


# sin r = r·Σ (-1)^m z^m/(2m+1)!, cos r = Σ (-1)^m z^m/(2m)!, z = r², |r| <= π/16 + 2⁻⁵⁰: the term
# m = 1 in double-double, the tail m >= 2 (relative size <= z²/5! <= 1.3e-5 for sin, z²/4! <=
# 6.3e-5 for cos) in float64, whose ~2⁻⁵² relative error then costs <= 1.4e-20 (≈ 2⁻⁶⁶, 10⁻⁴ of
# the output's final rounding); the tail is cut after m = 9 (sin) / 10 (cos), the first omitted
# term being <= 1.7e-34 / 1.6e-37.
_INV = _factorial_reciprocals(set(range(2, 22)))
_SIN_DD = [-_INV[3][0]], [-_INV[3][1]]
_COS_DD = [-_INV[2][0]], [-_INV[2][1]]
_SIN_TAIL = [(-1.0) ** m * float(_INV[2 * m + 1][0]) for m in range(2, 10)]
_COS_TAIL = [(-1.0) ** m * float(_INV[2 * m][0]) for m in range(2, 11)]


def _series(z, dd_coeffs, tail):
    """Σ_m c_m z^m, c_0 = 1, c_1..c_k double-double (``dd_coeffs``), c_(k+1).. (``tail``) float64,
    by Horner."""
    t = np.full_like(z[0], tail[-1])
    for c in reversed(tail[:-1]):
        t = t * z[0] + c
    acc = (t, np.zeros_like(t))
    for hi, lo in zip(reversed(dd_coeffs[0]), reversed(dd_coeffs[1])):
        acc = add(mul(acc, z), (hi, lo))
    return add(mul(acc, z), (1.0, 0.0))


def _sin_cos_table():
    """sin and cos of k·π/8, k = 0..4, as double-doubles, from their radicals:
    sin(π/8) = √(2-√2)/2, sin(π/4) = √2/2, sin(3π/8) = √(2+√2)/2."""
    r2 = sqrt_dd(const(2.0))
    s1 = sqrt_dd(sub(const(2.0), r2))
    s3 = sqrt_dd(add(const(2.0), r2))
    vals = [const(0.0), (s1[0] / 2, s1[1] / 2), (r2[0] / 2, r2[1] / 2), (s3[0] / 2, s3[1] / 2), const(1.0)]
    hi = np.array([float(v[0]) for v in vals])
    lo = np.array([float(v[1]) for v in vals])
    return (hi, lo), (hi[::-1].copy(), lo[::-1].copy())


_SIN_K, _COS_K = _sin_cos_table()


#: Elementwise series run over chunks of this many values: their ~40 temporaries then stay small
#: (arrays above ~128 KiB are fresh mmaps whose page faults made 20000 values 15x slower than 5000).
_CHUNK = 4096


def _chunked(fn, x):
    """fn over x (a double-double) in chunks of _CHUNK, the parts joined."""
    hi, lo = np.asarray(x[0], dtype=np.float64), np.asarray(x[1], dtype=np.float64)
    if hi.size <= _CHUNK:
        return fn((hi, lo))
    parts = [fn((hi[i:i + _CHUNK], lo[i:i + _CHUNK])) for i in range(0, hi.size, _CHUNK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def sin(x):
    """sin x of a double-double angle x in [0, π/2] (see :func:`_sin`), 1-D."""
    return _chunked(_sin, x)


def _sin(x):
    """sin x of a double-double angle x in [0, π/2] (a little beyond is fine), as a double-double
    within ~3e-20 ≈ 2⁻⁶⁵ relative (measured 1.6e-20 on 24000 angles against mpmath):
    x = k·π/8 + r, |r| <= π/16, sin x = sin(kπ/8)·cos r + cos(kπ/8)·sin r, with the Taylor series
    of sin r and cos r in double-double."""
    k = np.clip(np.rint(x[0] / _PI_8[0]), 0, 4)
    r = sub(x, scale(_PI_8, k))
    z = mul(r, r)
    sin_r = mul(r, _series(z, _SIN_DD, _SIN_TAIL))
    cos_r = _series(z, _COS_DD, _COS_TAIL)
    ki = k.astype(np.intp)
    return add(mul(take(_SIN_K, ki), cos_r), mul(take(_COS_K, ki), sin_r))


# --- exp of a float64 in [-700, 700] -------------------------------------------------------------

LN2 = (np.float64(0.6931471805599453), np.float64(2.3190468138462996e-17))  # ln 2 to ~107 bits
# e^r - 1 = Σ_{n>=1} r^n/n!, |r| <= ln2/2/2⁸ < 1.36e-3: n = 2..4 in double-double, n = 5..10 in
# float64 (relative size <= r⁴/5! <= 2.9e-14, so its rounding costs <= 6.5e-30), the first
# omitted term r¹¹/11! <= 7.8e-40.
_EXPM1_DD = [_INV[n][0] for n in (2, 3, 4)], [_INV[n][1] for n in (2, 3, 4)]
_EXPM1_TAIL = [float(_INV[n][0]) for n in range(5, 11)]
_EXP_SQUARINGS = 8


def exp(x):
    """e^x of a 1-D float64 array (see :func:`_exp`)."""
    x = np.asarray(x, dtype=np.float64)
    return _chunked(lambda pair: _exp(pair[0]), (x, np.zeros_like(x)))


def _exp(x):
    """e^x of float64 x (|x| <= 700) as a double-double (measured within 1.1e-30 relative on 26000
    points of [-6, 6] against mpmath): x = k·ln2 + r,
    e^x = 2^k·(e^(r/2⁸))^(2⁸); e^(r/2⁸) - 1 by its Taylor series, then 8 squarings in the form
    (1 + m)² - 1 = m·(2 + m), which keeps m's relative precision."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / LN2[0])
    r = sub(const(x), scale(LN2, k))
    r = (r[0] / 2.0**_EXP_SQUARINGS, r[1] / 2.0**_EXP_SQUARINGS)  # exact
    m = _series(r, _EXPM1_DD, _EXPM1_TAIL)  # (e^r - 1)/r
    m = mul(m, r)
    for _ in range(_EXP_SQUARINGS):
        m = mul(m, add(m, (2.0, 0.0)))
    e = add(m, (1.0, 0.0))
    return np.ldexp(e[0], k.astype(np.int64)), np.ldexp(e[1], k.astype(np.int64))


# --- DDPM's posterior-mean coefficients ------------------------------------------------------------

_SAFE = 2.0**-900  # below it low parts underflow (and 1/x overflows Dekker's split)


def _sdiv(a, b):
    """div on Python floats (NumPy scalars would cost ~50 µs a call of the helpers below)."""
    q = a[0] / b[0]
    p, e = two_prod(q, b[0])
    p, e = fast_two_sum(p, e + q * b[1])
    return fast_two_sum(q, ((a[0] - p) - e + a[1]) / b[0])


def _ssqrt(a):
    """sqrt_dd on Python floats (a >= 0)."""
    if a[0] == 0.0:
        return 0.0, 0.0
    r = math.sqrt(a[0])
    p, e = two_prod(r, r)
    return fast_two_sum(r, ((a[0] - p) - e + a[1]) / (2.0 * r))


def ddpm_mean_coefficients(a_t: float, a_p: float) -> tuple[float, float]:
    """(c_x0, c_xt) of μ̃ = c_x0·x̂₀ + c_xt·x_t (paper Eq. 20), each rounded once from a
    double-double: c_x0 = √ᾱ_prev·β/(1-ᾱ_t) = (ᾱ_prev - ᾱ_t)/(√ᾱ_prev·(1-ᾱ_t)) and
    c_xt = √(ᾱ_t/ᾱ_prev)·(1-ᾱ_prev)/(1-ᾱ_t), for floats 0 <= ᾱ_t <= ᾱ_prev <= 1, ᾱ_t < 1.
    The differences ᾱ_prev - ᾱ_t, 1 - ᾱ_t, 1 - ᾱ_prev are exact (two_sum). Where ᾱ_prev or a
    non-zero ᾱ_t is below 2⁻⁹⁰⁰ the float64 formulas (~5 roundings) are used."""
    a_t, a_p = float(a_t), float(a_p)
    if a_p < _SAFE or 0.0 < a_t < _SAFE:
        beta = (a_p - a_t) / a_p
        # √ of the ratio rounds once less; for a subnormal ᾱ_t the ratio would lose digits, so √ first
        ratio_root = math.sqrt(a_t / a_p) if a_t >= 2.0**-1022 else math.sqrt(a_t) / math.sqrt(a_p)
        return math.sqrt(a_p) * beta / (1.0 - a_t), ratio_root * (1.0 - a_p) / (1.0 - a_t)
    one_minus_t, one_minus_p = two_sum(1.0, -a_t), two_sum(1.0, -a_p)
    c_x0 = _sdiv(two_sum(a_p, -a_t), mul(_ssqrt((a_p, 0.0)), one_minus_t))
    c_xt = _sdiv(mul(_ssqrt(_sdiv((a_t, 0.0), (a_p, 0.0))), one_minus_p), one_minus_t)
    return c_x0[0] + c_x0[1], c_xt[0] + c_xt[1]


def ddim_coefficients(a_t: float, a_p: float, eta: float) -> tuple[float, float] | None:
    """(√(1 - ᾱ_prev - s²), s) of a DDIM step (paper Eqs. 21-22), s = η·√((1-ᾱ_prev)(ᾱ_prev-ᾱ_t)/
    ((1-ᾱ_t)·ᾱ_prev)), the radicand of the first written (1-ᾱ_prev)·[(1-η²) + η²·ᾱ_t(1-ᾱ_prev)/
    (ᾱ_prev(1-ᾱ_t))], each rounded once from a double-double (η² = two_prod, exact; 1 - η²,
    1 - ᾱ and ᾱ_prev - ᾱ_t exact too). None where ᾱ_prev or a non-zero ᾱ_t is below 2⁻⁹⁰⁰
    (the caller's float64 formulas apply)."""
    a_t, a_p, eta = float(a_t), float(a_p), float(eta)
    if a_p < _SAFE or 0.0 < a_t < _SAFE:
        return None
    one_minus_t, one_minus_p = two_sum(1.0, -a_t), two_sum(1.0, -a_p)
    e2 = two_prod(eta, eta)
    den = mul(one_minus_t, (a_p, 0.0))
    # s = η·√(s²/η²): η² would underflow for a tiny η
    s = mul((eta, 0.0), _ssqrt(_sdiv(mul(one_minus_p, two_sum(a_p, -a_t)), den)))
    keep = add(add((1.0, 0.0), (-e2[0], -e2[1])), _sdiv(mul(mul(e2, (a_t, 0.0)), one_minus_p), den))
    c_eps = _ssqrt(mul(one_minus_p, keep))
    return c_eps[0] + c_eps[1], s[0] + s[1]
