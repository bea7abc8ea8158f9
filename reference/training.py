"""The training side: forward process, targets, SNR and loss weights, finite at SNR 0.

With α = √ᾱ, σ = √(1-ᾱ) and SNR = ᾱ/(1-ᾱ) (paper Sec. 2; Kingma et al. 2021):

- forward process q(x_t | x₀) = N(α·x₀, σ²·I): x_t = α·x₀ + σ·ε (VP, :func:`add_noise`), or in the
  Euler family's variance-exploding variable x = x_t/α = x₀ + σ_VE·ε with σ_VE = σ/α
  (:func:`add_noise_sigma`; infinite at SNR 0, where only the VP form is finite);
- targets: ε, x₀ ("sample") or v = α·ε - σ·x₀ (:func:`training_target`);
- loss weights on the target of a prediction type (:func:`loss_weight`): Min-SNR-γ (Hang et al.
  2023, arXiv 2303.09556), the debiased-estimation weight 1/√SNR (Yu et al. 2024, arXiv
  2310.08442), P2 (Choi et al. 2022, arXiv 2204.00227) and uniform, each stated on the ε loss by
  its paper and carried to the x₀ and v losses by the equivalence of the three losses
  (:func:`equivalent_loss_weight`): for predictions converted into each other at the same x_t,
  ‖ε̂ - ε‖² = ᾱ·‖v̂ - v‖² and ‖x̂₀ - x₀‖² = (1-ᾱ)·‖v̂ - v‖².

Every weight is evaluated in a closed form that is finite at SNR 0 (ᾱ = 0), where the weights of
the x₀ and v losses are their limits (all 0). An ε loss at SNR 0 is meaningless -- there x_t = ε,
the target is trivial and carries nothing about x₀ (paper Sec. 3.2) -- so every weight of an ε
loss at ᾱ = 0 raises :class:`~reference.EpsilonAtZeroSNR`, as the ε→x₀ conversion does.
ᾱ = 1 (σ = 0, infinite SNR) is not a training level and is refused.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .parameterization import PREDICTION_TYPES, EpsilonAtZeroSNR, velocity

LOSS_WEIGHTINGS = ("uniform", "min_snr", "debiased", "p2")
#: the default γ of each weighting that takes one (Min-SNR: 5, its paper's choice; P2: 1)
DEFAULT_GAMMA = {"min_snr": 5.0, "p2": 1.0}


def _training_alpha_bar(alpha_bar) -> np.ndarray:
    abar = _checks.array("alpha_bar", alpha_bar)
    _checks.in_range("alpha_bar", abar, 0.0, 1.0)
    if np.any(abar == 1.0):
        raise ValueError("alpha_bar must be < 1 for training: at alpha_bar = 1 (sigma = 0) the SNR is "
                         "infinite and no noise is added; allowed: [0, 1)")
    return abar


def _refuse_epsilon_at_zero_snr(prediction_type: str, abar: np.ndarray, what: str) -> None:
    if prediction_type == "epsilon" and np.any(abar == 0.0):
        raise EpsilonAtZeroSNR(
            f"{what} of an epsilon loss is undefined at zero SNR (alpha_bar = 0): there x_t = eps, the "
            "target is trivial and teaches nothing about x0 (paper Sec. 3.2). With a zero terminal SNR "
            "schedule use prediction_type 'v_prediction' or 'sample'.")


def snr(alpha_bar) -> np.ndarray:
    """SNR = ᾱ/(1-ᾱ), exactly 0 at ᾱ = 0 (zero terminal SNR); ᾱ in [0, 1).

    Two roundings (1-ᾱ is exact for ᾱ >= 1/2, Sterbenz): within 1.5 ULP. A :class:`Schedule` has
    the same quantity with its 1-ᾱ computed without cancellation (``schedule.snr``)."""
    abar = _training_alpha_bar(alpha_bar)
    return abar / (1.0 - abar)


def add_noise_sigma(x0, eps, sigma) -> np.ndarray:
    """The forward process in the Euler family's variance-exploding variable: x = x₀ + σ·ε
    (Karras et al. 2022, Eq. 1 with s = 1; diffusers' Euler ``add_noise``), σ = √((1-ᾱ)/ᾱ).

    σ must be finite and >= 0: at SNR 0 (σ = inf) the VE state is infinite; use the VP form
    :func:`add_noise` with alpha_bar = 0 (x_t = ε), which is x/√(σ²+1) in the limit."""
    x0 = _checks.array("x0", x0)
    eps = _checks.array("eps", eps)
    sig = _checks.array("sigma", sigma, allow_inf=True)
    if np.any(np.isinf(sig)):
        raise ValueError("sigma must be finite: at sigma = inf (zero SNR) the VE state x0 + sigma*eps is "
                         "infinite; use add_noise(x0, eps, alpha_bar=0) for the finite VP form")
    _checks.in_range("sigma", sig, 0.0, np.inf)
    _checks.broadcastable(x0=x0, eps=eps, sigma=sig)
    with np.errstate(over="ignore", invalid="ignore"):
        out = x0 + sig * eps
    if not np.all(np.isfinite(out)):
        raise ValueError("x0 + sigma*eps overflows float64: |sigma*eps| (sigma, eps) or |x0| is too large "
                         f"(max sigma {float(np.max(sig)):.6g}); allowed: a finite result")
    return out


def training_target(x0, eps, alpha_bar, prediction_type: str) -> np.ndarray:
    """The regression target of a prediction type at level ᾱ: ε ("epsilon"), x₀ ("sample") or
    v = √ᾱ·ε - √(1-ᾱ)·x₀ ("v_prediction", Salimans & Ho 2022, Eq. 11 of its appendix); at SNR 0,
    v = -x₀ and ε = x_t."""
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    x0 = _checks.array("x0", x0)
    eps = _checks.array("eps", eps)
    abar = _training_alpha_bar(alpha_bar)
    _checks.broadcastable(x0=x0, eps=eps, alpha_bar=abar)
    if prediction_type == "v_prediction":
        return velocity(x0, eps, abar)
    shape = np.broadcast_shapes(x0.shape, eps.shape, abar.shape)
    return np.broadcast_to(eps if prediction_type == "epsilon" else x0, shape).copy()


def _positive(name: str, value, default: float) -> float:
    if value is None:
        return default
    return _checks.real(name, value, 0.0, low_open=True)


def loss_weight(alpha_bar, prediction_type: str, weighting: str = "min_snr", *, gamma: float | None = None,
                k: float = 1.0) -> np.ndarray:
    """The per-timestep weight of the MSE loss on ``prediction_type``'s target at level ᾱ.

    Stated on the ε loss by each paper, then carried to the x₀ loss (× SNR) and the v loss (× ᾱ,
    = × SNR/(SNR+1)) by :func:`equivalent_loss_weight`; evaluated in these closed forms:

    ============  =======================  ======================  ==========================
    weighting     ε loss                   x₀ loss                 v loss
    ============  =======================  ======================  ==========================
    uniform       1                        1                       1  (each loss unweighted)
    min_snr       min(SNR, γ)/SNR          min(SNR, γ)             min(SNR, γ)/(SNR + 1)
    debiased      1/√SNR                   √SNR                    √SNR/(SNR + 1) = √(ᾱ(1-ᾱ))
    p2            (k + SNR)^-γ             SNR·(k + SNR)^-γ        ᾱ·(k + SNR)^-γ
    ============  =======================  ======================  ==========================

    ``gamma`` defaults to :data:`DEFAULT_GAMMA` (Min-SNR 5, P2 1), ``k`` (P2 only) to 1; both > 0.
    At SNR 0 the x₀ and v weights are 0 (their limits); every ε weight raises
    :class:`EpsilonAtZeroSNR` there (see the module docstring). min(SNR, γ)/SNR is evaluated as
    min(1, γ/SNR) and min(SNR, γ)/(SNR+1) as ᾱ (SNR <= γ) or γ·(1-ᾱ), so no 0/0 arises.
    """
    _checks.choice("prediction_type", prediction_type, PREDICTION_TYPES)
    _checks.choice("weighting", weighting, LOSS_WEIGHTINGS)
    abar = _training_alpha_bar(alpha_bar)
    g = _positive("gamma", gamma, DEFAULT_GAMMA.get(weighting, 1.0))
    if gamma is not None and weighting not in DEFAULT_GAMMA:
        raise ValueError(f"gamma is used only by the weightings {tuple(DEFAULT_GAMMA)}; got gamma={gamma!r} "
                         f"with weighting={weighting!r}")
    k = _checks.real("k", k, 0.0, low_open=True)
    _refuse_epsilon_at_zero_snr(prediction_type, abar, f"the {weighting} weight")
    comp = 1.0 - abar
    s = abar / comp  # SNR, finite: 1 - ᾱ >= 2⁻⁵³
    if weighting == "uniform":
        return np.ones_like(abar)
    if weighting == "min_snr":
        if prediction_type == "sample":
            return np.minimum(s, g)
        if prediction_type == "v_prediction":
            return np.where(s <= g, abar, g * comp)
        return np.divide(g, s, out=np.ones_like(s), where=s > g)
    if weighting == "debiased":
        if prediction_type == "sample":
            return np.sqrt(abar) / np.sqrt(comp)
        if prediction_type == "v_prediction":
            return np.sqrt(abar) * np.sqrt(comp)
        return np.sqrt(comp) / np.sqrt(abar)
    # p2: (k + SNR)^-γ; a base below 1 with a large γ can overflow, reported below
    with np.errstate(over="ignore", under="ignore"):
        base = np.power(k + s, -g)
        out = {"epsilon": base, "sample": s * base, "v_prediction": abar * base}[prediction_type]
    if not np.all(np.isfinite(out)):
        raise ValueError(f"the p2 weight (k + SNR)^-gamma overflows float64 for k={k!r}, gamma={g!r} at the "
                         "given alpha_bar; allowed: k, gamma and alpha_bar whose weight is finite (k + SNR >= 1 "
                         "never overflows)")
    return out


#: ‖target - prediction‖² of each prediction type, as a multiple of the v loss's (see the module
#: docstring): ε: ᾱ, x₀: 1 - ᾱ, v: 1
def _loss_scale(prediction_type: str, abar: np.ndarray, comp: np.ndarray) -> np.ndarray:
    return {"epsilon": abar, "sample": comp, "v_prediction": np.ones_like(abar)}[prediction_type]


def equivalent_loss_weight(weight, alpha_bar, from_type: str, to_type: str) -> np.ndarray:
    """The weight w' on the ``to_type`` loss that equals the weight w on the ``from_type`` loss,
    for predictions converted into each other at the same (x_t, ᾱ):

    w'·‖to-target error‖² = w·‖from-target error‖², with ‖Δε‖² = ᾱ·‖Δv‖², ‖Δx₀‖² = (1-ᾱ)·‖Δv‖²,
    so w' = w·scale(from)/scale(to), scale(ε) = ᾱ, scale(x₀) = 1-ᾱ, scale(v) = 1.

    At ᾱ = 0 an ε loss is undefined (ε̂ = x_t whatever the model says): raises
    :class:`EpsilonAtZeroSNR` if either type is ε there. ``weight`` must be finite and >= 0."""
    _checks.choice("from_type", from_type, PREDICTION_TYPES)
    _checks.choice("to_type", to_type, PREDICTION_TYPES)
    w = _checks.array("weight", weight)
    _checks.in_range("weight", w, 0.0, np.inf)
    abar = _training_alpha_bar(alpha_bar)
    _checks.broadcastable(weight=w, alpha_bar=abar)
    for t in (from_type, to_type):
        _refuse_epsilon_at_zero_snr(t, abar, "the equivalent weight")
    comp = 1.0 - abar
    with np.errstate(over="ignore", invalid="ignore"):
        out = (w * _loss_scale(from_type, abar, comp)) / _loss_scale(to_type, abar, comp)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"weight times the {from_type}->{to_type} loss ratio at alpha_bar overflows float64 "
                         "(a large weight, or alpha_bar near 0 for to_type 'epsilon' / near 1 for 'sample'); "
                         "allowed: a weight and alpha_bar whose equivalent weight is finite")
    return out
