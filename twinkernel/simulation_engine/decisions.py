"""The engine's decision rules as pure functions: critical values, recommendation, sample size and power,
simulation confidence, threshold checks.

Nothing here reads the configuration: the engine passes the numbers in, so each rule is tested directly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..models import SimulationRecommendation

__all__ = [
    "SampleSize",
    "check_thresholds",
    "critical_value",
    "critical_values",
    "normal_quantile",
    "recommend",
    "sample_size",
    "simulation_confidence",
    "two_sided_power",
]


@functools.lru_cache(maxsize=64)
def normal_quantile(q: float) -> float:
    """Standard normal quantile (cached: the engine asks for few distinct levels)."""
    return float(sps.norm.ppf(q))


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
        crit[small] = sps.t.ppf(q, df=n[small] - 1)
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


def recommend(
    ate: float,
    ci_lower: float,
    ci_upper: float,
    confidence_level: float,
    deploy_threshold: float,
    refine_threshold: float,
) -> tuple[SimulationRecommendation, str]:
    """DEPLOY / REFINE / SKIP from the ATE and its interval, and a rationale that quotes the numbers.

    In order: the whole interval below 0 is SKIP ("harmful"); an ATE below the refine threshold is SKIP;
    an interval containing 0 is REFINE; an ATE below the deploy threshold is REFINE; an interval wider than
    |ATE| is REFINE; otherwise DEPLOY.

    Examples
    --------
    >>> recommend(0.06, 0.05, 0.07, 0.95, deploy_threshold=0.05, refine_threshold=0.02)[0].value
    'deploy'
    """
    refine, deploy = refine_threshold, deploy_threshold
    lo, hi = ci_lower, ci_upper
    ci = f"{confidence_level:.0%} CI [{lo:.4f}, {hi:.4f}]"
    if hi < 0.0:
        return SimulationRecommendation.SKIP, (
            f"harmful: ATE {ate:.4f} with the whole {ci} below 0; do not test this intervention"
        )
    if ate < refine:
        return SimulationRecommendation.SKIP, (
            f"ATE {ate:.4f} is below the refine threshold {refine:.4f} ({ci}); not worth a real test"
        )
    if lo <= 0.0 <= hi:
        return SimulationRecommendation.REFINE, (
            f"{ci} contains 0 (ATE {ate:.4f}); refine the intervention or its targeting"
        )
    if ate < deploy:
        return SimulationRecommendation.REFINE, (
            f"ATE {ate:.4f} is between the refine threshold {refine:.4f} and the deploy threshold "
            f"{deploy:.4f} ({ci}); refine before testing"
        )
    if hi - lo > abs(ate):
        return SimulationRecommendation.REFINE, (
            f"{ci} is wider ({hi - lo:.4f}) than |ATE| {abs(ate):.4f}; the effect is too uncertain"
        )
    return SimulationRecommendation.DEPLOY, (
        f"ATE {ate:.4f} is at or above the deploy threshold {deploy:.4f} and the {ci} excludes 0; "
        f"run the real test"
    )


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
    return float(sps.norm.cdf(shift - z_alpha) + sps.norm.cdf(-shift - z_alpha))


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
