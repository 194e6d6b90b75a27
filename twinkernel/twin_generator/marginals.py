"""Per-column marginals of the copula, fitted on training rows only, and the column encodings.

Continuous numeric columns get the empirical quantile function on a grid of ``quantile_points`` levels
(linear interpolation; integer columns are rounded). Discrete columns (booleans, String / Categorical /
Enum labels and numeric columns with at most ``max_discrete_levels`` distinct values) get level
frequencies, turned into thresholds on a latent standard normal (level ``k`` occupies
``(tau[k-1], tau[k]]``).

Encoding: numeric columns are their values, labels their level codes. An Enum (and a pandas ``category``,
see :func:`~twinkernel.twin_generator._common.as_polars`) keeps its declared level order; String and
Categorical levels are sorted (polars 2.1 Categoricals share one process-wide category mapping, so only the
labels present are used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import special

from ._common import FrozenResult, binary, json_safe, readonly

MarginalKind = Literal["continuous", "discrete", "categorical", "boolean"]


def _empty() -> np.ndarray:
    return readonly(np.empty(0))


@dataclass(frozen=True, eq=False)
class ColumnMarginal(FrozenResult):
    """The fitted marginal of one synthesised column (training rows only).

    ``kind`` is ``continuous``, ``discrete`` (numeric levels), ``categorical`` (string labels) or
    ``boolean``. Discrete kinds carry ``levels``, their ``probs`` and the latent ``thresholds`` (length
    ``len(levels) - 1``); continuous columns carry the quantile function ``quantiles`` at ``grid``. Arrays
    are read-only.
    """

    name: str
    kind: MarginalKind
    dtype: str
    levels: tuple[Any, ...] = ()
    probs: np.ndarray = field(default_factory=_empty, repr=False)
    thresholds: np.ndarray = field(default_factory=_empty, repr=False)
    grid: np.ndarray = field(default_factory=_empty, repr=False)
    quantiles: np.ndarray = field(default_factory=_empty, repr=False)
    integer: bool = False
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        for name in ("probs", "thresholds", "grid", "quantiles"):
            object.__setattr__(self, name, readonly(getattr(self, name)))
        object.__setattr__(self, "levels", tuple(self.levels))

    @property
    def is_discrete(self) -> bool:
        return self.kind != "continuous"

    @property
    def encoded_levels(self) -> np.ndarray:
        """The encoded value of each level: numeric levels themselves, codes for labels."""
        if self.kind == "discrete":
            return np.asarray(self.levels, dtype=np.float64)
        return np.arange(len(self.levels), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what :func:`from_dict` reads back)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "levels": json_safe(self.levels),
            "probs": self.probs.tolist(),
            "thresholds": self.thresholds.tolist(),
            "grid": self.grid.tolist(),
            "quantiles": self.quantiles.tolist(),
            "integer": self.integer,
            "fill_value": self.fill_value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnMarginal:
        """Rebuild a marginal from :meth:`to_dict` output."""
        return cls(
            name=d["name"],
            kind=d["kind"],
            dtype=d["dtype"],
            levels=tuple(d["levels"]),
            probs=np.asarray(d["probs"], dtype=np.float64),
            thresholds=np.asarray(d["thresholds"], dtype=np.float64),
            grid=np.asarray(d["grid"], dtype=np.float64),
            quantiles=np.asarray(d["quantiles"], dtype=np.float64),
            integer=bool(d["integer"]),
            fill_value=float(d["fill_value"]),
        )


def is_label_dtype(dtype: pl.DataType) -> bool:
    """String, Categorical or Enum."""
    return dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum


def enum_labels(dtype: pl.DataType) -> tuple[str, ...]:
    """The declared categories of an Enum dtype, in order."""
    return tuple(dtype.categories.to_list())  # type: ignore[attr-defined]


def polars_dtype(name: str) -> pl.DataType:
    """The Polars dtype named ``name`` (``Float64`` when unknown)."""
    return getattr(pl, name)() if hasattr(pl, name) else pl.Float64()


def fit_marginal(name: str, s: pl.Series, quantile_points: int, max_discrete_levels: int) -> ColumnMarginal:
    """Fit one column's marginal from its training values (nulls ignored)."""
    dtype = s.dtype
    values = s.drop_nulls()
    if dtype.is_float():
        values = values.filter(values.is_not_nan())
    if values.len() == 0:
        raise ValueError(f"column {name!r} has no non-missing training values")
    if dtype == pl.Boolean:
        arr = values.to_numpy().astype(np.int64)
        counts = np.bincount(arr, minlength=2).astype(np.float64)
        return discrete_marginal(name, "boolean", "Boolean", (False, True), counts)
    if is_label_dtype(dtype):
        if dtype == pl.Enum:
            labels = enum_labels(dtype)
            codes = values.to_physical().to_numpy().astype(np.int64)
            counts = np.bincount(codes, minlength=len(labels)).astype(np.float64)
        else:
            vc = values.cast(pl.String).value_counts(sort=False)
            present = np.asarray(vc[vc.columns[0]].to_list(), dtype=object)
            order = np.argsort(present.astype(str), kind="stable")
            labels = tuple(present[order].tolist())
            counts = vc["count"].to_numpy().astype(np.float64)[order]
        return discrete_marginal(name, "categorical", "Enum", labels, counts)
    if not dtype.is_numeric():
        raise ValueError(
            f"column {name!r} has dtype {dtype}; features must be numeric, boolean or categorical "
            "(drop it or pass `feature_cols`)"
        )
    arr = values.cast(pl.Float64).to_numpy()
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size <= max_discrete_levels:
        levels = tuple(int(v) if dtype.is_integer() else float(v) for v in uniq)
        return discrete_marginal(name, "discrete", str(dtype), levels, counts.astype(np.float64))
    m = int(min(quantile_points, max(arr.size, 2)))
    grid = np.linspace(0.0, 1.0, m)
    return ColumnMarginal(
        name=name,
        kind="continuous",
        dtype=str(dtype),
        grid=grid,
        quantiles=np.quantile(arr, grid),
        integer=dtype.is_integer(),
        fill_value=float(np.median(arr)),
    )


def discrete_marginal(
    name: str, kind: MarginalKind, dtype: str, levels: tuple[Any, ...], counts: np.ndarray
) -> ColumnMarginal:
    """Level frequencies and their latent thresholds; the fill value is the most frequent level."""
    probs = counts / counts.sum()
    cum = np.cumsum(probs)[:-1]
    thresholds = special.ndtri(np.clip(cum, 0.0, 1.0))
    encoded = (
        np.asarray(levels, dtype=np.float64) if kind == "discrete" else np.arange(len(levels), dtype=float)
    )
    return ColumnMarginal(
        name=name,
        kind=kind,
        dtype=dtype,
        levels=levels,
        probs=probs,
        thresholds=thresholds,
        fill_value=float(encoded[int(np.argmax(probs))]),
    )


def encode(s: pl.Series, mg: ColumnMarginal) -> np.ndarray:
    """Encoded values of a column under a fitted marginal (codes for labels; NaN if missing or unseen)."""
    if mg.kind == "categorical":
        if s.dtype == pl.Enum and enum_labels(s.dtype) == mg.levels:
            out = s.to_physical().cast(pl.Float64).to_numpy()
        else:
            mapping = {lab: float(i) for i, lab in enumerate(mg.levels)}
            out = s.cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.Float64).to_numpy()
        return np.asarray(out, dtype=np.float64)
    if mg.kind == "boolean":
        return s.cast(pl.Float64).to_numpy().astype(np.float64)
    out = s.cast(pl.Float64, strict=False).to_numpy().astype(np.float64)
    if mg.kind == "discrete":
        lv = mg.encoded_levels
        pos = np.clip(np.searchsorted(lv, out), 0, lv.size - 1)
        out = np.where(lv[pos] == out, out, np.nan)
    return out


def decode_column(mg: ColumnMarginal, out: np.ndarray) -> pl.Series:
    """The population column from generated output: level codes become Enum labels, booleans or the
    numeric levels in the training dtype; continuous values keep (integer columns) their dtype."""
    if mg.kind == "categorical":
        width = np.uint8 if len(mg.levels) <= 255 else np.uint32
        return pl.Series(mg.name, out.astype(width)).cat.to(pl.Enum(list(mg.levels)))
    if mg.kind == "boolean":
        return pl.Series(mg.name, out.astype(bool))
    if mg.kind == "discrete":
        return pl.Series(mg.name, mg.encoded_levels[out]).cast(polars_dtype(mg.dtype))
    s = pl.Series(mg.name, out)
    return s.cast(polars_dtype(mg.dtype)) if mg.integer else s


def code_of(values: np.ndarray, mg: ColumnMarginal) -> np.ndarray:
    """Level codes of encoded values (discrete kinds)."""
    if mg.kind == "discrete":
        return np.searchsorted(mg.encoded_levels, values)
    return values.astype(np.int64)


def continuous_values(mg: ColumnMarginal, z: np.ndarray) -> np.ndarray:
    """Column values at latent normals ``z`` (the quantile function at ``Phi(z)``)."""
    return np.interp(special.ndtr(z), mg.grid, mg.quantiles)


def encoded_matrix(marginals: Sequence[ColumnMarginal], frame: pl.DataFrame, impute: bool) -> np.ndarray:
    """(rows, columns) encoded matrix in copula order; ``impute`` fills missing values with fill values."""
    cols = []
    for mg in marginals:
        x = encode(frame[mg.name], mg)
        cols.append(np.where(np.isnan(x), mg.fill_value, x) if impute else x)
    return np.column_stack(cols)


def feature_matrix(
    marginals: Mapping[str, ColumnMarginal],
    feature_cols: Sequence[str],
    treatment_col: str | None,
    frame: pl.DataFrame,
) -> np.ndarray:
    """Encoded features (+ treatment), missing or unseen values filled with training statistics."""
    cols = []
    for c in feature_cols:
        mg = marginals[c]
        x = encode(frame[c], mg)
        cols.append(np.where(np.isnan(x), mg.fill_value, x))
    if treatment_col is not None:
        cols.append(binary(frame[treatment_col], treatment_col))
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)
