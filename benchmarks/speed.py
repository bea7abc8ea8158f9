"""Speed: the oracle's step against diffusers' ``step()`` on the same input, and the bandwidth bound.

Setting: SD schedule with zero-SNR rescale, v-prediction, trailing S = 10, the step at t = 499
(step index 5). diffusers gets float32 torch tensors on the CPU (its usual dtype; torch uses its
default intra-op threads), the oracle float64 NumPy arrays (single-threaded NumPy). Stochastic
steps: diffusers draws its noise inside ``step()`` (timed); the oracle takes a pre-drawn z (not timed).
"""

from __future__ import annotations

import math

import numpy as np

import reference as ref
from benchmarks._common import fmt_time, fmt_timing, markdown_table, time_call
from benchmarks.impl_accuracy import _torch, make_scheduler, oracle_schedule

SAMPLERS = ("ddpm", "ddim_eta0", "euler", "euler_ancestral")
SHAPES = ((1, 4, 64, 64), (16, 4, 128, 128))
S, INDEX = 10, 5


def memory_bandwidth(n_bytes: int = 1 << 28, repeats: int = 7) -> dict:
    """Copy bandwidth in bytes/s of ``np.copyto`` on two arrays of ``n_bytes`` (read + write =
    2·n_bytes per copy); median and spread over repeats."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    t = time_call(lambda: np.copyto(dst, src), repeats=repeats, min_time=0.2, warmup=1)
    moved = 2 * src.nbytes
    return {"median": moved / t["median"], "min": moved / t["max"], "max": moved / t["min"],
            "n_bytes": n_bytes, "timing": t}


def _cases(sampler: str, shape):
    """(oracle closure, diffusers closure, number of input arrays the oracle reads)."""
    torch = _torch()
    sch = make_scheduler(sampler, True)
    sch.set_timesteps(S)
    if hasattr(sch, "is_scale_input_called"):
        sch.is_scale_input_called = True
    orc = oracle_schedule(sampler, True)
    ts = sch.timesteps
    t = round(float(ts[INDEX]))
    rng = np.random.default_rng(0)
    x, m, z = rng.standard_normal((3, *shape))
    xt, mt = torch.from_numpy(x).float(), torch.from_numpy(m).float()
    a_t = float(orc.alphas_cumprod[t])
    a_p = float(orc.alphas_cumprod[int(ts[INDEX + 1])])
    common = {"prediction_type": "v_prediction"}
    gen = torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        def o():
            return ref.ddpm_step(x, m, alpha_bar_t=a_t, alpha_bar_prev=a_p, noise=z, **common)

        def d():
            return sch.step(mt, t, xt, generator=gen).prev_sample
        return o, d, 3
    if sampler == "ddim_eta0":
        def o():
            return ref.ddim_step(x, m, alpha_bar_t=a_t, alpha_bar_prev=a_p, eta=0.0, **common)

        def d():
            return sch.step(mt, t, xt, eta=0.0).prev_sample
        return o, d, 2
    sig = float(ref.sigma_at(orc, np.array([t]))[0])
    sig_n = float(ref.sigma_at(orc, np.array([int(ts[INDEX + 1])]))[0])
    tt = ts[INDEX]
    if sampler == "euler":
        def o():
            return ref.euler_step(x, m, sigma=sig, sigma_next=sig_n, **common)

        def d():
            sch._step_index = INDEX  # replay the same step (diffusers advances its index per call)
            return sch.step(mt, tt, xt).prev_sample
        return o, d, 2

    def o():
        return ref.euler_ancestral_step(x, m, sigma=sig, sigma_next=sig_n, noise=z, **common)

    def d():
        sch._step_index = INDEX
        return sch.step(mt, tt, xt, generator=gen).prev_sample
    return o, d, 3


def run(quick: bool = False) -> dict:
    repeats, min_time = (5, 0.05) if quick else (9, 0.2)
    bw = memory_bandwidth(1 << 27 if quick else 1 << 28, repeats=repeats)
    rows, ratios = [], []
    for shape in SHAPES:
        n = math.prod(shape)
        for s in SAMPLERS:
            o, d, n_in = _cases(s, shape)
            to = time_call(o, repeats=repeats, min_time=min_time)
            td = time_call(d, repeats=repeats, min_time=min_time)
            ratio = to["median"] / td["median"]
            ratios.append(ratio)
            bound = (n_in + 1) * n * 8 / bw["median"]
            rows.append(["×".join(map(str, shape)), s, fmt_timing(to), fmt_timing(td),
                         f"{ratio:.3g} [{to['min'] / td['max']:.3g} – {to['max'] / td['min']:.3g}]",
                         fmt_time(bound), f"{to['median'] / bound:.3g}"])
    md = markdown_table(["latents", "sampler", "oracle step (float64 NumPy)", "diffusers step() (float32 torch)",
                         "ratio oracle/diffusers [range]", "bandwidth bound (oracle, float64)",
                         "oracle / bound"], rows)
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    bw_line = (f"copy bandwidth (np.copyto of {bw['n_bytes'] >> 20} MiB, read + write): median "
               f"{bw['median'] / 1e9:.3g} GB/s [{bw['min'] / 1e9:.3g} – {bw['max'] / 1e9:.3g}]")
    return {"table": md, "ratio_geomean": geo, "bandwidth": bw, "bandwidth_line": bw_line,
            "repeats": repeats}
