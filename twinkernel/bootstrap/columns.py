"""Column bookkeeping shared by every resampling scheme.

Column 0 is the overall mean, then the groups of each dimension in order. Rows are also numbered by their
joint cell (one id for the combination of all dimensions), so one pass over the rows serves every column.
Before anything is summed, values are rescaled by an exact power of two (:func:`binary_exponent`), so the
arithmetic never overflows or underflows whatever the scale of the data (1e-300 or 1e300).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinkernel import kernels as _kernels  # noqa: F401  (pins a thread-safe numba threading layer first)
from twinkernel.kernels import bootstrap as _kb


@dataclass(frozen=True)
class Columns:
    """Per-column count, mean, second and third central moment sums, minimum and maximum."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray


def binary_exponent(values: np.ndarray) -> int:
    """``e`` with ``max|values| * 2**-e`` in ``[0.5, 1)`` (0 for all-zero values).

    Dividing by ``2**e`` is exact for normal floats and commutes with every sum, mean and quantile, so an
    interval computed on ``ldexp(values, -e)`` and scaled back by ``2**e`` is bit-identical to one computed
    on ``values`` wherever the latter does not overflow or underflow; for tiny or huge data it is the one
    that does not.
    """
    peak = float(np.max(np.abs(values)))
    return int(np.frexp(peak)[1]) if peak > 0.0 else 0


def column_moments(values: np.ndarray, codes: Sequence[np.ndarray], n_groups: Sequence[int]) -> Columns:
    """Moments of the overall column and of every group of every dimension."""
    parts = [_kb.group_moments(values, np.zeros(values.shape[0], dtype=np.int64), 1)]
    for c, g in zip(codes, n_groups, strict=True):
        parts.append(_kb.group_moments(values, c, int(g)))
    return Columns(*(np.concatenate([p[k] for p in parts]) for k in range(6)))


def joint_cells(
    codes: Sequence[np.ndarray], n_groups: Sequence[int], n: int, max_direct_cells: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """Joint cell id of every row, the number of cells, and each cell's column in every dimension.

    Up to ``max_direct_cells`` (``bootstrap.max_direct_cells``) every combination of groups is a cell;
    above it only the occupied combinations are numbered (the columns, and so the results, are the same).
    """
    if not codes:
        return np.zeros(n, dtype=np.int64), 1, np.zeros((1, 0), dtype=np.int64)
    radices = [int(g) for g in n_groups]
    cells = np.zeros(n, dtype=np.int64)
    for c, g in zip(codes, radices, strict=True):
        cells *= g
        cells += c
    total = math.prod(radices)
    if total <= max_direct_cells:
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


def fold_int(per_cell: np.ndarray, cell_columns: np.ndarray, n_columns: int) -> np.ndarray:
    """Per-column totals of a per-cell integer quantity (column 0 is the sum over all cells)."""
    out = np.zeros(n_columns, dtype=np.int64)
    out[0] = per_cell.sum()
    for d in range(cell_columns.shape[1]):
        np.add.at(out, cell_columns[:, d], per_cell)
    return out
