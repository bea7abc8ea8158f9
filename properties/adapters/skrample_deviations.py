"""Known deviations of skrample 0.7.0 from the oracle, declared as models (see properties/deviations.py)."""

from __future__ import annotations

DEVIATIONS: list = []
