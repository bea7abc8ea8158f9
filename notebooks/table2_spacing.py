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
# # Table 2 — sample-step selection
#
# The paper's three spacing rules (1-based timesteps 1..T, ascending as printed) beside the oracle's
# implementation (`reference.timesteps`: 0-based 0..T-1, descending as samplers use them), for
# T = 1000 and S = 10 (the paper's table), S = 7 and S = 25.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _common import key, save_figure, save_table

from reference import timesteps

T = 1000


def paper_rule(spacing: str, S: int) -> np.ndarray:
    """The rule as printed in Table 2 (1-based, ascending)."""
    if spacing == "leading":
        return np.arange(1, T + 1, T // S)
    if spacing == "linspace":
        return np.round(np.linspace(1, T, S)).astype(np.int64)
    return np.round(np.flip(np.arange(T, 0, -T / S))).astype(np.int64)


def fmt(a) -> str:
    return " ".join(str(int(v)) for v in a)


# %%
header = ["S", "spacing", "paper rule (1-based, as printed)", "# steps of the rule",
          "implementation (0-based, descending)", "implementation + 1, ascending", "same as paper rule"]
rows = []
for S in (10, 7, 25):
    for spacing, offset in (("leading", 0), ("leading", 1), ("linspace", 0), ("trailing", 0)):
        impl = timesteps(spacing, T, S, offset)
        label = spacing if spacing != "leading" else f"leading, steps_offset={offset}"
        rule = paper_rule(spacing, S)
        same = rule.size == impl.size and np.array_equal(rule, np.sort(impl) + 1)
        rows.append([S, label, fmt(rule), rule.size, fmt(impl), fmt(np.sort(impl) + 1), "yes" if same else "NO"])
        tag = f"table2.S{S}.{spacing}" + (f".offset{offset}" if spacing == "leading" else "")
        key(f"{tag}.paper_rule", fmt(rule))
        key(f"{tag}.implementation_0based", fmt(impl))
        key(f"{tag}.same_as_paper_rule", int(same))

note = """T = 1000. Implementation: `reference.timesteps(spacing, 1000, S, steps_offset)`; 0-based, so the
paper's numbers are these + 1. With steps_offset = 0 the leading and trailing columns are the paper's
rules shifted by one ("same as paper rule" = yes). Stable Diffusion's configs use leading with steps_offset = 1,
whose timesteps are one later than the paper's (1-based 2, 102, …, 902): they still start 98 steps
before T. When T/S is not an integer the paper's leading rule arange(1, T+1, ⌊T/S⌋) gives MORE than S
steps (S = 7: 8 steps, 1 … 995; S = 25: T/S = 40 is an integer, fine); implementations take the
first S of them (k·⌊T/S⌋, k = 0..S−1), so for S = 7 they stop at 853 (1-based; 854 with steps_offset = 1) and never reach t = T.
linspace for S = 7 and 25 differs from the printed rule by one at some steps (e.g. S = 7: 168 vs
167): linspace(1, T, S) and linspace(0, T−1, S) hit exact halves (167.5 vs 166.5), and NumPy rounds
halves to even, so "+1 after rounding" ≠ "rounding after +1". Implementations (diffusers,
the oracle) round the 0-based linspace(0, T−1, S).
Only trailing (and linspace) start at t = T (0-based 999), where the zero-SNR schedule has SNR 0.
"""
save_table("table2_spacing", header, rows, note)

# %% [markdown]
# A picture of the same timesteps: only trailing and linspace reach t = T.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharey=True)
for ax, S in zip(axes, (10, 7)):
    for j, (spacing, offset) in enumerate((("leading", 1), ("linspace", 0), ("trailing", 0))):
        ts = timesteps(spacing, T, S, offset)
        ax.plot(ts, np.full(ts.size, j), "o", ms=5, label=f"{spacing}" + (" (offset 1)" if offset else ""))
    ax.axvline(T - 1, color="k", lw=0.8, ls="--")
    ax.text(T - 1, 2.45, "t = T", ha="right", va="bottom", fontsize=8)
    ax.set_yticks(range(3), ["leading\n(offset 1)", "linspace", "trailing"])
    ax.set_ylim(-0.5, 2.9)
    ax.set_xlim(-20, 1020)
    ax.set_xlabel("timestep t (0-based, implementation)")
    ax.set_title(f"T = 1000, S = {S}")
fig.suptitle("Table 2: timesteps each spacing evaluates")
fig.tight_layout()
save_figure(fig, "table2_spacing")
