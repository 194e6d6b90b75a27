"""The outcome model: scikit-learn estimators built from the configuration, cross-validation scores,
permutation importances and the frozen :class:`TwinModelMetrics`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from ..config import TwinGenerationConfig
from ._common import FrozenResult, json_safe
from .trees import compile_trees, predict_with

ALGORITHMS: tuple[str, ...] = ("hist_gradient_boosting", "random_forest", "gradient_boosting")
"""Outcome-model algorithms ``train`` accepts (hyper-parameters in ``twin_generation.outcome_models``)."""

_FLOAT_FIELDS = ("r2", "rmse", "mae", "cv_mean", "cv_std", "training_duration_seconds", "residual_sd")


@dataclass(frozen=True, eq=False)
class TwinModelMetrics(FrozenResult):
    """How well the outcome model fits, measured on rows it was not trained on.

    ``r2``, ``rmse`` and ``mae`` come from the validation rows (after the cutoff and/or held-out entities);
    ``cv_scores`` are R² per cross-validation fold on the training rows (time-ordered folds when a time
    column was given); ``feature_importances`` are permutation importances (mean drop in R² on the
    validation rows). ``residual_sd`` is the validation residuals' standard deviation, kept for power
    analysis. ``warnings`` names what training could not do as asked (e.g. no split or cross-validation by
    time for lack of distinct times); ``feature_association`` is each feature's out-of-fold one-feature R²
    (the leakage check's statistic). Frozen: sequences are tuples and mappings read-only; ``==`` compares
    values (two NaNs are equal) and :meth:`to_dict` is JSON-safe (non-finite numbers become ``None``).
    """

    model_id: str
    algorithm: str
    target_col: str
    feature_cols: tuple[str, ...]
    r2: float
    rmse: float
    mae: float
    cv_scores: tuple[float, ...]
    cv_mean: float
    cv_std: float
    cv_scheme: str
    feature_importances: Mapping[str, float]
    feature_importance_std: Mapping[str, float]
    training_rows: int
    validation_rows: int
    excluded_rows: int
    training_duration_seconds: float
    residual_sd: float
    split: str
    cutoff: str | None = None
    propensity_auc: float | None = None
    warnings: tuple[str, ...] = ()
    feature_association: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_cols", tuple(self.feature_cols))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "feature_association", MappingProxyType(dict(self.feature_association)))
        object.__setattr__(self, "cv_scores", tuple(float(v) for v in self.cv_scores))
        for name in ("feature_importances", "feature_importance_std"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary (lists and plain dicts; NaN and inf as ``None``)."""
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TwinModelMetrics:
        """Rebuild metrics from :meth:`to_dict` output (``None`` in a number field reads back as NaN)."""
        data = dict(d)
        for name in _FLOAT_FIELDS:
            data[name] = float("nan") if data[name] is None else float(data[name])
        data["cv_scores"] = tuple(float("nan") if v is None else v for v in data["cv_scores"])
        return cls(**data)


def make_model(algorithm: str, tg: TwinGenerationConfig) -> Any:
    """An unfitted scikit-learn regressor with the configured hyper-parameters and ``random_state``."""
    params = getattr(tg.outcome_models, algorithm).model_dump()
    if algorithm == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(**params, random_state=tg.random_state)
    if algorithm == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(**params, random_state=tg.random_state)
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(**params, random_state=tg.random_state)


def fit_model(
    algorithm: str, X: np.ndarray, y: np.ndarray, tg: TwinGenerationConfig, threads: int | None
) -> Any:
    """Fit a fresh model, with scikit-learn's OpenMP threads capped at ``threads`` (``None``: no cap)."""
    from threadpoolctl import threadpool_limits

    # build (and so import) the estimator first: threadpool_limits only caps OpenMP runtimes already loaded
    model = make_model(algorithm, tg)
    with threadpool_limits(threads):
        return model.fit(X, y)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination (0 when ``y`` is constant)."""
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0


def cross_validate(
    algorithm: str,
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    tg: TwinGenerationConfig,
    threads: int | None,
) -> list[float]:
    """R² of a fresh model per fold (folds with fewer than two rows on a side are skipped)."""
    scores = []
    for tr, va in folds:
        if tr.size < 2 or va.size < 2:
            continue
        m = fit_model(algorithm, X[tr], y[tr], tg, threads)
        trees = compile_trees(m) if algorithm == "hist_gradient_boosting" else None
        scores.append(r2_score(y[va], predict_with(m, trees, X[va])))
    return scores


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    tg: TwinGenerationConfig,
    repeats: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sd of the drop in R² when one column of the validation rows is shuffled (seeded)."""
    rng = np.random.default_rng(tg.random_state + 2)
    cap = tg.importance_max_rows
    if X.shape[0] > cap:  # the importance ranking settles long before this
        keep = np.sort(rng.choice(X.shape[0], cap, replace=False))
        X, y = X[keep], y[keep]
    base = r2_score(y, predict(X))
    means: dict[str, float] = {}
    sds: dict[str, float] = {}
    work = X.copy()
    for j, name in enumerate(names):
        drops = []
        for _ in range(repeats):
            work[:, j] = X[rng.permutation(X.shape[0]), j]
            drops.append(base - r2_score(y, predict(work)))
        work[:, j] = X[:, j]
        means[name] = float(np.mean(drops))
        sds[name] = float(np.std(drops))
    return means, sds
