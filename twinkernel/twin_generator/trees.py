"""scikit-learn tree adapter: a fitted HistGradientBoostingRegressor as flat node arrays for the batched
tree kernel (:func:`twinkernel.kernels.copula.tree_ensemble_predict`), bit-identical to ``predict``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.copula import tree_ensemble_predict

CompiledTrees = tuple[Any, ...]
"""``(baseline, offsets, feature_idx, threshold, missing_left, left, right, is_leaf, value)``."""


def compile_trees(model: Any) -> CompiledTrees | None:
    """Concatenate a fitted HistGradientBoostingRegressor's trees into flat node arrays for the kernel.

    ``None`` for other estimators, multi-output models and trees with categorical splits (those predict
    through scikit-learn).
    """
    predictors = getattr(model, "_predictors", None)
    if predictors is None or getattr(model, "n_trees_per_iteration_", 1) != 1:
        return None
    nodes = [it[0].nodes for it in predictors]
    if any(bool(nd["is_categorical"].any()) for nd in nodes):
        return None
    offsets = np.cumsum([0] + [nd.shape[0] for nd in nodes[:-1]]).astype(np.int64)
    cat = np.concatenate(nodes)
    shift = np.repeat(offsets, [nd.shape[0] for nd in nodes])
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    return (
        baseline,
        offsets,
        np.ascontiguousarray(cat["feature_idx"], dtype=np.int64),
        np.ascontiguousarray(cat["num_threshold"], dtype=np.float64),
        np.ascontiguousarray(cat["missing_go_to_left"], dtype=np.uint8),
        np.ascontiguousarray(cat["left"].astype(np.int64) + shift),
        np.ascontiguousarray(cat["right"].astype(np.int64) + shift),
        np.ascontiguousarray(cat["is_leaf"], dtype=np.uint8),
        np.ascontiguousarray(cat["value"], dtype=np.float64),
    )


def predict_with(model: Any, trees: CompiledTrees | None, X: np.ndarray) -> np.ndarray:
    """Predict with the compiled tree kernel when available, else with ``model.predict``."""
    if trees is not None:
        out = np.empty(X.shape[0], dtype=np.float64)
        tree_ensemble_predict(np.ascontiguousarray(X, dtype=np.float64), *trees, out)
        return out
    return np.asarray(model.predict(X), dtype=np.float64)
