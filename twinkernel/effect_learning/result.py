"""What learning from history returns: the learned parameters, their uncertainty and the diagnostics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["EffectLearningError", "LearnedEffect", "LearningDiagnostics"]

FAIL_CAUSES = (
    "too_few_rows",
    "no_treatment_variation",
    "no_overlap",
    "post_treatment_feature",
    "target_leak",
    "bad_input",
)


class EffectLearningError(ValueError):
    """Learning refused (fail-closed): the data cannot identify the effect. ``cause`` names why."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class LearningDiagnostics:
    """How the estimate came about, and how far to trust its assumptions."""

    treatment_kind: str
    """``"binary"`` or ``"continuous"``."""
    n_rows: int
    """Rows in the final stage (after trimming)."""
    n_treated: int
    """Treated rows among them (binary); rows with a non-zero treatment (continuous)."""
    n_rows_input: int
    """Usable rows before trimming."""
    n_trimmed: int
    share_outside: float
    """Share of usable rows whose out-of-fold propensity (on ``effect_learning.overlap_scale``) lies outside
    the overlap bounds (binary)."""
    propensity_bounds: tuple[float, float]
    propensity_min: float
    """Smallest out-of-fold propensity on the overlap scale (binary; the fitted treatment if continuous)."""
    propensity_max: float
    outcome_oof_r2: float
    treatment_oof_score: float
    treatment_score_name: str
    folds: int
    fold_scheme: str
    nuisance_algorithm: str
    iterations: int
    converged: bool
    n_clusters: int
    naive_difference: float
    """Difference in mean outcome, treated minus untreated (binary; slope of Y on T when continuous)."""
    naive_std_error: float
    features: tuple[str, ...] = ()
    """The nuisance models' features."""


@dataclass(frozen=True)
class LearnedEffect:
    """The effect model's parameters for one intervention type, learned from unit-level history by DML.

    ``names`` / ``estimates`` / ``std_errors`` / ``covariance`` hold the free parameters (``base_effect``
    first, then modifier slopes and category multipliers); ``fixed`` names the parameters held at their
    prior (no data, or too few treated rows for a level). ``first_time`` / ``last_time`` span the history.
    """

    intervention_type: str
    names: tuple[str, ...]
    estimates: tuple[float, ...]
    std_errors: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    fixed: tuple[str, ...]
    n_rows: int
    first_time: str | None
    last_time: str | None
    seed: int
    diagnostics: LearningDiagnostics
    warnings: tuple[str, ...] = ()
    method: str = "DML"

    def value(self, name: str, default: float) -> float:
        """The learned value of parameter ``name`` (``default`` when it was held at its prior)."""
        return self.estimates[self.names.index(name)] if name in self.names else default

    def std_error(self, name: str) -> float | None:
        return self.std_errors[self.names.index(name)] if name in self.names else None

    @property
    def base_effect(self) -> float:
        return self.estimates[0]

    @property
    def base_effect_sd(self) -> float:
        return self.std_errors[0]

    def confidence_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Normal interval for the base effect."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2.0))
        return self.base_effect - z * self.base_effect_sd, self.base_effect + z * self.base_effect_sd

    def provenance(self) -> str:
        """E.g. ``"email_campaign: learned from 48 210 rows (DML, 2025-01..2025-12)"``."""
        span = f", {self.first_time}..{self.last_time}" if self.first_time is not None else ""
        rows = f"{self.n_rows:,}".replace(",", " ")
        return f"{self.intervention_type}: learned from {rows} rows ({self.method}{span})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["std_errors"] = [None if not math.isfinite(s) else s for s in self.std_errors]
        d["covariance"] = [[None if not math.isfinite(c) else c for c in row] for row in self.covariance]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearnedEffect:
        d = dict(data)
        diag = dict(d.pop("diagnostics"))
        diag["propensity_bounds"] = tuple(diag["propensity_bounds"])
        diag["features"] = tuple(diag.get("features", ()))
        d["diagnostics"] = LearningDiagnostics(**diag)
        for key in ("names", "estimates", "fixed", "warnings"):
            d[key] = tuple(d[key])
        d["std_errors"] = tuple(math.inf if s is None else float(s) for s in d["std_errors"])
        d["covariance"] = tuple(
            tuple(math.inf if c is None else float(c) for c in row) for row in d["covariance"]
        )
        return cls(**d)

    @staticmethod
    def covariance_tuple(cov: np.ndarray) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(float(c) for c in row) for row in cov)
