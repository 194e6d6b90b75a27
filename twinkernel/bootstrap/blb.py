"""The Bag of Little Bootstraps (Kleiner, Talwalkar, Sarkar and Jordan, 2014) with Poisson counts.

Settings come from the config's ``bootstrap.blb`` section: ``gamma`` (a group of ``m`` units is subsampled
to about ``max(m**gamma, min_subset)``, rounded to a power-of-two keep rate), ``n_subsets`` (``s``; each
subset gets ``ceil(n_resamples / s)`` resamples) and ``min_subset`` (smaller groups are kept whole).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twinkernel.config import BlbConfig
from twinkernel.kernels import bootstrap as _kb
from twinkernel.kernels._rng import STREAM_BOOTSTRAP_BLB

from .columns import fold_int, joint_cells
from .poisson import poisson_cdf_tables, quantization, rng_key


def blb_levels(
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


def blb_replicates(
    values: np.ndarray,
    codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    seed: int,
    n_resamples: int,
    *,
    blb: BlbConfig,
    max_direct_cells: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled, re-centred BLB replicates ``(C, s * r)`` and the quantised column means."""
    n = values.shape[0]
    center, scale = quantization(values, n)
    q = _kb.quantize(values, center, scale)
    cells, n_cells, cell_columns = joint_cells(codes, n_groups, n, max_direct_cells)
    n_columns = 1 + int(sum(int(g) for g in n_groups))
    _, ms = _kb.gather_sorted(q, np.arange(n, dtype=np.int64), 0)
    levels = blb_levels(codes, n_groups, n, blb.gamma, blb.min_subset)
    per_subset = -(-n_resamples // blb.n_subsets)
    thresholds, guide, offsets, guide_offsets = poisson_cdf_tables()
    sums, weights, csum, cweight, _ = _kb.blb_sums(
        q,
        ms,
        levels,
        cells,
        cell_columns,
        n_columns,
        n_cells,
        rng_key(seed, STREAM_BOOTSTRAP_BLB),
        blb.n_subsets,
        per_subset,
        thresholds,
        guide,
        offsets,
        guide_offsets,
    )
    qsum = fold_int(_kb.cell_int_sums(q, cells, n_cells), cell_columns, n_columns)
    counts = fold_int(np.bincount(cells, minlength=n_cells).astype(np.int64), cell_columns, n_columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = center + scale * (qsum / counts)
        centre = scale * (csum / cweight)  # (s, C), relative to `center`
        rep = scale * (sums / weights)  # (s * r, C)
    centre = np.where(cweight > 0, centre, 0.0)
    offset = rep - np.repeat(centre, per_subset, axis=0)
    # The subsets' centred bootstrap distributions are averaged (pooled) and placed at the full-data mean.
    offset = np.where(weights > 0, offset, 0.0)
    return ref[:, None] + offset.T, ref
