"""The quality report: twins compared with the training data (marginal distances, level frequencies and
the largest difference between correlation matrices)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ._common import FrozenResult, json_safe, readonly
from .copula import pearson
from .marginals import ColumnMarginal, code_of


@dataclass(frozen=True, eq=False)
class QualityReport(FrozenResult):
    """Twins compared with the training data.

    ``marginal_distance`` is the Kolmogorov-Smirnov statistic for continuous columns and the total variation
    distance for discrete ones (``marginal_metric`` says which); ``max_frequency_difference`` is the largest
    absolute difference of one level's frequency (discrete columns). ``max_correlation_difference`` is the
    largest absolute difference between the Pearson correlation matrices of the encoded columns (level codes
    for categorical columns), reached at ``max_correlation_pair``. Frozen: mappings are read-only, the
    correlation matrices read-only arrays; ``==`` compares values and :meth:`to_dict` is JSON-safe.
    """

    n_twins: int
    n_reference: int
    columns: tuple[str, ...]
    marginal_distance: Mapping[str, float]
    marginal_metric: Mapping[str, str]
    max_frequency_difference: Mapping[str, float]
    reference_correlation: np.ndarray = field(repr=False)
    twin_correlation: np.ndarray = field(repr=False)
    max_correlation_difference: float = 0.0
    max_correlation_pair: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        for name in ("marginal_distance", "marginal_metric", "max_frequency_difference"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        for name in ("reference_correlation", "twin_correlation"):
            object.__setattr__(self, name, readonly(getattr(self, name)))
        if self.max_correlation_pair is not None:
            object.__setattr__(self, "max_correlation_pair", tuple(self.max_correlation_pair))

    @property
    def worst_marginal(self) -> tuple[str, float]:
        """The column with the largest marginal distance and that distance."""
        name = max(self.marginal_distance, key=lambda k: self.marginal_distance[k])
        return name, self.marginal_distance[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary (correlation matrices as nested lists; NaN as ``None``)."""
        return json_safe(
            {
                "n_twins": self.n_twins,
                "n_reference": self.n_reference,
                "columns": self.columns,
                "marginal_distance": self.marginal_distance,
                "marginal_metric": self.marginal_metric,
                "max_frequency_difference": self.max_frequency_difference,
                "max_correlation_difference": self.max_correlation_difference,
                "max_correlation_pair": self.max_correlation_pair,
                "reference_correlation": self.reference_correlation,
                "twin_correlation": self.twin_correlation,
            }
        )


def compare(
    marginals: Sequence[ColumnMarginal],
    twins: np.ndarray,
    ref: np.ndarray | None,
    data_correlation: np.ndarray,
    n_training_rows: int,
) -> QualityReport:
    """Build the report from encoded twin rows and, optionally, encoded reference rows (else the fitted
    marginals and the training correlations are the reference)."""
    columns = tuple(m.name for m in marginals)
    distance: dict[str, float] = {}
    metric: dict[str, str] = {}
    freq: dict[str, float] = {}
    for j, mg in enumerate(marginals):
        x = twins[:, j]
        x = x[np.isfinite(x)]
        if mg.is_discrete:
            n_levels = len(mg.levels)
            p_ref = mg.probs
            if ref is not None:
                rc = ref[:, j][np.isfinite(ref[:, j])]
                p_ref = np.bincount(code_of(rc, mg), minlength=n_levels)[:n_levels] / max(rc.size, 1)
            p_twin = np.bincount(code_of(x, mg), minlength=n_levels)[:n_levels] / max(x.size, 1)
            diff = np.abs(p_twin - p_ref)
            distance[mg.name] = float(0.5 * diff.sum())
            metric[mg.name] = "tv"
            freq[mg.name] = float(diff.max())
            continue
        metric[mg.name] = "ks"
        xs = np.sort(x)
        if ref is not None:
            from scipy.stats import ks_2samp

            rx = ref[:, j]
            distance[mg.name] = float(ks_2samp(xs, rx[np.isfinite(rx)]).statistic)
        else:
            distance[mg.name] = _ks_against_quantiles(xs, mg)
    fill = np.array([mg.fill_value for mg in marginals])
    twin_corr = pearson(np.where(np.isnan(twins), fill, twins))
    ref_corr = data_correlation if ref is None else pearson(np.where(np.isnan(ref), fill, ref))
    diff = np.abs(twin_corr - ref_corr)
    row, col = (int(v) for v in np.unravel_index(int(np.argmax(diff)), diff.shape))
    return QualityReport(
        n_twins=twins.shape[0],
        n_reference=n_training_rows if ref is None else ref.shape[0],
        columns=columns,
        marginal_distance=distance,
        marginal_metric=metric,
        max_frequency_difference=freq,
        reference_correlation=ref_corr,
        twin_correlation=twin_corr,
        max_correlation_difference=float(diff.max()),
        max_correlation_pair=(columns[row], columns[col]) if diff.max() > 0 else None,
    )


def _ks_against_quantiles(xs: np.ndarray, mg: ColumnMarginal) -> float:
    """KS distance between sorted twin values and the fitted quantile function (both one-sided limits)."""
    q, p = mg.quantiles, mg.grid
    uq = np.unique(q)
    f_ref = p[np.searchsorted(q, uq, side="right") - 1]
    f_ref_left = np.concatenate([[0.0], f_ref[:-1]])
    f_tw = np.searchsorted(xs, uq, side="right") / xs.size
    f_tw_left = np.searchsorted(xs, uq, side="left") / xs.size
    return float(max(np.abs(f_tw - f_ref).max(), np.abs(f_tw_left - f_ref_left).max()))
