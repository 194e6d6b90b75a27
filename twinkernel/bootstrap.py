"""Bootstrap confidence intervals for a mean and for the mean of every segment.

:func:`bootstrap_ci` is the public entry point (validate, resample with the kernels in
:mod:`twinkernel.kernels.bootstrap`, build a frozen :class:`BootstrapResult`); :func:`engine_intervals` is
the entry point of the simulation engine (the ATE and all segment dimensions in one pass).

Intervals (``alpha = (1 - confidence_level) / 2``, ``Q`` the linear-interpolation quantile of the ``B``
replicate estimates, the same rule as :func:`numpy.quantile`):

* percentile: ``(Q(alpha), Q(1 - alpha))``;
* basic: ``(2 theta - Q(1 - alpha), 2 theta - Q(alpha))``;
* BCa: ``(Q(a1), Q(a2))`` with ``a_j = Phi(z0 + (z0 + z_j) / (1 - a (z0 + z_j)))``, ``z_1 = Phi^-1(alpha)``,
  ``z_2 = Phi^-1(1 - alpha)``, bias correction ``z0 = Phi^-1(p)`` where ``p`` is the share of replicates
  below the estimate (ties count one half), and the jackknife acceleration, which for the mean is closed-form:
  ``a = sum((x - mean)**3) / (6 * sum((x - mean)**2) ** 1.5)`` (no O(n^2) leave-one-out work).

Degenerate input (one observation, or all values equal) gives a zero-width interval at the estimate and a
warning, never NaN or an exception. See ``docs/bootstrap.md`` for the resampling schemes and measurements.
"""

from __future__ import annotations

import functools
import itertools
import math
import secrets
import warnings as _warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from twinkernel import kernels as _kernels  # noqa: F401  (pins a thread-safe numba threading layer first)
from twinkernel.kernels import bootstrap as _kb
from twinkernel.kernels._rng import STREAM_BOOTSTRAP, STREAM_BOOTSTRAP_BLB, key_for, random_u64

METHODS = ("percentile", "basic", "bca")
"""Interval methods accepted by :func:`bootstrap_ci` and :func:`engine_intervals`."""

RESAMPLING = ("multinomial", "poisson", "blb")
"""Resampling schemes accepted by :func:`bootstrap_ci`."""

BLB_GAMMA = 0.7
"""Bag of Little Bootstraps: a group of ``m`` units is subsampled to about ``max(m**gamma, min_subset)``
(``gamma = BLB_GAMMA``; rounded to a power-of-two keep rate)."""

BLB_MIN_SUBSET = 1000
"""Bag of Little Bootstraps: groups smaller than this are kept whole (plain Poisson bootstrap)."""

BLB_SUBSETS = 10
"""Bag of Little Bootstraps: number of subsets ``s``; each gets ``ceil(n_resamples / s)`` resamples."""

_QUADS_PER_TASK = 8
_GROUP_KEY_INDEX = 0xFFFFFFFFFFFFFFFF  # counter reserved for the stratified (per-group) multinomial key
_MAX_DIRECT_CELLS = 1 << 16


# Constant lookup tables, built once per process (the BLB tables take ~30 ms to build).
_poisson1_table = functools.lru_cache(maxsize=1)(_kb.poisson1_table)
_poisson_cdf_tables = functools.lru_cache(maxsize=1)(_kb.poisson_cdf_tables)


class BootstrapWarning(UserWarning):
    """A bootstrap interval was degenerate (zero width) or needed a correction; details in the message."""


@dataclass(frozen=True)
class BootstrapResult:
    """Result of :func:`bootstrap_ci` (frozen; fields are only ever added at the end).

    Attributes
    ----------
    confidence_interval : tuple[float, float]
        ``(low, high)`` for the mean of all values.
    standard_error : float
        Standard deviation (``ddof=1``) of the bootstrap replicates of the mean.
    estimate : float
        The sample mean.
    method, resampling : str
        Interval method and resampling scheme used.
    n_resamples : int
        Replicates requested (BLB uses ``ceil(n_resamples / s) * s``).
    seed : int
        The seed used (drawn with :func:`secrets.randbits` when none was given).
    confidence_level : float
        Nominal coverage.
    n : int
        Number of values.
    group_labels : tuple or None
        Group label of each position of the per-group arrays (``None`` without ``groups``).
    group_estimates, group_ci_low, group_ci_high, group_standard_errors : numpy.ndarray or None
        Per-group mean, interval and standard error (NaN only for a group with no values).
    group_sizes : numpy.ndarray or None
        Number of values in each group.
    warnings : tuple[str, ...]
        Degenerate or corrected intervals, in words.
    """

    confidence_interval: tuple[float, float]
    standard_error: float
    estimate: float
    method: str
    resampling: str
    n_resamples: int
    seed: int
    confidence_level: float
    n: int
    group_labels: tuple[Any, ...] | None = None
    group_estimates: np.ndarray | None = None
    group_ci_low: np.ndarray | None = None
    group_ci_high: np.ndarray | None = None
    group_standard_errors: np.ndarray | None = None
    group_sizes: np.ndarray | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineIntervals:
    """Bootstrap intervals for the ATE and every segment of every dimension (see :func:`engine_intervals`).

    Attributes
    ----------
    ci_low, ci_high, standard_error : float
        Interval and bootstrap standard error of the overall mean.
    resampling : str
        ``"poisson"`` or ``"blb"``.
    group_ci_low, group_ci_high : tuple[numpy.ndarray, ...]
        One float64 array per dimension, of length ``n_groups[k]`` (NaN only for an empty group).
    warnings : tuple[str, ...]
        Degenerate or corrected intervals, in words.
    group_standard_errors : tuple[numpy.ndarray, ...]
        Bootstrap standard error of each segment mean, laid out like ``group_ci_low``.
    """

    ci_low: float
    ci_high: float
    standard_error: float
    resampling: str
    group_ci_low: tuple[np.ndarray, ...]
    group_ci_high: tuple[np.ndarray, ...]
    warnings: tuple[str, ...]
    group_standard_errors: tuple[np.ndarray, ...] = ()


# --------------------------------------------------------------------------------------------------------
# Column bookkeeping: column 0 is the overall mean, then the groups of each dimension in order.


@dataclass(frozen=True)
class _Columns:
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray


def _column_moments(values: np.ndarray, codes: Sequence[np.ndarray], n_groups: Sequence[int]) -> _Columns:
    parts = [_kb.group_moments(values, np.zeros(values.shape[0], dtype=np.int64), 1)]
    for c, g in zip(codes, n_groups, strict=True):
        parts.append(_kb.group_moments(values, c, int(g)))
    return _Columns(*(np.concatenate([p[k] for p in parts]) for k in range(6)))


def _acceleration(cols: _Columns) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = cols.m3 / (6.0 * cols.m2**1.5)
    return np.where(cols.m2 > 0, a, 0.0)


def _joint_cells(
    codes: Sequence[np.ndarray], n_groups: Sequence[int], n: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """Joint cell id of every row, the number of cells, and each cell's column in every dimension."""
    if not codes:
        return np.zeros(n, dtype=np.int64), 1, np.zeros((1, 0), dtype=np.int64)
    radices = [int(g) for g in n_groups]
    cells = np.zeros(n, dtype=np.int64)
    for c, g in zip(codes, radices, strict=True):
        cells *= g
        cells += c
    total = math.prod(radices)
    if total <= _MAX_DIRECT_CELLS:
        keys = np.arange(total, dtype=np.int64)
        n_cells = total
    else:  # sparse: number only the occupied cells
        keys, cells = np.unique(cells, return_inverse=True)
        cells = cells.astype(np.int64)
        n_cells = keys.shape[0]
    cell_columns = np.empty((n_cells, len(radices)), dtype=np.int64)
    rem = keys.copy()
    first = 1 + np.concatenate([[0], np.cumsum(radices)[:-1]]).astype(np.int64)
    for d in range(len(radices) - 1, -1, -1):
        cell_columns[:, d] = rem % radices[d] + first[d]
        rem //= radices[d]
    return cells, n_cells, cell_columns


def _quantization(values: np.ndarray, n: int) -> tuple[float, float]:
    """``(center, scale)`` of the fixed-point grid: the range maps onto ``[-2**P, 2**P]``.

    ``P = min(52, 56 - bit_length(n))`` keeps every weighted sum below ``2**63`` (Poisson(1) weights are at
    most 8, so ``sum(w * |q|) <= 8 n 2**P``). The grid is a pure function of the global minimum, maximum and
    ``n``, so every partition of the data quantises identically.
    """
    lo = float(values.min())
    hi = float(values.max())
    center = 0.5 * lo + 0.5 * hi
    half = 0.5 * hi - 0.5 * lo
    bits = min(52, 56 - int(n).bit_length())
    scale = half / 2.0**bits if half > 0 else 1.0
    return center, scale


def _key(seed: int, stream: int) -> np.uint64:
    return np.uint64(key_for(np.uint64(seed), np.uint64(stream)))


def _fold_int(per_cell: np.ndarray, cell_columns: np.ndarray, n_columns: int) -> np.ndarray:
    out = np.zeros(n_columns, dtype=np.int64)
    out[0] = per_cell.sum()
    for d in range(cell_columns.shape[1]):
        np.add.at(out, cell_columns[:, d], per_cell)
    return out


def _poisson_replicates(
    values: np.ndarray,
    codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    seed: int,
    n_resamples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Replicate means ``(C, B)`` and the quantised column means (the BCa reference) under Poisson weights."""
    n = values.shape[0]
    center, scale = _quantization(values, n)
    q = _kb.quantize(values, center, scale)
    cells, n_cells, cell_columns = _joint_cells(codes, n_groups, n)
    n_columns = 1 + int(sum(int(g) for g in n_groups))
    order, starts = _kb.sort_by_cell(cells, n_cells)
    qs, ms = _kb.gather_sorted(q, order, 0)
    sums, weights = _kb.poisson_sums(
        qs,
        ms,
        starts,
        cell_columns,
        n_columns,
        _key(seed, STREAM_BOOTSTRAP),
        n_resamples,
        _poisson1_table(),
        _QUADS_PER_TASK,
    )
    qsum = _fold_int(_kb.cell_int_sums(q, cells, n_cells), cell_columns, n_columns)
    counts = _fold_int(np.bincount(cells, minlength=n_cells).astype(np.int64), cell_columns, n_columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = center + scale * (qsum / counts)
        reps = center + scale * (sums.T / weights.T)
    # A replicate in which a group drew total weight 0 (probability exp(-m)) is set to the group's centre.
    reps = np.where(weights.T > 0, reps, ref[:, None])
    return reps, ref


def _blb_levels(
    codes: Sequence[np.ndarray], n_groups: Sequence[int], n: int, gamma: float, min_subset: int
) -> np.ndarray:
    """Subsampling level of every row: the smallest level among the columns (overall, its groups) it is in."""

    def level(m: np.ndarray) -> np.ndarray:
        m = np.maximum(m.astype(np.float64), 1.0)
        target = np.maximum(m**gamma, float(min_subset))
        lv = np.rint(np.log2(np.maximum(m / target, 1.0)))
        return np.clip(lv, 0, _kb.MAX_BLB_LEVEL).astype(np.int64)

    levels = np.full(n, int(level(np.array([n]))[0]), dtype=np.int64)
    for c, g in zip(codes, n_groups, strict=True):
        sizes = np.bincount(c, minlength=int(g))
        np.minimum(levels, level(sizes)[c], out=levels)
    return levels


def _blb_replicates(
    values: np.ndarray,
    codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    seed: int,
    n_resamples: int,
    gamma: float = BLB_GAMMA,
    n_subsets: int = BLB_SUBSETS,
    min_subset: int = BLB_MIN_SUBSET,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled, re-centred BLB replicates ``(C, s * r)`` and the quantised column means."""
    n = values.shape[0]
    center, scale = _quantization(values, n)
    q = _kb.quantize(values, center, scale)
    cells, n_cells, cell_columns = _joint_cells(codes, n_groups, n)
    n_columns = 1 + int(sum(int(g) for g in n_groups))
    _, ms = _kb.gather_sorted(q, np.arange(n, dtype=np.int64), 0)
    levels = _blb_levels(codes, n_groups, n, gamma, min_subset)
    per_subset = -(-n_resamples // n_subsets)
    thresholds, guide, offsets, guide_offsets = _poisson_cdf_tables()
    sums, weights, csum, cweight, _ = _kb.blb_sums(
        q,
        ms,
        levels,
        cells,
        cell_columns,
        n_columns,
        n_cells,
        _key(seed, STREAM_BOOTSTRAP_BLB),
        n_subsets,
        per_subset,
        thresholds,
        guide,
        offsets,
        guide_offsets,
    )
    qsum = _fold_int(_kb.cell_int_sums(q, cells, n_cells), cell_columns, n_columns)
    counts = _fold_int(np.bincount(cells, minlength=n_cells).astype(np.int64), cell_columns, n_columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = center + scale * (qsum / counts)
        centre = scale * (csum / cweight)  # (s, C), relative to `center`
        rep = scale * (sums / weights)  # (s * r, C)
    centre = np.where(cweight > 0, centre, 0.0)
    offset = rep - np.repeat(centre, per_subset, axis=0)
    # The subsets' centred bootstrap distributions are averaged (pooled) and placed at the full-data mean.
    offset = np.where(weights > 0, offset, 0.0)
    return ref[:, None] + offset.T, ref


def _multinomial_replicates(
    values: np.ndarray, codes: Sequence[np.ndarray], n_groups: Sequence[int], seed: int, n_resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Replicate means: the whole vector, then each dimension stratified by group (resampled within)."""
    key = _key(seed, STREAM_BOOTSTRAP)
    n = values.shape[0]
    rows = [_kb.multinomial_means(values, np.array([0, n], dtype=np.int64), key, n_resamples)]
    for d, (c, g) in enumerate(zip(codes, n_groups, strict=True)):
        order = np.argsort(c, kind="stable")
        starts = np.zeros(int(g) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(np.bincount(c, minlength=int(g)))
        gkey = np.uint64(random_u64(key, np.uint64(_GROUP_KEY_INDEX - d)))
        rows.append(_kb.multinomial_means(np.ascontiguousarray(values[order]), starts, gkey, n_resamples))
    reps = np.concatenate(rows, axis=0)
    return reps, np.full(reps.shape[0], np.nan)


def _quantile_rows(sorted_reps: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantile of each row at its own probability ``p`` (numpy's default rule)."""
    b = sorted_reps.shape[1]
    pos = np.clip(p, 0.0, 1.0) * (b - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, max(b - 2, 0))
    hi = np.minimum(lo + 1, b - 1)
    frac = pos - lo
    rows = np.arange(sorted_reps.shape[0])
    a = sorted_reps[rows, lo]
    return a + frac * (sorted_reps[rows, hi] - a)


def _intervals(
    reps: np.ndarray,
    estimate: np.ndarray,
    reference: np.ndarray,
    accel: np.ndarray,
    method: str,
    confidence_level: float,
    tie_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interval endpoints, standard errors and a 'bias correction clipped' flag for every row of ``reps``.

    ``tie_scale`` (per row, e.g. ``|estimate| + range``) sets the tie tolerance ``1e-12 * tie_scale`` of the
    BCa bias correction; ``None`` means ``|reference|``.
    """
    if tie_scale is None:
        tie_scale = np.abs(reference)
    alpha = 0.5 * (1.0 - confidence_level)
    n_rows, b = reps.shape
    srt = np.sort(reps, axis=1)
    se = reps.std(axis=1, ddof=1) if b > 1 else np.zeros(n_rows)
    clipped = np.zeros(n_rows, dtype=bool)
    if method == "percentile":
        lo = _quantile_rows(srt, np.full(n_rows, alpha))
        hi = _quantile_rows(srt, np.full(n_rows, 1.0 - alpha))
    elif method == "basic":
        lo = 2.0 * estimate - _quantile_rows(srt, np.full(n_rows, 1.0 - alpha))
        hi = 2.0 * estimate - _quantile_rows(srt, np.full(n_rows, alpha))
    else:
        # Replicates within rounding of the estimate are ties (count one half): with few distinct values many
        # replicates equal the estimate, and float rounding alone must not move them to one side.
        tie = tie_scale[:, None] * 1e-12
        below = (reps < reference[:, None] - tie).sum(axis=1) + 0.5 * (
            np.abs(reps - reference[:, None]) <= tie
        ).sum(axis=1)
        prop = below / b
        clipped = (prop <= 0.0) | (prop >= 1.0)
        z0 = ndtri(np.clip(prop, 0.5 / b, 1.0 - 0.5 / b))
        z_lo = ndtri(alpha)
        z_hi = ndtri(1.0 - alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            a1 = ndtr(z0 + (z0 + z_lo) / (1.0 - accel * (z0 + z_lo)))
            a2 = ndtr(z0 + (z0 + z_hi) / (1.0 - accel * (z0 + z_hi)))
        # Past the pole of the BCa map (1 - a (z0 + z) <= 0) the level is taken at the matching extreme.
        a1 = np.where(1.0 - accel * (z0 + z_lo) > 0, a1, 0.0)
        a2 = np.where(1.0 - accel * (z0 + z_hi) > 0, a2, 1.0)
        lo = _quantile_rows(srt, a1)
        hi = _quantile_rows(srt, a2)
    return lo, hi, se, clipped


def _describe(indices: np.ndarray, labels: Sequence[Any] | None, limit: int = 8) -> str:
    shown = [repr(labels[i]) if labels is not None else str(int(i)) for i in indices[:limit]]
    more = f" and {indices.shape[0] - limit} more" if indices.shape[0] > limit else ""
    return ", ".join(shown) + more


def _finish(
    reps: np.ndarray,
    reference: np.ndarray,
    cols: _Columns,
    method: str,
    confidence_level: float,
    dims: Sequence[tuple[str, int, Sequence[Any] | None]],
    report_empty: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Intervals for every column, with degenerate and empty columns handled and described in words."""
    estimate = cols.mean
    reference = np.where(np.isnan(reference), estimate, reference)
    lo, hi, se, clipped = _intervals(reps, estimate, reference, _acceleration(cols), method, confidence_level)
    empty = cols.count == 0
    degenerate = ~empty & ((cols.count < 2) | (cols.vmin == cols.vmax))
    lo = np.where(degenerate, estimate, lo)
    hi = np.where(degenerate, estimate, hi)
    se = np.where(degenerate, 0.0, se)
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    se = np.where(empty, np.nan, se)
    messages: list[str] = []
    if degenerate[0]:
        why = "a single value" if cols.count[0] < 2 else "all values equal"
        messages.append(
            f"degenerate input ({why}): zero-width interval at the estimate {float(estimate[0])!r}"
        )
    elif clipped[0]:
        messages.append("BCa bias correction clipped: every replicate fell on one side of the estimate")
    start = 1
    for name, g, labels in dims:
        sl = slice(start, start + g)
        for mask, what in (
            (degenerate[sl], "fewer than two distinct values (zero-width interval)"),
            (empty[sl] & report_empty, "no values (interval is NaN)"),
            (clipped[sl] & ~degenerate[sl] & ~empty[sl], "a clipped BCa bias correction"),
        ):
            idx = np.flatnonzero(mask)
            if idx.shape[0]:
                messages.append(f"{idx.shape[0]} group(s) of {name} with {what}: {_describe(idx, labels)}")
        start += g
    return lo, hi, se, messages


# --------------------------------------------------------------------------------------------------------
# Boundary validation.


def _as_values(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`values` must be numeric; could not convert to float64 ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"`values` must be 1-D; got an array with shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("`values` must not be empty; got 0 values")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(arr[first]) else "an infinite value"
        raise ValueError(
            f"`values` must be finite; found {int(bad.sum())} NaN or infinite value(s), "
            f"{kind} at index {first}"
        )
    return np.ascontiguousarray(arr)


def _as_groups(groups: Any, n: int) -> tuple[np.ndarray, int, tuple[Any, ...]]:
    """Integer codes ``0..G-1``, ``G`` and the labels of a groups argument (codes, strings, categoricals)."""
    labels: tuple[Any, ...] | None = None
    codes: np.ndarray
    if hasattr(groups, "cat") and hasattr(groups.cat, "codes"):  # pandas categorical
        codes = np.asarray(groups.cat.codes, dtype=np.int64)
        labels = tuple(groups.cat.categories)
        if (codes < 0).any():
            raise ValueError("`groups` must not contain missing values; found a null in a pandas categorical")
    else:
        if hasattr(groups, "null_count") and groups.null_count() > 0:  # polars Series
            raise ValueError(f"`groups` must not contain nulls; found {groups.null_count()}")
        if hasattr(groups, "to_numpy") and not isinstance(groups, np.ndarray):
            if hasattr(groups, "dtype") and str(groups.dtype).startswith(("Categorical", "Enum")):
                groups = groups.cast(str)
            groups = groups.to_numpy()
        arr = np.asarray(groups)
        if arr.ndim != 1:
            raise ValueError(f"`groups` must be 1-D; got an array with shape {arr.shape}")
        if arr.dtype.kind in "iub":
            codes = arr.astype(np.int64)
            if codes.shape[0] and codes.min() < 0:
                raise ValueError(
                    f"`groups` integer codes must be >= 0; got {int(codes.min())} at index "
                    f"{int(np.argmin(codes))}"
                )
        else:
            if arr.dtype.kind == "f" and np.isnan(arr).any():
                raise ValueError("`groups` must not contain NaN")
            if arr.dtype.kind == "O" and any(v is None for v in arr):
                raise ValueError("`groups` must not contain None")
            uniq, codes = np.unique(arr, return_inverse=True)
            codes = codes.astype(np.int64).reshape(-1)
            labels = tuple(uniq.tolist())
    if codes.shape[0] != n:
        raise ValueError(f"`groups` must have the same length as `values` ({n}); got {codes.shape[0]}")
    n_groups = len(labels) if labels is not None else (int(codes.max()) + 1 if n else 0)
    if labels is None:
        labels = tuple(range(n_groups))
    return np.ascontiguousarray(codes), n_groups, labels


def _check_options(method: Any, n_resamples: Any, confidence_level: Any) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 2:
        raise ValueError(f"`n_resamples` must be an integer >= 2; got {n_resamples!r}")
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, int | float | np.floating | np.integer)
        or not 0.0 < float(confidence_level) < 1.0
    ):
        raise ValueError(
            f"`confidence_level` must be a number strictly between 0 and 1; got {confidence_level!r}"
        )
    return method.lower()


def _check_seed(seed: Any) -> int:
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"`seed` must be None or an integer in [0, 2**64); got {seed!r}")
    return int(seed)


# --------------------------------------------------------------------------------------------------------
# Public functions.


def bootstrap_ci(
    values: Any,
    groups: Any = None,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "bca",
    resampling: str = "multinomial",
    seed: int | None = None,
) -> BootstrapResult:
    """Bootstrap confidence interval for the mean of ``values`` and, optionally, of every group.

    Parameters
    ----------
    values : array_like
        Finite numbers, 1-D (NumPy array, list, Polars or pandas Series).
    groups : array_like, optional
        Group of each value: integer codes ``0 .. G-1`` (any integer dtype), or labels (strings, Polars
        Enum/Categorical, pandas categorical) that are factorised. Each group gets its own interval.
    n_resamples : int, default 2000
        Bootstrap replicates ``B`` (at least 2).
    confidence_level : float, default 0.95
        Nominal coverage, strictly between 0 and 1.
    method : {"bca", "percentile", "basic"}
        Interval method.
    resampling : {"multinomial", "poisson", "blb"}
        ``"multinomial"``: exact resampling with replacement (groups resampled within themselves);
        ``"poisson"``: Poisson(1) weights, a pure function of (seed, replicate, row) (groups get the same
        weights as the overall mean, one pass); ``"blb"``: Bag of Little Bootstraps, for very large ``n``.
    seed : int, optional
        Seed of the counter-based generator; ``None`` draws one with :func:`secrets.randbits` and records it
        in the result.

    Returns
    -------
    BootstrapResult
        Interval, standard error and estimate (and per-group arrays with ``groups``).

    Raises
    ------
    ValueError
        Empty, non-1-D, NaN or infinite ``values``; bad ``groups``, ``method``, ``resampling``,
        ``n_resamples``, ``confidence_level`` or ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).gamma(2.0, size=500)
    >>> res = bootstrap_ci(x, n_resamples=1000, seed=1)
    >>> res.method, res.n_resamples
    ('bca', 1000)
    >>> bool(res.confidence_interval[0] < x.mean() < res.confidence_interval[1])
    True
    """
    arr = _as_values(values)
    method = _check_options(method, n_resamples, confidence_level)
    if not isinstance(resampling, str) or resampling.lower() not in RESAMPLING:
        raise ValueError(f"`resampling` must be one of {', '.join(RESAMPLING)}; got {resampling!r}")
    resampling = resampling.lower()
    seed = _check_seed(seed)
    n_resamples = int(n_resamples)
    confidence_level = float(confidence_level)
    codes: list[np.ndarray] = []
    n_groups: list[int] = []
    labels: tuple[Any, ...] | None = None
    if groups is not None:
        c, g, labels = _as_groups(groups, arr.shape[0])
        codes, n_groups = [c], [g]

    cols = _column_moments(arr, codes, n_groups)
    if resampling == "multinomial":
        reps, ref = _multinomial_replicates(arr, codes, n_groups, seed, n_resamples)
    elif resampling == "poisson":
        reps, ref = _poisson_replicates(arr, codes, n_groups, seed, n_resamples)
    else:
        reps, ref = _blb_replicates(arr, codes, n_groups, seed, n_resamples)
    dims = [("groups", n_groups[0], labels)] if codes else []
    lo, hi, se, messages = _finish(reps, ref, cols, method, confidence_level, dims)
    for m in messages:
        _warnings.warn(m, BootstrapWarning, stacklevel=2)
    extra: dict[str, Any] = {}
    if codes:
        extra = {
            "group_labels": labels,
            "group_estimates": cols.mean[1:].copy(),
            "group_ci_low": lo[1:].copy(),
            "group_ci_high": hi[1:].copy(),
            "group_standard_errors": se[1:].copy(),
            "group_sizes": cols.count[1:].copy(),
        }
    return BootstrapResult(
        confidence_interval=(float(lo[0]), float(hi[0])),
        standard_error=float(se[0]),
        estimate=float(cols.mean[0]),
        method=method,
        resampling=resampling,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
        n=int(arr.shape[0]),
        warnings=tuple(messages),
        **extra,
    )


def engine_intervals(
    effects: np.ndarray,
    group_codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    *,
    method: str,
    n_resamples: int,
    confidence_level: float,
    seed: int,
    blb_min_n: int,
    dimension_names: Sequence[str] | None = None,
    dimension_labels: Sequence[Sequence[Any]] | None = None,
    report_empty: bool = True,
) -> EngineIntervals:
    """Bootstrap intervals for the mean effect and every segment of every dimension, in one pass.

    Every replicate gives each twin one Poisson(1) weight (a pure function of seed, replicate and the
    twin's row), and the same weight counts towards the overall mean and towards each of the twin's
    segments; so segment totals are random, as they are when twins are resampled from the population
    (no stratification). With ``len(effects) >= blb_min_n`` the Bag of Little Bootstraps is used instead
    (segments smaller than ``BLB_MIN_SUBSET`` are kept whole, i.e. plain Poisson).

    Parameters
    ----------
    effects : numpy.ndarray
        float64, 1-D, finite simulated per-twin effects (may be read-only).
    group_codes : sequence of numpy.ndarray
        One integer array per segment dimension, codes ``0 .. n_groups[k] - 1``.
    n_groups : sequence of int
        Number of segments of each dimension.
    method : {"percentile", "basic", "bca"}
        Interval method.
    n_resamples : int
        Replicates ``B``.
    confidence_level : float
        Nominal coverage in (0, 1).
    seed : int
        Seed of the counter-based generator.
    blb_min_n : int
        Use the Bag of Little Bootstraps when ``len(effects) >= blb_min_n``.
    dimension_names, dimension_labels : optional
        Names of the dimensions and labels of their segments, used in warnings.
    report_empty : bool
        Warn about segments with no values (the engine leaves those out anyway, so it passes False).

    Returns
    -------
    EngineIntervals
        Overall interval and standard error, per-dimension segment intervals (NaN for empty segments) and
        warnings for degenerate segments.
    """
    method = _check_options(method, n_resamples, confidence_level)
    seed = _check_seed(seed)
    arr = np.ascontiguousarray(effects, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"`effects` must be a non-empty 1-D array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        first = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"`effects` must be finite; found NaN or an infinite value at index {first}")
    if len(group_codes) != len(n_groups):
        raise ValueError(
            "`group_codes` and `n_groups` must have the same length; "
            f"got {len(group_codes)} and {len(n_groups)}"
        )
    codes = []
    for k, (c, g) in enumerate(zip(group_codes, n_groups, strict=True)):
        c = np.ascontiguousarray(c, dtype=np.int64)
        if c.shape != arr.shape:
            raise ValueError(f"`group_codes[{k}]` must have length {arr.shape[0]}; got shape {c.shape}")
        if c.shape[0] and (c.min() < 0 or c.max() >= int(g)):
            raise ValueError(f"`group_codes[{k}]` must lie in [0, {int(g)}); got [{c.min()}, {c.max()}]")
        codes.append(c)
    n_groups = [int(g) for g in n_groups]
    resampling = "blb" if arr.shape[0] >= blb_min_n else "poisson"
    cols = _column_moments(arr, codes, n_groups)
    if resampling == "blb":
        reps, ref = _blb_replicates(arr, codes, n_groups, seed, int(n_resamples))
    else:
        reps, ref = _poisson_replicates(arr, codes, n_groups, seed, int(n_resamples))
    names = (
        list(dimension_names)
        if dimension_names is not None
        else [f"dimension {k}" for k in range(len(n_groups))]
    )
    labels = list(dimension_labels) if dimension_labels is not None else [None] * len(n_groups)
    dims = [(names[k], g, labels[k]) for k, g in enumerate(n_groups)]
    lo, hi, se, messages = _finish(reps, ref, cols, method, float(confidence_level), dims, report_empty)
    bounds = np.cumsum([1, *n_groups])
    return EngineIntervals(
        ci_low=float(lo[0]),
        ci_high=float(hi[0]),
        standard_error=float(se[0]),
        resampling=resampling,
        group_ci_low=tuple(lo[a:b].copy() for a, b in itertools.pairwise(bounds)),
        group_ci_high=tuple(hi[a:b].copy() for a, b in itertools.pairwise(bounds)),
        warnings=tuple(messages),
        group_standard_errors=tuple(se[a:b].copy() for a, b in itertools.pairwise(bounds)),
    )


__all__ = [
    "BLB_GAMMA",
    "BLB_MIN_SUBSET",
    "BLB_SUBSETS",
    "METHODS",
    "RESAMPLING",
    "BootstrapResult",
    "BootstrapWarning",
    "EngineIntervals",
    "bootstrap_ci",
    "engine_intervals",
]
