"""Shared plumbing of the notebooks: output folder, fast mode, deterministic figures, tables,
and the parseable ``KEY name = value`` lines every notebook prints.

Environment: ``ZSNR_FIGURES_DIR`` (default ``<repo>/figures``) is where figures and tables go;
``ZSNR_FAST=1`` or ``--fast`` selects fast mode (smaller images and batches, same schedules).
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
FAST = os.environ.get("ZSNR_FAST", "") not in ("", "0") or "--fast" in sys.argv
OUT = Path(os.environ.get("ZSNR_FIGURES_DIR", REPO / "figures"))
DPI = 110

plt.rcParams.update({
    "svg.hashsalt": "zsnr",  # fixed ids in SVG: byte-identical reruns
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
})


def out_path(name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT / name


def save_figure(fig, stem: str, svg: bool = True) -> list[Path]:
    """PNG (and SVG) of ``fig`` with no date or other varying metadata."""
    paths = [out_path(f"{stem}.png")]
    fig.savefig(paths[0], metadata={"Software": None})
    if svg:
        paths.append(out_path(f"{stem}.svg"))
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    for p in paths:
        print(f"wrote {p}")
    return paths


def save_table(stem: str, header: list[str], rows: list[list], note: str = "") -> None:
    """The table as Markdown (with an optional note under it) and as CSV."""
    cells = [[str(c) for c in r] for r in rows]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in cells]
    text = "\n".join(md) + "\n" + (f"\n{note.strip()}\n" if note else "")
    out_path(f"{stem}.md").write_text(text, encoding="utf-8")
    with out_path(f"{stem}.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(cells)
    print(f"wrote {out_path(stem + '.md')} and .csv")


def key(name: str, value) -> None:
    """One parseable result line: ``KEY name = value`` (floats in full precision, repr)."""
    if isinstance(value, float) or hasattr(value, "dtype"):
        value = repr(float(value))
    print(f"KEY {name} = {value}")


def sig(x: float, digits: int = 7) -> str:
    """``x`` with ``digits`` significant digits, in the paper's style."""
    return f"{x:.{digits - 1}e}" if (x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4)) else f"{x:.{digits}g}"
