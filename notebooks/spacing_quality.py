# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Spacing quality (Figure 4's claim) as exact numbers
#
# Zero-SNR Stable Diffusion schedule, v-prediction, the exact Gaussian denoiser, x_T ~ N(0, I).
# For each spacing (leading with steps_offset = 1 as in SD's configs, linspace, trailing) and
# S ∈ {5, 10, 25, 50}, `reference.sampler_moments` gives the exact generated N(m, v) per dimension;
# we report its error against the data N(μ, s²):
#
# * KL(generated ‖ data) = log(s/√v) + (v + (m − μ)²)/(2s²) − ½  (nats per dimension),
# * W2 = √((m − μ)² + (√v − s)²), reported relative to s.
#
# Two data components: a "pixel" N(0.3, 0.5²) and the "brightness" coordinate N(0, 32²) of
# `brightness.py` (per-image mean std 0.5 over 64×64 pixels).

# %%

import matplotlib.pyplot as plt
import numpy as np
from _common import key, save_figure, save_table

from reference import loop_alpha_bars, make_schedule, sampler_moments, timesteps

T = 1000
STEPS = (5, 10, 25, 50)
SPACINGS = (("leading", 1), ("linspace", 0), ("trailing", 0))
SAMPLERS = ("ddim", "ddpm")  # Euler ≡ DDIM, Euler ancestral ≡ DDPM here (see brightness.py)
COMPONENTS = {"pixel": (0.3, 0.5), "brightness": (0.0, 32.0)}
MU = np.array([c[0] for c in COMPONENTS.values()])
SD = np.array([c[1] for c in COMPONENTS.values()])
ZERO = make_schedule("scaled_linear", T, rescale=True)


def kl(m, v, mu, s):
    return np.log(s / np.sqrt(v)) + (v + (m - mu) ** 2) / (2 * s * s) - 0.5


def w2(m, v, mu, s):
    return np.sqrt((m - mu) ** 2 + (np.sqrt(v) - s) ** 2)


# %%
header = ["sampler", "S", "spacing", "first t (0-based)", "pixel: KL (nats)", "pixel: W2 / s",
          "brightness: KL (nats)", "brightness: W2 / s"]
rows, res = [], {}
for sampler in SAMPLERS:
    for S in STEPS:
        for spacing, offset in SPACINGS:
            ts = timesteps(spacing, T, S, offset)
            m, v = sampler_moments(sampler, MU, SD**2, prediction_type="v_prediction",
                                   alpha_bars=loop_alpha_bars(ZERO, ts))
            k, w = kl(m, v, MU, SD), w2(m, v, MU, SD) / SD
            res[sampler, S, spacing] = (k, w)
            rows.append([sampler, S, spacing + (" (offset 1)" if offset else ""), int(ts[0]),
                         f"{k[0]:.3e}", f"{w[0]:.4f}", f"{k[1]:.3e}", f"{w[1]:.4f}"])
            for j, comp in enumerate(COMPONENTS):
                key(f"spacing.{sampler}.S{S}.{spacing}.{comp}.kl", k[j])
                key(f"spacing.{sampler}.S{S}.{spacing}.{comp}.w2_rel", w[j])
                key(f"spacing.{sampler}.S{S}.{spacing}.{comp}.mean", m[j])
                key(f"spacing.{sampler}.S{S}.{spacing}.{comp}.var", v[j])
note = """Exact (closed-form moment propagation, no sampling): zero-SNR scaled_linear schedule, v-prediction, optimal
Gaussian denoiser, x_T ~ N(0, 1), loops land on clean data. KL(generated ‖ data) in nats per dimension; W2 relative
to the data std s. Pixel component N(0.3, 0.5²); brightness component N(0, 32²). Leading spacing (steps_offset 1)
starts at t = ⌊T/S⌋·(S−1)+1 < T−1, where SNR > 0, yet is fed x_T ~ N(0, 1).
Finding: with an EXACT denoiser the spacings differ little, and leading is slightly better, not worse: Figure 4's
advantage of trailing is not a property of the sampler arithmetic. Trailing's last model evaluation is at t = T/S − 1
(199 for S = 5) and its final jump to clean data is long, while leading ends at t = 1; the cost of leading's start
below T is small here because the optimal denoiser handles the mismatched x_T gracefully. The paper's gain comes from
a trained model that, at t < T, relies on leaked signal that pure noise lacks — which this exact model does not need.
"""
save_table("spacing_quality", header, rows, note)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
for ax, (j, comp) in zip(axes, enumerate(COMPONENTS)):
    for (spacing, _), c in zip(SPACINGS, ("C0", "C2", "C1")):
        for sampler, ls, mk in (("ddim", "-", "o"), ("ddpm", "--", "s")):
            ax.plot(STEPS, [res[sampler, S, spacing][0][j] for S in STEPS], ls=ls, marker=mk, color=c,
                    label=f"{spacing}, {sampler}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(STEPS, [str(s) for s in STEPS])
    ax.minorticks_off()
    ax.set_xlabel("inference steps S")
    ax.set_ylabel("KL(generated ‖ data)  (nats per dimension)")
    mu, s = COMPONENTS[comp]
    ax.set_title(f"{comp} component, data N({mu:g}, {s:g}²)")
    ax.legend(fontsize=7, ncol=2)
fig.suptitle("Spacing quality, exact: zero-SNR schedule, v-prediction, optimal denoiser (Euler ≡ DDIM, Euler a. ≡ DDPM)")
fig.tight_layout()
save_figure(fig, "spacing_quality")
