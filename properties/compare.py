"""Oracle comparison with separate non-finite masks and per-point failure rows (after SciPy's
``FuncData``), and the per-test record the conformance matrix is built from."""

from __future__ import annotations

import numpy as np


class Record:
    """What one property test saw: its worst error and the declared deviations it hit."""

    def __init__(self):
        self.worst = 0.0
        self.deviations: dict[str, str] = {}
        #: per deviation met: the worst |impl - model| / tolerance inside its region
        self.deviation_worst: dict[str, float] = {}
        #: deviations whose region was met but the implementation matched the oracle there
        self.fixed: dict[str, str] = {}
        self.notes: list[str] = []
        #: the last check call, (check, target, config, args): on a failure, the minimal example
        #: (Hypothesis replays the shrunk example last); target is "impl" or a generic sampler's name
        self.last_call: tuple | None = None
        #: the worst point of the last failed comparison: what, index, actual, expected, diff, tol
        self.worst_point: dict | None = None
        #: the last failing check call: {"call", "error", "worst_point"} (properties.report.recording)
        self.failure: dict | None = None
        #: per-configuration support: examples the implementation ran, and the first refusal's reason
        self.supported = 0
        self.refused = 0
        self.unsupported: str | None = None

    def unsupported_everywhere(self, what: str = "") -> str | None:
        """The skip reason when none of the configurations drawn for a property was supported
        (support is probed per configuration); None when some ran, or none was refused."""
        if self.supported or self.unsupported is None:
            return None
        return f"the implementation supports none of the drawn {what + ' ' if what else ''}configurations: " \
            f"{self.unsupported}"

    def error(self, value: float):
        if np.isfinite(value):
            self.worst = max(self.worst, float(value))

    def deviation(self, dev, message: str, worst: float = 0.0):
        self.deviations.setdefault(dev.id, message)
        if np.isfinite(worst):
            self.deviation_worst[dev.id] = max(self.deviation_worst.get(dev.id, 0.0), float(worst))

    def fix(self, dev, message: str):
        self.fixed.setdefault(dev.id, message)


def assert_close(actual, expected, tol, what: str, context: str = "", record: Record | None = None,
                 max_rows: int = 5, excuse_nonfinite: bool = False) -> float:
    """Assert |actual - expected| <= tol elementwise, non-finite values matching exactly.

    ``excuse_nonfinite``: a non-finite *actual* element is excused (a declared non-finite
    deviation); every finite element is still compared.

    Returns the worst |actual - expected| / tol. A failure lists the worst points:
    index, actual, expected, |diff|, tolerance.
    """
    actual = np.asarray(actual, np.float64)
    expected = np.broadcast_to(np.asarray(expected, np.float64), actual.shape)
    tol = np.broadcast_to(np.asarray(tol, np.float64), actual.shape)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}. {context}")
    fin_e, fin_a = np.isfinite(expected), np.isfinite(actual)
    bad_nonfinite = (fin_e & ~fin_a) | (~fin_e & ~((actual == expected) | (np.isnan(actual) & np.isnan(expected))))
    if excuse_nonfinite:
        bad_nonfinite &= fin_a
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(fin_e & fin_a, np.abs(actual - expected), 0.0)
        ratio = np.divide(diff, tol, out=np.where(diff > 0, np.inf, 0.0), where=tol > 0)
    worst = float(ratio.max()) if ratio.size else 0.0
    if record is not None:
        record.error(worst)
    bad = bad_nonfinite | (ratio > 1.0)
    if bad.any():
        order = np.argsort(-np.where(bad_nonfinite, np.inf, ratio), axis=None)[:max_rows]
        rows = [f"  {'index':>16} {'actual':>24} {'expected':>24} {'|diff|':>11} {'tolerance':>11}"]
        for flat in order:
            idx = np.unravel_index(flat, actual.shape)
            if not bad[idx]:
                continue
            shown = f"{'non-finite':>11}" if bad_nonfinite[idx] else f"{diff[idx]:11.3e}"  # not a |diff| of 0
            rows.append(f"  {tuple(int(i) for i in idx)!s:>16} {actual[idx]:24.17g} {expected[idx]:24.17g} "
                        f"{shown} {tol[idx]:11.3e}")
        kind = "non-finite" if bad_nonfinite.any() else "beyond tolerance"
        if record is not None:
            idx = np.unravel_index(order[0], actual.shape)
            record.worst_point = {"what": what, "index": tuple(int(i) for i in idx), "actual": float(actual[idx]),
                                  "expected": float(expected[idx]), "diff": float(diff[idx]),
                                  "tol": float(tol[idx]), "ratio": float(ratio[idx]),
                                  "nonfinite": bool(bad_nonfinite[idx])}
        raise AssertionError(f"{what}: {int(bad.sum())} of {actual.size} values {kind} "
                             f"(worst |diff|/tol = {worst:.3g}). {context}\n" + "\n".join(rows))
    return worst
