"""Classifier-free guidance rescale (Algorithm 2, Eqs. 13-16)."""

import warnings

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_array_equal

from properties import strategies as zs
from properties.oracle._tol import U, assert_within
from reference import classifier_free_guidance, guided_prediction, per_sample_std, rescale_guidance

PAIR_SHAPES = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4)


@st.composite
def pairs(draw):
    shape = draw(PAIR_SHAPES, label="shape")
    return draw(zs.states(shape), label="x_neg"), draw(zs.states(shape), label="x_pos")


@given(p=pairs(), w=zs.guidance_scales)
def test_phi_zero_is_plain_cfg(p, w):
    x_neg, x_pos = p
    cfg = classifier_free_guidance(x_neg, x_pos, w)
    assert_array_equal(cfg, x_neg + w * (x_pos - x_neg))
    assert_array_equal(guided_prediction(x_neg, x_pos, w, 0.0), cfg)


@given(p=pairs(), w=zs.guidance_scales)
@example(p=(np.zeros((2, 3)), np.arange(6.0).reshape(2, 3)), w=7.5)
def test_phi_one_matches_std_of_x_pos(p, w):
    """φ = 1: std(x_final) = std(x_pos) per sample. The std of n values with pairwise summation is
    within ~(log₂ n + 4)·u·(1 + mean|x|/std) relative; applied to x_pos, to x_cfg and to x_final,
    plus the ratio: 8·(n + 4)·u·(1 + mean|x|/std) (n bounds log₂ n generously) per std."""
    x_neg, x_pos = p
    cfg = classifier_free_guidance(x_neg, x_pos, w)
    out = guided_prediction(x_neg, x_pos, w, 1.0)
    s_pos, s_cfg, s_out = per_sample_std(x_pos), per_sample_std(cfg), per_sample_std(out)
    n = x_pos[0].size
    axes = tuple(range(1, x_pos.ndim))

    def cond(x, s):
        return 1 + np.mean(np.abs(x), axis=axes, keepdims=True) / np.where(s > 0, s, np.inf)

    degenerate = s_cfg == 0
    bound = 8 * (n + 4) * U * (cond(x_pos, s_pos) + cond(cfg, s_cfg) + cond(out, s_out)) * s_pos
    want = np.where(degenerate, s_cfg, s_pos)
    assert_within(np.where(degenerate, s_cfg, s_out), want, np.where(degenerate, 0, bound), "std")


@given(p=pairs(), w=zs.guidance_scales, phi=zs.guidance_rescales, data=st.data())
def test_batch_is_per_sample(p, w, phi, data):
    """Permuting the batch permutes the output; each sample equals its own batch-of-one result."""
    x_neg, x_pos = p
    out = guided_prediction(x_neg, x_pos, w, phi)
    perm = data.draw(st.permutations(range(x_neg.shape[0])), label="perm")
    assert_array_equal(guided_prediction(x_neg[perm], x_pos[perm], w, phi), out[perm])
    for i in range(x_neg.shape[0]):
        assert_array_equal(guided_prediction(x_neg[i:i + 1], x_pos[i:i + 1], w, phi), out[i:i + 1])


@given(c=st.floats(-1e3, 1e3), x_pos=zs.states((3, 2, 2)), phi=zs.guidance_rescales)
@example(c=0.0, x_pos=np.ones((3, 2, 2)), phi=1.0)
def test_constant_cfg_is_returned(c, x_pos, phi):
    """σ_cfg = 0: the ratio is undefined; the oracle returns x_cfg unchanged, finite, no warning."""
    x_cfg = np.full((3, 2, 2), c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rescale_guidance(x_cfg, x_pos, phi)
    assert_array_equal(out, x_cfg)
