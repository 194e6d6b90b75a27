"""Fast readers of a user's frame for :class:`~twinkernel.population.TwinPopulation` (speed only).

Building 10 million twins used to cost more than simulating them: Polars' ``unique`` + ``replace_strict``
per string column, ``n_unique`` over the string ids, one Python string of all ids for their keys, and
``pl.from_pandas`` walking every Python object of every pandas ``object`` column. This module replaces
those steps with passes of the kernels in :mod:`twinkernel.kernels.frame`; each function returns exactly
what the slow path returns, or ``None`` when it cannot (then the caller takes the slow path):

- :func:`string_records`: a String column's UTF-8 bytes and offsets, read from its Arrow buffers (needs
  ``pyarrow``; ``None`` without it);
- :func:`string_dictionary`: the distinct strings of a low-cardinality column and every row's number;
- :func:`keys_are_unique`: whether 64-bit twin keys are all distinct (a duplicate key sends the caller to
  the exact check on the ids themselves, so a hash collision never rejects a valid frame);
- :func:`frame_from_pandas`: a pandas frame as Polars, with the categorical ``object`` columns read
  through the identity of their Python objects (a column of 10 M strings usually holds a handful of
  distinct objects) instead of converting 10 M objects one by one.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .config_frame import FrameEncodingConfig

__all__ = ["Dictionary", "frame_from_pandas", "keys_are_unique", "string_dictionary", "string_records"]

_NO_OFFSETS = np.zeros(1, dtype=np.int64)


def string_records(s: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(data, offsets)`` of a String column: UTF-8 bytes (uint8) and int64 offsets (length n + 1).

    Zero-copy views of the Arrow ``large_string`` export (Polars converts its string views once). Row
    ``i`` is ``data[offsets[i]:offsets[i + 1]]``; a null row is empty. ``None`` without ``pyarrow``.
    """
    try:
        import pyarrow as pa
    except ImportError:
        return None
    strings = s if s.dtype == pl.String else s.cast(pl.String)
    arr = strings.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    _, offset_buffer, data_buffer = arr.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if data_buffer is None or data_buffer.size == 0:
        data = np.zeros(1, dtype=np.uint8)  # every row is empty: nothing is read
    else:
        data = np.frombuffer(data_buffer, dtype=np.uint8)
    return data, offsets


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
    data: np.ndarray,
    offsets: np.ndarray,
    stride: int,
    valid: np.ndarray,
    n: int,
    settings: FrameEncodingConfig,
) -> Dictionary | None:
    from .kernels.frame import chunk_dictionaries, merge_dictionaries

    chunk = settings.chunk_rows
    cap = settings.dictionary_cap
    n_chunks = max(1, -(-n // chunk))
    local = np.empty(n, dtype=np.uint16)
    reps = np.empty((n_chunks, cap), dtype=np.int64)
    counts = np.zeros(n_chunks, dtype=np.int64)
    chunk_dictionaries(data, offsets, np.int64(stride), valid, chunk, cap, local, reps, counts)
    if counts.max(initial=0) > cap:
        return None
    remap = np.zeros((n_chunks, cap), dtype=np.int64)
    first_rows = merge_dictionaries(data, offsets, np.int64(stride), reps, counts, remap)
    return Dictionary(first_rows, local, remap, chunk)


def string_dictionary(s: pl.Series, settings: FrameEncodingConfig) -> tuple[list[str], Dictionary] | None:
    """The distinct non-null strings of ``s`` (first-appearance order) and its :class:`Dictionary`.

    ``None`` when ``pyarrow`` is missing or a chunk holds more than ``settings.dictionary_cap`` distinct
    values (a high-cardinality column: Polars' own ``unique`` is the better tool there).
    """
    records = string_records(s)
    if records is None:
        return None
    data, offsets = records
    valid = s.is_not_null().to_numpy().view(np.uint8) if s.null_count() else np.empty(0, dtype=np.uint8)
    d = _dictionary(data, offsets, 0, valid, s.len(), settings)
    if d is None:
        return None
    labels = [bytes(data[offsets[r] : offsets[r + 1]]).decode("utf-8") for r in d.first_rows]
    return labels, d


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
    out = np.frombuffer(raw, dtype=np.uint64)
    out.setflags(write=False)
    return out


def _object_category(name: str, col: Any, settings: FrameEncodingConfig) -> pl.Series | None:
    """A pandas ``object`` column of strings as a Polars Enum (labels in first-appearance order), found
    through the distinct Python objects; ``None`` when it holds anything but str and missing values, or
    too many distinct objects."""
    values = col.to_numpy(dtype=object, copy=False)
    if values.ndim != 1 or values.dtype != object:
        return None
    values = np.ascontiguousarray(values)
    n = values.shape[0]
    addresses = _object_addresses(values)
    d = _dictionary(addresses.view(np.uint8), _NO_OFFSETS, 8, np.empty(0, dtype=np.uint8), n, settings)
    if d is None:
        return None
    labels: list[str] = []
    index: dict[str, int] = {}
    final = np.empty(d.first_rows.shape[0], dtype=np.uint32)
    null = np.uint32(0xFFFFFFFF)
    for g, row in enumerate(d.first_rows):
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
    del addresses
    codes = pl.Series(name, d.codes(final, int(null)))
    if bool(np.any(final == null)):
        codes = pl.select(pl.when(codes == null).then(None).otherwise(codes)).to_series().alias(name)
    return codes.cat.to(pl.Enum(labels))


def _object_strings(name: str, col: Any) -> pl.Series | None:
    """A pandas ``object`` column of str (and None) as a Polars String, without Arrow's per-object
    conversion; ``None`` when it holds anything else (NaN, numbers ...)."""
    try:
        return pl.Series(name, col.to_numpy(dtype=object, copy=False), dtype=pl.String)
    except (TypeError, ValueError):
        return None


def frame_from_pandas(
    df: Any, category_columns: Sequence[str], string_columns: Sequence[str], settings: FrameEncodingConfig
) -> pl.DataFrame:
    """``pl.from_pandas(df)``, faster for the ``object`` columns named in ``category_columns`` (returned
    as Enums, which :func:`~twinkernel.population_checks._encode_category` turns into the same codes as
    the strings) and ``string_columns`` (returned as String, as ``pl.from_pandas`` would)."""
    names = list(df.columns)
    if len(df) == 0 or len(set(names)) != len(names) or not all(isinstance(c, str) for c in names):
        return pl.from_pandas(df)
    out: list[pl.Series] = []
    for name in names:
        col = df[name]
        s: pl.Series | None = None
        if col.dtype == object and name in category_columns:
            s = _object_category(name, col, settings)
        elif col.dtype == object and name in string_columns:
            s = _object_strings(name, col)
        out.append(pl.from_pandas(col) if s is None else s)
    return pl.DataFrame(out)
