"""Noise schedules: betas, ᾱ, SNR and σ, Algorithm 1 (zero terminal SNR) and terminal floors.

Everything is float64 and indexed by the 0-based training timestep t = 0..T-1 (the paper's
t = 1..T). A :class:`Schedule` keeps ᾱ_t *and* 1 - ᾱ_t, each computed without cancellation,
so that σ_t = √(1-ᾱ_t) is accurate near t = 0 (where ᾱ ≈ 1) and SNR(T) is exactly 0 after
rescaling (where ᾱ = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _checks

#: Beta schedules by name (diffusers' ``beta_schedule`` names, plus the unclipped cosine).
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine_unclipped", "sigmoid")

#: Default (beta_start, beta_end) of the schedules that take a range: DDPM's for linear and
#: sigmoid, Stable Diffusion's for scaled_linear.
DEFAULT_BETA_RANGE = {
    "linear": (0.0001, 0.02),
    "scaled_linear": (0.00085, 0.012),
    "sigmoid": (0.0001, 0.02),
}

#: The clip of improved DDPM's cosine schedule ("squaredcos_cap_v2"): β_t <= 0.999.
COSINE_MAX_BETA = 0.999
#: Improved DDPM's cosine offset s in f(t) = cos²(((t/T) + s)/(1 + s) · π/2).
COSINE_OFFSET = 0.008

#: ᾱ_T floor used by diffusers' Euler and Euler-ancestral schedulers with zero-SNR rescale (σ_T ≈ 4096).
DIFFUSERS_EULER_FLOOR = 2.0**-24
#: ᾱ_T floor used by ComfyUI and A1111 (σ_T ≈ 4518.76).
COMFYUI_FLOOR = 4.8973451890853435e-08


# --- double-double helpers (error-free transformations), used for the running product ᾱ --------

_SPLITTER = 134217729.0  # 2**27 + 1 (Dekker)


def _two_prod(a, b):
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_cumprod(factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running product of 1 - β as a double-double (hi, lo), by a log-depth prefix scan.

    The factors 1 - β are formed exactly (hi + lo), and every product keeps ~106 bits,
    so ᾱ = hi + lo carries about 2⁻¹⁰⁰ relative error before its final rounding.
    """
    betas = factors
    hi = 1.0 - betas
    lo = (1.0 - hi) - betas  # exact: 1 - β = hi + lo
    shift = 1
    while shift < hi.size:
        p, e = _two_prod(hi[shift:], hi[:-shift])
        e = e + (hi[shift:] * lo[:-shift] + lo[shift:] * hi[:-shift])
        s = p + e
        hi, lo = np.concatenate([hi[:shift], s]), np.concatenate([lo[:shift], e - (s - p)])
        shift *= 2
    return hi, lo


# --- the schedule -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Schedule:
    """A variance-preserving noise schedule over training timesteps t = 0..T-1.

    ``alphas_cumprod`` is ᾱ_t; ``one_minus_alphas_cumprod`` is 1 - ᾱ_t, computed without
    cancellation (never as ``1 - alphas_cumprod``); ``betas`` is β_t = 1 - ᾱ_t/ᾱ_{t-1}.
    Build one with :func:`make_schedule`, :meth:`from_betas` or :meth:`from_alphas_cumprod`.
    """

    betas: np.ndarray
    alphas_cumprod: np.ndarray
    one_minus_alphas_cumprod: np.ndarray
    name: str = "custom"

    def __post_init__(self):
        for field in ("betas", "alphas_cumprod", "one_minus_alphas_cumprod"):
            arr = np.array(getattr(self, field), dtype=np.float64)
            arr.flags.writeable = False
            object.__setattr__(self, field, arr)

    @classmethod
    def from_betas(cls, betas, name: str = "custom") -> Schedule:
        """The schedule of the given betas, each in (0, 1]; ᾱ is their running product of 1 - β."""
        betas = _checks.array("betas", betas, ndim=1)
        if betas.size == 0:
            raise ValueError("betas must hold at least one value (T >= 1)")
        _checks.in_range("betas", betas, 0.0, 1.0, low_open=True)
        hi, lo = _dd_cumprod(betas)
        alphas_cumprod = hi + lo
        return cls(betas, alphas_cumprod, (1.0 - hi) - lo, name)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod, name: str = "custom") -> Schedule:
        """The schedule of the given ᾱ: in [0, 1), non-increasing. 1 - ᾱ is taken as given."""
        abar = _checks.array("alphas_cumprod", alphas_cumprod, ndim=1)
        if abar.size == 0:
            raise ValueError("alphas_cumprod must hold at least one value (T >= 1)")
        _checks.in_range("alphas_cumprod", abar, 0.0, 1.0)
        if abar[0] == 1.0:
            raise ValueError("alphas_cumprod[0] must be < 1: ᾱ_0 = 1 means β_0 = 0, σ_0 = 0, infinite SNR")
        if np.any(np.diff(abar) > 0):
            t = int(np.argmax(np.diff(abar) > 0)) + 1
            raise ValueError(f"alphas_cumprod must be non-increasing; it rises at t={t}")
        prev = np.concatenate([[1.0], abar[:-1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            betas = np.where(prev > 0, (prev - abar) / prev, 1.0)
        if np.any(prev == 0):
            raise ValueError("alphas_cumprod may be 0 only at the last timestep (after it, β is undefined)")
        return cls(betas, abar, 1.0 - abar, name)

    @property
    def num_train_timesteps(self) -> int:
        return self.betas.size

    @property
    def alphas(self) -> np.ndarray:
        """Per-step α_t = 1 - β_t (diffusers' ``alphas``)."""
        return 1.0 - self.betas

    @property
    def alpha(self) -> np.ndarray:
        """Signal scale √ᾱ_t."""
        return np.sqrt(self.alphas_cumprod)

    @property
    def sigma(self) -> np.ndarray:
        """Noise scale √(1 - ᾱ_t) of the variance-preserving process."""
        return np.sqrt(self.one_minus_alphas_cumprod)

    @property
    def snr(self) -> np.ndarray:
        """SNR(t) = ᾱ_t / (1 - ᾱ_t); exactly 0 where ᾱ_t = 0."""
        return self.alphas_cumprod / self.one_minus_alphas_cumprod

    @property
    def log_snr(self) -> np.ndarray:
        """log SNR(t); exactly -inf where SNR is 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.alphas_cumprod) - np.log(self.one_minus_alphas_cumprod)

    @property
    def euler_sigma(self) -> np.ndarray:
        """The variance-exploding σ_t = √((1 - ᾱ_t)/ᾱ_t) of Karras/k-diffusion; +inf where SNR is 0."""
        with np.errstate(divide="ignore"):
            return np.sqrt(self.one_minus_alphas_cumprod / self.alphas_cumprod)

    @property
    def terminal_snr(self) -> float:
        return float(self.snr[-1])


# --- beta schedules -----------------------------------------------------------------------------


def _cosine_angles(T: int) -> tuple[np.ndarray, float]:
    """a_t with f((t+1)/T)/f(0) = sin²(a_t)/sin²(c), using cos(x·π/2) = sin((1-x)·π/2)."""
    c = math.pi / (2.0 * (1.0 + COSINE_OFFSET))
    return c * (np.arange(T - 1, -1, -1, dtype=np.float64) / T), c


def _cosine(T: int, clip: bool, name: str) -> Schedule:
    # Improved DDPM: ᾱ_t = f(t)/f(0), β_t = 1 - ᾱ_t/ᾱ_{t-1}. Written with sines so that ᾱ_T = 0
    # exactly, and with sin² b - sin² a = sin(b-a) sin(b+a) so that β and 1 - ᾱ do not cancel.
    a, c = _cosine_angles(T)
    prev = np.concatenate([[c], a[:-1]])  # angle of t-1 (of f(0) at t = 0)
    step = c / T
    betas = np.sin(step) * np.sin(prev + a) / np.sin(prev) ** 2
    abar = (np.sin(a) / np.sin(c)) ** 2
    one_minus = np.sin(c - a) * np.sin(c + a) / np.sin(c) ** 2
    betas[-1] = 1.0  # f(1) = 0 exactly
    if clip:
        clipped = betas > COSINE_MAX_BETA  # β_t rises with t, so the clipped steps are a suffix
        if clipped.any():
            k = int(np.argmax(clipped))
            head = abar[k - 1] if k > 0 else 1.0
            head_c = one_minus[k - 1] if k > 0 else 0.0
            betas[k:] = COSINE_MAX_BETA
            n = np.arange(1, T - k + 1)
            keep = (1.0 - COSINE_MAX_BETA) ** n  # 1 - 0.999 is exact (Sterbenz)
            abar[k:] = head * keep
            # 1 - head·keep = (1 - head) + head·(1 - keep), both terms >= 0
            one_minus[k:] = head_c + head * -np.expm1(n * math.log1p(-COSINE_MAX_BETA))
    return Schedule(betas, abar, one_minus, name)


def make_betas(name: str, num_train_timesteps: int = 1000, beta_start: float | None = None,
               beta_end: float | None = None) -> np.ndarray:
    """β_t, t = 0..T-1, of a named schedule (see :data:`BETA_SCHEDULES`)."""
    return make_schedule(name, num_train_timesteps, beta_start, beta_end).betas.copy()


def make_schedule(
    name: str,
    num_train_timesteps: int = 1000,
    beta_start: float | None = None,
    beta_end: float | None = None,
    *,
    rescale: bool = False,
    terminal_floor: float | None = None,
) -> Schedule:
    """A named schedule, optionally rescaled to zero terminal SNR (Algorithm 1).

    ``linear``: β = β_start·(1-i) + β_end·i, i = t/(T-1) (Table 1, DDPM).
    ``scaled_linear``: β = (√β_start·(1-i) + √β_end·i)² (Stable Diffusion).
    ``squaredcos_cap_v2``: improved DDPM's cosine, β clipped at 0.999 (diffusers' name).
    ``cosine_unclipped``: the same cosine without the clip; its SNR(T) is exactly 0.
    ``sigmoid``: β = sigmoid(linspace(-6, 6, T))·(β_end - β_start) + β_start.

    ``terminal_floor`` replaces ᾱ_T by that value after rescaling, as real implementations that
    cannot represent σ = ∞ do (:data:`DIFFUSERS_EULER_FLOOR`, :data:`COMFYUI_FLOOR`); it is an
    explicit deviation from Algorithm 1 and is never applied by default.
    """
    _checks.choice("name", name, BETA_SCHEDULES)
    T = _checks.integer("num_train_timesteps", num_train_timesteps, 1)
    if not isinstance(rescale, bool):
        raise TypeError(f"rescale must be True or False; got {rescale!r}")
    if name in ("squaredcos_cap_v2", "cosine_unclipped"):
        if beta_start is not None or beta_end is not None:
            raise ValueError(f"the {name} schedule has no beta range; leave beta_start and beta_end as None")
        sched = _cosine(T, clip=name == "squaredcos_cap_v2", name=name)
    else:
        start, end = DEFAULT_BETA_RANGE[name]
        start = start if beta_start is None else beta_start
        end = end if beta_end is None else beta_end
        start = _checks.real("beta_start", start, 0.0, 1.0, low_open=True)
        end = _checks.real("beta_end", end, 0.0, 1.0, low_open=True)
        i = np.arange(T, dtype=np.float64) / max(T - 1, 1)
        if name == "linear":
            betas = start + (end - start) * i
        elif name == "scaled_linear":
            betas = (math.sqrt(start) + (math.sqrt(end) - math.sqrt(start)) * i) ** 2
        else:  # sigmoid
            x = np.linspace(-6.0, 6.0, T)
            betas = (end - start) / (1.0 + np.exp(-x)) + start
        sched = Schedule.from_betas(betas, name)
    if rescale:
        sched = rescale_zero_terminal_snr(sched)
    if terminal_floor is not None:
        if not rescale:
            raise ValueError("terminal_floor only applies to a rescaled schedule; pass rescale=True")
        sched = with_terminal_floor(sched, terminal_floor)
    return sched


# --- Algorithm 1 --------------------------------------------------------------------------------


def rescale_zero_terminal_snr(schedule: Schedule) -> Schedule:
    """Algorithm 1: shift and scale √ᾱ so that √ᾱ_T = 0 and √ᾱ_1 is unchanged.

    s'_t = (s_t - s_T)·s_1/(s_1 - s_T), s = √ᾱ. Written as ᾱ'_t = ᾱ_1·r_t², r_t = (s_t - s_T)/(s_1 - s_T),
    so ᾱ'_1 = ᾱ_1 and ᾱ'_T = 0 hold exactly; β' and 1 - ᾱ' are formed from differences of s
    that are computed without cancellation.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule; got {type(schedule).__name__}")
    abar, comp = schedule.alphas_cumprod, schedule.one_minus_alphas_cumprod
    if schedule.num_train_timesteps < 2:
        raise ValueError("rescaling needs T >= 2: with T = 1 the first and last step coincide")
    s = np.sqrt(abar)
    span = s[0] - s[-1]
    if span <= 0:
        raise ValueError("cannot rescale: √ᾱ is constant over the schedule")
    r = (s - s[-1]) / span
    new_abar = abar[0] * r * r
    # 1 - ᾱ' = (1 - ᾱ_1) + ᾱ_1 (1 - r)(1 + r), with 1 - r = (s_1 - s_t)/span
    # and s_1 - s_t = (ᾱ_1 - ᾱ_t)/(s_1 + s_t) = ((1 - ᾱ_t) - (1 - ᾱ_1))/(s_1 + s_t).
    d0 = (comp - comp[0]) / (s[0] + s)
    new_comp = comp[0] + abar[0] * (d0 / span) * (1.0 + r)
    # β'_t = 1 - (r_t/r_{t-1})² = (r_{t-1} - r_t)(r_{t-1} + r_t)/r_{t-1}²,
    # r_{t-1} - r_t = (s_{t-1} - s_t)/span = ᾱ_{t-1} β_t/((s_{t-1} + s_t)·span).
    betas = np.empty_like(abar)
    betas[0] = comp[0]
    dr = abar[:-1] * schedule.betas[1:] / ((s[:-1] + s[1:]) * span)
    betas[1:] = dr * (r[:-1] + r[1:]) / (r[:-1] * r[:-1])
    betas[-1] = 1.0
    new_abar[0], new_abar[-1] = abar[0], 0.0
    new_comp[0], new_comp[-1] = comp[0], 1.0
    return Schedule(betas, new_abar, new_comp, f"{schedule.name}+zero_snr")


def rescale_zero_terminal_snr_betas(betas) -> np.ndarray:
    """Algorithm 1 on betas (diffusers' ``rescale_zero_terminal_snr``); the last beta becomes 1."""
    return rescale_zero_terminal_snr(Schedule.from_betas(betas)).betas.copy()


def rescale_zero_terminal_snr_sigmas(sigmas, terminal_floor: float | None = None) -> np.ndarray:
    """Algorithm 1 applied to Euler-family σ_t = √((1-ᾱ_t)/ᾱ_t), ordered by training timestep.

    As ComfyUI does: ᾱ = 1/(σ² + 1), rescale, back to σ. Returns +inf at t = T, or the σ of
    ``terminal_floor`` (an ᾱ_T, e.g. :data:`COMFYUI_FLOOR`) when one is given.
    """
    sigmas = _checks.array("sigmas", sigmas, ndim=1)
    _checks.in_range("sigmas", sigmas, 0.0, np.inf, low_open=True)
    abar = 1.0 / (sigmas * sigmas + 1.0)
    comp = sigmas * sigmas * abar
    sched = Schedule.from_alphas_cumprod(abar)
    sched = Schedule(sched.betas, abar, comp)
    out = rescale_zero_terminal_snr(sched)
    if terminal_floor is not None:
        out = with_terminal_floor(out, terminal_floor)
    return out.euler_sigma


def with_terminal_floor(schedule: Schedule, alpha_bar_T: float) -> Schedule:
    """The schedule with ᾱ_T replaced by ``alpha_bar_T`` (> 0): the floor of implementations that
    cannot represent σ_T = ∞. SNR(T) becomes alpha_bar_T/(1 - alpha_bar_T), not 0."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule; got {type(schedule).__name__}")
    floor = _checks.real("alpha_bar_T", alpha_bar_T, 0.0, 1.0, low_open=True)
    abar = schedule.alphas_cumprod.copy()
    comp = schedule.one_minus_alphas_cumprod.copy()
    betas = schedule.betas.copy()
    if schedule.num_train_timesteps > 1 and floor > abar[-2]:
        raise ValueError(f"alpha_bar_T={floor} exceeds ᾱ at t=T-2 ({abar[-2]}); ᾱ must not rise")
    abar[-1], comp[-1] = floor, 1.0 - floor
    prev = abar[-2] if schedule.num_train_timesteps > 1 else 1.0
    betas[-1] = (prev - floor) / prev
    return Schedule(betas, abar, comp, f"{schedule.name}+floor({floor:.6g})")
