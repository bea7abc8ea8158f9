"""Double-double arithmetic (error-free transformations, Dekker/Knuth), vectorised.

A double-double (hi, lo) stands for the unevaluated sum hi + lo with |lo| <= ulp(hi)/2, about
106 bits. The schedules use it where float64 alone would lose accuracy: the β formulas (whose
systematic rounding would add up over a running product of thousands of factors), the running
product ᾱ, and the differences ᾱ_t - ᾱ_T of Algorithm 1.
"""

from __future__ import annotations

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
