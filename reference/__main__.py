"""``python -m reference``: terminal SNR of a schedule before and after Algorithm 1, and its
timesteps under each spacing."""

from __future__ import annotations

import argparse

import numpy as np

from .schedules import (
    BETA_SCHEDULES,
    COMFYUI_FLOOR,
    DIFFUSERS_EULER_FLOOR,
    make_schedule,
    with_terminal_floor,
)
from .spacing import SPACINGS, timesteps, to_paper_timesteps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reference", description=__doc__)
    p.add_argument("schedule", nargs="?", default="scaled_linear", choices=BETA_SCHEDULES)
    p.add_argument("-T", "--num-train-timesteps", type=int, default=1000)
    p.add_argument("--beta-start", type=float)
    p.add_argument("--beta-end", type=float)
    p.add_argument("-S", "--steps", type=int, default=10, help="number of inference steps")
    p.add_argument("--steps-offset", type=int, default=0, help="offset of leading spacing")
    args = p.parse_args(argv)
    try:
        base = make_schedule(args.schedule, args.num_train_timesteps, args.beta_start, args.beta_end)
        ts = {sp: timesteps(sp, args.num_train_timesteps, args.steps, args.steps_offset if sp == "leading" else 0)
              for sp in SPACINGS}
    except (TypeError, ValueError) as exc:
        p.error(str(exc))
    T = base.num_train_timesteps
    print(f"schedule {args.schedule}, T = {T} (float64 oracle)")
    rows = [("original", base)]
    if T >= 2:
        zero = make_schedule(args.schedule, T, args.beta_start, args.beta_end, rescale=True)
        rows.append(("rescaled (Algorithm 1)", zero))
        rows += [(f"rescaled, floor {name}", with_terminal_floor(zero, f))
                 for name, f in (("2^-24 (diffusers Euler)", DIFFUSERS_EULER_FLOOR),
                                 ("4.897e-08 (ComfyUI/A1111)", COMFYUI_FLOOR)) if f < zero.alphas_cumprod[-2]]
    print(f"{'':42} {'SNR(T)':>14} {'sqrt(abar_T)':>14} {'sigma_max (Euler)':>18}")
    for label, s in rows:
        print(f"{label:42} {s.snr[-1]:14.7g} {s.alpha[-1]:14.7g} {s.euler_sigma[-1]:18.7g}")
    print(f"\ntimesteps, S = {args.steps} (0-based as implemented; 1-based as in the paper's Table 2)")
    with np.printoptions(linewidth=200, threshold=50):
        for sp in SPACINGS:
            print(f"{sp:9} 0-based {ts[sp]}")
            print(f"{'':9} 1-based {to_paper_timesteps(ts[sp])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
