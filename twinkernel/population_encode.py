"""Fast readers of a user's frame for :class:`~twinkernel.population.TwinPopulation` (speed only).

Building 10 million twins used to cost more than simulating them: Polars' ``unique`` + ``replace_strict``
per string column, ``n_unique`` over the string ids, one Python string of all ids for their keys, and
``pl.from_pandas`` walking every Python object of every pandas ``object`` column. This module replaces
those steps with passes of the kernels in :mod:`twinkernel.kernels.frame`,
:mod:`twinkernel.kernels.frame_views` and :mod:`twinkernel.kernels.object_strings`; each function returns
exactly what the slow path returns, or ``None`` when it cannot (then the caller takes the slow path):

- :func:`string_view_keys`: the twin keys of a String column read from Polars' string views (exported to
  Arrow without a copy, data buffers read in place; needs ``pyarrow``), and whether the column is strictly
  increasing;
- :func:`string_codes`: the codes of a low-cardinality String column in one pass over its views, through
  a collision-free table of its labels;
- :func:`keys_are_unique`: whether 64-bit twin keys are all distinct (a duplicate key sends the caller to
  the exact check on the ids themselves, so a hash collision never rejects a valid frame);
- :func:`frame_from_pandas`: a pandas frame as Polars, with the categorical ``object`` columns read
  through the identity of their Python objects (a column of 10 M strings usually holds a handful of
  distinct objects, coded in one pass over the pointers) instead of converting 10 M objects one by one,
  and an ``object`` id column of ASCII strings read from the objects' memory, its twin keys computed on
  the way (:class:`PandasFrame` hands them to the population build).
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numba
import numpy as np
import polars as pl

from .config_frame import FrameEncodingConfig

if TYPE_CHECKING:
    from .kernels.object_strings import AsciiLayout

__all__ = [
    "Dictionary",
    "PandasFrame",
    "StringViews",
    "column_threads",
    "frame_from_pandas",
    "in_column_order",
    "keys_are_unique",
    "string_codes",
    "string_view_keys",
    "string_views",
]

_T = TypeVar("_T")
_ObjectCodes = tuple[str, np.ndarray, list[str], bool]
_NO_ROWS_U8 = np.empty(0, dtype=np.uint8)
_NO_ROWS_U32 = np.empty(0, dtype=np.uint32)
_SCRATCH = np.zeros(64, dtype=np.uint8)  # where the kernels' loads of a malformed view go
_MAX_TABLE_BITS = 16
_MULTIPLIER_TRIES = 16


@dataclass(frozen=True)
class StringViews:
    """A String column in Arrow's string-view layout (see :mod:`twinkernel.kernels.frame_views`).

    The kernels read the data buffers through ``bases`` (addresses): ``owner`` (the Arrow array) keeps
    that memory alive and must outlive every kernel call.
    """

    wide: np.ndarray  # uint64, 2 per row: the views
    bases: np.ndarray  # int64: the address of each data buffer (one zero-sized entry when there is none)
    sizes: np.ndarray  # int64: the size of each data buffer
    owner: object

    @property
    def address(self) -> int:
        return int(self.wide.ctypes.data)

    @property
    def dummy(self) -> int:
        return int(_SCRATCH.ctypes.data)


def string_views(s: pl.Series) -> StringViews | None:
    """The views of a String column: Polars' own memory exported to Arrow, nothing copied (a column in
    several chunks is rechunked first). ``None`` without ``pyarrow``."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    strings = s if s.dtype == pl.String else s.cast(pl.String)
    arr = strings.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string_view():
        arr = arr.cast(pa.string_view())
    buffers = arr.buffers()
    n = len(arr)
    if buffers[1] is None or n == 0:
        wide = np.zeros(2 * max(n, 1), dtype=np.uint64)
    else:
        raw = np.frombuffer(buffers[1], dtype=np.uint8)[16 * arr.offset : 16 * (arr.offset + n)]
        wide = raw.view(np.uint64) if raw.ctypes.data % 8 == 0 else raw.copy().view(np.uint64)
    data = [b for b in buffers[2:] if b is not None]
    bases = np.array([b.address for b in data] or [int(_SCRATCH.ctypes.data)], dtype=np.int64)
    sizes = np.array([b.size for b in data] or [0], dtype=np.int64)
    return StringViews(wide, bases, sizes, (arr, _SCRATCH))


def string_view_keys(s: pl.Series, n_blocks: int) -> tuple[np.ndarray, bool] | None:
    """Twin keys of a String column without nulls, and whether its rows strictly increase.

    The keys equal :func:`twinkernel.kernels._rng.twin_keys_from_strings` over the UTF-8 bytes. ``None``
    without ``pyarrow`` or for a malformed view.
    """
    from .kernels.frame_views import string_keys

    views = string_views(s)
    if views is None:
        return None
    n = s.len()
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out, True
    v = views
    increasing = string_keys(v.wide, v.address, v.bases, v.sizes, v.dummy, min(n_blocks, n), out)
    if increasing < 0:
        return None
    return out, bool(increasing)


def _multiplier(bits: int, attempt: int) -> int:
    """An odd 64-bit multiplier, a fixed function of its arguments (splitmix64 in plain Python)."""
    z = ((bits << 32) + attempt + 0x9E3779B97F4A7C15) % (1 << 64)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % (1 << 64)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % (1 << 64)
    return (z ^ (z >> 31)) | 1


def _label_table(views: StringViews, n_labels: int) -> tuple[Any, ...] | None:
    """The labels' keys (plus one entry no row matches) and a collision-free table of them:
    ``(table, multiplier, shift, k0, k1, k2, long_flag)``; ``None`` when no tried multiplier separates
    them (labels longer than 20 bytes that agree in length, first 12 and last 8 bytes)."""
    from .kernels.frame_views import label_keys

    k0 = np.zeros(n_labels + 1, dtype=np.uint64)
    k1 = np.full(n_labels + 1, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)  # no row's second word
    k2 = np.zeros(n_labels + 1, dtype=np.uint64)
    long_flag = np.zeros(n_labels + 1, dtype=np.bool_)
    v = views
    m = n_labels
    if m and not label_keys(v.wide, v.bases, v.sizes, v.dummy, k0[:m], k1[:m], k2[:m], long_flag[:m]):
        return None
    found = _perfect_table(k0[:m], k1[:m], k2[:m], long_flag[:m])
    return None if found is None else (*found, k0, k1, k2, long_flag)


def _perfect_table(
    k0: np.ndarray, k1: np.ndarray, k2: np.ndarray, long_flag: np.ndarray
) -> tuple[np.ndarray, np.uint64, np.uint64] | None:
    """``(table, multiplier, shift)``: a table of ``2**(64 - shift)`` int32 slots holding each key's
    index at its :func:`~twinkernel.kernels.frame_views._slot` (no two keys share one) and ``len(k0)``
    elsewhere, from the first of a fixed sequence of multipliers that separates the keys (``None`` when
    none does: equal keys)."""
    from .kernels.frame_views import label_slots

    n = k0.shape[0]
    bits = max(1, (4 * max(n, 1) - 1).bit_length())
    while bits <= _MAX_TABLE_BITS:
        shift = np.uint64(64 - bits)
        for attempt in range(_MULTIPLIER_TRIES):
            mult = np.uint64(_multiplier(bits, attempt))
            slots = label_slots(k0, k1, k2, long_flag, mult, shift)
            if np.unique(slots).shape[0] == n:
                table = np.full(1 << bits, n, dtype=np.int32)
                table[slots] = np.arange(n, dtype=np.int32)
                return table, mult, shift
        bits += 1
    return None


def string_codes(
    s: pl.Series, settings: FrameEncodingConfig, table_for: Callable[[list[str]], np.ndarray]
) -> tuple[list[str], np.ndarray] | None:
    """The sorted distinct non-null strings of ``s`` and every row's code, in one pass over the rows.

    ``table_for(labels)`` gives the code of each label and, last, the code of a null row. The labels are
    guessed from the first ``settings.chunk_rows`` rows; if a later row holds another value, the pass is
    repeated with every distinct value (Polars' ``unique``). Matching is exact (see
    :func:`twinkernel.kernels.frame_views.view_codes`). ``None`` without ``pyarrow``, with more than
    ``settings.dictionary_cap`` distinct values, or labels the kernel's keys cannot tell apart.
    """
    from .kernels.frame_views import view_codes, view_null_codes

    views = string_views(s)
    if views is None:
        return None
    valid = s.is_not_null().to_numpy().view(np.uint8) if s.null_count() else _NO_ROWS_U8
    guess = s.head(settings.chunk_rows).drop_nulls().unique().to_list()
    for labels in (sorted(guess), None):
        if labels is None:
            labels = sorted(s.drop_nulls().unique().to_list())
        if len(labels) > settings.dictionary_cap:
            return None
        label_series = pl.Series(labels, dtype=pl.String)
        label_views = string_views(label_series)
        found = None if label_views is None else _label_table(label_views, len(labels))
        if found is None:
            return None
        table, mult, shift, k0, k1, k2, long_flag = found
        encoded = [lab.encode("utf-8") + b"\0" * 8 for lab in labels]
        label_bytes = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
        starts = np.zeros(len(labels) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded[:-1]], out=starts[1 : len(labels)])
        label_data = starts + int(label_bytes.ctypes.data)
        codes = table_for(labels)
        final = np.append(codes[:-1], codes.dtype.type(0))
        out = np.empty(s.len(), dtype=codes.dtype)
        v = views
        labels_inline = not bool(long_flag.any())
        args = (v.wide, v.bases, v.sizes, v.dummy, labels_inline, table, mult, shift, k0, k1, k2, long_flag)
        blocks = min(settings.key_blocks, max(s.len(), 1))
        missed = view_codes(*args, label_data, final, blocks, out)
        if valid.shape[0]:
            missed -= view_null_codes(*args, label_data, valid, codes[-1], out)
        del label_views
        if missed == 0:
            return labels, out
    return None


@dataclass(frozen=True)
class Dictionary:
    """Distinct values of a column, numbered by first appearance, and every row's number (chunk-local)."""

    first_rows: np.ndarray  # int64: the first row holding each distinct value
    local: np.ndarray  # uint16 per row: the row's number within its chunk (NULL_CODE for null)
    remap: np.ndarray  # int64 (n_chunks, cap): chunk-local number -> global number
    chunk: int

    def codes(self, final: np.ndarray, null_code: int) -> np.ndarray:
        """Every row's code: ``final[global number]``, ``null_code`` for null rows (dtype of ``final``)."""
        from .kernels.frame import apply_dictionary

        out = np.empty(self.local.shape[0], dtype=final.dtype)
        apply_dictionary(self.local, self.remap, self.chunk, final, final.dtype.type(null_code), out)
        return out


def _dictionary(
    values: np.ndarray, lengths: np.ndarray, valid: np.ndarray, settings: FrameEncodingConfig
) -> Dictionary | None:
    from .kernels.frame import chunk_dictionaries, merge_dictionaries

    n = values.shape[0]
    chunk = settings.chunk_rows
    cap = settings.dictionary_cap
    n_chunks = max(1, -(-n // chunk))
    local = np.empty(n, dtype=np.uint16)
    reps = np.empty((n_chunks, cap), dtype=np.int64)
    counts = np.zeros(n_chunks, dtype=np.int64)
    chunk_dictionaries(values, lengths, valid, chunk, cap, local, reps, counts)
    if counts.max(initial=0) > cap:
        return None
    remap = np.zeros((n_chunks, cap), dtype=np.int64)
    first_rows = merge_dictionaries(values, lengths, reps, counts, remap)
    if first_rows.shape[0] == 0 and counts.sum() > 0:
        return None  # equal values whose second words differ: let the caller's slow path decide
    return Dictionary(first_rows, local, remap, chunk)


def keys_are_unique(keys: np.ndarray, settings: FrameEncodingConfig) -> bool:
    """True when no 64-bit key occurs twice (partitioned hash tables; no sort, no copy of the ids)."""
    from .kernels.frame import keys_have_duplicates

    n = keys.shape[0]
    if n < 2:
        return True
    bits = 0
    while bits < 16 and (n >> bits) > settings.keys_per_partition:
        bits += 1
    return not bool(keys_have_duplicates(keys, bits, min(settings.key_blocks, n)))


# --- pandas ------------------------------------------------------------------------------------------------
def _is_missing(obj: object) -> bool:
    """What ``pl.from_pandas`` turns into a null in an object column: None, NaN and pandas.NA."""
    if obj is None:
        return True
    if isinstance(obj, float):
        return math.isnan(obj)
    return type(obj).__name__ == "NAType"


def _object_addresses(values: np.ndarray) -> np.ndarray:
    """The PyObject pointers of a contiguous object array, as uint64 (read-only; ``values`` must outlive
    the result). NumPy refuses ``values.view(np.uint64)`` for arrays of references, so read the same
    memory through ctypes; the pointers are compared, never dereferenced."""
    raw = (ctypes.c_char * values.nbytes).from_address(values.ctypes.data)
    out = np.frombuffer(cast(Any, raw), dtype=np.uint64)
    out.setflags(write=False)
    return out


def _object_guess(addresses: np.ndarray, settings: FrameEncodingConfig) -> tuple[Any, ...] | None:
    """The distinct objects of the first ``settings.chunk_rows`` rows (the usual column holds a few
    interned strings, all seen early): ``(first_rows, table, multiplier, shift, keys)`` for
    :func:`~twinkernel.kernels.frame.address_codes`, in order of first appearance; ``None`` for too many."""
    distinct, first_rows = np.unique(addresses[: settings.chunk_rows], return_index=True)
    if distinct.shape[0] > settings.dictionary_cap:
        return None
    order = np.argsort(first_rows)
    keys = np.append(distinct[order], np.uint64(0))  # then one entry no object has (a null pointer)
    m = keys.shape[0] - 1
    zeros = np.zeros(m, dtype=np.uint64)
    found = _perfect_table(keys[:m], zeros, zeros, np.zeros(m, dtype=np.bool_))
    if found is None:
        return None
    return (first_rows[order].astype(np.int64), *found, keys)


def _object_labels(values: np.ndarray, first_rows: np.ndarray) -> tuple[list[str], np.ndarray] | None:
    """The sorted labels of the objects at ``first_rows`` and each one's code (the dtype's largest value
    for a missing value: uint8 for fewer than 255 labels, the Enum's own code width, else uint32);
    ``None`` when one is neither str nor missing."""
    null = np.uint32(0xFFFFFFFF)
    labels: list[str] = []
    index: dict[str, int] = {}
    final = np.empty(first_rows.shape[0], dtype=np.uint32)
    for g, row in enumerate(first_rows):
        obj = values[row]
        if isinstance(obj, str):
            code = index.get(obj)
            if code is None:
                code = index[obj] = len(labels)
                labels.append(obj)
            final[g] = code
        elif _is_missing(obj):
            final[g] = null
        else:
            return None  # numbers, bytes ...: pl.from_pandas decides (and names the problem)
    # sorted labels, every one present: without nulls, the Enum the population keeps as it is
    order = sorted(range(len(labels)), key=labels.__getitem__)
    rank = np.empty(len(labels) + 1, dtype=np.uint32)
    rank[order] = np.arange(len(labels), dtype=np.uint32)
    rank[-1] = null
    codes = rank[np.where(final == null, len(labels), final)]
    if len(labels) < 255:
        codes = np.where(codes == null, 255, codes).astype(np.uint8)
    return sorted(labels), codes


def _object_category(name: str, col: Any, settings: FrameEncodingConfig) -> _ObjectCodes | None:
    """A pandas ``object`` column of strings coded as a Polars Enum (sorted labels, every one present):
    its name, codes, labels and whether a value is missing (the Enum itself is built by
    :func:`_category_series`), found through the distinct Python objects; ``None`` when it holds anything
    but str and missing values, or too many distinct objects.

    The objects of the first rows are guessed to be all of them, and every row is coded in one pass over
    the object pointers; when a later row holds another object, the chunked dictionary finds them all.
    """
    from .kernels.frame import address_codes

    values = col.to_numpy(dtype=object, copy=False)
    if values.ndim != 1 or values.dtype != object:
        return None
    values = np.ascontiguousarray(values)
    addresses = _object_addresses(values)
    codes: np.ndarray | None = None
    guess = _object_guess(addresses, settings)
    if guess is not None:
        first_rows, table, mult, shift, keys = guess
        found = _object_labels(values, first_rows)
        if found is None:
            return None
        labels, final = found
        codes = np.empty(addresses.shape[0], dtype=final.dtype)
        missed = address_codes(
            addresses, table, mult, shift, keys, np.append(final, final.dtype.type(0)), settings.key_blocks,
            codes,
        )  # fmt: skip
        codes = None if missed else codes
    if codes is None:
        d = _dictionary(addresses, _NO_ROWS_U32, _NO_ROWS_U8, settings)
        found = None if d is None else _object_labels(values, d.first_rows)
        if d is None or found is None:
            return None
        labels, final = found
        codes = d.codes(final, int(np.iinfo(final.dtype).max))
    del addresses
    return name, codes, labels, bool(np.any(final == np.iinfo(final.dtype).max))


def _category_series(parts: _ObjectCodes) -> pl.Series:
    """The Enum column of :func:`_object_category`'s codes, where the dtype's largest code is a missing
    value (Polars validates the codes here, releasing the GIL)."""
    name, codes, labels, has_null = parts
    out = pl.Series(name, codes)
    null = np.iinfo(codes.dtype).max
    if has_null:
        out = pl.select(pl.when(out == null).then(None).otherwise(out)).to_series().alias(name)
    return out.cat.to(pl.Enum(labels))


def _object_strings(
    name: str, col: Any, settings: FrameEncodingConfig
) -> tuple[pl.Series, tuple[np.ndarray, bool] | None] | None:
    """A pandas ``object`` column of str (and None) as a Polars String, without Arrow's per-object
    conversion, with the twin keys of its values and whether they strictly increase when the kernels
    computed them on the way; ``None`` when it holds anything else (NaN, numbers, bytes ...: then
    ``pl.from_pandas`` decides) or this interpreter's strings cannot be read.

    A column of ASCII ``str`` is read by :func:`_ascii_strings`; one that also holds other text or
    ``None`` goes through Polars' C-API conversion (one object at a time)."""
    values = col.to_numpy(dtype=object, copy=False)
    if values.ndim != 1 or values.dtype != object:
        return None
    values = np.ascontiguousarray(values)
    read = _ascii_strings(name, values, settings)
    if isinstance(read, tuple):
        return read[0], read[1:]
    if read is None or read > 0:
        return None
    return pl.Series(name, values, dtype=pl.String), None


@functools.cache
def _ascii_layout() -> AsciiLayout | None:
    from .kernels.object_strings import probe_layout

    return probe_layout()


def _ascii_strings(
    name: str, values: np.ndarray, settings: FrameEncodingConfig
) -> tuple[pl.Series, np.ndarray, bool] | int | None:
    """An ``object`` array whose every value is an exact ``str`` of ASCII characters as a Polars String,
    built from the objects' memory in parallel (:mod:`twinkernel.kernels.object_strings`), with the twin
    key of every value (read-only) and whether the values strictly increase.

    Otherwise the number of values that are neither an exact ``str`` nor ``None`` (0: the column is text
    and missing values, but not all ASCII), or ``None`` when the interpreter's layout is unknown,
    ``pyarrow`` is missing or the long strings exceed one view buffer (2 GiB)."""
    layout = _ascii_layout()
    if layout is None:
        return None
    try:
        import pyarrow as pa
    except ImportError:
        return None

    from .kernels.object_strings import ascii_lengths, ascii_views

    values = np.ascontiguousarray(values)
    addresses = _object_addresses(values)
    n = addresses.shape[0]
    n_blocks = max(1, min(settings.key_blocks, n))
    long_bytes = np.zeros(n_blocks, dtype=np.int64)
    counts = np.zeros((n_blocks, 2), dtype=np.int64)
    ascii_lengths(
        addresses, np.uint64(layout.str_type), id(None), layout.type_offset, layout.length_offset,
        layout.state_offset, n_blocks, long_bytes, counts,
    )  # fmt: skip
    other, foreign = (int(c) for c in counts.sum(axis=0))
    if other:
        return foreign
    total = int(long_bytes.sum())
    if total >= 1 << 31:  # a view's offset is 32-bit: one data buffer holds < 2 GiB
        return None
    starts = np.zeros(n_blocks, dtype=np.int64)
    np.cumsum(long_bytes[:-1], out=starts[1:])
    views = np.empty(2 * n, dtype=np.uint64)
    data = np.empty(max(total, 1), dtype=np.uint8)
    keys = np.empty(n, dtype=np.uint64)
    increasing = ascii_views(
        addresses, layout.length_offset, layout.data_offset, n_blocks, starts, views, data, keys
    )
    del addresses  # the kernels are done with the objects
    keys.setflags(write=False)
    array = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), pa.py_buffer(data)])
    return pl.Series(name, array), keys, bool(increasing)


@dataclass(frozen=True)
class PandasFrame:
    """:func:`frame_from_pandas`'s result: the frame, and what was learned on the way that
    :func:`~twinkernel.population_build.build_columns` would otherwise compute again."""

    frame: pl.DataFrame
    keys: dict[str, tuple[np.ndarray, bool]]  # string column -> its twin keys, whether strictly increasing
    complete: frozenset[str]  # Enum columns whose labels are sorted and every one present


def frame_from_pandas(
    df: Any, category_columns: Sequence[str], string_columns: Sequence[str], settings: FrameEncodingConfig
) -> PandasFrame:
    """``pl.from_pandas(df)``, faster for the ``object`` columns named in ``category_columns`` (returned
    as Enums, which :func:`~twinkernel.population_checks._encode_category` turns into the same codes as
    the strings) and ``string_columns`` (returned as String, as ``pl.from_pandas`` would). From
    ``settings.threaded_min_rows`` rows the Enum columns are built on the library's threads."""
    names = list(df.columns)
    if len(df) == 0 or len(set(names)) != len(names) or not all(isinstance(c, str) for c in names):
        return PandasFrame(pl.from_pandas(df), {}, frozenset())
    out: dict[str, pl.Series] = {}
    keys: dict[str, tuple[np.ndarray, bool]] = {}
    coded: dict[str, _ObjectCodes] = {}
    for name in names:
        col = df[name]
        s: pl.Series | None = None
        if col.dtype == object and name in category_columns:
            parts = _object_category(name, col, settings)
            if parts is not None:
                coded[name] = parts
                continue
        elif col.dtype == object and name in string_columns:
            read = _object_strings(name, col, settings)
            if read is not None:
                s, known = read
                if known is not None:
                    keys[name] = known
        out[name] = cast(pl.Series, pl.from_pandas(col)) if s is None else s
    threads = column_threads(len(df), settings)
    out.update(in_column_order(lambda name: _category_series(coded[name]), list(coded), threads))
    return PandasFrame(pl.DataFrame([out[name] for name in names]), keys, frozenset(coded))


def column_threads(n_rows: int, settings: FrameEncodingConfig) -> int:
    """Threads for the per-column NumPy and Polars steps of a frame of ``n_rows`` rows: the library's
    numba threads from ``settings.threaded_min_rows`` rows, else one."""
    return numba.get_num_threads() if n_rows >= settings.threaded_min_rows else 1


def in_column_order(fn: Callable[[str], _T], names: list[str], threads: int) -> dict[str, _T]:
    """``{name: fn(name)}`` in ``names``' order, on ``threads`` threads when more than one (the first
    error in that order is raised, as a plain loop would). For steps that release the GIL (NumPy, Polars);
    never for numba's parallel kernels, which must not be entered from two threads at once."""
    if threads <= 1 or len(names) <= 1:
        return {name: fn(name) for name in names}
    with ThreadPoolExecutor(max_workers=min(threads, len(names))) as pool:
        return dict(zip(names, pool.map(fn, names), strict=True))
