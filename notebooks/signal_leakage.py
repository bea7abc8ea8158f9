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
# # Signal leakage at t = T
#
# A real photograph (Grace Hopper, shipped with matplotlib's sample data, read offline), grayscale
# in [-1, 1], noised to t = T with one fixed noise draw, under the Stable Diffusion schedule
# (√ᾱ_T = 0.068265) and under its zero-SNR rescale (√ᾱ_T = 0). Low frequencies — here k×k block
# averages — of x_T still show the image under the original schedule: that is what the model learns
# to read at t = T and never gets at inference from x_T ~ N(0, I).
#
# For a fixed image x₀ and ε ~ N(0, I), the correlation over blocks between L·x₀ and L·x_T
# (L = k×k block mean) tends, as the number of blocks n grows, to
#
#   ρ = α_T·std(Lx₀) / √(α_T²·var(Lx₀) + σ_T²·var(Lε)),  var(Lε) = 1/k²,
#
# and the sampled correlation scatters around it with standard error ≈ (1 − ρ²)/√n.

# %%
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import FAST, key, save_figure, save_table
from matplotlib import cbook

from reference import add_noise, make_schedule

SEED = 20240101
KS = (1, 2, 4, 8, 16, 32)
SHOW_K = 16

path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
assert path.is_file(), f"matplotlib sample data missing: {path}"
rgb = plt.imread(path).astype(np.float64) / 255.0  # (600, 512, 3), uint8 -> [0, 1]
gray = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma
if FAST:  # 2x2 block mean: 300 x 256
    gray = gray.reshape(300, 2, 256, 2).mean(axis=(1, 3))
H, W = (gray.shape[0] // 32) * 32, (gray.shape[1] // 32) * 32
x0 = 2.0 * gray[:H, :W] - 1.0  # [-1, 1], cropped to multiples of 32
print(f"image {path.name}: {x0.shape}, mean {x0.mean():.4f}, std {x0.std():.4f}")

schedules = {"sd": make_schedule("scaled_linear"), "rescaled": make_schedule("scaled_linear", rescale=True)}
eps = np.random.default_rng(SEED).standard_normal(x0.shape)  # ONE draw, shared by both schedules
x_T = {name: add_noise(x0, eps, s.alphas_cumprod[-1]) for name, s in schedules.items()}


def block_mean(x: np.ndarray, k: int) -> np.ndarray:
    return x.reshape(x.shape[0] // k, k, x.shape[1] // k, k).mean(axis=(1, 3))


def expected_corr(x0: np.ndarray, alpha_bar: float, k: int) -> float:
    a, s2 = math.sqrt(alpha_bar), 1.0 - alpha_bar
    v0 = block_mean(x0, k).var()
    return a * math.sqrt(v0) / math.sqrt(a * a * v0 + s2 / (k * k))


# %%
header = ["block k×k", "blocks n", "schedule", "sqrt(abar_T)", "sampled corr(Lx0, Lx_T)", "expected corr (closed form)",
          "std. error (1-ρ²)/√n", "(sampled − expected)/s.e."]
rows, corr = [], {}
for k in KS:
    L0 = block_mean(x0, k).ravel()
    for name, s in schedules.items():
        LT = block_mean(x_T[name], k).ravel()
        r = float(np.corrcoef(L0, LT)[0, 1])
        rho = expected_corr(x0, s.alphas_cumprod[-1], k)
        se = (1 - rho * rho) / math.sqrt(L0.size)
        corr[name, k] = r
        rows.append([k, L0.size, name, f"{s.alpha[-1]:.6g}", f"{r:.4f}", f"{rho:.4f}", f"{se:.4f}", f"{(r - rho) / se:+.2f}"])
        key(f"leakage.{name}.k{k}.sampled_corr", r)
        key(f"leakage.{name}.k{k}.expected_corr", rho)
        key(f"leakage.{name}.k{k}.n_blocks", L0.size)
key("leakage.image_mean", x0.mean())
key("leakage.sd.x_T_mean", x_T["sd"].mean())
key("leakage.rescaled.x_T_mean", x_T["rescaled"].mean())
key("leakage.n_pixels", x0.size)
sd_a = schedules["sd"].alpha[-1]
note = f"""Image: matplotlib sample data grace_hopper.jpg, BT.601 luma mapped to [-1, 1], {x0.shape[0]}×{x0.shape[1]}
pixels{' (fast mode: 2×2-averaged)' if FAST else ''}; one noise draw, seed {SEED}, the same ε for both schedules.
L = k×k block mean. Expected corr: α_T·std(Lx₀)/√(α_T²·var(Lx₀) + σ_T²/k²), the large-n limit for this image.
Rescaled: α_T = 0, so x_T = ε and the expected correlation is exactly 0.
Global mean brightness: image {x0.mean():+.4f}; x_T under SD {x_T['sd'].mean():+.5f}
(= {sd_a:.4f}·{x0.mean():+.4f} + noise of std {math.sqrt(1 - sd_a**2) / math.sqrt(x0.size):.5f}); rescaled {x_T['rescaled'].mean():+.5f}.
"""
save_table("signal_leakage", header, rows, note)

# %%
fig = plt.figure(figsize=(12, 7.4))
gs = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 1.25])
lo = {name: block_mean(x_T[name], SHOW_K) for name in schedules}
panels = [
    (0, 0, x0, "x₀: photograph in [-1, 1]", (-1, 1)),
    (0, 1, x_T["sd"], f"x_T, Stable Diffusion\n(√ᾱ_T = {sd_a:.4f}), full resolution", (-3, 3)),
    (0, 2, x_T["rescaled"], "x_T, zero-SNR rescale\n(√ᾱ_T = 0), full resolution", (-3, 3)),
    (1, 0, block_mean(x0, SHOW_K), f"{SHOW_K}×{SHOW_K} block mean of x₀\n(block means: contrast-stretched)", None),
    (1, 1, lo["sd"], f"{SHOW_K}×{SHOW_K} block mean of x_T, SD\ncorr with x₀: {corr['sd', SHOW_K]:.3f}", None),
    (1, 2, lo["rescaled"], f"{SHOW_K}×{SHOW_K} block mean of x_T, rescaled\ncorr with x₀: {corr['rescaled', SHOW_K]:+.3f}", None),
]
for r, c, img, title, lim in panels:
    ax = fig.add_subplot(gs[r, c])
    if lim is None:  # contrast-stretched to its own 1st..99th percentile
        lim = tuple(np.percentile(img, [1, 99]))
    ax.imshow(img, cmap="gray", vmin=lim[0], vmax=lim[1], interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
ax = fig.add_subplot(gs[:, 3])
ks = np.array(KS)
for name, c, lab in (("sd", "C0", "Stable Diffusion"), ("rescaled", "C1", "zero-SNR rescale")):
    rho = np.array([expected_corr(x0, schedules[name].alphas_cumprod[-1], k) for k in KS])
    n = np.array([block_mean(x0, k).size for k in KS])
    ax.errorbar(ks, [corr[name, k] for k in KS], yerr=2 * (1 - rho**2) / np.sqrt(n), fmt="o", color=c,
                capsize=3, label=f"{lab}: sampled, ±2 s.e.")
    ax.plot(ks, [expected_corr(x0, schedules[name].alphas_cumprod[-1], k) for k in KS], "-", color=c,
            label=f"{lab}: closed form")
ax.set_xscale("log", base=2)
ax.set_xlabel("block size k (pixels; low-pass = k×k mean)")
ax.set_ylabel("correlation of block means of x_T and x₀")
ax.set_title("What survives at t = T, by spatial scale")
ax.axhline(0, color="k", lw=0.6)
ax.legend(loc="upper left", title=f"noise seed {SEED}", title_fontsize=8)
fig.suptitle("Signal leakage: x_T = √ᾱ_T·x₀ + √(1−ᾱ_T)·ε at t = T, one fixed noise draw")
fig.tight_layout()
save_figure(fig, "signal_leakage", svg=False)
