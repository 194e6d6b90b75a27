"""Exact multinomial bootstrap kernels: conditional-binomial block counts, then in-cache draws.

The draw scheme (``KERNEL_VERSION`` 4)
-------------------------------------
Group ``g`` (rows ``starts[g]:starts[g + 1]``, ``m`` rows) is cut into blocks of ``BLOCK_ROWS`` rows from
its first row (the last block may be shorter). Blocks are numbered ``k = 0, 1, ...`` across all groups in
order. Replicate ``b`` resamples each group independently:

1. Block counts, one conditional binomial per block: with ``N`` draws and ``R`` rows left before block
   ``k`` of ``L`` rows, ``c_k ~ Binomial(N, L / R)``; the last block of the group takes what is left.
   Together the counts are exactly Multinomial(``m``; block sizes / ``m``), the law of how many of ``m``
   uniform draws land in each block. The binomial is drawn by inversion of the uniform
   ``u_k = ((h_k >> 11) + 0.5) * 2**-53`` of the block hash ``h_k = random_u64(random_u64(key, b), k)``,
   summing the probabilities in the order mode, mode + 1, mode - 1, mode + 2, ... (:func:`binomial_inverse`).
2. In-block draws: draw ``j`` of block ``k`` comes from ``d = mix64(h_k + (j // f) * GOLDEN)``, one 64-bit
   hash per ``f`` draws. A full block (``BLOCK_ROWS = 2**12`` rows) takes ``f = 5`` 12-bit fields
   (``(d >> 12 t) & 4095``, ``t = j % 5``): exactly uniform. A shorter block of ``L`` rows takes ``f = 2``
   32-bit halves (high half first), mapped by Lemire's multiply-shift ``(half * L) >> 32``.

The drawn values of a block are summed into five accumulators, each in draw order: in a full block field
``t`` of every hash goes to accumulator ``t``; in a shorter block high halves go to the first and low
halves to the second. They are combined as ``((a0 + a1) + (a2 + a3)) + a4``; a replicate's group sum
adds its blocks in block order. Every number is thus a pure function of (key, replicate, block, draw) and
the summation order is fixed, so results are bit-identical for any thread count or task size.

Work layout (performance only): one parallel task per ``REPLICATES_PER_TASK`` replicates draws their block
counts, then visits the blocks in order, and every replicate of the task draws from a block while its
4 096 values (32 KiB) are in L1. Inside a block the hashes of ``HASH_CHUNK`` draw groups are computed in
one vectorisable loop before the gathers that consume them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._rng import mix64, random_u64

BLOCK_BITS = 12
"""log2 of the rows per block (part of the draw scheme: changing it changes every resample)."""

BLOCK_ROWS = 1 << BLOCK_BITS
"""Rows per block (4 096 float64 = 32 KiB, an L1-resident gather target)."""

FIELDS_PER_HASH = 64 // BLOCK_BITS
"""Draws taken from one 64-bit hash in a full block (5 fields of 12 bits)."""

REPLICATES_PER_TASK = 16
"""Replicates per parallel task; each block is drawn from by all of them while it is in L1 (a performance
knob; results do not depend on it)."""

HASH_CHUNK = 128
"""Hashes computed ahead of their gathers in one vectorisable loop (a performance knob; results do not
depend on it)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK = np.uint64(BLOCK_ROWS - 1)
_U32 = np.uint64(0xFFFFFFFF)
_S11 = np.uint64(11)
_S12 = np.uint64(12)
_S24 = np.uint64(24)
_S32 = np.uint64(32)
_S36 = np.uint64(36)
_S48 = np.uint64(48)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@njit(cache=True)
def binomial_inverse(u, n, p):
    """The Binomial(``n``, ``p``) value of the uniform ``u`` by inversion from the mode outwards.

    Outcomes are visited in the order ``m, m + 1, m - 1, m + 2, m - 2, ...`` (``m = floor((n + 1) p)``,
    sides dropped once they leave ``[0, n]``) and the first whose running probability sum exceeds ``u`` is
    returned: an inversion of the exact law over a fixed ordering of its support, taking about
    ``1.6 sqrt(n p (1 - p))`` steps. The mode's probability comes from ``lgamma`` (relative error about
    ``1e-16 * n``); neighbours follow by the ratio recurrence. If rounding leaves ``u`` above the total, the
    mode is returned.
    """
    if n <= 0 or p <= 0.0:
        return np.int64(0)
    if p >= 1.0:
        return np.int64(n)
    m = np.int64((n + 1) * p)
    if m > n:
        m = n
    logf = (
        math.lgamma(n + 1.0)
        - math.lgamma(m + 1.0)
        - math.lgamma(n - m + 1.0)
        + m * math.log(p)
        + (n - m) * math.log1p(-p)
    )
    f_mode = math.exp(logf)
    acc = f_mode
    if u < acc:
        return m
    ratio = p / (1.0 - p)
    f_up = f_mode
    f_down = f_mode
    k_up = m
    k_down = m
    while True:
        if k_up < n:
            f_up *= (n - k_up) / (k_up + 1.0) * ratio
            k_up += 1
            acc += f_up
            if u < acc:
                return k_up
        else:
            f_up = 0.0
        if k_down > 0:
            f_down *= k_down / (n - k_down + 1.0) / ratio
            k_down -= 1
            acc += f_down
            if u < acc:
                return k_down
        else:
            f_down = 0.0
        if f_up == 0.0 and f_down == 0.0:
            return m


@njit(cache=True)
def multinomial_blocks(starts):
    """Blocks of every group: ``(block_lo int64[K], block_rows int64[K], first_block int64[G + 1])``."""
    n_groups = starts.shape[0] - 1
    first = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        m = starts[g + 1] - starts[g]
        first[g + 1] = first[g] + (m + BLOCK_ROWS - 1) // BLOCK_ROWS
    n_blocks = first[n_groups]
    block_lo = np.empty(n_blocks, dtype=np.int64)
    block_rows = np.empty(n_blocks, dtype=np.int64)
    for g in range(n_groups):
        for k in range(first[g], first[g + 1]):
            lo = starts[g] + (k - first[g]) * BLOCK_ROWS
            block_lo[k] = lo
            block_rows[k] = min(BLOCK_ROWS, starts[g + 1] - lo)
    return block_lo, block_rows, first


@njit(cache=True)
def replicate_block_counts(block_rows, first, kb, counts, hashes):
    """Draws per block (``counts``) and block hashes (``hashes``) of one replicate with key ``kb``."""
    n_groups = first.shape[0] - 1
    for g in range(n_groups):
        draws_left = np.int64(0)
        for k in range(first[g], first[g + 1]):
            draws_left += block_rows[k]
        rows_left = draws_left
        for k in range(first[g], first[g + 1]):
            h = random_u64(kb, np.uint64(k))
            hashes[k] = h
            if k == first[g + 1] - 1:
                c = draws_left
            else:
                u = (np.float64(h >> _S11) + 0.5) * _TWO_POW_M53
                c = binomial_inverse(u, draws_left, block_rows[k] / rows_left)
            counts[k] = c
            draws_left -= c
            rows_left -= block_rows[k]


@njit(parallel=True, cache=True)
def multinomial_block_counts(block_rows, first, key, n_resamples):
    """Draws per block per replicate (``int64[B, K]``) and the block hashes (``uint64[B, K]``)."""
    n_blocks = block_rows.shape[0]
    counts = np.empty((n_resamples, n_blocks), dtype=np.int64)
    hashes = np.empty((n_resamples, n_blocks), dtype=np.uint64)
    for b in prange(n_resamples):
        replicate_block_counts(block_rows, first, random_u64(key, np.uint64(b)), counts[b], hashes[b])
    return counts, hashes


@njit(cache=True)
def block_draw_sum(values, lo, rows, count, h, buf):
    """Sum of ``count`` values drawn from ``values[lo:lo + rows]`` with block hash ``h`` (module scheme).

    ``buf`` (uint64, any length >= 1) is scratch space: the hashes of up to ``len(buf)`` draw groups are
    computed in one vectorisable loop, then consumed by the gathers (same values, same summation order as
    hashing draw by draw).
    """
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a4 = 0.0
    x = h
    chunk = buf.shape[0]
    if rows == BLOCK_ROWS:
        v = values[lo : lo + BLOCK_ROWS]
        n_hash = count // FIELDS_PER_HASH
        done = 0
        while done < n_hash:
            m = min(chunk, n_hash - done)
            for i in range(m):
                buf[i] = mix64(x + np.uint64(i) * _GOLDEN)
            x += np.uint64(m) * _GOLDEN
            for i in range(m):
                d = buf[i]
                a0 += v[d & _MASK]
                a1 += v[(d >> _S12) & _MASK]
                a2 += v[(d >> _S24) & _MASK]
                a3 += v[(d >> _S36) & _MASK]
                a4 += v[(d >> _S48) & _MASK]
            done += m
        rest = count % FIELDS_PER_HASH
        if rest > 0:
            d = mix64(x)
            a0 += v[d & _MASK]
            if rest > 1:
                a1 += v[(d >> _S12) & _MASK]
            if rest > 2:
                a2 += v[(d >> _S24) & _MASK]
            if rest > 3:
                a3 += v[(d >> _S36) & _MASK]
    else:
        v = values[lo : lo + rows]
        mu = np.uint64(rows)
        n_hash = count >> 1
        done = 0
        while done < n_hash:
            m = min(chunk, n_hash - done)
            for i in range(m):
                buf[i] = mix64(x + np.uint64(i) * _GOLDEN)
            x += np.uint64(m) * _GOLDEN
            for i in range(m):
                d = buf[i]
                a0 += v[((d >> _S32) * mu) >> _S32]
                a1 += v[((d & _U32) * mu) >> _S32]
            done += m
        if count & 1:
            d = mix64(x)
            a0 += v[((d >> _S32) * mu) >> _S32]
    return ((a0 + a1) + (a2 + a3)) + a4


@njit(parallel=True, cache=True)
def multinomial_means_chunked(values, starts, key, n_resamples, reps_per_task, hash_chunk):
    """:func:`multinomial_means` with explicit work sizes (results do not depend on them).

    One parallel task per ``reps_per_task`` replicates: their block counts, then block by block the draws
    of every replicate of the task (the block stays in L1 meanwhile), then each group's blocks added in
    block order. ``hash_chunk`` hashes are computed ahead of their gathers.
    """
    block_lo, block_rows, first = multinomial_blocks(starts)
    n_groups = first.shape[0] - 1
    n_blocks = block_lo.shape[0]
    out = np.empty((n_groups, n_resamples), dtype=np.float64)
    n_tasks = (n_resamples + reps_per_task - 1) // reps_per_task
    for t in prange(n_tasks):
        b0 = t * reps_per_task
        r = min(n_resamples, b0 + reps_per_task) - b0
        counts = np.empty((r, n_blocks), dtype=np.int64)
        hashes = np.empty((r, n_blocks), dtype=np.uint64)
        sums = np.empty((r, n_blocks), dtype=np.float64)
        buf = np.empty(hash_chunk, dtype=np.uint64)
        for i in range(r):
            kb = random_u64(key, np.uint64(b0 + i))
            replicate_block_counts(block_rows, first, kb, counts[i], hashes[i])
        for k in range(n_blocks):
            lo = block_lo[k]
            rows = block_rows[k]
            for i in range(r):
                sums[i, k] = block_draw_sum(values, lo, rows, counts[i, k], hashes[i, k], buf)
        for i in range(r):
            for g in range(n_groups):
                m = starts[g + 1] - starts[g]
                if m == 0:
                    out[g, b0 + i] = np.nan
                    continue
                s = 0.0
                for k in range(first[g], first[g + 1]):
                    s += sums[i, k]
                out[g, b0 + i] = s / m
    return out


@njit(cache=True)
def multinomial_means(values, starts, key, n_resamples):
    """Replicate means of each group under (stratified) exact multinomial resampling.

    Parameters
    ----------
    values : float64[n]
        Values sorted so that group ``g`` occupies ``starts[g]:starts[g + 1]`` (may be read-only).
    starts : int64[G + 1]
        Group boundaries (``starts[0] == 0``, ``starts[G] == n``).
    key : uint64
        Stream key (``key_for(seed, STREAM_BOOTSTRAP)``).
    n_resamples : int
        Number of replicates ``B``.

    Returns
    -------
    float64[G, B]
        Replicate means; NaN for an empty group.
    """
    return multinomial_means_chunked(values, starts, key, n_resamples, REPLICATES_PER_TASK, HASH_CHUNK)


__all__ = [
    "BLOCK_BITS",
    "BLOCK_ROWS",
    "FIELDS_PER_HASH",
    "HASH_CHUNK",
    "REPLICATES_PER_TASK",
    "binomial_inverse",
    "block_draw_sum",
    "multinomial_block_counts",
    "multinomial_blocks",
    "multinomial_means",
    "multinomial_means_chunked",
    "replicate_block_counts",
]
