"""TwinGenerator: leakage-safe training, Gaussian-copula synthesis and a quality report.

``train`` fits an outcome model (scikit-learn) and a Gaussian copula of the feature columns on training
rows only; ``generate`` draws twins from the copula, predicts every twin's baseline outcome in one batched
call and returns a :class:`~twinkernel.population.TwinPopulation`.

The copula
----------
Each column gets a marginal fitted on training rows:

* continuous numeric columns: the empirical quantile function on a grid of ``quantile_points`` levels
  (linear interpolation; integer columns are rounded);
* discrete columns (booleans, strings, Enum/Categorical and numeric columns with at most
  ``max_discrete_levels`` distinct values): level frequencies, turned into thresholds on a latent standard
  normal (level ``k`` occupies ``(tau[k-1], tau[k]]``).

Latent correlations are calibrated pair by pair so that the Pearson correlation of the encoded columns
(values for numeric columns, level codes for categorical ones) implied by the copula equals the one in the
training rows ("NORTA": the latent correlation is solved from bivariate-normal orthant probabilities for
two discrete columns and from Gauss-Hermite quadrature otherwise). ``correlation="normal_scores"`` uses the
plain correlation of van der Waerden normal scores instead. The matrix is repaired to be positive definite.

Randomness
----------
Twins are a pure function of ``seed`` through the counter RNG (stream ``STREAM_GENERATOR`` for latent
normals, ``STREAM_GENERATOR + 1`` for truncated draws under constraints): twin ``i`` is the same whatever
the chunk size or thread count, and ``generate(n)`` is a prefix of ``generate(m)`` for ``m > n`` with the
same seed and constraints. Training uses ``numpy.random.default_rng(random_state)`` and scikit-learn's
``random_state``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import optimize, special

from .config import TwinkernelConfig, get_config
from .kernels._rng import STREAM_GENERATOR
from .kernels.copula import correlated_normals, counter_uniforms, tree_ensemble_predict
from .models import TwinType
from .population import TWIN_FEATURE_COLUMNS, TwinPopulation

__all__ = [
    "ALGORITHMS",
    "ColumnMarginal",
    "Constraint",
    "QualityReport",
    "TwinGenerator",
    "TwinModelMetrics",
]

ALGORITHMS: tuple[str, ...] = ("hist_gradient_boosting", "random_forest", "gradient_boosting")
"""Outcome-model algorithms ``train`` accepts."""

POPULATION_COLUMNS: tuple[str, ...] = TWIN_FEATURE_COLUMNS
"""Recognised twin columns that are synthesised whenever the training data has them, features or not."""

_NEVER_FEATURES = ("twin_id", "baseline_outcome", "baseline_propensity")
_STREAM_LATENT = STREAM_GENERATOR
_STREAM_TRUNCATION = STREAM_GENERATOR + 1
_RHO_LIMIT = 0.995
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(48)
_GH_WEIGHTS = _GH_WEIGHTS / math.sqrt(2.0 * math.pi)


# =========================================================================================================
# Results
# =========================================================================================================
@dataclass(frozen=True)
class TwinModelMetrics:
    """How well the outcome model fits, measured on rows it was not trained on.

    ``r2``, ``rmse`` and ``mae`` come from the validation rows (after the cutoff and/or held-out entities);
    ``cv_scores`` are R² per cross-validation fold on the training rows (time-ordered folds when a time
    column was given); ``feature_importances`` are permutation importances (mean drop in R² on the
    validation rows). ``residual_sd`` is the validation residuals' standard deviation, kept for power
    analysis.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["feature_cols"] = list(self.feature_cols)
        out["cv_scores"] = list(self.cv_scores)
        out["feature_importances"] = dict(self.feature_importances)
        out["feature_importance_std"] = dict(self.feature_importance_std)
        return out


@dataclass(frozen=True)
class QualityReport:
    """Twins compared with the training data.

    ``marginal_distance`` is the Kolmogorov-Smirnov statistic for continuous columns and the total variation
    distance for discrete ones (``marginal_metric`` says which); ``max_frequency_difference`` is the largest
    absolute difference of one level's frequency (discrete columns). ``max_correlation_difference`` is the
    largest absolute difference between the Pearson correlation matrices of the encoded columns (level codes
    for categorical columns), reached at ``max_correlation_pair``.
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

    @property
    def worst_marginal(self) -> tuple[str, float]:
        """The column with the largest marginal distance and that distance."""
        name = max(self.marginal_distance, key=lambda k: self.marginal_distance[k])
        return name, self.marginal_distance[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (correlation matrices as nested lists)."""
        return {
            "n_twins": self.n_twins,
            "n_reference": self.n_reference,
            "columns": list(self.columns),
            "marginal_distance": dict(self.marginal_distance),
            "marginal_metric": dict(self.marginal_metric),
            "max_frequency_difference": dict(self.max_frequency_difference),
            "max_correlation_difference": self.max_correlation_difference,
            "max_correlation_pair": list(self.max_correlation_pair) if self.max_correlation_pair else None,
            "reference_correlation": self.reference_correlation.tolist(),
            "twin_correlation": self.twin_correlation.tolist(),
        }


@dataclass(frozen=True)
class Constraint:
    """A constraint on one synthesised column.

    Plain values work too in ``generate(constraints=...)``: a scalar fixes the column, a ``set``/``list``/
    ``frozenset`` restricts it to those values, and a 2-tuple ``(low, high)`` bounds it (inclusive; ``None``
    leaves a side open).

    Examples
    --------
    >>> Constraint.between(0.2, 0.8)
    Constraint(kind='range', values=(), low=0.2, high=0.8)
    """

    kind: Literal["equal", "one_of", "range"]
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def equal(cls, value: Any) -> Constraint:
        return cls("equal", (value,))

    @classmethod
    def one_of(cls, values: Sequence[Any] | set[Any] | frozenset[Any]) -> Constraint:
        return cls("one_of", tuple(values))

    @classmethod
    def between(cls, low: float | None = None, high: float | None = None) -> Constraint:
        return cls("range", (), low, high)

    @classmethod
    def coerce(cls, spec: Any) -> Constraint:
        """Turn a plain value (scalar, set/list, ``(low, high)``) into a constraint."""
        if isinstance(spec, Constraint):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return cls.between(spec[0], spec[1])
        if isinstance(spec, (set, frozenset, list)):
            return cls.one_of(sorted(spec, key=str) if isinstance(spec, (set, frozenset)) else spec)
        if isinstance(spec, (tuple, dict)):
            raise ValueError(f"a constraint must be a scalar, a set/list or a (low, high) pair; got {spec!r}")
        return cls.equal(spec)


# =========================================================================================================
# Marginals
# =========================================================================================================
@dataclass(frozen=True)
class ColumnMarginal:
    """The fitted marginal of one synthesised column (training rows only).

    ``kind`` is ``continuous``, ``discrete`` (numeric levels), ``categorical`` (string labels) or
    ``boolean``. Discrete kinds carry ``levels``, their ``probs`` and the latent ``thresholds`` (length
    ``len(levels) - 1``); continuous columns carry the quantile function ``quantiles`` at ``grid``.
    """

    name: str
    kind: Literal["continuous", "discrete", "categorical", "boolean"]
    dtype: str
    levels: tuple[Any, ...] = ()
    probs: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    thresholds: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    grid: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    quantiles: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    integer: bool = False
    fill_value: float = 0.0

    @property
    def is_discrete(self) -> bool:
        return self.kind != "continuous"

    @property
    def encoded_levels(self) -> np.ndarray:
        """The encoded value of each level: numeric levels themselves, codes for labels."""
        if self.kind == "discrete":
            return np.asarray(self.levels, dtype=np.float64)
        return np.arange(len(self.levels), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "levels": [_json_scalar(v) for v in self.levels],
            "probs": self.probs.tolist(),
            "thresholds": self.thresholds.tolist(),
            "grid": self.grid.tolist(),
            "quantiles": self.quantiles.tolist(),
            "integer": self.integer,
            "fill_value": self.fill_value,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ColumnMarginal:
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


def _json_scalar(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _is_label_dtype(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum


def _fit_marginal(name: str, s: pl.Series, quantile_points: int, max_discrete_levels: int) -> ColumnMarginal:
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
        return _discrete_marginal(name, "boolean", "Boolean", (False, True), counts)
    if _is_label_dtype(dtype):
        if dtype == pl.Enum:
            labels = tuple(dtype.categories.to_list())
            codes = values.to_physical().to_numpy().astype(np.int64)
            counts = np.bincount(codes, minlength=len(labels)).astype(np.float64)
        else:
            vc = values.cast(pl.String).value_counts(sort=False)
            order = np.argsort(
                np.asarray(vc[vc.columns[0]].to_list(), dtype=object).astype(str), kind="stable"
            )
            labels = tuple(np.asarray(vc[vc.columns[0]].to_list(), dtype=object)[order].tolist())
            counts = vc["count"].to_numpy().astype(np.float64)[order]
        return _discrete_marginal(name, "categorical", "Enum", labels, counts)
    if not dtype.is_numeric():
        raise ValueError(
            f"column {name!r} has dtype {dtype}; features must be numeric, boolean or categorical "
            "(drop it or pass `feature_cols`)"
        )
    arr = values.cast(pl.Float64).to_numpy()
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size <= max_discrete_levels:
        levels = tuple(int(v) if dtype.is_integer() else float(v) for v in uniq)
        return _discrete_marginal(name, "discrete", str(dtype), levels, counts.astype(np.float64))
    m = int(min(quantile_points, max(arr.size, 2)))
    grid = np.linspace(0.0, 1.0, m)
    quantiles = np.quantile(arr, grid)
    return ColumnMarginal(
        name=name,
        kind="continuous",
        dtype=str(dtype),
        grid=grid,
        quantiles=quantiles,
        integer=dtype.is_integer(),
        fill_value=float(np.median(arr)),
    )


def _discrete_marginal(
    name: str, kind: Any, dtype: str, levels: tuple[Any, ...], counts: np.ndarray
) -> ColumnMarginal:
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


def _encode(s: pl.Series, mg: ColumnMarginal) -> np.ndarray:
    """Encoded values of a column under a fitted marginal (codes for labels; NaN if missing or unseen)."""
    if mg.kind == "categorical":
        if s.dtype == pl.Enum and tuple(s.dtype.categories.to_list()) == mg.levels:
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


def _code_of(values: np.ndarray, mg: ColumnMarginal) -> np.ndarray:
    """Level codes of encoded values (discrete kinds)."""
    if mg.kind == "discrete":
        return np.searchsorted(mg.encoded_levels, values)
    return values.astype(np.int64)


# --- correlation calibration (NORTA) ----------------------------------------------------------------------
def _phi2(x: np.ndarray, y: np.ndarray, rho: float) -> np.ndarray:
    """Bivariate standard normal CDF P(Z1 <= x, Z2 <= y) via Owen's T (vectorised, finite x, y)."""
    s = math.sqrt(1.0 - rho * rho)
    x = np.where(x == 0.0, 1e-13, x)
    y = np.where(y == 0.0, 1e-13, y)
    ax = (y - rho * x) / (x * s)
    ay = (x - rho * y) / (y * s)
    beta = np.where(x * y > 0.0, 0.0, 0.5)
    return (
        0.5 * special.ndtr(x) + 0.5 * special.ndtr(y) - special.owens_t(x, ax) - special.owens_t(y, ay) - beta
    )


def _continuous_values(mg: ColumnMarginal, z: np.ndarray) -> np.ndarray:
    return np.interp(special.ndtr(z), mg.grid, mg.quantiles)


def _jumps(mg: ColumnMarginal) -> tuple[np.ndarray, np.ndarray]:
    """Finite thresholds and the jump of the encoded value at each: g(z) = v0 + sum_k jump_k 1{z > tau_k}."""
    enc = mg.encoded_levels
    jumps = np.diff(enc)
    keep = np.isfinite(mg.thresholds) & (jumps != 0)
    return mg.thresholds[keep], jumps[keep]


def _marginal_moments(mg: ColumnMarginal) -> tuple[float, float]:
    if mg.is_discrete:
        enc = mg.encoded_levels
        mean = float(np.dot(mg.probs, enc))
        var = float(np.dot(mg.probs, (enc - mean) ** 2))
    else:
        g = _continuous_values(mg, _GH_NODES)
        mean = float(np.dot(_GH_WEIGHTS, g))
        var = float(np.dot(_GH_WEIGHTS, (g - mean) ** 2))
    return mean, math.sqrt(max(var, 0.0))


def _model_covariance(
    a: ColumnMarginal, b: ColumnMarginal, rho: float, mean_a: float, mean_b: float
) -> float:
    """Covariance of the encoded columns implied by a latent correlation ``rho``."""
    s = math.sqrt(1.0 - rho * rho)
    if a.is_discrete and b.is_discrete:
        ta, ja = _jumps(a)
        tb, jb = _jumps(b)
        if ta.size == 0 or tb.size == 0:
            return 0.0
        # P(Z1 > t, Z2 > u) = Phi2(-t, -u; rho)
        joint = _phi2(-ta[:, None], -tb[None, :], rho)
        indep = special.ndtr(-ta)[:, None] * special.ndtr(-tb)[None, :]
        return float(ja @ (joint - indep) @ jb)
    if b.is_discrete and not a.is_discrete:
        a, b, mean_a, mean_b = b, a, mean_b, mean_a
    if a.is_discrete:  # a discrete, b continuous: integrate over Z_b
        ta, ja = _jumps(a)
        if ta.size == 0:
            return 0.0
        gb = _continuous_values(b, _GH_NODES) - mean_b
        cond = special.ndtr((rho * _GH_NODES[None, :] - ta[:, None]) / s)  # P(Z_a > t | Z_b = node)
        return float(ja @ (cond @ (_GH_WEIGHTS * gb)))
    ga = _continuous_values(a, _GH_NODES) - mean_a
    zb = rho * _GH_NODES[:, None] + s * _GH_NODES[None, :]
    gb = _continuous_values(b, zb) - mean_b
    return float(_GH_WEIGHTS @ (ga * (gb @ _GH_WEIGHTS)))


def _calibrate_rho(
    a: ColumnMarginal, b: ColumnMarginal, target: float, moments: dict[str, tuple[float, float]]
) -> float:
    """Latent correlation whose implied Pearson correlation of the encoded columns equals ``target``."""
    (ma, sa), (mb, sb) = moments[a.name], moments[b.name]
    if sa == 0.0 or sb == 0.0 or not np.isfinite(target):
        return 0.0

    def implied(rho: float) -> float:
        return _model_covariance(a, b, rho, ma, mb) / (sa * sb) - target

    lo, hi = implied(-_RHO_LIMIT), implied(_RHO_LIMIT)
    if lo >= 0.0:
        return -_RHO_LIMIT
    if hi <= 0.0:
        return _RHO_LIMIT
    return float(optimize.brentq(implied, -_RHO_LIMIT, _RHO_LIMIT, xtol=1e-6))


def _nearest_correlation(r: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Clip eigenvalues to ``floor`` and rescale to a unit diagonal (positive definite correlations)."""
    r = 0.5 * (r + r.T)
    w, v = np.linalg.eigh(r)
    if w.min() >= floor:
        return r
    r = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(r))
    r = r / d[:, None] / d[None, :]
    np.fill_diagonal(r, 1.0)
    return r


def _pearson(encoded: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of an (n, d) matrix; constant columns correlate 0."""
    x = encoded - encoded.mean(axis=0)
    sd = np.sqrt((x * x).mean(axis=0))
    safe = np.where(sd > 0, sd, 1.0)
    c = (x.T @ x) / x.shape[0] / safe[:, None] / safe[None, :]
    c[sd == 0, :] = 0.0
    c[:, sd == 0] = 0.0
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


# --- truncated normals ----------------------------------------------------------------------------------
def _log_interval_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a <= b, stable in both tails."""
    flip = a > 0.0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    la = special.log_ndtr(lo)
    lb = special.log_ndtr(hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return lb + np.log1p(-np.exp(la - lb))


def _truncated_normal_union(
    mu: np.ndarray, sigma: float, lows: np.ndarray, highs: np.ndarray, u_pick: np.ndarray, u_draw: np.ndarray
) -> np.ndarray:
    """One draw per row from Normal(mu, sigma) restricted to the union of intervals [lows[k], highs[k]].

    Inverse-CDF sampling in log space: pick an interval in proportion to its mass, then invert the CDF
    inside it. Terminates always; rows whose every interval has vanishing mass get the nearest endpoint.
    """
    a = (lows[None, :] - mu[:, None]) / sigma
    b = (highs[None, :] - mu[:, None]) / sigma
    if lows.size == 1:
        return mu + sigma * _truncated_standard_normal(a[:, 0], b[:, 0], u_draw)
    lm = _log_interval_mass(a, b)
    top = lm.max(axis=1)
    dead = ~np.isfinite(top)
    w = np.exp(lm - np.where(dead, 0.0, top)[:, None])
    w[dead] = 0.0
    cum = np.cumsum(w, axis=1)
    total = cum[:, -1]
    k = (u_pick[:, None] * total[:, None] > cum).sum(axis=1)
    k = np.minimum(k, lows.size - 1)
    if dead.any():
        dist = np.minimum(np.abs(a[dead]), np.abs(b[dead]))
        k[dead] = np.argmin(dist, axis=1)
    rows = np.arange(mu.size)
    ak, bk = a[rows, k], b[rows, k]
    x = _truncated_standard_normal(ak, bk, u_draw)
    if dead.any():
        x[dead] = np.where(np.abs(ak[dead]) < np.abs(bk[dead]), ak[dead], bk[dead])
    return mu + sigma * x


def _truncated_standard_normal(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from a standard normal restricted to [a, b], in log space (stable in both tails)."""
    flip = a > 0.0  # work in the lower tail, where Phi does not round to 1
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    la = special.log_ndtr(lo)
    lb = special.log_ndtr(hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lp = lb + np.log(u + (1.0 - u) * np.exp(la - lb))
        x = special.ndtri_exp(np.minimum(lp, 0.0))
    x = np.where(np.isfinite(x), x, np.where(np.isfinite(lo), lo, hi))
    x = np.clip(x, lo, hi)
    return np.where(flip, -x, x)


# =========================================================================================================
# Generator
# =========================================================================================================
@dataclass(frozen=True)
class _Plan:
    """Constraints resolved against the fitted marginals."""

    fixed: Mapping[int, float]  # column -> latent value (continuous equality)
    fixed_values: Mapping[int, float]  # column -> output value
    intervals: Mapping[int, tuple[np.ndarray, np.ndarray]]  # column -> latent (lows, highs)
    allowed_codes: Mapping[int, np.ndarray]  # discrete column -> allowed level codes
    bounds: Mapping[int, tuple[float, float]]  # continuous column -> output clip range


class TwinGenerator:
    """Learn twins from history and generate populations of them.

    Parameters
    ----------
    twin_type
        :class:`~twinkernel.models.TwinType` (or its value) of the twins generated.
    brand
        Free text carried onto populations.
    config
        Configuration (section ``twin_generation``); the process default when ``None``.
    quantile_points, max_discrete_levels, correlation, gibbs_sweeps, test_size, permutation_repeats,
    chunk_size, leakage_tolerance, sklearn_threads
        Copula and training settings (see ``docs/generator.md``). ``sklearn_threads`` caps scikit-learn's
        OpenMP threads while fitting (``None``: no cap); one thread avoids oversubscription next to numba's
        thread pool on small shared machines.

    Examples
    --------
    >>> from twinkernel import synthetic
    >>> world = synthetic.hcp_world(3000, months=4, seed=0)
    >>> gen = TwinGenerator("hcp", "Kisqali")
    >>> metrics = gen.train(synthetic.hcp_training_frame(world), "brand_share", time_col="month")
    >>> pop = gen.generate(1000, constraints={"decile": 3}, seed=1)
    >>> pop.n, set(pop.frame["decile"].to_list())
    (1000, {3})
    """

    def __init__(
        self,
        twin_type: TwinType | str = TwinType.HCP,
        brand: str | None = None,
        config: TwinkernelConfig | None = None,
        *,
        quantile_points: int | None = None,
        max_discrete_levels: int | None = None,
        correlation: Literal["norta", "normal_scores"] | None = None,
        gibbs_sweeps: int | None = None,
        test_size: float | None = None,
        permutation_repeats: int | None = None,
        chunk_size: int | None = None,
        leakage_tolerance: float | None = None,
        sklearn_threads: int | Literal["config"] | None = "config",
    ) -> None:
        self.twin_type = TwinType(twin_type)
        self.brand = brand
        self.config = config or get_config()
        # Settings not given here come from the config's twin_generation section.
        tg = self.config.twin_generation
        quantile_points = tg.quantile_points if quantile_points is None else quantile_points
        max_discrete_levels = tg.max_discrete_levels if max_discrete_levels is None else max_discrete_levels
        correlation = tg.correlation if correlation is None else correlation
        gibbs_sweeps = tg.gibbs_sweeps if gibbs_sweeps is None else gibbs_sweeps
        test_size = tg.test_size if test_size is None else test_size
        permutation_repeats = tg.permutation_repeats if permutation_repeats is None else permutation_repeats
        chunk_size = tg.chunk_size if chunk_size is None else chunk_size
        leakage_tolerance = tg.leakage_tolerance if leakage_tolerance is None else leakage_tolerance
        if sklearn_threads == "config":
            sklearn_threads = tg.sklearn_threads
        if correlation not in ("norta", "normal_scores"):
            raise ValueError(f"`correlation` must be 'norta' or 'normal_scores'; got {correlation!r}")
        for name, value, low in (
            ("quantile_points", quantile_points, 2),
            ("max_discrete_levels", max_discrete_levels, 2),
            ("gibbs_sweeps", gibbs_sweeps, 1),
            ("permutation_repeats", permutation_repeats, 1),
            ("chunk_size", chunk_size, 1024),
        ):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}")
        if sklearn_threads is not None and (not isinstance(sklearn_threads, int) or sklearn_threads < 1):
            raise ValueError(f"`sklearn_threads` must be None or an integer >= 1; got {sklearn_threads!r}")
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"`test_size` must be in (0, 1); got {test_size!r}")
        if not 0.0 < leakage_tolerance < 1.0:
            raise ValueError(f"`leakage_tolerance` must be in (0, 1); got {leakage_tolerance!r}")
        self.settings: dict[str, Any] = {
            "quantile_points": int(quantile_points),
            "max_discrete_levels": int(max_discrete_levels),
            "correlation": correlation,
            "gibbs_sweeps": int(gibbs_sweeps),
            "test_size": float(test_size),
            "permutation_repeats": int(permutation_repeats),
            "chunk_size": int(chunk_size),
            "leakage_tolerance": float(leakage_tolerance),
            "sklearn_threads": sklearn_threads,
        }
        self._reset()

    def _reset(self) -> None:
        self.model_id: str | None = None
        self.metrics: TwinModelMetrics | None = None
        self.target_col: str | None = None
        self.feature_cols: tuple[str, ...] = ()
        self.treatment_col: str | None = None
        self.algorithm: str | None = None
        self.outcome_model: Any = None
        self.marginals: tuple[ColumnMarginal, ...] = ()
        self.latent_correlation: np.ndarray | None = None
        self.data_correlation: np.ndarray | None = None
        self.residual_sd: float | None = None
        self.n_training_rows = 0
        self.training_rows_: np.ndarray | None = None
        self.validation_rows_: np.ndarray | None = None
        self._propensity: dict[str, Any] | None = None
        self._chol: np.ndarray | None = None
        self._trees: tuple[Any, ...] | None = None

    @property
    def is_trained(self) -> bool:
        return self.outcome_model is not None

    @property
    def columns(self) -> tuple[str, ...]:
        """The synthesised columns, in copula order."""
        return tuple(m.name for m in self.marginals)

    # -----------------------------------------------------------------------------------------------------
    # training
    # -----------------------------------------------------------------------------------------------------
    def train(
        self,
        data: Any,
        target_col: str,
        feature_cols: Sequence[str] | None = None,
        algorithm: str | None = None,
        time_col: str | None = None,
        cutoff: Any = None,
        entity_col: str | None = None,
        treatment_col: str | None = None,
        *,
        feature_time_cols: Mapping[str, str] | None = None,
    ) -> TwinModelMetrics:
        """Fit the outcome model and the copula on training rows only.

        Parameters
        ----------
        data
            Polars or pandas DataFrame, one row per unit (and time).
        target_col
            The outcome to predict (numeric).
        feature_cols
            Model features. ``None`` uses every numeric, boolean or categorical column except the target,
            time, entity and treatment columns, ``*_as_of`` timestamps, ``*_id`` columns and
            ``baseline_*``.
        algorithm
            ``hist_gradient_boosting`` (default from the config), ``random_forest`` or
            ``gradient_boosting``.
        time_col, cutoff
            Prediction time of each row and the split point: training uses rows with
            ``time < cutoff``, validation rows with ``time >= cutoff``. Without ``cutoff`` the latest
            ``test_size`` share of distinct times is held out. Cross-validation folds are time-ordered.
        entity_col
            Unit id: no entity appears on both sides of any split (held-out entities are validation only).
        treatment_col
            0/1 past treatment. The outcome model gets it as a feature (twins are predicted untreated, so
            ``baseline_outcome`` is the untreated outcome) and ``baseline_propensity`` comes from a
            logistic model of it on the features.
        feature_time_cols
            ``{feature: timestamp column}`` when a feature's as-of column is not named ``<feature>_as_of``.

        Returns
        -------
        TwinModelMetrics

        Raises
        ------
        ValueError
            Too few training rows, a missing target or feature column, or a leakage risk: the target (or a
            copy or deterministic function of it) among the features, or a feature timestamped after the
            row's prediction time.

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> world = synthetic.hcp_world(2000, months=4, seed=0)
        >>> m = TwinGenerator().train(synthetic.hcp_training_frame(world), "brand_share", time_col="month")
        >>> m.training_rows + m.validation_rows, m.r2 > 0.5
        (2000, True)
        """
        started = time.perf_counter()
        frame = _as_polars(data)
        cfg = self.config.twin_generation
        algorithm = (algorithm or cfg.default_algorithm).lower()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"`algorithm` must be one of {list(ALGORITHMS)}; got {algorithm!r}")
        _require_columns(frame, [target_col], "target_col")
        for pname, col in (
            ("time_col", time_col),
            ("entity_col", entity_col),
            ("treatment_col", treatment_col),
        ):
            if col is not None:
                _require_columns(frame, [col], pname)
        if cutoff is not None and time_col is None:
            raise ValueError("`cutoff` needs `time_col` (the column holding each row's prediction time)")
        if not frame[target_col].dtype.is_numeric():
            raise ValueError(f"target column {target_col!r} must be numeric; got {frame[target_col].dtype}")
        time_map = dict(feature_time_cols or {})
        if feature_cols is None:
            features = self._default_features(
                frame, target_col, time_col, entity_col, treatment_col, time_map
            )
        else:
            features = list(dict.fromkeys(feature_cols))
            if not features:
                raise ValueError("`feature_cols` must name at least one column; got an empty list")
            _require_columns(frame, features, "feature_cols")
        _require_columns(frame, list(time_map.values()), "feature_time_cols")

        # rows without a target cannot be used; they are counted, not silently dropped
        target = frame[target_col].cast(pl.Float64)
        usable = (target.is_not_null() & target.is_not_nan()).to_numpy()
        excluded = int((~usable).sum())
        self._check_target_leakage(frame, target_col, features, treatment_col, usable)
        self._check_feature_timestamps(frame, features, time_col, cutoff, time_map)

        train_idx, valid_idx, split, cutoff_text = self._split(frame, usable, time_col, cutoff, entity_col)
        n_min = cfg.min_training_rows
        if train_idx.size < n_min:
            raise ValueError(
                f"training needs at least {n_min} rows (twin_generation.min_training_rows); got "
                f"{train_idx.size} training rows of {frame.height} ({excluded} without a target, "
                f"{valid_idx.size} for validation)"
            )
        if valid_idx.size == 0:
            raise ValueError(f"no validation rows after the split ({split}); move the cutoff or add data")

        self._reset()
        train_frame = frame[train_idx]
        # every fitted statistic below comes from train_frame only
        copula_cols = features + [
            c for c in POPULATION_COLUMNS if c in frame.columns and c not in features and c != treatment_col
        ]
        marginals = []
        for c in copula_cols:
            if c in (target_col, time_col, entity_col):
                continue
            marginals.append(
                _fit_marginal(
                    c, train_frame[c], self.settings["quantile_points"], self.settings["max_discrete_levels"]
                )
            )
        self.marginals = tuple(marginals)
        self.feature_cols = tuple(features)
        self.target_col = target_col
        self.treatment_col = treatment_col
        self.algorithm = algorithm

        X_train = self._feature_matrix(train_frame)
        X_valid = self._feature_matrix(frame[valid_idx])
        y_train = target.to_numpy()[train_idx]
        y_valid = target.to_numpy()[valid_idx]
        model = self._fit_model(algorithm, X_train, y_train)
        self.outcome_model = model
        self._trees = _compile_trees(model) if algorithm == "hist_gradient_boosting" else None
        pred = self._predict(X_valid)
        resid = y_valid - pred
        ss_tot = float(((y_valid - y_valid.mean()) ** 2).sum())
        r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 0.0
        self.residual_sd = float(resid.std(ddof=1)) if resid.size > 1 else 0.0

        cv_scores, cv_scheme = self._cross_validate(
            algorithm, train_frame, X_train, y_train, time_col, entity_col
        )
        imp_mean, imp_std = self._permutation_importance(X_valid, y_valid)

        encoded_train = self._encoded_matrix(train_frame, impute=True)
        self.data_correlation = _pearson(encoded_train)
        self.latent_correlation = self._fit_latent_correlation(encoded_train)
        self._chol = np.linalg.cholesky(self.latent_correlation)

        auc = None
        if treatment_col is not None:
            auc = self._fit_propensity(train_frame, frame[valid_idx], treatment_col)

        self.n_training_rows = int(train_idx.size)
        self.training_rows_ = train_idx
        self.validation_rows_ = valid_idx
        self.model_id = self._make_model_id(frame, train_idx)
        self.metrics = TwinModelMetrics(
            model_id=self.model_id,
            algorithm=algorithm,
            target_col=target_col,
            feature_cols=self.feature_cols,
            r2=r2,
            rmse=float(np.sqrt(np.mean(resid**2))),
            mae=float(np.mean(np.abs(resid))),
            cv_scores=tuple(cv_scores),
            cv_mean=float(np.mean(cv_scores)) if cv_scores else float("nan"),
            cv_std=float(np.std(cv_scores)) if cv_scores else float("nan"),
            cv_scheme=cv_scheme,
            feature_importances=MappingProxyType(imp_mean),
            feature_importance_std=MappingProxyType(imp_std),
            training_rows=int(train_idx.size),
            validation_rows=int(valid_idx.size),
            excluded_rows=excluded + int(frame.height - excluded - train_idx.size - valid_idx.size),
            training_duration_seconds=time.perf_counter() - started,
            residual_sd=self.residual_sd,
            split=split,
            cutoff=cutoff_text,
            propensity_auc=auc,
        )
        return self.metrics

    def _default_features(
        self,
        frame: pl.DataFrame,
        target_col: str,
        time_col: str | None,
        entity_col: str | None,
        treatment_col: str | None,
        time_map: Mapping[str, str],
    ) -> list[str]:
        skip = {target_col, time_col, entity_col, treatment_col, *time_map.values(), *_NEVER_FEATURES}
        out = []
        for c in frame.columns:
            dt = frame[c].dtype
            if (
                c in skip
                or c.endswith("_as_of")
                or c == "id"
                or c.endswith("_id")
                or c.startswith("baseline_")
            ):
                continue
            if dt.is_temporal() or not (dt.is_numeric() or dt == pl.Boolean or _is_label_dtype(dt)):
                continue
            if dt == pl.String and frame[c].n_unique() > max(50, frame.height // 2):
                continue  # identifier-like text
            out.append(c)
        if not out:
            raise ValueError("no usable feature columns found; pass `feature_cols`")
        return out

    def _check_target_leakage(
        self,
        frame: pl.DataFrame,
        target_col: str,
        features: Sequence[str],
        treatment_col: str | None,
        usable: np.ndarray,
    ) -> None:
        for c in (target_col, treatment_col):
            if c is not None and c in features:
                what = "target" if c == target_col else "treatment"
                raise ValueError(
                    f"the {what} column {c!r} cannot be a feature (it would leak the outcome); "
                    f"remove it from `feature_cols`"
                )
        rows = np.flatnonzero(usable)
        if rows.size > 200_000:  # the roughness statistics are stable long before this
            rows = rows[:: rows.size // 200_000 + 1]
        y = frame[target_col].cast(pl.Float64).to_numpy()[rows]
        order_y = np.argsort(y, kind="stable")
        tol = self.settings["leakage_tolerance"]
        for c in features:
            s = frame[c][rows]
            dt = s.dtype
            if dt.is_temporal():
                continue
            if _is_label_dtype(dt) or dt == pl.Boolean:
                codes = s.cast(pl.String).fill_null("\x00").cast(pl.Categorical).to_physical().to_numpy()
                changes = float(np.count_nonzero(np.diff(codes[order_y])))
                _, counts = np.unique(codes, return_counts=True)
                p = counts / counts.sum()
                expected = (codes.size - 1) * (1.0 - float((p * p).sum()))
                if expected > 0 and changes / expected < tol:
                    raise ValueError(
                        f"feature {c!r} is a deterministic function of the target {target_col!r} "
                        f"(ordered by the target its value changes {int(changes)} times, "
                        f"{changes / expected:.4f} of "
                        f"what an unrelated column would); remove it from `feature_cols`"
                    )
                continue
            x = s.cast(pl.Float64, strict=False).to_numpy()
            ok = np.isfinite(x)
            if ok.sum() < 3 or np.nanstd(x) == 0.0:
                continue
            if np.array_equal(x[ok], y[ok]):
                raise ValueError(
                    f"feature {c!r} is a copy of the target {target_col!r}; remove it from `feature_cols`"
                )
            for ordered_by, values, what in ((y, x, "is a deterministic function of"), (x, y, "determines")):
                okk = ok & np.isfinite(ordered_by)
                o = np.argsort(ordered_by[okk], kind="stable")
                v = values[okk][o]
                var = float(((v - v.mean()) ** 2).sum())
                if var == 0.0:
                    continue
                ratio = float((np.diff(v) ** 2).sum()) / (2.0 * var)
                if ratio < tol:
                    name = f"feature {c!r} {what} the target {target_col!r}"
                    raise ValueError(
                        f"{name} (von Neumann roughness {ratio:.2e} < {tol}: it is the target in disguise); "
                        f"remove it from `feature_cols`"
                    )

    def _check_feature_timestamps(
        self,
        frame: pl.DataFrame,
        features: Sequence[str],
        time_col: str | None,
        cutoff: Any,
        time_map: Mapping[str, str],
    ) -> None:
        stamped = {}
        for f in features:
            col = time_map.get(f, f"{f}_as_of")
            if col in frame.columns:
                stamped[f] = col
        if not stamped:
            return
        if time_col is None:
            warnings.warn(
                f"features {sorted(stamped)} carry timestamps but no `time_col` was given; "
                "their timing cannot be checked",
                stacklevel=3,
            )
            return
        pred_time = frame[time_col]
        for f, col in stamped.items():
            stamp = frame[col]
            if stamp.dtype != pred_time.dtype:
                try:
                    stamp = stamp.cast(pred_time.dtype)
                except Exception as exc:  # report the column, not polars internals
                    raise ValueError(
                        f"timestamp column {col!r} ({stamp.dtype}) cannot be compared with {time_col!r} "
                        f"({pred_time.dtype})"
                    ) from exc
            late = (stamp > pred_time).fill_null(False)
            n_late = int(late.sum())
            if n_late:
                i = int(np.flatnonzero(late.to_numpy())[0])
                raise ValueError(
                    f"feature {f!r} is measured after the prediction time in {n_late} rows: its timestamp "
                    f"{col!r} is later than {time_col!r} (first at row {i}: {stamp[i]} > {pred_time[i]}); "
                    f"use a value known at prediction time (e.g. a lagged feature)"
                )

    def _split(
        self,
        frame: pl.DataFrame,
        usable: np.ndarray,
        time_col: str | None,
        cutoff: Any,
        entity_col: str | None,
    ) -> tuple[np.ndarray, np.ndarray, str, str | None]:
        rng = np.random.default_rng(self.config.twin_generation.random_state)
        test_size = self.settings["test_size"]
        n = frame.height
        in_valid_entity: np.ndarray | None = None
        if entity_col is not None:
            ent = frame[entity_col]
            uniq = ent.unique().sort()
            n_valid = max(1, math.ceil(test_size * uniq.len()))
            chosen = uniq[rng.permutation(uniq.len())[:n_valid]]
            in_valid_entity = ent.is_in(chosen.implode()).to_numpy()

        cutoff_text = None
        after: np.ndarray | None = None
        if time_col is not None:
            t = frame[time_col]
            if cutoff is None:
                times = t.filter(pl.Series(usable)).unique().sort()
                if times.len() >= 2:
                    k = min(times.len() - 1, max(1, math.floor((1.0 - test_size) * times.len())))
                    cut = times[k]
                    after = (t >= cut).to_numpy()
                    cutoff_text = str(cut)
            else:
                cut = _coerce_cutoff(cutoff, t.dtype)
                after = (t >= cut).fill_null(False).to_numpy()
                cutoff_text = str(cut)

        if after is not None and in_valid_entity is not None:
            train = usable & ~after & ~in_valid_entity
            valid = usable & after & in_valid_entity
            split = "temporal+entity"
        elif after is not None:
            train, valid, split = usable & ~after, usable & after, "temporal"
        elif in_valid_entity is not None:
            train, valid, split = usable & ~in_valid_entity, usable & in_valid_entity, "entity"
        else:
            holdout = np.zeros(n, dtype=bool)
            idx = np.flatnonzero(usable)
            holdout[idx[rng.permutation(idx.size)[: math.ceil(test_size * idx.size)]]] = True
            train, valid, split = usable & ~holdout, usable & holdout, "random"
        return np.flatnonzero(train), np.flatnonzero(valid), split, cutoff_text

    def _fit_model(self, algorithm: str, X: np.ndarray, y: np.ndarray) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(self.settings["sklearn_threads"]):
            return self._make_model(algorithm).fit(X, y)

    def _make_model(self, algorithm: str) -> Any:
        rs = self.config.twin_generation.random_state
        if algorithm == "hist_gradient_boosting":
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(random_state=rs)
        if algorithm == "random_forest":
            from sklearn.ensemble import RandomForestRegressor

            return RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=-1, random_state=rs)
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(
            n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=rs
        )

    def _cross_validate(
        self,
        algorithm: str,
        train_frame: pl.DataFrame,
        X: np.ndarray,
        y: np.ndarray,
        time_col: str | None,
        entity_col: str | None,
    ) -> tuple[list[float], str]:
        k = self.config.twin_generation.cv_folds
        rng = np.random.default_rng(self.config.twin_generation.random_state + 1)
        n = X.shape[0]
        group = None
        if entity_col is not None:
            ent = train_frame[entity_col]
            uniq = ent.unique().sort()
            fold_of = pl.Series(rng.permutation(uniq.len()) % k)
            group = ent.replace_strict(uniq, fold_of, return_dtype=pl.Int64).to_numpy()
        folds: list[tuple[np.ndarray, np.ndarray]] = []
        scheme = ""
        if time_col is not None:
            t = train_frame[time_col].to_physical().cast(pl.Float64).to_numpy()
            times = np.unique(t)
            if times.size >= k + 1:
                edges = times[np.linspace(0, times.size, k + 2).astype(int)[1:-1]]
                for j in range(k):
                    tr = t < edges[j]
                    va = (t >= edges[j]) & (t < edges[j + 1]) if j + 1 < k else t >= edges[j]
                    if group is not None:
                        tr, va = tr & (group != j), va & (group == j)
                    folds.append((np.flatnonzero(tr), np.flatnonzero(va)))
                scheme = "time_ordered" + ("+entity" if group is not None else "")
        if not folds:
            assign = group if group is not None else rng.permutation(n) % k
            folds = [(np.flatnonzero(assign != j), np.flatnonzero(assign == j)) for j in range(k)]
            scheme = "group_kfold" if group is not None else "kfold"
        scores = []
        for tr, va in folds:
            if tr.size < 2 or va.size < 2:
                continue
            m = self._fit_model(algorithm, X[tr], y[tr])
            resid = y[va] - _predict_with(m, _compile_trees(m) if algorithm == ALGORITHMS[0] else None, X[va])
            ss = float(((y[va] - y[va].mean()) ** 2).sum())
            scores.append(1.0 - float((resid**2).sum()) / ss if ss > 0 else 0.0)
        return scores, scheme

    def _permutation_importance(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Mean and sd of the drop in R² when one column of the validation rows is shuffled."""
        rng = np.random.default_rng(self.config.twin_generation.random_state + 2)
        if X.shape[0] > 20_000:  # the importance ranking settles long before this
            keep = np.sort(rng.choice(X.shape[0], 20_000, replace=False))
            X, y = X[keep], y[keep]
        ss = float(((y - y.mean()) ** 2).sum())

        def r2(pred: np.ndarray) -> float:
            return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0

        base = r2(self._predict(X))
        repeats = self.settings["permutation_repeats"]
        means: dict[str, float] = {}
        sds: dict[str, float] = {}
        work = X.copy()
        for j, name in enumerate(self._model_feature_names()):
            drops = []
            for _ in range(repeats):
                work[:, j] = X[rng.permutation(X.shape[0]), j]
                drops.append(base - r2(self._predict(work)))
            work[:, j] = X[:, j]
            means[name] = float(np.mean(drops))
            sds[name] = float(np.std(drops))
        return means, sds

    def _model_feature_names(self) -> list[str]:
        return list(self.feature_cols) + ([self.treatment_col] if self.treatment_col else [])

    def _marginal(self, name: str) -> ColumnMarginal:
        for m in self.marginals:
            if m.name == name:
                return m
        raise KeyError(name)

    def _feature_matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """Encoded features (+ treatment), missing or unseen values filled with training statistics."""
        cols = []
        for c in self.feature_cols:
            mg = self._marginal(c)
            x = _encode(frame[c], mg)
            cols.append(np.where(np.isnan(x), mg.fill_value, x))
        if self.treatment_col is not None:
            cols.append(_binary(frame[self.treatment_col], self.treatment_col))
        return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)

    def _encoded_matrix(self, frame: pl.DataFrame, impute: bool) -> np.ndarray:
        cols = []
        for mg in self.marginals:
            x = _encode(frame[mg.name], mg)
            cols.append(np.where(np.isnan(x), mg.fill_value, x) if impute else x)
        return np.column_stack(cols)

    def _fit_latent_correlation(self, encoded: np.ndarray) -> np.ndarray:
        d = len(self.marginals)
        if self.settings["correlation"] == "normal_scores":
            from scipy.stats import rankdata

            scores = special.ndtri(rankdata(encoded, axis=0) / (encoded.shape[0] + 1.0))
            r = _pearson(scores)
        else:
            target = _pearson(encoded)
            moments = {m.name: _marginal_moments(m) for m in self.marginals}
            r = np.eye(d)
            for i in range(d):
                for j in range(i + 1, d):
                    r[i, j] = r[j, i] = _calibrate_rho(
                        self.marginals[i], self.marginals[j], target[i, j], moments
                    )
        return _nearest_correlation(r)

    def _fit_propensity(
        self, train_frame: pl.DataFrame, valid_frame: pl.DataFrame, treatment_col: str
    ) -> float:
        from sklearn.linear_model import LogisticRegression

        t_train = _binary(train_frame[treatment_col], treatment_col)
        if np.unique(t_train).size < 2:
            raise ValueError(
                f"treatment column {treatment_col!r} must hold both 0 and 1 in the training rows"
            )
        design, spec = self._propensity_design(train_frame, None)
        model = LogisticRegression(max_iter=2000).fit(design, t_train)
        self._propensity = {
            "spec": spec,
            "coef": model.coef_.ravel().astype(np.float64),
            "intercept": float(model.intercept_[0]),
        }
        t_valid = _binary(valid_frame[treatment_col], treatment_col)
        if np.unique(t_valid).size < 2:
            return float("nan")
        from sklearn.metrics import roc_auc_score

        vd, _ = self._propensity_design(valid_frame, spec)
        return float(roc_auc_score(t_valid, vd @ self._propensity["coef"] + self._propensity["intercept"]))

    def _propensity_design(self, frame: pl.DataFrame, spec: list[Any] | None) -> tuple[np.ndarray, list[Any]]:
        """Standardised numeric features and one-hot categorical ones (statistics from training rows)."""
        encoded = {c: _encode(frame[c], self._marginal(c)) for c in self.feature_cols}
        return self._propensity_design_from(encoded, spec)

    def _propensity_design_from(
        self, encoded: Mapping[str, np.ndarray], spec: list[Any] | None
    ) -> tuple[np.ndarray, list[Any]]:
        fit = spec is None
        spec = [] if spec is None else spec
        cols = []
        for i, c in enumerate(self.feature_cols):
            mg = self._marginal(c)
            x = np.where(np.isnan(encoded[c]), mg.fill_value, encoded[c])
            if mg.kind in ("categorical", "boolean"):
                if fit:
                    spec.append(("onehot", c))
                for k in range(1, len(mg.levels)):
                    cols.append((x == k).astype(np.float64))
            else:
                if fit:
                    sd = float(x.std())
                    spec.append(("scale", c, float(x.mean()), sd if sd > 0 else 1.0))
                _, _, mean, sd = spec[i]
                cols.append((x - mean) / sd)
        return np.column_stack(cols), spec

    def _make_model_id(self, frame: pl.DataFrame, train_idx: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=8)
        h.update(
            json.dumps(
                [
                    self.target_col,
                    list(self.feature_cols),
                    self.algorithm,
                    self.treatment_col,
                    self.settings,
                    self.config.twin_generation.model_dump(mode="json"),
                ]
            ).encode()
        )
        h.update(np.ascontiguousarray(frame.hash_rows(seed=17).to_numpy()).tobytes())
        h.update(train_idx.tobytes())
        return f"twin-{self.twin_type.value}-{h.hexdigest()}"

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return _predict_with(self.outcome_model, self._trees, X)

    # -----------------------------------------------------------------------------------------------------
    # generation
    # -----------------------------------------------------------------------------------------------------
    def generate(
        self, n: int, constraints: Mapping[str, Any] | None = None, seed: int | None = None
    ) -> TwinPopulation:
        """Draw ``n`` twins from the copula and predict their baseline outcome in one batch.

        Parameters
        ----------
        n
            Number of twins (``twin_id`` is ``0 .. n - 1``).
        constraints
            ``{column: spec}``: a scalar fixes the column, a set/list restricts it to those values, a
            ``(low, high)`` tuple bounds it (inclusive, ``None`` = open). Other columns are drawn
            conditionally on the constrained ones. A constraint with zero probability under the fitted
            marginals raises ``ValueError``.
        seed
            Counter-RNG seed; ``None`` uses ``twin_generation.random_state``. Same seed, same twins.

        Returns
        -------
        TwinPopulation
            Synthesised columns, ``twin_id``, ``baseline_outcome`` and ``baseline_propensity``; carries
            the model id and the outcome model's residual standard deviation.

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> gen = TwinGenerator()
        >>> frame = synthetic.hcp_training_frame(synthetic.hcp_world(2000, months=3))
        >>> _ = gen.train(frame, "brand_share", time_col="month")
        >>> pop = gen.generate(500, constraints={"region": {"west", "midwest"}}, seed=3)
        >>> sorted(set(pop.frame["region"].to_list()))
        ['midwest', 'west']
        """
        self._require_trained()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"`n` must be a positive integer; got {n!r}")
        if seed is None:
            seed = self.config.twin_generation.random_state
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"`seed` must be an integer in [0, 2**63); got {seed!r}")
        n = int(n)
        plan = self._plan(constraints or {})
        d = len(self.marginals)
        outputs = [np.empty(n, dtype=np.float64 if not mg.is_discrete else np.int64) for mg in self.marginals]
        baseline = np.empty(n, dtype=np.float64)
        chunk = self.settings["chunk_size"]
        feat_pos = [self.columns.index(c) for c in self.feature_cols]
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            z = self._latent(start, m, plan, int(seed), d)
            enc = np.empty((m, len(feat_pos) + (1 if self.treatment_col else 0)), dtype=np.float64)
            for j, mg in enumerate(self.marginals):
                if mg.is_discrete:
                    codes = np.searchsorted(mg.thresholds, z[:, j], side="left")
                    if j in plan.allowed_codes:
                        codes = _snap_codes(codes, plan.allowed_codes[j])
                    outputs[j][start : start + m] = codes
                    values = mg.encoded_levels[codes]
                elif j in plan.fixed_values:
                    values = np.full(m, plan.fixed_values[j])
                    outputs[j][start : start + m] = values
                else:
                    values = _continuous_values(mg, z[:, j])
                    if mg.integer:
                        values = np.rint(values)
                    if j in plan.bounds:
                        values = np.clip(values, *plan.bounds[j])
                    outputs[j][start : start + m] = values
                if j in feat_pos:
                    enc[:, feat_pos.index(j)] = values
            if self.treatment_col:
                enc[:, -1] = 0.0  # twins are predicted untreated: the baseline outcome
            baseline[start : start + m] = self._predict(enc)
        frame = self._population_frame(outputs, baseline, n)
        return TwinPopulation(
            frame,
            twin_type=self.twin_type,
            brand=self.brand,
            model_id=self.model_id,
            outcome_residual_sd=self.residual_sd,
            config=self.config,
        )

    def _population_frame(self, outputs: list[np.ndarray], baseline: np.ndarray, n: int) -> pl.DataFrame:
        series = [pl.Series("twin_id", np.arange(n, dtype=np.int64))]
        encoded = {}
        for mg, out in zip(self.marginals, outputs, strict=True):
            if mg.kind == "categorical":
                width = np.uint8 if len(mg.levels) <= 255 else np.uint32
                s = pl.Series(mg.name, out.astype(width)).cat.to(pl.Enum(list(mg.levels)))
            elif mg.kind == "boolean":
                s = pl.Series(mg.name, out.astype(bool))
            elif mg.kind == "discrete":
                s = pl.Series(mg.name, mg.encoded_levels[out]).cast(_polars_dtype(mg.dtype))
            else:
                s = pl.Series(mg.name, out)
                if mg.integer:
                    s = s.cast(_polars_dtype(mg.dtype))
            series.append(s)
            if mg.name in self.feature_cols:
                encoded[mg.name] = mg.encoded_levels[out] if mg.is_discrete else out
        series.append(pl.Series("baseline_outcome", baseline))
        series.append(pl.Series("baseline_propensity", self._baseline_propensity(series, encoded, n)))
        return pl.DataFrame(series)

    def _baseline_propensity(
        self, series: list[pl.Series], encoded: Mapping[str, np.ndarray], n: int
    ) -> np.ndarray:
        if self._propensity is not None:
            out = np.empty(n, dtype=np.float64)
            chunk = self.settings["chunk_size"]
            for start in range(0, n, chunk):
                part = {c: v[start : start + chunk] for c, v in encoded.items()}
                design, _ = self._propensity_design_from(part, self._propensity["spec"])
                out[start : start + chunk] = special.expit(
                    design @ self._propensity["coef"] + self._propensity["intercept"]
                )
            return out
        h = self.config.twin_generation.propensity_heuristic
        defaults = self.config.simulation.missing_value_defaults
        by_name = {s.name: s for s in series}
        decile = (
            by_name["decile"].cast(pl.Float64).to_numpy()
            if "decile" in by_name
            else np.full(n, float(defaults.decile))
        )
        eng = (
            by_name["digital_engagement_score"].to_numpy()
            if "digital_engagement_score" in by_name
            else np.full(n, defaults.digital_engagement_score)
        )
        p = h.intercept + h.per_decile_step * (11.0 - decile) + h.engagement_weight * eng
        return np.clip(p, h.low, h.high)

    def _latent(self, start: int, m: int, plan: _Plan, seed: int, d: int) -> np.ndarray:
        """Latent normal rows ``start .. start + m - 1`` under the plan's constraints."""
        assert self._chol is not None and self.latent_correlation is not None
        z = np.empty((m, d), dtype=np.float64)
        if not plan.fixed and not plan.intervals:
            correlated_normals(seed, _STREAM_LATENT, start, self._chol, z)
            return z
        e = np.empty((m, d), dtype=np.float64)
        correlated_normals(seed, _STREAM_LATENT, start, np.eye(d), e)
        r = self.latent_correlation
        fixed = sorted(plan.fixed)
        trunc = sorted(plan.intervals)
        cond = fixed + trunc
        free = [j for j in range(d) if j not in cond]
        for j in fixed:
            z[:, j] = plan.fixed[j]
        sweeps = self.settings["gibbs_sweeps"] if len(trunc) > 1 else 0
        stride = 2 * (1 + sweeps) * max(1, len(trunc))

        def uniforms(step: int) -> np.ndarray:
            u = np.empty((m, 2 * len(trunc)), dtype=np.float64)
            counter_uniforms(seed, _STREAM_TRUNCATION, start, stride, 2 * step * len(trunc), u)
            return u

        def draw(j: int, mu: np.ndarray, sigma: float, u: np.ndarray, t: int) -> np.ndarray:
            lows, highs = plan.intervals[j]
            return _truncated_normal_union(mu, sigma, lows, highs, u[:, 2 * t], u[:, 2 * t + 1])

        # sequential conditional draws (exact for one truncated column), then Gibbs sweeps for several
        u = uniforms(0)
        for t, j in enumerate(trunc):
            known = fixed + trunc[:t]
            mu, sd = _conditional(r, j, known, z)
            z[:, j] = draw(j, mu, sd, u, t)
        if sweeps:
            prec = np.linalg.inv(r[np.ix_(cond, cond)])
            for step in range(1, sweeps + 1):
                u = uniforms(step)
                for t, j in enumerate(trunc):
                    a = cond.index(j)
                    others = [k for k in range(len(cond)) if k != a]
                    mu = -(z[:, [cond[k] for k in others]] @ prec[a, others]) / prec[a, a]
                    z[:, j] = draw(j, mu, 1.0 / math.sqrt(prec[a, a]), u, t)
        if free:
            r_oo = r[np.ix_(cond, cond)]
            r_uo = r[np.ix_(free, cond)]
            gain = np.linalg.solve(r_oo, r_uo.T).T
            cov = r[np.ix_(free, free)] - gain @ r_uo.T
            chol = np.linalg.cholesky(0.5 * (cov + cov.T) + 1e-12 * np.eye(len(free)))
            z[:, free] = z[:, cond] @ gain.T + e[:, free] @ chol.T
        return z

    def _plan(self, constraints: Mapping[str, Any]) -> _Plan:
        if not isinstance(constraints, Mapping):
            raise ValueError(
                f"`constraints` must be a mapping of column to constraint; got {type(constraints).__name__}"
            )
        fixed: dict[int, float] = {}
        fixed_values: dict[int, float] = {}
        intervals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        allowed: dict[int, np.ndarray] = {}
        bounds: dict[int, tuple[float, float]] = {}
        for name, spec in constraints.items():
            if name not in self.columns:
                raise ValueError(
                    f"cannot constrain {name!r}: it is not a synthesised column; "
                    f"constrainable: {list(self.columns)}"
                )
            j = self.columns.index(name)
            mg = self.marginals[j]
            c = Constraint.coerce(spec)
            if mg.is_discrete:
                codes = _allowed_codes(mg, c)
                allowed[j] = codes
                intervals[j] = _latent_intervals(mg, codes)
            else:
                q = mg.quantiles
                lo_support, hi_support = float(q[0]), float(q[-1])
                if c.kind == "one_of" and len(c.values) == 1:
                    c = Constraint.equal(c.values[0])
                if c.kind == "one_of":
                    raise ValueError(
                        f"constraint on {name!r}: a set of values needs a discrete column; "
                        f"{name!r} is continuous "
                        f"(use a (low, high) range)"
                    )
                if c.kind == "range" and c.low is not None and c.high is not None and c.low == c.high:
                    c = Constraint.equal(c.low)
                if c.kind == "equal":
                    v = _as_float(c.values[0], name)
                    if not lo_support <= v <= hi_support:
                        raise ValueError(
                            f"constraint {name!r} = {v} is outside the observed support "
                            f"[{lo_support}, {hi_support}]"
                            " of the training data (probability 0)"
                        )
                    if mg.integer and v != round(v):
                        raise ValueError(f"constraint {name!r} = {v}: {name!r} holds integers")
                    u = float(np.interp(v, q, mg.grid))
                    fixed[j] = float(special.ndtri(np.clip(u, 1e-9, 1.0 - 1e-9)))
                    fixed_values[j] = v
                    continue
                lo = -np.inf if c.low is None else _as_float(c.low, name)
                hi = np.inf if c.high is None else _as_float(c.high, name)
                if lo > hi:
                    raise ValueError(f"constraint on {name!r}: low ({lo}) must not exceed high ({hi})")
                if mg.integer:
                    lo, hi = math.ceil(lo), math.floor(hi)
                    if lo > hi:
                        raise ValueError(f"constraint on {name!r}: no integer lies in [{c.low}, {c.high}]")
                ulo = 0.0 if lo <= lo_support else float(np.interp(lo, q, mg.grid))
                uhi = 1.0 if hi >= hi_support else float(np.interp(hi, q, mg.grid))
                if hi < lo_support or lo > hi_support or uhi <= ulo:
                    raise ValueError(
                        f"constraint on {name!r}: the range [{c.low}, {c.high}] has probability 0 under the "
                        f"training data (observed support [{lo_support}, {hi_support}])"
                    )
                intervals[j] = (np.array([special.ndtri(ulo)]), np.array([special.ndtri(uhi)]))
                bounds[j] = (max(lo, lo_support), min(hi, hi_support))
        return _Plan(fixed, fixed_values, intervals, allowed, bounds)

    # -----------------------------------------------------------------------------------------------------
    # quality report
    # -----------------------------------------------------------------------------------------------------
    def quality_report(
        self, population: TwinPopulation | pl.DataFrame, reference: Any = None
    ) -> QualityReport:
        """Compare twins with the training data: marginal distances and the largest correlation difference.

        Parameters
        ----------
        population
            Twins (a :class:`TwinPopulation` or its frame) holding the synthesised columns.
        reference
            Optional frame to compare against instead of the training rows (exact two-sample KS). Without
            it, continuous columns are compared with the fitted quantile function (resolution
            ``1 / (quantile_points - 1)``) and correlations with those of the training rows.

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> gen = TwinGenerator()
        >>> frame = synthetic.hcp_training_frame(synthetic.hcp_world(3000, months=3))
        >>> _ = gen.train(frame, "brand_share", time_col="month")
        >>> rep = gen.quality_report(gen.generate(20_000, seed=0))
        >>> rep.max_correlation_difference < 0.1
        True
        """
        self._require_trained()
        frame = population.frame if isinstance(population, TwinPopulation) else _as_polars(population)
        _require_columns(frame, list(self.columns), "population")
        twins = self._encoded_matrix(frame, impute=False)
        ref = None if reference is None else self._encoded_matrix(_as_polars(reference), impute=False)
        distance: dict[str, float] = {}
        metric: dict[str, str] = {}
        freq: dict[str, float] = {}
        for j, mg in enumerate(self.marginals):
            x = twins[:, j]
            x = x[np.isfinite(x)]
            if mg.is_discrete:
                p_ref = mg.probs
                if ref is not None:
                    rc = ref[:, j][np.isfinite(ref[:, j])]
                    p_ref = np.bincount(_code_of(rc, mg), minlength=len(mg.levels))[: len(mg.levels)] / max(
                        rc.size, 1
                    )
                p_twin = np.bincount(_code_of(x, mg), minlength=len(mg.levels))[: len(mg.levels)] / max(
                    x.size, 1
                )
                diff = np.abs(p_twin - p_ref)
                distance[mg.name] = float(0.5 * diff.sum())
                metric[mg.name] = "tv"
                freq[mg.name] = float(diff.max())
            else:
                metric[mg.name] = "ks"
                xs = np.sort(x)
                if ref is not None:
                    from scipy.stats import ks_2samp

                    rx = ref[:, j]
                    distance[mg.name] = float(ks_2samp(xs, rx[np.isfinite(rx)]).statistic)
                else:
                    q, p = mg.quantiles, mg.grid
                    uq = np.unique(q)
                    f_ref = p[np.searchsorted(q, uq, side="right") - 1]
                    f_ref_left = np.concatenate([[0.0], f_ref[:-1]])
                    f_tw = np.searchsorted(xs, uq, side="right") / xs.size
                    f_tw_left = np.searchsorted(xs, uq, side="left") / xs.size
                    distance[mg.name] = float(
                        max(np.abs(f_tw - f_ref).max(), np.abs(f_tw_left - f_ref_left).max())
                    )
        fill = np.array([mg.fill_value for mg in self.marginals])
        twins = np.where(np.isnan(twins), fill, twins)
        twin_corr = _pearson(twins)
        if ref is not None:
            ref_corr = _pearson(np.where(np.isnan(ref), fill, ref))
        else:
            assert self.data_correlation is not None
            ref_corr = self.data_correlation
        diff = np.abs(twin_corr - ref_corr)
        i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
        return QualityReport(
            n_twins=frame.height,
            n_reference=self.n_training_rows if ref is None else ref.shape[0],
            columns=self.columns,
            marginal_distance=MappingProxyType(distance),
            marginal_metric=MappingProxyType(metric),
            max_frequency_difference=MappingProxyType(freq),
            reference_correlation=ref_corr,
            twin_correlation=twin_corr,
            max_correlation_difference=float(diff.max()),
            max_correlation_pair=(self.columns[i], self.columns[j]) if diff.max() > 0 else None,
        )

    # -----------------------------------------------------------------------------------------------------
    # persistence
    # -----------------------------------------------------------------------------------------------------
    def to_artifacts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fitted state as (JSON-ready metadata, estimators): what ``save`` writes and MLflow can log."""
        self._require_trained()
        import sklearn

        assert self.latent_correlation is not None and self.data_correlation is not None
        meta = {
            "format": "twinkernel.twin_generator/1",
            "model_id": self.model_id,
            "twin_type": self.twin_type.value,
            "brand": self.brand,
            "config": self.config.model_dump(mode="json"),
            "settings": self.settings,
            "sklearn_version": sklearn.__version__,
            "target_col": self.target_col,
            "feature_cols": list(self.feature_cols),
            "treatment_col": self.treatment_col,
            "algorithm": self.algorithm,
            "residual_sd": self.residual_sd,
            "n_training_rows": self.n_training_rows,
            "marginals": [m.to_json() for m in self.marginals],
            "latent_correlation": self.latent_correlation.tolist(),
            "data_correlation": self.data_correlation.tolist(),
            "propensity": None
            if self._propensity is None
            else {
                "spec": [list(s) for s in self._propensity["spec"]],
                "coef": self._propensity["coef"].tolist(),
                "intercept": self._propensity["intercept"],
            },
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
        }
        return meta, {"outcome_model": self.outcome_model}

    def save(self, path: str | Path) -> Path:
        """Write the generator to a directory (``generator.json`` + ``models.joblib``); returns the path.

        ``models.joblib`` is a pickle of the scikit-learn estimator: load only files you trust.
        """
        import joblib

        meta, estimators = self.to_artifacts()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        (p / "generator.json").write_text(json.dumps(meta), encoding="utf-8")
        joblib.dump(estimators, p / "models.joblib")
        return p

    @classmethod
    def load(cls, path: str | Path) -> TwinGenerator:
        """Read a generator written by :meth:`save` (same model id, config and fitted state)."""
        import joblib
        import sklearn

        from .config import config_from_mapping

        p = Path(path)
        try:
            meta = json.loads((p / "generator.json").read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read a saved generator at {p}: {exc.strerror or exc}") from None
        if meta.get("format") != "twinkernel.twin_generator/1":
            raise ValueError(f"{p} does not hold a saved TwinGenerator (format {meta.get('format')!r})")
        if meta["sklearn_version"] != sklearn.__version__:
            warnings.warn(
                f"generator saved with scikit-learn {meta['sklearn_version']}, "
                f"loading with {sklearn.__version__}",
                stacklevel=2,
            )
        config = config_from_mapping(meta["config"], source=str(p / "generator.json"))
        gen = cls(meta["twin_type"], meta["brand"], config, **meta["settings"])
        estimators = joblib.load(p / "models.joblib")
        gen.model_id = meta["model_id"]
        gen.target_col = meta["target_col"]
        gen.feature_cols = tuple(meta["feature_cols"])
        gen.treatment_col = meta["treatment_col"]
        gen.algorithm = meta["algorithm"]
        gen.residual_sd = meta["residual_sd"]
        gen.n_training_rows = meta["n_training_rows"]
        gen.marginals = tuple(ColumnMarginal.from_json(m) for m in meta["marginals"])
        gen.latent_correlation = np.asarray(meta["latent_correlation"], dtype=np.float64)
        gen.data_correlation = np.asarray(meta["data_correlation"], dtype=np.float64)
        gen._chol = np.linalg.cholesky(gen.latent_correlation)
        gen.outcome_model = estimators["outcome_model"]
        gen._trees = _compile_trees(gen.outcome_model) if gen.algorithm == "hist_gradient_boosting" else None
        if meta["propensity"] is not None:
            gen._propensity = {
                "spec": [tuple(s) for s in meta["propensity"]["spec"]],
                "coef": np.asarray(meta["propensity"]["coef"], dtype=np.float64),
                "intercept": float(meta["propensity"]["intercept"]),
            }
        if meta["metrics"] is not None:
            m = dict(meta["metrics"])
            m["feature_cols"] = tuple(m["feature_cols"])
            m["cv_scores"] = tuple(m["cv_scores"])
            m["feature_importances"] = MappingProxyType(m["feature_importances"])
            m["feature_importance_std"] = MappingProxyType(m["feature_importance_std"])
            gen.metrics = TwinModelMetrics(**m)
        return gen

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the generator is not trained; call `train` first (or `TwinGenerator.load`)")

    def __repr__(self) -> str:
        return (
            f"TwinGenerator(twin_type={self.twin_type.value!r}, brand={self.brand!r}, "
            f"model_id={self.model_id!r}, "
            f"columns={len(self.marginals)})"
        )


# =========================================================================================================
# helpers
# =========================================================================================================
def _as_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if type(data).__module__.startswith("pandas"):
        return pl.from_pandas(data)
    raise TypeError(f"`data` must be a polars or pandas DataFrame; got {type(data).__name__}")


def _require_columns(frame: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"`{what}`: column(s) {missing} not in the data; available: {frame.columns}")


def _binary(s: pl.Series, name: str) -> np.ndarray:
    x = s.cast(pl.Float64, strict=False).to_numpy()
    if np.isnan(x).any() or not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"treatment column {name!r} must hold only 0/1 (or booleans) without missing values")
    return x


def _coerce_cutoff(cutoff: Any, dtype: pl.DataType) -> Any:
    if isinstance(cutoff, str) and dtype == pl.Date:
        return pl.Series([cutoff]).str.to_date()[0]
    if isinstance(cutoff, str) and dtype == pl.Datetime:
        return pl.Series([cutoff]).str.to_datetime()[0]
    return cutoff


def _as_float(v: Any, name: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"constraint on {name!r} needs a number; got {v!r}") from None


def _polars_dtype(name: str) -> pl.DataType:
    return getattr(pl, name)() if hasattr(pl, name) else pl.Float64()


def _allowed_codes(mg: ColumnMarginal, c: Constraint) -> np.ndarray:
    levels = list(mg.levels)
    if c.kind == "range":
        if mg.kind != "discrete":
            raise ValueError(
                f"constraint on {mg.name!r}: a range needs a numeric column; use a set of labels"
            )
        lo = -np.inf if c.low is None else float(c.low)
        hi = np.inf if c.high is None else float(c.high)
        codes = [k for k, v in enumerate(levels) if lo <= float(v) <= hi and mg.probs[k] > 0]
        if not codes:
            raise ValueError(
                f"constraint on {mg.name!r}: no observed value lies in [{c.low}, {c.high}] "
                f"(observed: {[v for k, v in enumerate(levels) if mg.probs[k] > 0]})"
            )
        return np.asarray(codes, dtype=np.int64)
    if not c.values:
        raise ValueError(f"constraint on {mg.name!r}: the set of allowed values is empty")
    codes = []
    for v in c.values:
        key: Any = v
        if mg.kind == "discrete":
            try:
                key = float(v)
            except (TypeError, ValueError):
                key = None
            matches = [k for k, lv in enumerate(levels) if key is not None and float(lv) == key]
        elif mg.kind == "boolean":
            matches = [
                k for k, lv in enumerate(levels) if isinstance(v, (bool, np.bool_, int)) and bool(v) == lv
            ]
        else:
            matches = [k for k, lv in enumerate(levels) if lv == v]
        if not matches or mg.probs[matches[0]] == 0.0:
            seen = [lv for k, lv in enumerate(levels) if mg.probs[k] > 0]
            raise ValueError(
                f"constraint on {mg.name!r}: value {v!r} never occurs in the training data "
                f"(probability 0); observed: {seen}"
            )
        codes.append(matches[0])
    return np.unique(np.asarray(codes, dtype=np.int64))


def _latent_intervals(mg: ColumnMarginal, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent intervals of the allowed level codes, adjacent ones merged."""
    tau = np.concatenate([[-np.inf], mg.thresholds, [np.inf]])
    lows, highs = [], []
    for k in codes:
        lo, hi = tau[k], tau[k + 1]
        if lows and highs[-1] == lo:
            highs[-1] = hi
        else:
            lows.append(lo)
            highs.append(hi)
    return np.asarray(lows), np.asarray(highs)


def _snap_codes(codes: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Move codes that rounding put just outside the allowed set onto the nearest allowed one."""
    ok = np.isin(codes, allowed)
    if ok.all():
        return codes
    bad = codes[~ok]
    nearest = allowed[np.argmin(np.abs(bad[:, None] - allowed[None, :]), axis=1)]
    codes = codes.copy()
    codes[~ok] = nearest
    return codes


def _conditional(r: np.ndarray, j: int, known: Sequence[int], z: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean (per row) and sd of latent column ``j`` given the columns ``known`` (U marginalised out)."""
    if not known:
        return np.zeros(z.shape[0]), 1.0
    k = list(known)
    w = np.linalg.solve(r[np.ix_(k, k)], r[k, j])
    var = float(r[j, j] - r[j, k] @ w)
    return z[:, k] @ w, math.sqrt(max(var, 1e-12))


def _predict_with(model: Any, trees: tuple[Any, ...] | None, X: np.ndarray) -> np.ndarray:
    """Predict with the compiled tree kernel when available (bit-identical to ``model.predict``)."""
    if trees is not None:
        out = np.empty(X.shape[0], dtype=np.float64)
        tree_ensemble_predict(np.ascontiguousarray(X, dtype=np.float64), *trees, out)
        return out
    return np.asarray(model.predict(X), dtype=np.float64)


def _compile_trees(model: Any) -> tuple[Any, ...] | None:
    """Concatenate a fitted HistGradientBoostingRegressor's trees into flat node arrays for the kernel."""
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
