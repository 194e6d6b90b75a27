"""Bootstrap resampling kernels for the mean of a vector and of every segment of it.

Three resampling schemes, all driven by the counter-based generator in :mod:`._rng`:

``multinomial_means``
    Exact multinomial resampling (draw ``n`` indices with replacement), stratified by group: the rows of
    group ``g`` occupy ``starts[g]:starts[g + 1]`` of a group-sorted vector and are resampled among
    themselves (one group = the ordinary bootstrap). Conditional-binomial counts per block of 4 096 rows,
    then draws inside each cache-resident block; defined in :mod:`.bootstrap_multinomial` (re-exported
    here).

``poisson_sums``
    Poisson(1) weights. The weight of unit ``i`` (its global row index) in replicate ``b`` is a pure
    function of ``(seed, b, i)``: 16-bit lane ``b % 4`` of ``random_u64(random_u64(key, b // 4), i)``,
    mapped through a 65 536-entry inverse-CDF table of Poisson(1) (:func:`poisson1_table`). One hash thus
    serves four replicates of the same unit. Values are quantised once to a fixed-point grid chosen from the
    global range (``q = rint((x - center) / scale)``) and the weighted sums are exact 64-bit integers, so
    partial results of any partition of the rows add up to bit-identical totals: independent of threads,
    chunk boundaries or how a cluster partitions the data. Rows arrive sorted by a joint cell id (all
    segment dimensions at once); per-cell sums are folded into every dimension's groups after the data
    pass, so one pass serves the overall mean and every segment of every dimension.

``blb_sums``
    The Bag of Little Bootstraps (Kleiner, Talwalkar, Sarkar and Jordan, 2014) with Poisson counts: subset
    ``s`` keeps row ``i`` with probability ``2**-level[i]`` (a pure function of ``(seed, s, i)``), and in
    resample ``k`` of that subset each kept row gets a ``Poisson(2**level[i])`` count, so a resample stands
    for about ``n`` units while touching only the subset. Sums are exact integers as in ``poisson_sums``.

Kernels take arrays and scalars and return arrays; validation, warnings and interval arithmetic live in
:mod:`twinkernel.bootstrap`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._rng import mix64, random_u64
from .bootstrap_multinomial import multinomial_means

_U16 = np.uint64(0xFFFF)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_S48 = np.uint64(48)
_SIXTY_FOUR = np.uint64(64)
_ZERO = np.uint64(0)

ROW_BLOCK = 1024
"""Rows per cache block in the Poisson kernels (a performance knob; results do not depend on it)."""

MAX_BLB_LEVEL = 12
"""Largest subsampling level of the Bag of Little Bootstraps (keep probability ``2**-12``)."""


def poisson1_table() -> np.ndarray:
    """The 65 536-entry inverse-CDF table of Poisson(1) used with 16-bit uniform lanes.

    Entry ``v`` is the number of thresholds ``round(65536 * F(k))`` (``k = 0..7``) that ``v`` reaches, where
    ``F`` is the Poisson(1) CDF. Every probability is within ``2**-16`` of the exact one and the weight is
    capped at 8 (the true tail beyond 8 has mass 1.1e-6); mean and variance of the table are 1 to within
    4e-5.
    """
    cdf = 0.0
    pk = math.exp(-1.0)
    v = np.arange(65536, dtype=np.int64)
    table = np.zeros(65536, dtype=np.uint8)
    for k in range(8):
        cdf += pk
        pk /= k + 1
        table += (v >= round(65536.0 * cdf)).astype(np.uint8)
    return table


def poisson_cdf_tables(
    max_level: int = MAX_BLB_LEVEL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer inverse-CDF tables of Poisson(2**level) for ``level = 0 .. max_level``.

    Returns ``(thresholds, guide, offsets, guide_offsets)``. Level ``l`` owns
    ``thresholds[offsets[l]:offsets[l + 1]]``: ``floor(F(k) * 2**64)`` for ``k = 0, 1, ...`` up to
    ``lam + 14 sqrt(lam) + 30`` (``F`` the CDF; the last entry is saturated, truncating a tail below 1e-40).
    A 64-bit draw ``r`` maps to the smallest ``k`` with ``r < thresholds[k]``. The guide table
    ``guide[guide_offsets[l]:guide_offsets[l + 1]]`` (a power of two, ``2**g`` entries) holds, for each value
    of the top ``g`` bits of ``r``, the smallest ``k`` that can answer, so a draw takes one or two
    comparisons.
    """
    thresholds = []
    guides = []
    for level in range(max_level + 1):
        lam = float(2**level)
        kmax = int(lam + 14.0 * math.sqrt(lam) + 30.0)
        logp = [-lam + k * math.log(lam) - math.lgamma(k + 1.0) for k in range(kmax + 1)]
        cdf = np.cumsum(np.exp(np.array(logp)))
        thr = np.array([min(int(c * 2.0**64), 2**64 - 1) for c in cdf], dtype=np.uint64)
        thr[-1] = np.uint64(2**64 - 1)
        bits = max(1, math.ceil(math.log2(kmax + 1)) + 1)
        starts = np.array([j << (64 - bits) for j in range(2**bits)], dtype=np.uint64)
        guide = np.minimum(np.searchsorted(thr, starts, side="right"), kmax).astype(np.int64)
        thresholds.append(thr)
        guides.append(guide)
    offsets = np.zeros(max_level + 2, dtype=np.int64)
    offsets[1:] = np.cumsum([t.shape[0] for t in thresholds])
    guide_offsets = np.zeros(max_level + 2, dtype=np.int64)
    guide_offsets[1:] = np.cumsum([g.shape[0] for g in guides])
    return np.concatenate(thresholds), np.concatenate(guides), offsets, guide_offsets


@njit(cache=True)
def quantize(values, center, scale):
    """Fixed-point image ``rint((x - center) / scale)`` of ``values`` as int64 (exactly summable)."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.int64)
    inv = 1.0 / scale
    for i in range(n):
        out[i] = np.int64(np.rint((values[i] - center) * inv))
    return out


@njit(cache=True)
def sort_by_cell(cells, n_cells):
    """Stable counting sort of rows by cell.

    Returns ``(order, starts)``: the rows of cell ``c`` are ``order[starts[c]:starts[c + 1]]``.
    """
    n = cells.shape[0]
    starts = np.zeros(n_cells + 1, dtype=np.int64)
    for i in range(n):
        starts[cells[i] + 1] += 1
    for c in range(n_cells):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = cells[i]
        order[fill[c]] = i
        fill[c] += 1
    return order, starts


@njit(parallel=True, cache=True)
def gather_sorted(q, order, offset):
    """``(q[order], mix64(offset + order))``: sorted fixed-point values and their hashed global indices."""
    n = order.shape[0]
    qs = np.empty(n, dtype=np.int64)
    ms = np.empty(n, dtype=np.uint64)
    off = np.uint64(offset)
    for j in prange(n):
        i = order[j]
        qs[j] = q[i]
        ms[j] = mix64(off + np.uint64(i))
    return qs, ms


@njit(cache=True)
def _fold_cells(acc_s, acc_w, row, cell_columns, sums, weights, b):
    """Add the per-cell sums of one replicate into column 0 (overall) and each dimension's group column."""
    n_cells = cell_columns.shape[0]
    n_dims = cell_columns.shape[1]
    for c in range(n_cells):
        s = acc_s[row, c]
        w = acc_w[row, c]
        sums[b, 0] += s
        weights[b, 0] += w
        for d in range(n_dims):
            col = cell_columns[c, d]
            sums[b, col] += s
            weights[b, col] += w


@njit(parallel=True, cache=True)
def poisson_sums(qs, ms, starts, cell_columns, n_columns, key, n_resamples, table, quads_per_task):
    """Exact Poisson(1)-weighted sums per replicate, for the overall mean and every group column.

    Parameters
    ----------
    qs : int64[n]
        Quantised values (:func:`quantize`), rows sorted by cell (:func:`sort_by_cell`).
    ms : uint64[n]
        ``mix64(global row index)`` of the same rows (:func:`gather_sorted`).
    starts : int64[n_cells + 1]
        Cell boundaries in the sorted rows.
    cell_columns : int64[n_cells, K]
        Output column of each cell in each of ``K`` segment dimensions (column 0, the overall mean, is
        always added; columns ``1 .. n_columns - 1`` are the groups of all dimensions).
    n_columns : int
        ``1 + sum(n_groups)``.
    key : uint64
        Stream key (``key_for(seed, STREAM_BOOTSTRAP)``).
    n_resamples : int
        Number of replicates ``B``.
    table : uint8[65536]
        :func:`poisson1_table`.
    quads_per_task : int
        Groups of four replicates handled per parallel task (a performance knob; results do not depend on
        it).

    Returns
    -------
    (int64[B, n_columns], int64[B, n_columns])
        ``sum(w * q)`` and ``sum(w)`` per replicate and column. Integer sums: adding the results for the
        pieces of any partition of the rows gives exactly the result for the whole vector.
    """
    n_cells = starts.shape[0] - 1
    n_quads = (n_resamples + 3) // 4
    sums = np.zeros((n_resamples, n_columns), dtype=np.int64)
    weights = np.zeros((n_resamples, n_columns), dtype=np.int64)
    n_tasks = (n_quads + quads_per_task - 1) // quads_per_task
    for t in prange(n_tasks):
        q0 = t * quads_per_task
        q1 = min(n_quads, q0 + quads_per_task)
        nq = q1 - q0
        acc_s = np.zeros((4 * nq, n_cells), dtype=np.int64)
        acc_w = np.zeros((4 * nq, n_cells), dtype=np.int64)
        for c in range(n_cells):
            for start in range(starts[c], starts[c + 1], ROW_BLOCK):
                stop = min(starts[c + 1], start + ROW_BLOCK)
                for j in range(nq):
                    kq = random_u64(key, np.uint64(q0 + j))
                    s0 = np.int64(0)
                    s1 = np.int64(0)
                    s2 = np.int64(0)
                    s3 = np.int64(0)
                    w0 = np.int64(0)
                    w1 = np.int64(0)
                    w2 = np.int64(0)
                    w3 = np.int64(0)
                    for i in range(start, stop):
                        h = mix64(kq ^ ms[i])
                        qi = qs[i]
                        a = np.int64(table[h & _U16])
                        s0 += a * qi
                        w0 += a
                        a = np.int64(table[(h >> _S16) & _U16])
                        s1 += a * qi
                        w1 += a
                        a = np.int64(table[(h >> _S32) & _U16])
                        s2 += a * qi
                        w2 += a
                        a = np.int64(table[h >> _S48])
                        s3 += a * qi
                        w3 += a
                    r = 4 * j
                    acc_s[r, c] += s0
                    acc_s[r + 1, c] += s1
                    acc_s[r + 2, c] += s2
                    acc_s[r + 3, c] += s3
                    acc_w[r, c] += w0
                    acc_w[r + 1, c] += w1
                    acc_w[r + 2, c] += w2
                    acc_w[r + 3, c] += w3
        for r in range(4 * nq):
            b = 4 * q0 + r
            if b < n_resamples:
                _fold_cells(acc_s, acc_w, r, cell_columns, sums, weights, b)
    return sums, weights


@njit(inline="always", cache=True)
def _poisson_draw(r, level, thresholds, guide, offsets, guide_offsets, guide_shift):
    """Poisson(2**level) count for the 64-bit draw ``r`` (integer inverse CDF with a guide table)."""
    base = offsets[level]
    last = offsets[level + 1] - base - 1
    k = guide[guide_offsets[level] + np.int64(r >> guide_shift[level])]
    while k < last and r >= thresholds[base + k]:
        k += 1
    return np.int64(k)


@njit(parallel=True, cache=True)
def blb_sums(
    qs,
    ms,
    levels,
    cells,
    cell_columns,
    n_columns,
    n_cells,
    key,
    n_subsets,
    per_subset,
    thresholds,
    guide,
    offsets,
    guide_offsets,
):
    """Bag of Little Bootstraps with Poisson counts: exact sums per resample and per subset centre.

    Parameters
    ----------
    qs : int64[n]
        Quantised values (:func:`quantize`), in any row order.
    ms : uint64[n]
        ``mix64(global row index)`` of the same rows.
    levels : int64[n]
        Subsampling level of each row: kept with probability ``2**-level``, counted ``Poisson(2**level)``.
    cells : int64[n]
        Joint cell id of each row.
    cell_columns : int64[n_cells, K]
        As in :func:`poisson_sums`.
    n_columns, n_cells : int
        Output columns (``1 + sum(n_groups)``) and number of cells.
    key : uint64
        Stream key (``key_for(seed, STREAM_BOOTSTRAP_BLB)``).
    n_subsets, per_subset : int
        Number of subsets ``s`` and resamples per subset ``r``.
    thresholds, guide, offsets, guide_offsets : arrays
        :func:`poisson_cdf_tables`.

    Returns
    -------
    (int64[s * r, n_columns], int64[s * r, n_columns], int64[s, n_columns], int64[s, n_columns], int64[s])
        Resample sums ``sum(c * q)`` and counts ``sum(c)`` (resample ``k`` of subset ``s`` in row
        ``s * r + k``); the subset centres' ``sum(2**level * q)`` and ``sum(2**level)``; subset sizes.
    """
    n = qs.shape[0]
    n_rows = n_subsets * per_subset
    n_levels = offsets.shape[0] - 1
    guide_shift = np.empty(n_levels, dtype=np.uint64)
    for lv in range(n_levels):
        bits = 0
        while (np.int64(1) << bits) < guide_offsets[lv + 1] - guide_offsets[lv]:
            bits += 1
        guide_shift[lv] = np.uint64(64 - bits)
    sums = np.zeros((n_rows, n_columns), dtype=np.int64)
    weights = np.zeros((n_rows, n_columns), dtype=np.int64)
    center_s = np.zeros((n_subsets, n_columns), dtype=np.int64)
    center_w = np.zeros((n_subsets, n_columns), dtype=np.int64)
    sizes = np.zeros(n_subsets, dtype=np.int64)
    # Subset membership: row i is kept in subset s when the top `level` bits of its hash are zero.
    keep_counts = np.zeros(n_subsets, dtype=np.int64)
    for s in prange(n_subsets):
        ks = random_u64(key, np.uint64(2 * s))
        cnt = 0
        for i in range(n):
            lv = levels[i]
            if lv == 0 or (mix64(ks ^ ms[i]) >> (_SIXTY_FOUR - np.uint64(lv))) == _ZERO:
                cnt += 1
        keep_counts[s] = cnt
    subset_start = np.zeros(n_subsets + 1, dtype=np.int64)
    for s in range(n_subsets):
        subset_start[s + 1] = subset_start[s] + keep_counts[s]
    # Members are copied into contiguous per-subset arrays so the resample loops stream through memory.
    total = subset_start[n_subsets]
    sub_q = np.empty(total, dtype=np.int64)
    sub_m = np.empty(total, dtype=np.uint64)
    sub_level = np.empty(total, dtype=np.int64)
    sub_cell = np.empty(total, dtype=np.int64)
    for s in prange(n_subsets):
        ks = random_u64(key, np.uint64(2 * s))
        pos = subset_start[s]
        acc_s = np.zeros((1, n_cells), dtype=np.int64)
        acc_w = np.zeros((1, n_cells), dtype=np.int64)
        for i in range(n):
            lv = levels[i]
            if lv == 0 or (mix64(ks ^ ms[i]) >> (_SIXTY_FOUR - np.uint64(lv))) == _ZERO:
                sub_q[pos] = qs[i]
                sub_m[pos] = ms[i]
                sub_level[pos] = lv
                sub_cell[pos] = cells[i]
                pos += 1
                lam = np.int64(1) << lv
                acc_s[0, cells[i]] += lam * qs[i]
                acc_w[0, cells[i]] += lam
        sizes[s] = keep_counts[s]
        _fold_cells(acc_s, acc_w, 0, cell_columns, center_s, center_w, s)
    for row in prange(n_rows):
        s = row // per_subset
        k = row - s * per_subset
        kr = random_u64(key, np.uint64(2 * s + 1))
        kk = random_u64(kr, np.uint64(k))
        acc_s = np.zeros((1, n_cells), dtype=np.int64)
        acc_w = np.zeros((1, n_cells), dtype=np.int64)
        for j in range(subset_start[s], subset_start[s + 1]):
            r = mix64(kk ^ sub_m[j])
            c = _poisson_draw(r, sub_level[j], thresholds, guide, offsets, guide_offsets, guide_shift)
            acc_s[0, sub_cell[j]] += c * sub_q[j]
            acc_w[0, sub_cell[j]] += c
        _fold_cells(acc_s, acc_w, 0, cell_columns, sums, weights, row)
    return sums, weights, center_s, center_w, sizes


@njit(cache=True)
def cell_int_sums(q, cells, n_cells):
    """Exact per-cell sums of the quantised values (the centre used for the BCa bias correction)."""
    out = np.zeros(n_cells, dtype=np.int64)
    for i in range(q.shape[0]):
        out[cells[i]] += q[i]
    return out


@njit(cache=True)
def group_moments(values, codes, n_groups):
    """Per-group count, mean, centred second and third power sums, minimum and maximum (two passes).

    Returns ``(count int64[G], mean, m2, m3, vmin, vmax float64[G])`` with ``m2 = sum((x - mean)**2)`` and
    ``m3 = sum((x - mean)**3)``; the acceleration of the BCa interval for the mean of group ``g`` is
    ``m3[g] / (6 * m2[g]**1.5)`` (the jackknife formula with closed-form leave-one-out means).
    """
    n = values.shape[0]
    count = np.zeros(n_groups, dtype=np.int64)
    total = np.zeros(n_groups, dtype=np.float64)
    vmin = np.full(n_groups, np.inf)
    vmax = np.full(n_groups, -np.inf)
    for i in range(n):
        g = codes[i]
        v = values[i]
        count[g] += 1
        total[g] += v
        if v < vmin[g]:
            vmin[g] = v
        if v > vmax[g]:
            vmax[g] = v
    mean = np.full(n_groups, np.nan)
    for g in range(n_groups):
        if count[g] > 0:
            mean[g] = total[g] / count[g]
    m2 = np.zeros(n_groups, dtype=np.float64)
    m3 = np.zeros(n_groups, dtype=np.float64)
    for i in range(n):
        g = codes[i]
        d = values[i] - mean[g]
        d2 = d * d
        m2[g] += d2
        m3[g] += d2 * d
    return count, mean, m2, m3, vmin, vmax


__all__ = [
    "MAX_BLB_LEVEL",
    "ROW_BLOCK",
    "blb_sums",
    "cell_int_sums",
    "gather_sorted",
    "group_moments",
    "multinomial_means",
    "poisson1_table",
    "poisson_cdf_tables",
    "poisson_sums",
    "quantize",
    "sort_by_cell",
]
