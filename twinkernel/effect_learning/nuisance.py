"""Cross-fitted nuisance models: E[Y | X] and E[T | X] predicted out of fold.

Features are encoded once: numbers and booleans as floats (missing as NaN, which gradient boosting routes
natively), labels as dense codes (categorical splits). Folds are assigned per entity when an entity column
is given (no entity's rows on both sides of a fit), else per row, from a seeded permutation of the sorted
entity ids (so an entity's fold depends on its id and the seed, not on row order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ..config_effect_learning import NuisanceConfig
from ..twin_generator.marginals import is_label_dtype

__all__ = ["CrossFit", "assign_folds", "cross_fit", "encode_features"]

_MAX_CATEGORICAL_LEVELS = 250  # scikit-learn's histogram models allow at most 255 bins per feature


def encode_features(frame: pl.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(X, is_categorical)``: a float64 (n, p) matrix and a mask of the label columns."""
    cols: list[np.ndarray] = []
    cat: list[bool] = []
    for c in features:
        s = frame[c]
        dt = s.dtype
        if is_label_dtype(dt):
            codes = s.cast(pl.String).rank("dense").cast(pl.Float64) - 1.0
            x = codes.fill_null(np.nan).to_numpy()
            cols.append(x)
            cat.append(bool(np.nanmax(x, initial=0.0) < _MAX_CATEGORICAL_LEVELS))
        else:
            cols.append(s.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy())
            cat.append(False)
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64), np.array(cat, dtype=bool)


def assign_folds(frame: pl.DataFrame, entity_col: str | None, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every row; all rows of one entity share a fold."""
    rng = np.random.default_rng(seed)
    if entity_col is None:
        return (rng.permutation(frame.height) % folds).astype(np.int64)
    ent = frame[entity_col]
    uniq = ent.unique().sort()
    fold_of = pl.Series(rng.permutation(uniq.len()) % folds)
    return ent.replace_strict(uniq, fold_of, return_dtype=pl.Int64).to_numpy()


def _estimator(kind: str, cfg: NuisanceConfig, cat_mask: np.ndarray, seed: int) -> Any:
    if cfg.algorithm == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if kind == "classifier" else HistGradientBoostingRegressor
        return cls(
            max_iter=cfg.max_iter,
            learning_rate=cfg.learning_rate,
            max_leaf_nodes=cfg.max_leaf_nodes,
            min_samples_leaf=cfg.min_samples_leaf,
            l2_regularization=cfg.l2_regularization,
            categorical_features=cat_mask if cat_mask.any() else None,
            early_stopping=False,
            random_state=seed % 2**32,
        )
    from sklearn.linear_model import LogisticRegression, Ridge

    if kind == "classifier":
        return LogisticRegression(C=1.0 / cfg.linear_alpha, max_iter=1000)
    return Ridge(alpha=cfg.linear_alpha)


def _linear_design(x: np.ndarray, cat_mask: np.ndarray) -> np.ndarray:
    """Standardised numbers (missing at the mean) and one-hot labels, for the linear nuisance models."""
    parts = []
    for j in range(x.shape[1]):
        col = x[:, j]
        if cat_mask[j]:
            codes = np.where(np.isnan(col), -1, col).astype(np.int64)
            levels = np.unique(codes)
            parts.append((codes[:, None] == levels[None, :]).astype(np.float64))
        else:
            mean = float(np.nanmean(col)) if np.isfinite(col).any() else 0.0
            filled = np.where(np.isnan(col), mean, col)
            sd = float(filled.std()) or 1.0
            parts.append(((filled - mean) / sd)[:, None])
    return np.hstack(parts)


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold predictions and their scores."""

    outcome_hat: np.ndarray
    treatment_hat: np.ndarray
    outcome_r2: float
    treatment_score: float
    """ROC AUC of the propensity (binary treatment) or R² (continuous)."""
    treatment_score_name: str


def _r2(y: np.ndarray, yhat: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - yhat) ** 2).sum()) / ss if ss > 0 else 0.0


def cross_fit(
    x: np.ndarray,
    cat_mask: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    fold: np.ndarray,
    binary: bool,
    cfg: NuisanceConfig,
    seed: int,
    threads: int | None,
) -> CrossFit:
    """Fit both nuisance models on all folds but one and predict the held-out fold, for every fold."""
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    design = x if cfg.algorithm == "hist_gradient_boosting" else _linear_design(x, cat_mask)
    y_hat = np.empty_like(y)
    t_hat = np.empty_like(t)
    reg = _estimator("regressor", cfg, cat_mask, seed)  # import first: the limit caps loaded runtimes only
    with threadpool_limits(threads):
        for k in np.unique(fold):
            test = fold == k
            train = ~test
            reg = _estimator("regressor", cfg, cat_mask, seed + int(k))
            reg.fit(design[train], y[train])
            y_hat[test] = reg.predict(design[test])
            if binary:
                clf = _estimator("classifier", cfg, cat_mask, seed + int(k))
                clf.fit(design[train], t[train].astype(np.int64))
                t_hat[test] = clf.predict_proba(design[test])[:, 1]
            else:
                reg_t = _estimator("regressor", cfg, cat_mask, seed + int(k))
                reg_t.fit(design[train], t[train])
                t_hat[test] = reg_t.predict(design[test])
    if binary:
        score = float(roc_auc_score(t.astype(np.int64), t_hat)) if 0 < t.sum() < t.size else 0.5
        name = "roc_auc"
    else:
        score, name = _r2(t, t_hat), "r2"
    return CrossFit(y_hat, t_hat, _r2(y, y_hat), score, name)
