"""Shared tolerance helpers of the oracle's property tests (not strategies: those live in
properties/strategies.py)."""

import numpy as np

#: unit roundoff of float64 (half an ulp of 1)
U = np.finfo(np.float64).eps / 2
#: below the normal range a float64 operation errs by up to this, absolutely
SUBNORMAL = float(np.finfo(np.float64).smallest_subnormal)


def assert_within(actual, expected, bound, what=""):
    """|actual - expected| <= bound elementwise, with the worst ratio in the message."""
    actual, expected, bound = np.broadcast_arrays(np.asarray(actual, float), np.asarray(expected, float),
                                                  np.asarray(bound, float))
    err = np.abs(actual - expected)
    bad = ~(err <= bound)
    if bad.any():
        i = np.argmax(np.where(bad, err / np.where(bound > 0, bound, np.inf), 0) + bad)
        raise AssertionError(f"{what}: |{actual.flat[i]!r} - {expected.flat[i]!r}| = {err.flat[i]:.3g} "
                             f"> bound {bound.flat[i]:.3g} at flat index {i}")
