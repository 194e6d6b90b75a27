"""Poisson(1)-weight resampling on a fixed-point grid (exact integer sums, partition-independent)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from twinkernel.kernels import bootstrap as _kb
from twinkernel.kernels._rng import STREAM_BOOTSTRAP, key_for

from .columns import fold_int, joint_cells

# Constant lookup tables, built once per process (the BLB tables take ~30 ms to build).
poisson1_table = functools.lru_cache(maxsize=1)(_kb.poisson1_table)
poisson_cdf_tables = functools.lru_cache(maxsize=1)(_kb.poisson_cdf_tables)


def rng_key(seed: int, stream: int) -> np.uint64:
    """Key of the counter-based generator for ``(seed, stream)``."""
    return np.uint64(key_for(np.uint64(seed), np.uint64(stream)))


def quantization(values: np.ndarray, n: int) -> tuple[float, float]:
    """``(center, scale)`` of the fixed-point grid: the range maps onto ``[-2**P, 2**P]``.

    ``P = min(52, 56 - bit_length(n))`` keeps every weighted sum below ``2**63`` (Poisson(1) weights are at
    most 8, so ``sum(w * |q|) <= 8 n 2**P``). The grid is a pure function of the global minimum, maximum and
    ``n``, so every partition of the data quantises identically. Callers pass values rescaled by
    :func:`~twinkernel.bootstrap.columns.binary_exponent` (``|x| < 1``), so ``scale`` is a normal float:
    on raw values near 1e-300 it underflowed and the interval left the data range.
    """
    lo = float(values.min())
    hi = float(values.max())
    center = 0.5 * lo + 0.5 * hi
    half = 0.5 * hi - 0.5 * lo
    bits = min(52, 56 - int(n).bit_length())
    scale = half / 2.0**bits if half > 0 else 1.0
    return center, scale


def poisson_replicates(
    values: np.ndarray,
    codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    seed: int,
    n_resamples: int,
    *,
    quads_per_task: int,
    max_direct_cells: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Replicate means ``(C, B)`` and the quantised column means (the BCa reference) under Poisson weights."""
    n = values.shape[0]
    center, scale = quantization(values, n)
    q = _kb.quantize(values, center, scale)
    cells, n_cells, cell_columns = joint_cells(codes, n_groups, n, max_direct_cells)
    n_columns = 1 + int(sum(int(g) for g in n_groups))
    order, starts = _kb.sort_by_cell(cells, n_cells)
    qs, ms = _kb.gather_sorted(q, order, 0)
    sums, weights = _kb.poisson_sums(
        qs,
        ms,
        starts,
        cell_columns,
        n_columns,
        rng_key(seed, STREAM_BOOTSTRAP),
        n_resamples,
        poisson1_table(),
        quads_per_task,
    )
    qsum = fold_int(_kb.cell_int_sums(q, cells, n_cells), cell_columns, n_columns)
    counts = fold_int(np.bincount(cells, minlength=n_cells).astype(np.int64), cell_columns, n_columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = center + scale * (qsum / counts)
        reps = center + scale * (sums.T / weights.T)
    # A replicate in which a group drew total weight 0 (probability exp(-m)) is set to the group's centre.
    reps = np.where(weights.T > 0, reps, ref[:, None])
    return reps, ref
