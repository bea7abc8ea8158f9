"""Regenerate every figure and table of notebooks/ into figures/ (or $ZSNR_FIGURES_DIR).

    python notebooks/regenerate.py [--fast]

Runs each notebook as its own process (so matplotlib state cannot leak between them) and reports
the time of each and the total.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("table1_terminal_snr", "table2_spacing", "figure2_rescale", "signal_leakage", "brightness",
             "guidance_rescale", "spacing_quality")


def main(argv: list[str]) -> int:
    extra = ["--fast"] if "--fast" in argv else []
    start = time.perf_counter()
    for name in NOTEBOOKS:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], capture_output=True, text=True,
                              check=False)
        if proc.returncode:
            sys.stderr.write(proc.stdout + proc.stderr)
            print(f"FAILED {name}")
            return proc.returncode
        print(f"{name:22} {time.perf_counter() - t0:6.2f} s")
    print(f"{'total':22} {time.perf_counter() - start:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
