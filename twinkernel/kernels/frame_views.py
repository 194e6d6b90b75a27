"""Kernels over string columns in Arrow's string-view layout: twin keys, id order and category codes.

Layout
------
Polars keeps a String column as string views, exported to Arrow without a copy: 16 bytes per row, read
here as two little-endian uint64 words (``wide``, 2 per row). The low 32 bits of the first word are the
length. A string of at most 12 bytes sits in the view itself (bytes 4..15, padding after it). A longer one
sits in a data buffer: the view holds its first 4 bytes, then the buffer index and the offset (the low and
high halves of the second word). The data buffers are read in place through their addresses (``bases``,
with their ``sizes`` to check every long view against): nothing is concatenated or copied. A view whose
buffer index or range is out of bounds (only a null row may hold garbage) is never dereferenced: the load
goes to ``dummy``, a zeroed scratch area of at least 32 bytes, and the row is reported.

Twin keys
---------
:func:`string_keys` computes every row's twin key (``mix64(fnv1a64(utf8))``, as
``_rng.twin_keys_from_strings``) and whether the rows strictly increase (byte-wise, which is code-point
order; sorted ids are unique without a duplicate check). Every row first takes the branch-free inline path
(the view's two words); a block that holds a long row then re-does those rows from their data bytes.

Category codes
--------------
:func:`view_codes` maps every row to the code of its label in one branch-free pass, given the labels'
:func:`_row_key` words and a collision-free hash table of them (built by the caller). A row's key is exact
for strings of at most 20 bytes: ``(bytes 0..7, bytes 8..11 + length, 0)`` for an inline string and
``(length + bytes 0..3, bytes 4..11, the last 8 bytes)`` for a long one; a row matches a label when the
three words and the long flag are equal, and a string longer than 20 bytes also compares its middle bytes.
A row whose value is not among the labels is counted (its code is then meaningless), so the caller can
retry with the complete label set.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from ._rng import _FNV_OFFSET, _FNV_PRIME, mix64

_INLINE = 12  # string-view bytes stored in the view itself
_SUB = 512  # rows per run of the twin-key loops (their small arrays stay in L1)
_LOW32 = np.uint64(0xFFFFFFFF)
_MASK_A = np.array([(1 << (8 * min(k, 8))) - 1 for k in range(13)], dtype=np.uint64)  # bytes 0..7 kept
_MASK_B = np.array([(1 << (8 * min(max(k - 8, 0), 4))) - 1 for k in range(13)], dtype=np.uint64)  # 8..11
_B8 = np.uint64(0x00FF00FF00FF00FF)
_B16 = np.uint64(0x0000FFFF0000FFFF)
_K0 = np.uint64(0x9E3779B97F4A7C15)  # odd constants that spread the key words before the table's multiplier
_K1 = np.uint64(0xC2B2AE3D27D4EB4F)
_K2 = np.uint64(0x165667B19E3779F9)


@intrinsic
def _load_u64(typingctx, address):
    """The 8 bytes at ``address`` (int64) as a little-endian uint64; no alignment needed."""

    def codegen(context, builder, signature, args):
        pointer = context.get_value_type(types.uint64).as_pointer()
        return builder.load(builder.inttoptr(args[0], pointer), align=1)

    return types.uint64(types.int64), codegen


@intrinsic
def _load_u8(typingctx, address):
    """The byte at ``address`` (int64)."""

    def codegen(context, builder, signature, args):
        pointer = context.get_value_type(types.uint8).as_pointer()
        return builder.load(builder.inttoptr(args[0], pointer), align=1)

    return types.uint8(types.int64), codegen


@njit(inline="always", cache=True)
def _inline_key(w0, w1):
    """A view read as an inline string: ``(length, a, b)`` with its bytes 0..7 and 8..11 as little-endian
    words, bytes past the end zeroed (whatever the view's padding holds). The masks come from a table:
    string lengths vary from row to row, and a mispredicted branch costs more than the row's work."""
    length = np.int64(w0 & _LOW32)
    m = length if length < _INLINE else _INLINE
    a = ((w0 >> np.uint64(32)) | (w1 << np.uint64(32))) & _MASK_A[m]
    b = (w1 >> np.uint64(32)) & _MASK_B[m]
    return length, a, b


@njit(inline="always", cache=True)
def _byteswap(x):
    x = ((x & _B8) << np.uint64(8)) | ((x >> np.uint64(8)) & _B8)
    x = ((x & _B16) << np.uint64(16)) | ((x >> np.uint64(16)) & _B16)
    return (x << np.uint64(32)) | (x >> np.uint64(32))


@njit(inline="always", cache=True)
def _inline_words(wide, i):
    """Row ``i`` read as an inline string (see :func:`_inline_key`)."""
    return _inline_key(wide[2 * i], wide[2 * i + 1])


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
def _address(wide, views, bases, sizes, dummy, i):
    """``(address, length, ok)`` of row ``i``'s bytes: in the view for an inline string, in its data
    buffer for a long one; ``ok`` is False (and the address ``dummy``) for an out-of-bounds view."""
    w0 = wide[2 * i]
    w1 = wide[2 * i + 1]
    length = np.int64(w0 & _LOW32)
    if length <= _INLINE:
        return views + 16 * i + 4, length, True
    buf = np.int64(w1 & _LOW32)
    offset = np.int64(w1 >> np.uint64(32))
    if buf < bases.shape[0] and offset + length <= sizes[buf]:
        return bases[buf] + offset, length, True
    return dummy, length, False


@njit(inline="always", cache=True)
def _before_at(pa, pn, a, n):
    """True when the ``pn`` bytes at ``pa`` sort strictly before the ``n`` bytes at ``a``."""
    for j in range(min(pn, n)):
        x = _load_u8(pa + j)
        y = _load_u8(a + j)
        if x != y:
            return x < y
    return pn < n


@njit(parallel=True, cache=True)
def string_keys(wide, views, bases, sizes, dummy, n_blocks, out):
    """Twin keys of a string-view column into ``out`` (uint64).

    Each block runs over short runs of rows: the views are copied into small arrays, then the keys and
    the sort words (big-endian) are computed and neighbours compared in plain loops the compiler
    vectorises (a quarter faster than one loop doing all). Returns 1 when the rows strictly increase, 0
    when not, and -1 when a view is out of bounds (``out`` is then incomplete). ``views`` is the address
    of ``wide``'s memory; see the module docstring.
    """
    n = out.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    ordered = np.ones(n_blocks, dtype=np.uint8)
    bad = np.zeros(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, (b + 1) * block)
        if lo >= hi:
            continue
        inc = np.int64(1)
        longs = np.int64(0)
        w0 = np.empty(_SUB + 1, dtype=np.uint64)  # the views of rows s - 1 .. s + m - 1, then
        w1 = np.empty(_SUB + 1, dtype=np.uint64)
        high = np.empty(_SUB + 1, dtype=np.uint64)  # their bytes 0..7 in sort order,
        low = np.empty(_SUB + 1, dtype=np.uint64)  # bytes 8..11 in sort order and the length
        for s in range(lo, hi, _SUB):  # every row as an inline string, in short runs of simple loops
            m = min(_SUB, hi - s)
            for k in range(m + 1):
                r = max(s - 1 + k, 0)
                w0[k] = wide[2 * r]
                w1[k] = wide[2 * r + 1]
            for k in range(m + 1):
                length, x, y = _inline_key(w0[k], w1[k])
                high[k] = _byteswap(x)
                low[k] = _byteswap(y) | np.uint64(length)
            for k in range(m):
                length, x, y = _inline_key(w0[k + 1], w1[k + 1])
                out[s + k] = mix64(_inline_fnv(length, x, y))
            for k in range(m):
                before_len = low[k] & _LOW32
                length = low[k + 1] & _LOW32
                skip = np.int64(before_len > _INLINE) | np.int64(length > _INLINE) | np.int64(s + k == 0)
                before = np.int64(high[k] < high[k + 1]) | (
                    np.int64(high[k] == high[k + 1]) & np.int64(low[k] < low[k + 1])
                )
                inc &= skip | before
                longs |= np.int64(length > _INLINE)
        if longs:  # rows longer than 12 bytes: hash their data, and order every pair holding one
            for i in range(lo, hi):
                a, length, ok = _address(wide, views, bases, sizes, dummy, i)
                if not ok:
                    bad[b] = 1
                    break
                if length > _INLINE:
                    h = _FNV_OFFSET
                    for j in range(length):
                        h = (h ^ np.uint64(_load_u8(a + j))) * _FNV_PRIME
                    out[i] = mix64(h)
                if i > 0 and inc:
                    pa, pn, pok = _address(wide, views, bases, sizes, dummy, i - 1)
                    if pok and (length > _INLINE or pn > _INLINE):
                        inc = np.int64(_before_at(pa, pn, a, length))
        ordered[b] = 1 if inc else 0
    if bad.any():
        return -1
    return 1 if ordered.all() else 0


@njit(inline="always", cache=True)
def _row_key(wide, bases, sizes, dummy, i):
    """``(k0, k1, k2, long, ok)`` of row ``i`` (see the module docstring), branch-free but for the bounds
    check; ``ok`` is False for a long view out of bounds."""
    w0 = wide[2 * i]
    w1 = wide[2 * i + 1]
    length, a, b = _inline_key(w0, w1)
    is_long = length > _INLINE
    buf = min(np.int64(w1 & _LOW32), bases.shape[0] - 1)
    offset = np.int64(w1 >> np.uint64(32))
    in_bounds = (np.int64(w1 & _LOW32) < bases.shape[0]) & (offset + length <= sizes[buf])
    reads = is_long & in_bounds
    address = bases[buf] + offset if reads else dummy
    k1_long = _load_u64(address + 4)
    k2_long = _load_u64(address + (length - 8 if reads else 0))
    k0 = w0 if is_long else a
    k1 = k1_long if is_long else b | (np.uint64(length) << np.uint64(32))
    k2 = k2_long if is_long else np.uint64(0)
    return k0, k1, k2, is_long, reads | (not is_long)


@njit(inline="always", cache=True)
def _slot(k0, k1, k2, is_long, mult, shift):
    """The table slot of a key: its words spread by odd constants, then the table's multiplier."""
    h = (k0 * _K0) ^ (k1 * _K1) ^ (k2 * _K2) ^ np.uint64(is_long)
    return np.int64((h * mult) >> shift)


@njit(inline="always", cache=True)
def _lookup_inline(wide, table, mult, shift, k0, k1, i):
    """The table entry of row ``i`` and 1 when the row holds that label (else 0), when every label is
    inline: no long string can match, and none is read (see :func:`view_codes`). The flag is an integer:
    returning a bool from this inlined helper halved the kernel's speed (numba 0.68)."""
    length, a, b = _inline_words(wide, i)
    r1 = b | (np.uint64(length) << np.uint64(32))
    t = table[_slot(a, r1, np.uint64(0), False, mult, shift)]
    return t, np.int64((k0[t] == a) & (k1[t] == r1))


@njit(inline="always", cache=True)
def _lookup(wide, bases, sizes, dummy, table, mult, shift, k0, k1, k2, long_flag, label_data, i):
    """:func:`_lookup_inline` when some label is longer than 12 bytes."""
    r0, r1, r2, is_long, ok = _row_key(wide, bases, sizes, dummy, i)
    t = table[_slot(r0, r1, r2, is_long, mult, shift)]
    match = ok & (k0[t] == r0) & (k1[t] == r1) & (k2[t] == r2) & (long_flag[t] == is_long)
    length = np.int64(wide[2 * i] & _LOW32)
    if match and length > 20:  # the middle bytes of a long string
        w1 = wide[2 * i + 1]
        address = bases[np.int64(w1 & _LOW32)] + np.int64(w1 >> np.uint64(32))
        lab = label_data[t]
        for j in range(_INLINE, length - 8, 8):
            if _load_u64(address + j) != _load_u64(lab + j):
                return t, np.int64(0)
    return t, np.int64(match)


@njit(cache=True)
def label_keys(wide, bases, sizes, dummy, k0, k1, k2, long_flag):
    """:func:`_row_key` of every row (the few labels a column is coded against); False when a view is
    out of bounds."""
    for i in range(k0.shape[0]):
        a, b, c, is_long, ok = _row_key(wide, bases, sizes, dummy, i)
        if not ok:
            return False
        k0[i] = a
        k1[i] = b
        k2[i] = c
        long_flag[i] = is_long
    return True


@njit(cache=True)
def label_slots(k0, k1, k2, long_flag, mult, shift):
    """The table slot of every label under multiplier ``mult`` (int64)."""
    out = np.empty(k0.shape[0], dtype=np.int64)
    for i in range(k0.shape[0]):
        out[i] = _slot(k0[i], k1[i], k2[i], long_flag[i], mult, shift)
    return out


@njit(inline="always", cache=True)
def _code_row(wide, bases, sizes, dummy, labels_inline, table, mult, shift, k0, k1, k2, long_flag,
              label_data, i):  # fmt: skip
    if labels_inline:
        return _lookup_inline(wide, table, mult, shift, k0, k1, i)
    return _lookup(wide, bases, sizes, dummy, table, mult, shift, k0, k1, k2, long_flag, label_data, i)


@njit(parallel=True, cache=True)
def view_codes(wide, bases, sizes, dummy, labels_inline, table, mult, shift, k0, k1, k2, long_flag,
               label_data, final, n_blocks, out):  # fmt: skip
    """``out[i] = final[k]`` where row ``i`` holds label ``k``, every row taken as present (see
    :func:`view_null_codes` for the null rows).

    ``table`` (int32, ``2**(64 - shift)`` slots) holds each label's index at its slot (no two labels
    share one) and ``len(labels)`` elsewhere; ``k0 .. long_flag`` are the labels' keys plus one entry
    that no row matches, ``final`` their codes (plus one). ``labels_inline`` tells that no label is longer
    than 12 bytes (then no data buffer is read). ``label_data`` holds the address of each label's bytes
    (read only for strings longer than 20 bytes). Returns the number of rows that matched no label.
    """
    n = out.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    missed = np.zeros(n_blocks, dtype=np.int64)
    for b in prange(n_blocks):
        miss = 0
        lo = b * block
        hi = min(n, (b + 1) * block)
        if labels_inline:  # two loops: a test of the flag inside one loop halved its speed
            for i in range(lo, hi):
                t, match = _lookup_inline(wide, table, mult, shift, k0, k1, i)
                out[i] = final[t]
                miss += 1 - match
        else:
            for i in range(lo, hi):
                t, match = _lookup(wide, bases, sizes, dummy, table, mult, shift, k0, k1, k2, long_flag,
                                   label_data, i)  # fmt: skip
                out[i] = final[t]
                miss += 1 - match
        missed[b] = miss
    return missed.sum()


@njit(cache=True)
def view_null_codes(wide, bases, sizes, dummy, labels_inline, table, mult, shift, k0, k1, k2, long_flag,
                    label_data, valid, null_code, out):  # fmt: skip
    """After :func:`view_codes`: ``out[i] = null_code`` where ``valid[i]`` is 0; returns how many of
    those rows :func:`view_codes` counted as matching no label. Kept apart so that the hot loop has no
    test of validity (a separate loop in the same kernel halved its speed)."""
    miss = 0
    for i in range(out.shape[0]):
        if valid[i] == 0:
            _, match = _code_row(wide, bases, sizes, dummy, labels_inline, table, mult, shift, k0, k1, k2,
                                 long_flag, label_data, i)  # fmt: skip
            miss += 1 - match
            out[i] = null_code
    return miss
