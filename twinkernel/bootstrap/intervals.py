"""Percentile, basic and BCa intervals from replicate means, for every column at once.

``alpha = (1 - confidence_level) / 2``, ``Q`` the linear-interpolation quantile of the ``B`` replicate
estimates (the rule of :func:`numpy.quantile`):

* percentile: ``(Q(alpha), Q(1 - alpha))``;
* basic: ``(2 theta - Q(1 - alpha), 2 theta - Q(alpha))``;
* BCa: ``(Q(a1), Q(a2))`` with ``a_j = Phi(z0 + (z0 + z_j) / (1 - a (z0 + z_j)))``, ``z_1 = Phi^-1(alpha)``,
  ``z_2 = Phi^-1(1 - alpha)``, bias correction ``z0 = Phi^-1(p)`` where ``p`` is the share of replicates
  below the estimate (ties count one half), and the jackknife acceleration, which for the mean is closed-form:
  ``a = sum((x - mean)**3) / (6 * sum((x - mean)**2) ** 1.5)`` (no O(n^2) leave-one-out work).

Degenerate columns (one value, or all values equal) get a zero-width interval at the estimate and a
warning; empty columns NaN. :func:`column_intervals` runs the whole pipeline (rescale, resample, intervals,
scale back) for :func:`~twinkernel.bootstrap.bootstrap_ci` and :func:`~twinkernel.bootstrap.engine_intervals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from twinkernel.config import BootstrapConfig

from .blb import blb_replicates
from .columns import Columns, binary_exponent, column_moments
from .multinomial import multinomial_replicates
from .poisson import poisson_replicates

Dimension = tuple[str, int, Sequence[Any] | None]
"""``(name, number of groups, labels or None)`` of one segment dimension, for warnings."""


def acceleration(cols: Columns) -> np.ndarray:
    """Closed-form jackknife acceleration of the mean of every column (0 where the column has no spread)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = cols.m3 / (6.0 * cols.m2**1.5)
    return np.where(cols.m2 > 0, a, 0.0)


def quantile_rows(sorted_reps: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantile of each row at its own probability ``p`` (numpy's default rule)."""
    b = sorted_reps.shape[1]
    pos = np.clip(p, 0.0, 1.0) * (b - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, max(b - 2, 0))
    hi = np.minimum(lo + 1, b - 1)
    frac = pos - lo
    rows = np.arange(sorted_reps.shape[0])
    a = sorted_reps[rows, lo]
    return a + frac * (sorted_reps[rows, hi] - a)


def intervals(
    reps: np.ndarray,
    estimate: np.ndarray,
    reference: np.ndarray,
    accel: np.ndarray,
    method: str,
    confidence_level: float,
    tie_tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interval endpoints, standard errors and a 'bias correction clipped' flag for every row of ``reps``.

    BCa counts replicates within ``tie_tolerance * |reference|`` of the reference as ties (one half each).
    """
    alpha = 0.5 * (1.0 - confidence_level)
    n_rows, b = reps.shape
    srt = np.sort(reps, axis=1)
    se = reps.std(axis=1, ddof=1) if b > 1 else np.zeros(n_rows)
    clipped = np.zeros(n_rows, dtype=bool)
    if method == "percentile":
        lo = quantile_rows(srt, np.full(n_rows, alpha))
        hi = quantile_rows(srt, np.full(n_rows, 1.0 - alpha))
    elif method == "basic":
        lo = 2.0 * estimate - quantile_rows(srt, np.full(n_rows, 1.0 - alpha))
        hi = 2.0 * estimate - quantile_rows(srt, np.full(n_rows, alpha))
    else:
        # Replicates within rounding of the estimate are ties (count one half): with few distinct values many
        # replicates equal the estimate, and float rounding alone must not move them to one side.
        tie = np.abs(reference)[:, None] * tie_tolerance
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
        lo = quantile_rows(srt, a1)
        hi = quantile_rows(srt, a2)
    return lo, hi, se, clipped


def describe(indices: np.ndarray, labels: Sequence[Any] | None, limit: int = 8) -> str:
    """The first ``limit`` groups of ``indices`` by label (or index), and how many more there are."""
    shown = [repr(labels[i]) if labels is not None else str(int(i)) for i in indices[:limit]]
    more = f" and {indices.shape[0] - limit} more" if indices.shape[0] > limit else ""
    return ", ".join(shown) + more


@dataclass(frozen=True)
class ColumnIntervals:
    """Intervals of every column, in the units of the data (scaled back)."""

    lower: np.ndarray
    upper: np.ndarray
    standard_error: np.ndarray
    estimate: np.ndarray
    count: np.ndarray
    warnings: tuple[str, ...]


def column_intervals(
    values: np.ndarray,
    codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    *,
    resampling: str,
    method: str,
    n_resamples: int,
    confidence_level: float,
    seed: int,
    dims: Sequence[Dimension],
    settings: BootstrapConfig,
    report_empty: bool = True,
) -> ColumnIntervals:
    """Rescale by a power of two, resample, build intervals for every column, scale back, describe.

    ``values`` are finite float64; ``codes`` one int64 array per dimension (already validated).
    """
    exponent = binary_exponent(values)
    scaled = np.ldexp(values, -exponent)
    cols = column_moments(scaled, codes, n_groups)
    if resampling == "multinomial":
        reps, ref = multinomial_replicates(scaled, codes, n_groups, seed, n_resamples)
    elif resampling == "poisson":
        reps, ref = poisson_replicates(
            scaled,
            codes,
            n_groups,
            seed,
            n_resamples,
            quads_per_task=settings.poisson_quads_per_task,
            max_direct_cells=settings.max_direct_cells,
        )
    else:
        reps, ref = blb_replicates(
            scaled,
            codes,
            n_groups,
            seed,
            n_resamples,
            blb=settings.blb,
            max_direct_cells=settings.max_direct_cells,
        )
    estimate = cols.mean
    reference = np.where(np.isnan(ref), estimate, ref)
    lo, hi, se, clipped = intervals(
        reps, estimate, reference, acceleration(cols), method, confidence_level, settings.bca_tie_tolerance
    )
    empty = cols.count == 0
    degenerate = ~empty & ((cols.count < 2) | (cols.vmin == cols.vmax))
    lo = np.where(empty, np.nan, np.where(degenerate, estimate, lo))
    hi = np.where(empty, np.nan, np.where(degenerate, estimate, hi))
    se = np.where(empty, np.nan, np.where(degenerate, 0.0, se))
    lo, hi, se, estimate = (np.ldexp(a, exponent) for a in (lo, hi, se, estimate))
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
                messages.append(f"{idx.shape[0]} group(s) of {name} with {what}: {describe(idx, labels)}")
        start += g
    return ColumnIntervals(lo, hi, se, estimate, cols.count, tuple(messages))
