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
# # Figure 2 — the Stable Diffusion schedule before and after Algorithm 1
#
# (a) log SNR(t) and (b) √ᾱ_t of `scaled_linear` (β from 0.00085 to 0.012, T = 1000) and of its
# zero-terminal-SNR rescale, with the terminal floors real implementations use instead of ᾱ_T = 0:
# 2⁻²⁴ (diffusers Euler / Euler ancestral) and 4.8973451890853435e-08 (ComfyUI, A1111).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from _common import key, save_figure, save_table

from reference import COMFYUI_FLOOR, DIFFUSERS_EULER_FLOOR, make_schedule, with_terminal_floor

T = 1000
sd = make_schedule("scaled_linear", T)
zero = make_schedule("scaled_linear", T, rescale=True)
floors = {"2⁻²⁴ (diffusers Euler)": DIFFUSERS_EULER_FLOOR, "4.897e-08 (ComfyUI / A1111)": COMFYUI_FLOOR}
floored = {name: with_terminal_floor(zero, f) for name, f in floors.items()}
t = np.arange(T)

# %%
header = ["schedule", "abar_T", "SNR(T)", "log SNR(T)", "sqrt(abar_T)", "sigma_T (Euler)", "abar at t = T-1 (0-based 998)"]
rows = []
for label, s in [("Stable Diffusion (scaled_linear)", sd), ("rescaled, Algorithm 1", zero)] + \
        [(f"rescaled, floor {n}", s) for n, s in floored.items()]:
    rows.append([label, f"{s.alphas_cumprod[-1]:.10g}", f"{s.snr[-1]:.10g}", f"{s.log_snr[-1]:.6g}",
                 f"{s.alpha[-1]:.10g}", f"{s.euler_sigma[-1]:.8g}", f"{s.alphas_cumprod[-2]:.6g}"])
for tag, s in (("sd", sd), ("rescaled", zero), ("floor_diffusers", floored["2⁻²⁴ (diffusers Euler)"]),
               ("floor_comfyui", floored["4.897e-08 (ComfyUI / A1111)"])):
    key(f"figure2.{tag}.alpha_bar_T", s.alphas_cumprod[-1])
    key(f"figure2.{tag}.snr_T", s.snr[-1])
    key(f"figure2.{tag}.sigma_T", s.euler_sigma[-1])
    key(f"figure2.{tag}.alpha_bar_0", s.alphas_cumprod[0])
key("figure2.rescaled.alpha_bar_T_minus_1", zero.alphas_cumprod[-2])
key("figure2.max_abs_diff_sqrt_abar_t_lt_500", np.max(np.abs(zero.alpha[:500] - sd.alpha[:500])))
save_table("figure2_terminal", header, rows,
           "float64 oracle, T = 1000, 0-based t. A floor replaces only ᾱ_T (its β_T follows); SNR(T) is "
           "then ᾱ_T/(1−ᾱ_T) > 0, and the floored schedule's σ_T is finite.")

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
a1.plot(t, sd.log_snr, label="Stable Diffusion (scaled_linear)", color="C0")
a1.plot(t[:-1], zero.log_snr[:-1], label="rescaled (Algorithm 1)", color="C1")
a1.annotate("rescaled: log SNR(T) = −∞", xy=(T - 1, zero.log_snr[-2] - 1), xytext=(420, -12.5),
            arrowprops={"arrowstyle": "->", "color": "C1"}, color="C1", fontsize=8)
for (name, f), c, m in zip(floors.items(), ("C2", "C3"), ("v", "s")):
    a1.plot([T - 1], [math.log(f / (1 - f))], m, color=c, ms=6, label=f"floor ᾱ_T = {name}: log SNR {math.log(f / (1 - f)):.2f}")
a1.set_xlabel("timestep t (0-based; the paper's t − 1)")
a1.set_ylabel("log SNR(t)  (natural log)")
a1.set_title("(a) log SNR(t)")
a1.set_ylim(-18, 8)
a1.legend(loc="upper right")

a2.plot(t, sd.alpha, label=f"Stable Diffusion: √ᾱ_T = {sd.alpha[-1]:.6f}", color="C0")
a2.plot(t, zero.alpha, label="rescaled (Algorithm 1): √ᾱ_T = 0", color="C1")
a2.set_xlabel("timestep t (0-based; the paper's t − 1)")
a2.set_ylabel("√ᾱ_t  (signal scale, dimensionless)")
a2.set_title("(b) √ᾱ_t")
a2.legend(loc="upper right")
ins = a2.inset_axes([0.09, 0.08, 0.36, 0.36])
tz = t[-30:]
ins.semilogy(tz, sd.alpha[-30:], color="C0")
ins.semilogy(tz[:-1], zero.alpha[-30:-1], ".-", color="C1", ms=3)
for (name, f), c, m in zip(floors.items(), ("C2", "C3"), ("v", "s")):
    ins.semilogy([T - 1], [math.sqrt(f)], m, color=c, ms=6)
    ins.annotate(f"√{name.split(' ')[0]} = {math.sqrt(f):.3g}", xy=(T - 1, math.sqrt(f)),
                 xytext=(971, math.sqrt(f) * (0.3 if m == "s" else 1.9)), fontsize=6, color=c)
ins.set_ylim(4e-5, 0.3)
ins.set_title("t = 970..999, log scale", fontsize=7)
ins.tick_params(labelsize=6)
fig.suptitle("Figure 2: Stable Diffusion schedule before and after rescaling to zero terminal SNR")
fig.tight_layout()
save_figure(fig, "figure2_rescale")
