"""Classifier-free guidance and its rescale (paper Algorithm 2, Eqs. 13-16)."""

from __future__ import annotations

import numpy as np

from . import _checks


def _pair(x_neg, x_pos):
    x_neg = _checks.array("x_neg", x_neg)
    x_pos = _checks.array("x_pos", x_pos)
    if x_neg.shape != x_pos.shape:
        raise ValueError(f"x_neg and x_pos must have the same shape; got {x_neg.shape} and {x_pos.shape}")
    if x_pos.ndim < 1:
        raise ValueError("inputs need a leading batch dimension; got a scalar")
    return x_neg, x_pos


def classifier_free_guidance(x_neg, x_pos, guidance_scale):
    """x_cfg = x_neg + w·(x_pos - x_neg) (Eq. 13)."""
    x_neg, x_pos = _pair(x_neg, x_pos)
    w = _checks.real("guidance_scale", guidance_scale)
    return x_neg + w * (x_pos - x_neg)


def per_sample_std(x):
    """Standard deviation of each sample over all non-batch dimensions (keepdims, population std).

    Algorithm 2 uses only the ratio of two such stds, in which the ddof convention cancels.
    """
    x = _checks.array("x", x)
    if x.ndim < 1:
        raise ValueError("x needs a leading batch dimension; got a scalar")
    return np.std(x, axis=tuple(range(1, x.ndim)), keepdims=True)


def rescale_guidance(x_cfg, x_pos, guidance_rescale):
    """Algorithm 2: x_final = φ·x_cfg·σ_pos/σ_cfg + (1-φ)·x_cfg, stds per sample (Eqs. 14-16).

    Degenerate samples: where σ_cfg = 0 (a constant guided prediction) the ratio σ_pos/σ_cfg is
    undefined; the oracle leaves such a sample unrescaled (x_final = x_cfg) rather than return NaN.
    """
    x_cfg, x_pos = _pair(x_cfg, x_pos)
    phi = _checks.real("guidance_rescale", guidance_rescale, 0.0, 1.0)
    std_pos, std_cfg = per_sample_std(x_pos), per_sample_std(x_cfg)
    ratio = np.divide(std_pos, std_cfg, out=np.ones_like(std_cfg), where=std_cfg > 0)
    # φ·x·r + (1-φ)·x = x·(φ·r + (1-φ)): one per-sample factor, a sum of non-negative terms (no
    # cancellation), set to exactly 1 where r = 1 (e.g. a degenerate sample), so those samples come
    # back as x_cfg bitwise (φ + (1-φ) can round to 1 - 2⁻⁵³)
    factor = np.where(ratio == 1.0, 1.0, phi * ratio + (1.0 - phi))
    return x_cfg * factor


def guided_prediction(x_neg, x_pos, guidance_scale, guidance_rescale=0.0):
    """Classifier-free guidance followed by Algorithm 2's rescale (φ = 0 is plain CFG)."""
    return rescale_guidance(classifier_free_guidance(x_neg, x_pos, guidance_scale), x_pos, guidance_rescale)
