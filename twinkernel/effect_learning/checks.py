"""Fail-closed checks: refuse (with the cause named) whenever the history cannot identify the effect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from ..config import TwinGenerationConfig
from ..config_effect_learning import EffectLearningConfig
from ..twin_generator.leakage import check_feature_timestamps, check_target_leakage
from .result import EffectLearningError

__all__ = [
    "check_leakage",
    "check_overlap",
    "check_treatment_rows",
    "check_treatment_strength",
    "no_support_hint",
]


def check_treatment_rows(t: np.ndarray, binary: bool, cfg: EffectLearningConfig, what: str) -> None:
    """Enough rows, and both treated and untreated ones (binary) or a varying treatment (continuous)."""
    n = t.size
    if n < cfg.min_rows:
        raise EffectLearningError(
            "too_few_rows",
            f"too few rows to learn {what}: {n} usable rows, effect_learning.min_rows is {cfg.min_rows}",
        )
    if binary:
        treated = int(t.sum())
        control = n - treated
        if treated == 0 or control == 0:
            raise EffectLearningError(
                "no_treatment_variation",
                f"no treatment variation for {what}: {treated} treated and {control} untreated rows; "
                "an effect needs both",
            )
        if treated < cfg.min_treated or control < cfg.min_control:
            raise EffectLearningError(
                "too_few_rows",
                f"too few rows to learn {what}: {treated} treated and {control} untreated rows "
                f"(effect_learning.min_treated {cfg.min_treated}, min_control {cfg.min_control})",
            )
    elif float(np.ptp(t)) == 0.0:
        raise EffectLearningError(
            "no_treatment_variation",
            f"no treatment variation for {what}: the treatment is {float(t[0])} in every row",
        )


def check_leakage(
    frame: pl.DataFrame,
    outcome_col: str,
    treatment_col: str,
    features: Sequence[str],
    time_col: str | None,
    tg: TwinGenerationConfig,
) -> None:
    """No feature measured after the treatment (``<feature>_as_of`` later than ``time_col``), no feature
    that is the outcome in disguise, and neither the outcome nor the treatment as a feature."""
    usable = np.ones(frame.height, dtype=bool)
    try:
        check_feature_timestamps(frame, features, time_col, {}, outcome_col, usable, False)
    except ValueError as exc:
        raise EffectLearningError(
            "post_treatment_feature",
            f"post-treatment feature refused (a feature must be known when the treatment is assigned): {exc}",
        ) from exc
    try:
        check_target_leakage(frame, outcome_col, features, treatment_col, usable, tg)
    except ValueError as exc:
        raise EffectLearningError("target_leak", f"target leak refused: {exc}") from exc


def no_support_hint(frame: pl.DataFrame, t: np.ndarray, columns: Sequence[str]) -> str:
    """Name the levels of small categorical columns (such as ``decile``) that have no treated rows."""
    hints = []
    for c in columns:
        if c not in frame.columns:
            continue
        s = frame[c]
        if s.n_unique() > 12:
            continue
        levels = s.cast(pl.String).to_numpy()
        order = sorted({str(v) for v in levels}, key=lambda v: (len(v), v))
        untreated_only = [v for v in order if not bool(t[levels == v].any())]
        if untreated_only and len(untreated_only) < len(order):
            hints.append(f"no treated rows at {c} {', '.join(untreated_only)}")
    return ("; " + "; ".join(hints)) if hints else ""


def balanced_propensity(propensity: np.ndarray, treated_share: float) -> np.ndarray:
    """The propensity in the class-balanced population (treated and untreated rows weighted to equal
    totals): e / (e + (1 − e)·p̄/(1 − p̄)). A rare treatment then reads 0.5 where its propensity equals its
    base rate p̄, and only a treatment (nearly) determined by the features reaches 0 or 1.

    Examples
    --------
    >>> balanced_propensity(np.array([0.03, 0.0003, 0.5]), 0.03).round(3).tolist()
    [0.5, 0.01, 0.97]
    """
    odds = treated_share / (1.0 - treated_share)
    return propensity / (propensity + (1.0 - propensity) * odds)


def check_overlap(
    propensity: np.ndarray, treated_share: float, cfg: EffectLearningConfig, what: str, hint: str
) -> tuple[np.ndarray, float, np.ndarray]:
    """Rows whose propensity (on the configured scale) is inside the bounds, the share outside, and the
    scaled propensities; refuse above ``max_outside_share``."""
    lo, hi = cfg.propensity_low, cfg.propensity_high
    scaled = balanced_propensity(propensity, treated_share) if cfg.overlap_scale == "balanced" else propensity
    outside = (scaled < lo) | (scaled > hi)
    share = float(outside.mean()) if outside.size else 0.0
    scale = "class-balanced " if cfg.overlap_scale == "balanced" else ""
    if share > cfg.max_outside_share:
        raise EffectLearningError(
            "no_overlap",
            f"no overlap for {what}: {share:.1%} of rows have an out-of-fold {scale}propensity outside "
            f"[{lo}, {hi}] (effect_learning.max_outside_share {cfg.max_outside_share:.0%}): the treatment is "
            f"(nearly) determined by the features, so treated and untreated rows are not comparable{hint}",
        )
    return ~outside, share, scaled


def check_treatment_strength(r2: float, cfg: EffectLearningConfig, what: str) -> None:
    """Continuous treatment: refuse when the features explain (nearly) all of it."""
    if r2 > cfg.max_treatment_r2:
        raise EffectLearningError(
            "no_overlap",
            f"no overlap for {what}: the features explain {r2:.3f} of the treatment's variance out of fold "
            f"(effect_learning.max_treatment_r2 {cfg.max_treatment_r2}); too little independent variation "
            "is left to identify its effect",
        )


def as_polars(frame: Any) -> pl.DataFrame:
    """A Polars frame from Polars or pandas input."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if type(frame).__module__.startswith("pandas") and type(frame).__name__ == "DataFrame":
        return pl.from_pandas(frame)
    raise EffectLearningError(
        "bad_input", f"`frame` must be a Polars or pandas DataFrame; got {type(frame).__name__}"
    )
