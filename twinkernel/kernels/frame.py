"""Kernels that turn a user's frame into a population: string keys, dictionary codes, duplicate keys.

String views
------------
:func:`string_view_keys` reads a string column in Arrow's string-view layout (Polars' own memory, exported
without a copy): 16 bytes per row, a little-endian uint32 length first; strings of at most 12 bytes sit in
the view itself (bytes 4..15), longer ones in data buffers, addressed by a buffer index and an offset
(view words 2 and 3). Here the data buffers arrive concatenated in ``blob`` with ``bases[k]`` the start of
buffer ``k``. It computes every row's twin key (``mix64(fnv1a64(utf8))``, as ``_rng.twin_keys_from_strings``)
and whether the rows are strictly increasing (byte-wise, which is code-point order): sorted ids are unique
without further work.

Codes of a string column
------------------------
:func:`view_codes` (and :func:`inline_view_codes` when every string is inline) maps every row to the code
of its label in one pass, given the labels (their :func:`view_record_keys` words and bytes): an inline
string is identified exactly by its view's two words (bytes and length, with the padding masked), a longer
one by its length and first 12 bytes and then byte by byte. A row whose value is not among the labels stops
its block and is reported, so the caller can retry with the complete label set.

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

from ._rng import _FNV_OFFSET, _FNV_PRIME, _M2, fnv1a64, mix64

NULL_CODE = 0xFFFF
"""Local code of a null row in :func:`chunk_dictionaries` (the local codes are uint16)."""
_EMPTY = np.int32(-1)
_INLINE = 12  # string-view bytes stored in the view itself


@njit(inline="always", cache=True)
def _view(words, bases, i):
    """``(source, start, length)`` of row ``i``: source 0 is the views' bytes, 1 the data blob."""
    length = np.int64(words[4 * i])
    if length <= _INLINE:
        return 0, 16 * i + 4, length
    return 1, bases[words[4 * i + 2]] + np.int64(words[4 * i + 3]), length


@njit(inline="always", cache=True)
def _byte(view_bytes, blob, source, k):
    return view_bytes[k] if source == 0 else blob[k]


@njit(inline="always", cache=True)
def _before(view_bytes, blob, sa, a, la, sb, b, lb):
    """True when string a sorts strictly before string b (byte-wise)."""
    for j in range(min(la, lb)):
        x = _byte(view_bytes, blob, sa, a + j)
        y = _byte(view_bytes, blob, sb, b + j)
        if x != y:
            return x < y
    return la < lb


_LOW32 = np.uint64(0xFFFFFFFF)
_B8 = np.uint64(0x00FF00FF00FF00FF)
_B16 = np.uint64(0x0000FFFF0000FFFF)


@njit(inline="always", cache=True)
def _low_bytes(x, k):
    """``x`` with only its ``k`` low bytes kept (0 <= k <= 8)."""
    if k >= 8:
        return x
    return x & ((np.uint64(1) << np.uint64(8 * k)) - np.uint64(1))


@njit(inline="always", cache=True)
def _byteswap(x):
    x = ((x & _B8) << np.uint64(8)) | ((x >> np.uint64(8)) & _B8)
    x = ((x & _B16) << np.uint64(16)) | ((x >> np.uint64(16)) & _B16)
    return (x << np.uint64(32)) | (x >> np.uint64(32))


@njit(inline="always", cache=True)
def _inline_words(wide, i):
    """An inline string (at most 12 bytes) as ``(length, a, b)``: its bytes 0..7 and 8..11 as
    little-endian words, bytes past the end zeroed (whatever the view's padding holds)."""
    w0 = wide[2 * i]
    w1 = wide[2 * i + 1]
    length = np.int64(w0 & _LOW32)
    a = _low_bytes((w0 >> np.uint64(32)) | (w1 << np.uint64(32)), length)
    b = _low_bytes(w1 >> np.uint64(32), max(length - 8, 0))
    return length, a, b


@njit(inline="always", cache=True)
def _inline_fnv(length, a, b):
    """FNV-1a of an inline string from its words: a fixed, branch-free loop (unrolled by the compiler)."""
    h = _FNV_OFFSET
    for j in range(12):
        x = (a >> np.uint64(8 * j)) if j < 8 else (b >> np.uint64(8 * (j - 8)))
        stepped = (h ^ (x & np.uint64(0xFF))) * _FNV_PRIME
        h = stepped if j < length else h
    return h


@njit(inline="always", cache=True)
def _inline_before(pl_, pa, pb, length, a, b):
    """True when the inline string (pl_, pa, pb) sorts strictly before (length, a, b) (byte-wise)."""
    hi_p, hi = _byteswap(pa), _byteswap(a)
    if hi_p != hi:
        return hi_p < hi
    lo_p, lo = _byteswap(pb), _byteswap(b)
    if lo_p != lo:
        return lo_p < lo
    return pl_ < length


@njit(parallel=True, cache=True)
def inline_string_keys(wide, n_blocks, out):
    """:func:`string_view_keys` for a column whose strings are all inline (at most 12 bytes; the usual
    ids): the view's two words only, no branches in the loop."""
    n = out.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    ordered = np.ones(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, (b + 1) * block)
        if lo >= hi:
            continue
        pl_, pa, pb = _inline_words(wide, lo - 1 if lo > 0 else lo)
        ok = True
        for i in range(lo, hi):
            length, a, wb = _inline_words(wide, i)
            out[i] = mix64(_inline_fnv(length, a, wb))
            ok = ok and (i == 0 or _inline_before(pl_, pa, pb, length, a, wb))
            pl_, pa, pb = length, a, wb
        ordered[b] = 1 if ok else 0
    return ordered.all()


@njit(parallel=True, cache=True)
def string_view_keys(view_bytes, wide, words, blob, bases, n_blocks, out):
    """Twin keys of a string-view column into ``out`` (uint64); returns True when rows strictly increase.

    ``view_bytes`` (uint8, 16 per row), ``wide`` (uint64, 2 per row) and ``words`` (uint32, 4 per row) are
    the same views; ``blob`` and ``bases`` hold the data buffers (see the module docstring). Inline strings
    (the usual ids) take a branch-free path over the view's two words.
    """
    n = out.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    ordered = np.ones(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            source, start, length = _view(words, bases, i)
            ps, pstart, plength = _view(words, bases, i - 1 if i > 0 else 0)
            compare = i > 0 and ordered[b] == 1
            if source == 0:
                length, wa, wb = _inline_words(wide, i)
                h = _inline_fnv(length, wa, wb)
            else:
                h = fnv1a64(blob, start, start + length)
            out[i] = mix64(h)
            if compare:
                if source == 0 and ps == 0:
                    pl_, pa, pb = _inline_words(wide, i - 1)
                    before = _inline_before(pl_, pa, pb, length, wa, wb)
                else:
                    before = _before(view_bytes, blob, ps, pstart, plength, source, start, length)
                if not before:
                    ordered[b] = 0
    return ordered.all()


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


@njit(inline="always", cache=True)
def _record_key(wide, words, blob, bases, i):
    """Identity of string-view row ``i`` as two words: exact for inline strings (bytes and length); for
    longer ones its length and first 12 bytes (the caller compares the bytes after them too)."""
    source, start, length = _view(words, bases, i)
    if source == 0:
        length, a, b = _inline_words(wide, i)
        return a, b | (np.uint64(length) << np.uint64(32)), source, start, length
    second = np.uint64(0)  # bytes 4..11 (the view holds the length and bytes 0..3)
    for j in range(8):
        second |= np.uint64(blob[start + 4 + j]) << np.uint64(8 * j)
    return wide[2 * i], second, source, start, length


@njit(parallel=True, cache=True)
def view_record_keys(wide, words, blob, bases, key0, key1):
    """:func:`_record_key` of every row (for the few labels a column is encoded against)."""
    for i in prange(key0.shape[0]):
        k0, k1, _, _, _ = _record_key(wide, words, blob, bases, i)
        key0[i] = k0
        key1[i] = k1


@njit(parallel=True, cache=True)
def view_codes(wide, words, blob, bases, valid, label_key0, label_key1, label_bytes, label_offsets, final,
               null_code, n_blocks, out):  # fmt: skip
    """``out[i] = final[k]`` where row ``i`` holds label ``k``, ``null_code`` for a null row.

    The labels arrive as their :func:`_record_key` words and their UTF-8 bytes (``label_bytes``, with
    ``label_offsets``); a long string matches a label only when its bytes are equal. Returns the number of
    blocks that met a value outside the labels (those blocks stop early; 0 means every row was coded).
    """
    n = out.shape[0]
    n_labels = label_key0.shape[0]
    size = _table_size(n_labels)
    mask = np.uint64(size - 1)
    table = np.full(size, _EMPTY, dtype=np.int32)
    for k in range(n_labels):
        slot = mix64(label_key0[k] ^ mix64(label_key1[k])) & mask
        while table[slot] != _EMPTY:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = k
    has_valid = valid.shape[0] > 0
    block = (n + n_blocks - 1) // n_blocks
    missed = np.zeros(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            if has_valid and valid[i] == 0:
                out[i] = null_code
                continue
            k0, k1, source, start, length = _record_key(wide, words, blob, bases, i)
            slot = mix64(k0 ^ mix64(k1)) & mask
            found = -1
            while table[slot] != _EMPTY:
                k = table[slot]
                if label_key0[k] == k0 and label_key1[k] == k1:
                    if source == 0:
                        found = k
                        break
                    lo = label_offsets[k]
                    if label_offsets[k + 1] - lo == length:
                        same = True
                        for j in range(_INLINE, length):
                            if blob[start + j] != label_bytes[lo + j]:
                                same = False
                                break
                        if same:
                            found = k
                            break
                slot = (slot + np.uint64(1)) & mask
            if found < 0:
                missed[b] = 1
                break
            out[i] = final[found]
    return missed.sum()


@njit(inline="always", cache=True)
def _inline_slot(a, b, mask):
    return mix64(a ^ (b * _M2)) & mask


@njit(parallel=True, cache=True)
def inline_view_codes(wide, valid, label_key0, label_key1, final, null_code, n_blocks, out):
    """:func:`view_codes` for a column whose strings are all inline (at most 12 bytes): a row matches a
    label when the two words (bytes and length) are equal, which is exact."""
    n = out.shape[0]
    n_labels = label_key0.shape[0]
    size = _table_size(n_labels)
    mask = np.uint64(size - 1)
    table = np.full(size, _EMPTY, dtype=np.int32)
    for k in range(n_labels):
        slot = _inline_slot(label_key0[k], label_key1[k], mask)
        while table[slot] != _EMPTY:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = k
    has_valid = valid.shape[0] > 0
    block = (n + n_blocks - 1) // n_blocks
    missed = np.zeros(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            if has_valid and valid[i] == 0:
                out[i] = null_code
                continue
            length, a, wb = _inline_words(wide, i)
            key1 = wb | (np.uint64(length) << np.uint64(32))
            slot = _inline_slot(a, key1, mask)
            k = table[slot]
            while k != _EMPTY and (label_key0[k] != a or label_key1[k] != key1):
                slot = (slot + np.uint64(1)) & mask
                k = table[slot]
            if k == _EMPTY:
                missed[b] = 1
                break
            out[i] = final[k]
    return missed.sum()
