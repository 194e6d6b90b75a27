"""The engine's decision rules as pure functions: critical values, the predictive recommendation, sample size,
power and assurance, simulation confidence, threshold checks.

Nothing here reads the configuration: the engine passes the numbers in, so each rule is tested directly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .. import prediction as P
from ..models import SimulationRecommendation

__all__ = [
    "Prediction",
    "SampleSize",
    "assurance",
    "check_thresholds",
    "critical_value",
    "critical_values",
    "mean_modifier",
    "normal_quantile",
    "predict",
    "prob_at_least_many",
    "sample_size",
    "simulation_confidence",
    "two_sided_power",
]


@functools.lru_cache(maxsize=64)
def normal_quantile(q: float) -> float:
    """Standard normal quantile (cached: the engine asks for few distinct levels).

    The functions here call ``scipy.special`` (``ndtri``, ``stdtrit``, ``ndtr``, ``stdtr``) rather than
    ``scipy.stats``: the same bits (``stats`` calls them), without the distribution objects' overhead of tens
    of microseconds per scalar call, which a sweep of many configs pays per row.
    """
    return float(special.ndtri(q))


def critical_values(n: np.ndarray, confidence_level: float, t_below_n: int) -> np.ndarray:
    """Two-sided critical values: Student t with ``n - 1`` df below ``t_below_n`` (and n > 1), else z.

    Examples
    --------
    >>> [round(float(v), 4) for v in critical_values(np.array([100, 5000]), 0.95, 1000)]
    [1.9842, 1.96]
    """
    q = 0.5 + confidence_level / 2.0
    crit = np.full(n.shape, normal_quantile(q), dtype=np.float64)
    small = (n < t_below_n) & (n > 1)
    if small.any():
        crit[small] = special.stdtrit(n[small] - 1, q)
    return crit


def critical_value(n: int, confidence_level: float, t_below_n: int) -> float:
    """:func:`critical_values` for one ``n``."""
    return float(critical_values(np.array([n]), confidence_level, t_below_n)[0])


def check_thresholds(deploy_threshold: float, refine_threshold: float) -> None:
    """Raise unless ``0 <= refine_threshold <= deploy_threshold <= 1`` (the bands would invert otherwise).

    Examples
    --------
    >>> check_thresholds(0.01, 0.02)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `min_effect_threshold` (deploy threshold, 0.01) must not be below the refine threshold ...
    """
    for name, value in (("min_effect_threshold", deploy_threshold), ("refine_threshold", refine_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`{name}` must be between 0 and 1; got {value}")
    if deploy_threshold < refine_threshold:
        raise ValueError(
            f"`min_effect_threshold` (deploy threshold, {deploy_threshold}) must not be below the refine "
            f"threshold `simulation.recommendations.refine_threshold` ({refine_threshold})"
        )


@dataclass(frozen=True)
class Prediction:
    """What a real deployment / test would show (SPEC "Uncertainty that means something")."""

    sigma_delta: float
    prob_harmful: float
    prob_above_deploy: float
    prob_above_refine: float
    recommendation: SimulationRecommendation
    rationale: str


def mean_modifier(ate: float, base_effect: float, nominal: float) -> float:
    """G = μ / b_t, the population's mean modifier product; ``nominal`` stands in when b_t is 0.

    Examples
    --------
    >>> mean_modifier(0.06, 0.05, 1.0), mean_modifier(0.0, 0.0, 1.3)
    (1.2, 1.3)
    """
    return ate / base_effect if base_effect != 0.0 else nominal


def predict(
    ate: float,
    mean_mod: float,
    base_sd: float,
    tau: float,
    df: float | None,
    *,
    deploy_threshold: float,
    refine_threshold: float,
    min_probability: float,
) -> Prediction:
    """σ_δ = √(G² s_t² + τ_t²), the probabilities and the recommendation from them.

    In order, with p = ``min_probability``: P(δ < 0) ≥ p → SKIP ("harmful"); P(δ ≥ deploy) ≥ p → DEPLOY;
    P(δ ≥ refine) ≥ p → REFINE; otherwise SKIP. The rationale quotes the ATE and the probabilities.

    Examples
    --------
    >>> p = predict(0.055, 1.1, 0.0125, 0.0, None, deploy_threshold=0.05, refine_threshold=0.02,
    ...             min_probability=0.7)
    >>> p.recommendation.value, round(p.prob_above_deploy, 2)
    ('refine', 0.64)
    """
    sigma = P.effect_uncertainty_sd(mean_mod, base_sd, tau)
    harm = P.prob_harmful(ate, sigma, df)
    above_deploy = P.prob_at_least(ate, sigma, deploy_threshold, df)
    above_refine = P.prob_at_least(ate, sigma, refine_threshold, df)
    rec, why = P.recommend(
        harm, above_deploy, above_refine, min_probability, deploy_threshold, refine_threshold
    )
    rationale = f"{why}; ATE {ate:.4f}, effect uncertainty sd {sigma:.4f}"
    return Prediction(sigma, harm, above_deploy, above_refine, SimulationRecommendation(rec), rationale)


def prob_at_least_many(
    ates: np.ndarray,
    base_effect: float,
    nominal: float,
    base_sd: float,
    tau: float,
    x: float,
    df: float | None,
) -> np.ndarray:
    """P(δ ≥ x) for many effects at once (segments), each with its own G = ate / b_t (one vectorised call).

    Equals :func:`twinkernel.prediction.prob_at_least` element by element.

    Examples
    --------
    >>> [round(float(v), 3) for v in prob_at_least_many(np.array([0.04, 0.06]), 0.05, 1.0, 0.0125, 0.0,
    ...                                                  0.05, None)]
    [0.159, 0.748]
    """
    g = ates / base_effect if base_effect != 0.0 else np.full(ates.shape, nominal)
    sigma = np.sqrt((g * base_sd) ** 2 + tau**2)
    out = (ates >= x).astype(np.float64)  # the step function where σ_δ = 0
    pos = sigma > 0.0
    if pos.any():
        z = (ates[pos] - x) / sigma[pos]
        out[pos] = special.ndtr(z) if df is None else special.stdtr(df, z)
    return out


def assurance(
    ate: float, sigma_delta: float, outcome_sd: float, per_arm: int, alpha: float, df: float | None
) -> float | None:
    """Assurance of a real test of ``per_arm`` per arm (``None`` when the outcome variance is unknown)."""
    if not math.isfinite(outcome_sd):
        return None
    return P.assurance(ate, sigma_delta, outcome_sd**2, per_arm, alpha, df)


@dataclass(frozen=True)
class SampleSize:
    """Recommended size per arm of the real test, its power, and Cohen's d (``None`` when undefined)."""

    per_arm: int
    power: float | None
    cohens_d: float | None


def two_sided_power(ate: float, outcome_sd: float, per_arm: int, alpha: float) -> float:
    """Power of a two-sided z-test of two arms of ``per_arm`` each: both tails, so it is ``alpha`` at 0.

    Examples
    --------
    >>> round(two_sided_power(0.0, 1.0, 500, 0.05), 12)
    0.05
    """
    z_alpha = normal_quantile(1.0 - alpha / 2.0)
    shift = abs(ate) / (outcome_sd * math.sqrt(2.0 / per_arm))
    return float(special.ndtr(shift - z_alpha) + special.ndtr(-shift - z_alpha))


def sample_size(
    ate: float, outcome_sd: float, *, alpha: float, power: float, min_size: int, max_size: int
) -> SampleSize:
    """``2 (z_{1-α/2} + z_power)² σ² / ATE²`` per arm, bounded to ``[min_size, max_size]``.

    With ``ATE = 0`` the bound ``max_size`` is returned and the power there is ``alpha`` (a test of a null
    effect rejects at its level). A non-finite ``outcome_sd`` or ATE gives ``max_size`` and no power or
    Cohen's d (the engine warns). With ``outcome_sd = 0`` Cohen's d is undefined and any non-zero effect
    is detected with certainty.

    Examples
    --------
    >>> s = sample_size(0.05, 0.5, alpha=0.05, power=0.8, min_size=100, max_size=50_000)
    >>> s.per_arm, round(s.power, 3), s.cohens_d
    (1570, 0.8, 0.1)
    """
    if not (math.isfinite(ate) and math.isfinite(outcome_sd)):
        return SampleSize(max_size, None, None)
    z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power)
    if ate == 0.0:
        per_arm = max_size
    elif outcome_sd == 0.0:
        per_arm = min_size
    else:
        ratio = outcome_sd / abs(ate)  # squared after dividing: ate**2 alone underflows to 0 for tiny ATEs
        raw = 2.0 * z * z * ratio * ratio
        per_arm = max_size if not math.isfinite(raw) else int(min(max_size, max(min_size, math.ceil(raw))))
    if outcome_sd == 0.0:
        return SampleSize(per_arm, 1.0 if ate != 0.0 else alpha, None)
    return SampleSize(per_arm, two_sided_power(ate, outcome_sd, per_arm, alpha), ate / outcome_sd)


def simulation_confidence(
    n: int,
    std_error: float,
    ate: float,
    fidelity: float,
    *,
    weight_n: float,
    weight_se: float,
    weight_fidelity: float,
    n_reference: int,
    ate_epsilon: float,
) -> float:
    """``w_n min(1, n/n_ref) + w_se max(0, 1 - SE/(|ATE| + eps)) + w_fid fidelity``, clamped to 0..1.

    Examples
    --------
    >>> value = simulation_confidence(10_000, 0.0, 0.05, 0.7, weight_n=0.3, weight_se=0.3,
    ...                               weight_fidelity=0.4, n_reference=10_000, ate_epsilon=0.001)
    >>> round(value, 12)
    0.88
    """
    value = (
        weight_n * min(1.0, n / n_reference)
        + weight_se * max(0.0, 1.0 - std_error / (abs(ate) + ate_epsilon))
        + weight_fidelity * fidelity
    )
    return min(1.0, max(0.0, value))
