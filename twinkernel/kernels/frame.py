"""Kernels that turn a user's frame into a population: dictionary codes, duplicate keys, code counts.

The string-view kernels (twin keys, id order, category codes) are in :mod:`.frame_views`.

Dictionary encoding of 64-bit values
------------------------------------
:func:`chunk_dictionaries`, :func:`merge_dictionaries` and :func:`apply_dictionary` number the distinct
values of a uint64 column (the addresses of the Python objects of a pandas ``object`` column), optionally
with a second per-row word that must agree too:

1. rows are cut into fixed chunks (independent of the thread count); each chunk numbers its distinct
   values in order of first appearance (a small open-addressing table) and writes every row's local number;
2. a sequential merge over the few distinct values gives each its global number, in order of first
   appearance over the whole column; a parallel pass maps every row to the caller's final code.

Everything is a pure function of the input, so codes are identical on any number of threads. A chunk with
more than ``cap`` distinct values stops early and reports overflow (the caller then uses another method:
these kernels are for low-cardinality columns).

Duplicates
----------
:func:`keys_have_duplicates` tells whether any 64-bit key occurs twice without sorting: keys are scattered
into ``2**bits`` partitions by their top bits (a counting pass and a scatter pass, both parallel over fixed
blocks), and each partition is checked with its own small hash table.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import mix64
from .frame_views import _slot

NULL_CODE = 0xFFFF
"""Local code of a null row in :func:`chunk_dictionaries` (the local codes are uint16)."""
_EMPTY = np.int32(-1)
_ZERO = np.uint64(0)


@njit(inline="always", cache=True)
def _table_size(n_items):
    size = 16
    while size < 2 * n_items:
        size *= 2
    return size


@njit(parallel=True, cache=True)
def chunk_dictionaries(values, lengths, valid, chunk, cap, local, reps, counts):
    """Pass 1: number each chunk's distinct values.

    Parameters
    ----------
    values
        uint64 per row (n rows).
    lengths
        uint32 per row that must agree between rows with equal ``values``, or an empty array.
    valid
        uint8, 1 for a present value and 0 for a null, or an empty array when nothing is null.
    chunk
        Rows per chunk (the chunking fixes nothing but the work split: results do not depend on it).
    cap
        Most distinct values a chunk may hold (< ``NULL_CODE``).
    local
        Output, uint16 per row: the row's number among its chunk's distinct values, ``NULL_CODE`` for null.
    reps
        Output, int64 ``(n_chunks, cap)``: the first row of each of a chunk's distinct values.
    counts
        Output, int64 per chunk: how many distinct values it holds, or ``cap + 1`` on overflow.
    """
    n = local.shape[0]
    n_chunks = counts.shape[0]
    has_valid = valid.shape[0] > 0
    has_lengths = lengths.shape[0] > 0
    size = _table_size(cap)
    mask = np.uint64(size - 1)
    for c in prange(n_chunks):
        table = np.full(size, _EMPTY, dtype=np.int32)
        seen = np.empty(cap, dtype=np.uint64)
        k = 0
        overflow = False
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            if has_valid and valid[i] == 0:
                local[i] = NULL_CODE
                continue
            v = values[i]
            slot = mix64(v) & mask
            while True:
                code = table[slot]
                if code == _EMPTY:
                    if k == cap:
                        overflow = True
                        break
                    table[slot] = k
                    reps[c, k] = i
                    seen[k] = v
                    local[i] = k
                    k += 1
                    break
                if seen[code] == v:
                    if has_lengths and lengths[i] != lengths[reps[c, code]]:
                        overflow = True
                    local[i] = code
                    break
                slot = (slot + np.uint64(1)) & mask
            if overflow:
                break
        counts[c] = cap + 1 if overflow else k


@njit(cache=True)
def merge_dictionaries(values, lengths, reps, counts, remap):
    """Pass 2: global numbers, in order of first appearance over the column.

    ``remap[c, k]`` (int64, ``(n_chunks, cap)``) receives the global number of chunk ``c``'s ``k``-th
    value. Returns the first row of every global value (int64; its length is the number of values), or
    an empty array when two chunks' equal values have different lengths (a hash collision).
    """
    has_lengths = lengths.shape[0] > 0
    total = 0
    for c in range(counts.shape[0]):
        total += counts[c]
    size = _table_size(total)
    mask = np.uint64(size - 1)
    table = np.full(size, _EMPTY, dtype=np.int32)
    seen = np.empty(total, dtype=np.uint64)
    first = np.empty(total, dtype=np.int64)
    g = 0
    for c in range(counts.shape[0]):
        for k in range(counts[c]):
            row = reps[c, k]
            v = values[row]
            slot = mix64(v) & mask
            while True:
                code = table[slot]
                if code == _EMPTY:
                    table[slot] = g
                    seen[g] = v
                    first[g] = row
                    remap[c, k] = g
                    g += 1
                    break
                if seen[code] == v:
                    if has_lengths and lengths[row] != lengths[first[code]]:
                        return first[:0]
                    remap[c, k] = code
                    break
                slot = (slot + np.uint64(1)) & mask
    return first[:g]


@njit(parallel=True, cache=True)
def apply_dictionary(local, remap, chunk, final, null_code, out):
    """Pass 3: ``out[i] = final[remap[chunk of i, local[i]]]``, and ``null_code`` for null rows."""
    n = local.shape[0]
    for c in prange(remap.shape[0]):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            k = local[i]
            out[i] = null_code if k == NULL_CODE else final[remap[c, k]]


@njit(parallel=True, cache=True)
def keys_have_duplicates(keys, bits, n_blocks):
    """True when some value occurs twice in ``keys`` (uint64), by partitioned hash tables (no sort).

    ``bits`` sets the number of partitions (``2**bits``, by the keys' top bits; 0 for one partition) and
    ``n_blocks`` the fixed blocks of the counting and scatter passes. Keys should be well mixed (twin keys
    are a ``mix64`` output): the tables index by the low bits.
    """
    n = keys.shape[0]
    n_parts = 1 << bits
    shift = np.uint64(64 - bits) if bits > 0 else np.uint64(0)
    block = (n + n_blocks - 1) // n_blocks
    counts = np.zeros((n_blocks, n_parts), dtype=np.int64)
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            p = np.int64(keys[i] >> shift) if bits > 0 else 0
            counts[b, p] += 1
    # partition-major positions: partition p's keys lie in starts[p] .. starts[p + 1]
    pos = np.empty((n_blocks, n_parts), dtype=np.int64)
    starts = np.zeros(n_parts + 1, dtype=np.int64)
    at = 0
    for p in range(n_parts):
        starts[p] = at
        for b in range(n_blocks):
            pos[b, p] = at
            at += counts[b, p]
    starts[n_parts] = at
    scattered = np.empty(n, dtype=np.uint64)
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            p = np.int64(keys[i] >> shift) if bits > 0 else 0
            scattered[pos[b, p]] = keys[i]
            pos[b, p] += 1
    found = np.zeros(n_parts, dtype=np.uint8)
    for p in prange(n_parts):
        m = starts[p + 1] - starts[p]
        size = _table_size(m)
        mask = np.uint64(size - 1)
        table = np.empty(size, dtype=np.uint64)
        used = np.zeros(size, dtype=np.uint8)
        for j in range(starts[p], starts[p + 1]):
            key = scattered[j]
            slot = key & mask
            while used[slot] != 0 and table[slot] != key:
                slot = (slot + np.uint64(1)) & mask
            if used[slot] != 0:
                found[p] = 1
                break
            used[slot] = 1
            table[slot] = key
    return found.any()


@njit(cache=True)
def code_counts(codes, n_codes):
    """How many rows hold each code ``0 .. n_codes - 1`` (int64).

    Serial on purpose: one pass over 1-byte codes costs a few milliseconds for 10 M rows, less than
    waking the thread pool on a loaded machine (a parallel version took 0.004-0.9 s at a load of 9).
    """
    out = np.zeros(n_codes, dtype=np.int64)
    for i in range(codes.shape[0]):
        out[codes[i]] += 1
    return out


@njit(parallel=True, cache=True)
def address_codes(addresses, table, mult, shift, keys, final, n_blocks, out):
    """``out[i] = final[k]`` where ``addresses[i] == keys[k]`` (uint64; ``table``, ``mult`` and ``shift``
    as built by ``population_encode._perfect_table``, ``keys`` ending with one entry no row holds, and
    ``final`` with one more entry). Returns how many rows hold a value outside the keys (their codes are
    then meaningless, and the caller takes another path)."""
    n = addresses.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    missed = np.zeros(n_blocks, dtype=np.int64)
    for b in prange(n_blocks):
        miss = 0
        for i in range(b * block, min(n, (b + 1) * block)):
            v = addresses[i]
            t = table[_slot(v, _ZERO, _ZERO, False, mult, shift)]
            out[i] = final[t]
            miss += keys[t] != v
        missed[b] = miss
    return missed.sum()
