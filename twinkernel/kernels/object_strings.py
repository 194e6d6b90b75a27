"""Kernels that read a NumPy ``object`` array of Python ``str`` as an Arrow string-view column.

Converting a pandas ``object`` column of 10 M ids to a Polars String costs more than simulating the
population (Polars and Arrow visit each Python object through the C API, one at a time, holding the GIL).
For the usual case, every value an exact ``str`` of ASCII characters, the bytes sit at a fixed place in
each object: CPython stores a *compact ASCII* string as its header followed by the characters. These
kernels read that memory directly, in parallel on numba's threads, and write Arrow's string views
(16 bytes per row: the length and up to 12 inline bytes, or the length, a 4-byte prefix and the offset of
the bytes in one data buffer).

The layout is an implementation detail of CPython, so nothing is assumed: :func:`probe_layout` derives the
offsets from the running interpreter and checks them on probe strings of every kind (ASCII, interned,
Latin-1, UCS-2, UCS-4, a ``str`` subclass, ``None``); when any check fails the caller takes the C-API
path. A row is read only after its object's type pointer is that of ``str`` and its state byte says
compact ASCII; any other row (``None``, NaN, a subclass, non-ASCII text) is counted and the caller falls
back for the whole column, so the result is always the same column the C-API path builds.

The objects must stay alive and the array unchanged while a kernel runs: the caller holds the array, and
the kernels are compiled without ``nogil``, so the calling thread keeps the GIL and no Python code can free
or replace an object meanwhile (strings are immutable; only their reference counts change, which is not
read).
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ._rng import _FNV_OFFSET, _FNV_PRIME, mix64
from .frame_views import _INLINE, _before_at, _byteswap, _inline_key, _load_u8, _load_u64

__all__ = ["AsciiLayout", "ascii_lengths", "ascii_views", "probe_layout"]

_KIND_COMPACT_ASCII_MASK = 0x7C  # state bits 2..4 (kind), 5 (compact), 6 (ascii); bits 0..1 are "interned"
_KIND_COMPACT_ASCII = 0x64  # kind 1 (one byte per character), compact, ascii


@dataclass(frozen=True)
class AsciiLayout:
    """Byte offsets, from an object's address, of the fields the kernels read."""

    type_offset: int  # the type pointer (PyObject header)
    length_offset: int  # the length in characters (= bytes for ASCII)
    state_offset: int  # the state byte: interned, kind, compact, ascii bits
    data_offset: int  # the first character of a compact ASCII string
    str_type: int  # the address of the ``str`` type object


@njit(inline="always", cache=True)
def _compact_ascii_length(p, str_type, type_offset, length_offset, state_offset):
    """The length of the string at address ``p`` when it is an exact ``str`` in compact ASCII form, else
    -1 (nothing past the type pointer is read for another object)."""
    if p == 0 or _load_u64(p + type_offset) != str_type:
        return np.int64(-1)
    if (_load_u8(p + state_offset) & _KIND_COMPACT_ASCII_MASK) != _KIND_COMPACT_ASCII:
        return np.int64(-1)
    return np.int64(_load_u64(p + length_offset))


@njit(cache=True)
def _foreign(address, none_address, str_type, type_offset):
    """1 when the object at ``address`` is neither an exact ``str`` nor ``None``, else 0 (not inlined: it
    runs only for such rows)."""
    if address == none_address:
        return 0
    if address == 0:
        return 1
    return 0 if _load_u64(address + type_offset) == str_type else 1


@njit(parallel=True, cache=True)
def ascii_lengths(addresses, str_type, none_address, type_offset, length_offset, state_offset, n_blocks,
                  long_bytes, counts):  # fmt: skip
    """Each block's bytes of strings longer than 12 into ``long_bytes``, and into ``counts[b]`` (int64,
    ``(n_blocks, 2)``) the number of block ``b``'s rows that are not compact ASCII ``str`` and, of those,
    the rows that are neither an exact ``str`` nor ``None`` (at ``none_address``). Nothing is written per
    row: a 10 M-row array of lengths costs more to allocate than :func:`ascii_views` takes to read each
    length again."""
    n = addresses.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        other = 0
        foreign = 0
        long_total = 0
        for i in range(b * block, min(n, (b + 1) * block)):
            obj = np.int64(addresses[i])
            length = _compact_ascii_length(obj, str_type, type_offset, length_offset, state_offset)
            other += length < 0
            foreign += _foreign(obj, none_address, str_type, type_offset) if length < 0 else 0
            if length > _INLINE:
                long_total += length
        counts[b, 0] = other
        counts[b, 1] = foreign
        long_bytes[b] = long_total


@njit(inline="always", cache=True)
def _sort_words(w0, w1):
    """An inline view's bytes 0..7 and (bytes 8..11, length) as big-endian words: comparing the pairs
    compares the strings byte-wise, a prefix first (bytes past the end are zero in these views)."""
    length, a, b = _inline_key(w0, w1)
    return _byteswap(a), _byteswap(b) | np.uint64(length)


@njit(parallel=True, cache=True)
def ascii_views(addresses, length_offset, data_offset, n_blocks, starts, views, data, keys):
    """The string views of every row into ``views`` (uint64, two words per row), the bytes of strings
    longer than 12 into ``data`` (buffer 0), block ``b``'s from ``starts[b]``, and every row's twin key
    (``mix64(fnv1a64(bytes))``, as :func:`~twinkernel.kernels.frame_views.string_keys`) into ``keys``;
    only after :func:`ascii_lengths` found every row compact ASCII. Returns 1 when the rows strictly
    increase byte-wise, else 0. Bytes are read one at a time: nothing past a string's end is touched."""
    n = addresses.shape[0]
    block = (n + n_blocks - 1) // n_blocks
    ordered = np.ones(n_blocks, dtype=np.uint8)
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, (b + 1) * block)
        pos = starts[b]
        inc = True
        # the row before the block (another block's): compared byte by byte, its sort words unknown here
        prev = np.int64(addresses[lo - 1]) if 0 < lo < n else np.int64(0)
        prev_len = np.int64(_load_u64(prev + length_offset)) if prev != 0 else np.int64(0)
        prev_high = np.uint64(0)
        prev_low = np.uint64(0)
        for i in range(lo, hi):
            obj = np.int64(addresses[i])
            length = np.int64(_load_u64(obj + length_offset))
            p = obj + data_offset
            w0 = np.uint64(length)
            w1 = np.uint64(0)
            h = _FNV_OFFSET
            for j in range(length if length < 4 else 4):
                x = np.uint64(_load_u8(p + j))
                w0 |= x << np.uint64(32 + 8 * j)
                h = (h ^ x) * _FNV_PRIME
            if length <= _INLINE:
                for j in range(4, length):
                    x = np.uint64(_load_u8(p + j))
                    w1 |= x << np.uint64(8 * (j - 4))
                    h = (h ^ x) * _FNV_PRIME
            else:
                w1 = np.uint64(pos) << np.uint64(32)  # buffer 0, at offset pos
                for j in range(4):
                    data[pos + j] = _load_u8(p + j)
                for j in range(4, length):
                    x = _load_u8(p + j)
                    data[pos + j] = x
                    h = (h ^ np.uint64(x)) * _FNV_PRIME
                pos += length
            views[2 * i] = w0
            views[2 * i + 1] = w1
            keys[i] = mix64(h)
            high, low = _sort_words(w0, w1)
            if inc and (i > 0):
                if i == lo or length > _INLINE or prev_len > _INLINE:
                    inc = _before_at(prev + data_offset, prev_len, p, length)
                else:
                    inc = (prev_high < high) or (prev_high == high and prev_low < low)
            prev = obj
            prev_len = length
            prev_high = high
            prev_low = low
        ordered[b] = 1 if inc else 0
    return 1 if ordered.all() else 0


class _Subclass(str):
    pass


def _probe_strings() -> tuple[list[str], list[object]]:
    """Fresh compact ASCII strings (built at run time, one interned), and objects that are not."""
    digits = "".join(str(d) for d in range(10))
    ascii_ = ["", "a" + digits[:0], "hcp-" + digits[:8], "x" * 13 + digits]
    ascii_.append(sys.intern("twinkernel-" + digits))
    others: list[object] = ["é" + digits, "Δ" + digits, "\U0001f600" + digits]
    others += [_Subclass("abc" + digits), None]
    return ascii_, others


def probe_layout() -> AsciiLayout | None:
    """The layout of compact ASCII strings in this interpreter, checked on probe objects; ``None`` when
    this is not CPython or any check fails (the caller then converts through the C API)."""
    if sys.implementation.name != "cpython" or not hasattr(sys, "getsizeof"):
        return None
    pointer = ctypes.sizeof(ctypes.c_void_p)
    if pointer != 8 or sys.byteorder != "little":
        return None
    layout = AsciiLayout(
        type_offset=pointer,  # after the reference count
        length_offset=2 * pointer,
        state_offset=4 * pointer,  # after the length and the cached hash
        data_offset=sys.getsizeof("") - 1,  # the header, then the characters and a terminating NUL
        str_type=id(str),
    )
    ascii_, others = _probe_strings()
    try:
        for text in ascii_:
            if _read_probe(text, layout) != text.encode("ascii"):
                return None
        for obj in others:
            if _read_probe(obj, layout) is not None:
                return None
    except (OSError, ValueError):
        return None
    return layout


def _read_probe(obj: object, layout: AsciiLayout) -> bytes | None:
    """What the kernels would read of one object (the same test, in Python)."""
    if obj is None:
        return None
    address = id(obj)
    if int.from_bytes(ctypes.string_at(address + layout.type_offset, 8), "little") != layout.str_type:
        return None
    state = ctypes.string_at(address + layout.state_offset, 1)[0]
    if state & _KIND_COMPACT_ASCII_MASK != _KIND_COMPACT_ASCII:
        return None
    length = int.from_bytes(ctypes.string_at(address + layout.length_offset, 8), "little")
    if length != len(obj):  # type: ignore[arg-type]
        return None
    return ctypes.string_at(address + layout.data_offset, length)
