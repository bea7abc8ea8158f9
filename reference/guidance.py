"""Classifier-free guidance and its rescale (paper Algorithm 2, Eqs. 13-16)."""

from __future__ import annotations

import numpy as np

from . import _checks


def _pair(x_a, x_b, names=("x_neg", "x_pos")):
    a, b = names
    x_a = _checks.array(a, x_a)
    x_b = _checks.array(b, x_b)
    _checks.same_shape(**{a: x_a, b: x_b})
    if x_b.ndim < 1:
        raise ValueError(f"{a} and {b} need a leading batch dimension; got scalars")
    return x_a, x_b


def classifier_free_guidance(x_neg, x_pos, guidance_scale):
    """x_cfg = x_neg + w·(x_pos - x_neg) (Eq. 13). A result beyond float64 (e.g. w = 1e308) is a
    ValueError naming guidance_scale and the inputs, not inf."""
    x_neg, x_pos = _pair(x_neg, x_pos)
    w = _checks.real("guidance_scale", guidance_scale)
    with np.errstate(over="ignore", invalid="ignore"):
        res = x_neg + w * (x_pos - x_neg)
    return _checks.finite_result("classifier_free_guidance x_neg + guidance_scale·(x_pos - x_neg)", res,
                                 guidance_scale=w, x_neg=x_neg, x_pos=x_pos)


def per_sample_std(x):
    """Standard deviation of each sample over all non-batch dimensions (keepdims, population std).

    Algorithm 2 uses only the ratio of two such stds, in which the ddof convention cancels.
    """
    x = _checks.array("x", x)
    if x.ndim < 1:
        raise ValueError("x needs a leading batch dimension; got a scalar")
    if x.size == 0 and x.shape[0] > 0:
        raise ValueError(f"x must hold at least one value per sample to have a std; got shape {x.shape}")
    return _std(x, "x")


def _std(x, name):
    """Per-sample population std; an overflow of the squares (|x| beyond ~1e154) is a ValueError."""
    with np.errstate(over="ignore", invalid="ignore"):
        std = np.std(x, axis=tuple(range(1, x.ndim)), keepdims=True)
    return _checks.finite_result(f"the per-sample std of {name}", std, **{name: x})


def rescale_guidance(x_cfg, x_pos, guidance_rescale):
    """Algorithm 2: x_final = φ·x_cfg·σ_pos/σ_cfg + (1-φ)·x_cfg, stds per sample (Eqs. 14-16).

    Degenerate samples: where σ_cfg = 0 (a constant guided prediction) the ratio σ_pos/σ_cfg is
    undefined; the oracle leaves such a sample unrescaled (x_final = x_cfg) rather than return NaN.
    """
    x_cfg, x_pos = _pair(x_cfg, x_pos, ("x_cfg", "x_pos"))
    phi = _checks.real("guidance_rescale", guidance_rescale, 0.0, 1.0)
    if x_cfg.size == 0:
        return x_cfg
    std_pos, std_cfg = _std(x_pos, "x_pos"), _std(x_cfg, "x_cfg")
    with np.errstate(over="ignore"):
        ratio = np.divide(std_pos, std_cfg, out=np.ones_like(std_cfg), where=std_cfg > 0)
    # φ·x·r + (1-φ)·x = x·(φ·r + (1-φ)): one per-sample factor, a sum of non-negative terms (no
    # cancellation), set to exactly 1 where r = 1 (e.g. a degenerate sample), so those samples come
    # back as x_cfg bitwise (φ + (1-φ) can round to 1 - 2⁻⁵³)
    factor = np.where(ratio == 1.0, 1.0, phi * ratio + (1.0 - phi))
    with np.errstate(over="ignore", invalid="ignore"):
        res = x_cfg * factor
    return _checks.finite_result("rescale_guidance", res, x_cfg=x_cfg, x_pos=x_pos, guidance_rescale=phi)


def guided_prediction(x_neg, x_pos, guidance_scale, guidance_rescale=0.0):
    """Classifier-free guidance followed by Algorithm 2's rescale (φ = 0 is plain CFG)."""
    _checks.real("guidance_rescale", guidance_rescale, 0.0, 1.0)
    x_cfg = classifier_free_guidance(x_neg, x_pos, guidance_scale)
    try:
        return rescale_guidance(x_cfg, x_pos, guidance_rescale)
    except ValueError as exc:  # an overflow of the rescale: it depends on every input
        raise ValueError(f"guided_prediction: rescaling x_cfg = x_neg + guidance_scale·(x_pos - x_neg) with "
                         f"guidance_rescale={guidance_rescale!r}: {exc}") from None
