"""Baseline propensity of each twin: a logistic model of a past treatment on the features (statistics
from training rows only), or the configured heuristic of decile and engagement when there is none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import special

from ..config import TwinkernelConfig
from ._common import binary
from .marginals import ColumnMarginal, encode


@dataclass(frozen=True)
class PropensityModel:
    """A fitted logistic propensity model: the design ``spec`` (one-hot / scaling per feature) and
    coefficients."""

    spec: tuple[tuple[Any, ...], ...]
    coef: np.ndarray
    intercept: float

    @property
    def feature_cols(self) -> tuple[str, ...]:
        return tuple(s[1] for s in self.spec)

    def predict(
        self, marginals: Mapping[str, ColumnMarginal], encoded: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Propensities of rows given their encoded features."""
        design, _ = design_matrix(marginals, encoded, self.feature_cols, self.spec)
        return special.expit(design @ self.coef + self.intercept)

    def predict_chunked(
        self,
        marginals: Mapping[str, ColumnMarginal],
        encoded: Mapping[str, np.ndarray],
        n: int,
        chunk: int,
    ) -> np.ndarray:
        """:meth:`predict` over ``n`` rows, ``chunk`` rows at a time (bounded design-matrix memory)."""
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, chunk):
            part = {c: v[start : start + chunk] for c, v in encoded.items()}
            out[start : start + chunk] = self.predict(marginals, part)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what :meth:`from_dict` reads back)."""
        return {"spec": [list(s) for s in self.spec], "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PropensityModel:
        """Rebuild the model from :meth:`to_dict` output."""
        return cls(
            tuple(tuple(s) for s in d["spec"]), np.asarray(d["coef"], dtype=np.float64), float(d["intercept"])
        )


def design_matrix(
    marginals: Mapping[str, ColumnMarginal],
    encoded: Mapping[str, np.ndarray],
    feature_cols: Sequence[str],
    spec: Sequence[tuple[Any, ...]] | None,
) -> tuple[np.ndarray, tuple[tuple[Any, ...], ...]]:
    """Standardised numeric features and one-hot label ones; ``spec=None`` fits the scaling (training)."""
    fit = spec is None
    out_spec: list[tuple[Any, ...]] = [] if spec is None else list(spec)
    cols = []
    for i, c in enumerate(feature_cols):
        mg = marginals[c]
        x = np.where(np.isnan(encoded[c]), mg.fill_value, encoded[c])
        if mg.kind in ("categorical", "boolean"):
            if fit:
                out_spec.append(("onehot", c))
            for k in range(1, len(mg.levels)):
                cols.append((x == k).astype(np.float64))
        else:
            if fit:
                sd = float(x.std())
                out_spec.append(("scale", c, float(x.mean()), sd if sd > 0 else 1.0))
            _, _, mean, sd = out_spec[i]
            cols.append((x - mean) / sd)
    return np.column_stack(cols), tuple(out_spec)


def fit_propensity(
    marginals: Mapping[str, ColumnMarginal],
    feature_cols: Sequence[str],
    train_frame: pl.DataFrame,
    valid_frame: pl.DataFrame,
    treatment_col: str,
    max_iter: int,
) -> tuple[PropensityModel, float]:
    """Fit on the training rows; returns the model and its validation ROC AUC (NaN with one class)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    t_train = binary(train_frame[treatment_col], treatment_col)
    if np.unique(t_train).size < 2:
        raise ValueError(f"treatment column {treatment_col!r} must hold both 0 and 1 in the training rows")
    enc_train = {c: encode(train_frame[c], marginals[c]) for c in feature_cols}
    design, spec = design_matrix(marginals, enc_train, feature_cols, None)
    model = LogisticRegression(max_iter=max_iter).fit(design, t_train)
    fitted = PropensityModel(spec, model.coef_.ravel().astype(np.float64), float(model.intercept_[0]))
    t_valid = binary(valid_frame[treatment_col], treatment_col)
    if np.unique(t_valid).size < 2:
        return fitted, float("nan")
    enc_valid = {c: encode(valid_frame[c], marginals[c]) for c in feature_cols}
    vd, _ = design_matrix(marginals, enc_valid, feature_cols, spec)
    return fitted, float(roc_auc_score(t_valid, vd @ fitted.coef + fitted.intercept))


def heuristic_propensity(columns: Mapping[str, pl.Series], n: int, config: TwinkernelConfig) -> np.ndarray:
    """``clip(intercept + per_decile_step * (reference_decile - decile) + engagement_weight * engagement)``
    from ``twin_generation.propensity_heuristic``; absent columns take the simulation's missing-value
    defaults."""
    h = config.twin_generation.propensity_heuristic
    defaults = config.simulation.missing_value_defaults
    if "decile" in columns:
        decile = columns["decile"].cast(pl.Float64).to_numpy()
    else:
        decile = np.full(n, float(defaults.decile))
    eng = (
        columns["digital_engagement_score"].to_numpy()
        if "digital_engagement_score" in columns
        else np.full(n, defaults.digital_engagement_score)
    )
    p = h.intercept + h.per_decile_step * (h.reference_decile - decile) + h.engagement_weight * eng
    return np.clip(p, h.low, h.high)
