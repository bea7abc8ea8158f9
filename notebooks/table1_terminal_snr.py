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
# # Table 1 — terminal SNR of common schedules
#
# SNR(T) = ᾱ_T/(1-ᾱ_T) and √ᾱ_T of the linear, cosine (`squaredcos_cap_v2`) and Stable Diffusion
# (`scaled_linear`) schedules, T = 1000: the float64 oracle beside the paper's printed values, and
# two float32 computations in NumPy that show where the paper's cosine row comes from.
#
# "Within rounding" means |value − printed| <= half a unit in the printed value's last digit.

# %%
from decimal import Decimal

import numpy as np
from _common import key, out_path, save_table

from reference import make_schedule

T = 1000
PAPER = {  # Lin et al. 2024, Table 1 (strings exactly as printed)
    "linear": ("4.035993e-05", "0.006353"),
    "squaredcos_cap_v2": ("2.428735e-09", "4.928220e-05"),
    "scaled_linear": ("0.004682", "0.068265"),
}
LABEL = {"linear": "linear (DDPM)", "squaredcos_cap_v2": "cosine (squaredcos_cap_v2)",
         "scaled_linear": "Stable Diffusion (scaled_linear)"}


def half_unit(printed: str) -> float:
    """Half a unit in the last printed digit: the rounding of the printed value."""
    return 0.5 * 10.0 ** Decimal(printed).as_tuple().exponent


def within(value: float, printed: str) -> bool:
    return abs(value - float(printed)) <= half_unit(printed)


# %% [markdown]
# ## float32 the way diffusers computes it, in NumPy
#
# diffusers builds `betas` as a float32 tensor (the cosine betas in Python float64, then cast;
# linear and scaled_linear with `torch.linspace` in float32 — emulated here by a float64 linspace
# rounded to float32), `alphas = 1 - betas` in float32 and `alphas_cumprod = torch.cumprod(alphas)`.
# Two NumPy emulations of that cumprod:
#
# * **naive**: `np.cumprod` on float32, which accumulates the running product in float32;
# * **torch-style**: the running product of the float32 factors accumulated in float64, each
#   output rounded to float32 — what PyTorch's CPU `cumprod` does (its accumulation type for
#   float32 is double). `notebooks/test_notebooks.py` checks against torch that this one is bitwise
#   equal to `torch.cumprod` for the cosine schedule.

# %%
def betas_float32(name: str) -> np.ndarray:
    if name == "squaredcos_cap_v2":  # diffusers' betas_for_alpha_bar, Python float64, then cast
        f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
        t = np.arange(T, dtype=np.float64)
        b = np.minimum(1.0 - f((t + 1) / T) / f(t / T), 0.999)
    elif name == "linear":
        b = np.linspace(0.0001, 0.02, T)
    else:
        b = (np.linspace(np.float32(0.00085**0.5), np.float32(0.012**0.5), T).astype(np.float32)) ** 2
    return np.asarray(b, dtype=np.float32)


def cumprod_float32(betas32: np.ndarray, torch_style: bool) -> np.ndarray:
    alphas32 = np.float32(1.0) - betas32
    if torch_style:
        return np.cumprod(alphas32.astype(np.float64)).astype(np.float32)
    return np.cumprod(alphas32)  # float32 accumulator


def terminal_float32(abar32: np.ndarray) -> tuple[float, float]:
    a = abar32[-1]
    return float(a / (np.float32(1.0) - a)), float(np.sqrt(a))


# %%
header = ["schedule", "quantity", "paper (printed)", "float64 oracle", "rel. diff float64 vs paper",
          "float64 within printed rounding", "float32 NumPy naive cumprod", "float32 torch-style cumprod",
          "torch-style within printed rounding"]
rows = []
for name, (p_snr, p_alpha) in PAPER.items():
    s = make_schedule(name, T)
    exact = {"SNR(T)": s.snr[-1], "sqrt(abar_T)": s.alpha[-1]}
    b32 = betas_float32(name)
    f32 = {kind: terminal_float32(cumprod_float32(b32, kind == "torch")) for kind in ("naive", "torch")}
    for qi, (q, printed) in enumerate((("SNR(T)", p_snr), ("sqrt(abar_T)", p_alpha))):
        ex = float(exact[q])
        rel = ex / float(printed) - 1.0
        naive, torchy = f32["naive"][qi], f32["torch"][qi]
        rows.append([LABEL[name], q, printed, f"{ex:.10g}", f"{rel:+.3e}", "yes" if within(ex, printed) else "NO",
                     f"{naive:.7g}", f"{torchy:.7g}", "yes" if within(torchy, printed) else "NO"])
        tag = f"table1.{name}.{'snr_T' if qi == 0 else 'alpha_T'}"
        key(f"{tag}.paper", float(printed))
        key(f"{tag}.float64", ex)
        key(f"{tag}.rel_diff", rel)
        key(f"{tag}.float32_naive", naive)
        key(f"{tag}.float32_torch_style", torchy)
        key(f"{tag}.float64_within_rounding", int(within(ex, printed)))
        key(f"{tag}.float32_torch_style_within_rounding", int(within(torchy, printed)))

# %% [markdown]
# ## Why the cosine row differs
#
# The cosine schedule's last β (β_T = 1 in exact arithmetic) is clipped to 0.999. In float32,
# 0.999 is 0.99900001287…, so 1 − β_T = 9.99987e-4 instead of 1e-3: ᾱ_T drops by 1.29e-5 relative,
# and so SNR(T) (≈ ᾱ_T) and √ᾱ_T (half of that) — the whole gap between the paper and float64.

# %%
cos = make_schedule("squaredcos_cap_v2", T)
n_clipped = int(np.sum(cos.betas == 0.999))
one_minus_clip32 = 1.0 - float(np.float32(0.999))
predicted = (one_minus_clip32 / (1.0 - 0.999)) ** n_clipped - 1.0
key("table1.cosine.n_clipped_steps", n_clipped)
key("table1.cosine.clip_float32_rel_change_of_abar_T", predicted)
print(f"clipped steps: {n_clipped}; float32(0.999) changes ᾱ_T by {predicted:+.4e} (relative)")

note = f"""T = 1000. float64 oracle: `reference.make_schedule`. Rel. diff = float64/paper − 1.
"Within printed rounding": |value − printed| ≤ half a unit of the last printed digit.
Linear and Stable Diffusion: the paper's digits are the float64 values, rounded.
Cosine: the paper's digits are NOT the float64 values (float64 is +1.3e-5 relative above them, far beyond
the printed rounding). They are diffusers' float32 computation: betas cast to float32, whose clipped
last β = 0.999 becomes 0.99900001287 (1 − β_T smaller by {-predicted:.3e} relative, {n_clipped} clipped step),
then `torch.cumprod` in float32 — which accumulates in float64 on CPU. NumPy reproduces it with
`np.cumprod(alphas32.astype(float64)).astype(float32)` (torch-style column, bitwise equal to torch);
plain float32 `np.cumprod` (naive column) accumulates in float32 and misses the 7th digit.
For linear and scaled_linear, float32 linspace betas are emulated in NumPy (not bitwise torch's).
"""
save_table("table1_terminal_snr", header, rows, note)
print(out_path("table1_terminal_snr.md").read_text(encoding="utf-8"))
