"""kernels/object_strings.py and its caller (population_encode._ascii_strings) against plain references.

A pandas ``object`` column of ASCII ``str`` is read from CPython's compact-ASCII string memory and written
as Arrow string views (16 bytes a row: the length and up to 12 inline bytes, or the length, a 4-byte
prefix, buffer 0 and the offset of the bytes). Every view is compared word for word with a plain-Python
reference built here; every other column (non-ASCII text, None, NaN, numbers, bytes, ``str`` subclasses)
must fall back to Polars' own conversion and give the same column ``pl.from_pandas`` gives.
"""

from __future__ import annotations

import itertools
import sys
import threading
import types

import numpy as np
import pandas as pd
import polars as pl
import pytest

from tests.conftest import make_population_frame
from tests.frame_settings import SMALL
from twinkernel import TwinPopulation
from twinkernel.config import load_config
from twinkernel.config_frame import FrameEncodingConfig
from twinkernel.kernels import object_strings as K
from twinkernel.population_checks import _keys_and_order
from twinkernel.population_encode import (
    _ascii_layout,
    _ascii_strings,
    _category_series,
    _object_addresses,
    _object_category,
    _object_strings,
    frame_from_pandas,
    in_column_order,
)

CATEGORIES = ("specialty", "region", "preferred_channel", "adoption_stage")
NON_ASCII_STR = ("é", "Δ", "\U0001f600")


class _MyStr(str):
    pass


def _reference_views(strings: list[str]) -> tuple[np.ndarray, bytes]:
    """Arrow string views of ``strings`` as two little-endian uint64 words a row, and buffer 0: the bytes
    of every string longer than 12, in row order (plain Python, one byte at a time)."""
    words: list[int] = []
    data = bytearray()
    for s in strings:
        raw = s.encode("ascii")
        w0 = len(raw)
        for j, byte in enumerate(raw[:4]):
            w0 |= byte << (32 + 8 * j)
        w1 = 0
        if len(raw) <= 12:
            for j, byte in enumerate(raw[4:12]):
                w1 |= byte << (8 * j)
        else:
            w1 = len(data) << 32  # buffer index 0 in the low word, the offset in the high word
            data += raw
        words += [w0, w1]
    return np.array(words, dtype=np.uint64), bytes(data)


def _row_counts(values: np.ndarray, n_blocks: int) -> tuple[int, int, np.ndarray]:
    """``ascii_lengths`` as ``_ascii_strings`` calls it: (rows not compact ASCII, of those the rows neither
    str nor None, bytes of long strings per block)."""
    layout = K.probe_layout()
    if layout is None:
        raise RuntimeError("no string layout on this interpreter")
    values = np.ascontiguousarray(values)
    addresses = _object_addresses(values)
    long_bytes = np.zeros(n_blocks, dtype=np.int64)
    counts = np.zeros((n_blocks, 2), dtype=np.int64)
    K.ascii_lengths(
        addresses, np.uint64(layout.str_type), id(None), layout.type_offset, layout.length_offset,
        layout.state_offset, n_blocks, long_bytes, counts,
    )  # fmt: skip
    other, foreign = (int(c) for c in counts.sum(axis=0))
    return other, foreign, long_bytes


_Views = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _kernel_views(values: np.ndarray, n_blocks: int) -> _Views:
    """The kernels called as ``_ascii_strings`` calls them: (rows not compact ASCII, bytes of long strings
    per block, views, data buffer, twin keys, 1 when the rows strictly increase; -1 when not read)."""
    layout = K.probe_layout()
    if layout is None:
        raise RuntimeError("no string layout on this interpreter")
    values = np.ascontiguousarray(values)
    other, _, long_bytes = _row_counts(values, n_blocks)
    starts = np.zeros(n_blocks, dtype=np.int64)
    np.cumsum(long_bytes[:-1], out=starts[1:])
    views = np.zeros(2 * values.shape[0], dtype=np.uint64)
    data = np.zeros(max(int(long_bytes.sum()), 1), dtype=np.uint8)
    keys = np.zeros(values.shape[0], dtype=np.uint64)
    increasing = -1
    if other == 0:
        addresses = _object_addresses(values)
        increasing = int(
            K.ascii_views(
                addresses, layout.length_offset, layout.data_offset, n_blocks, starts, views, data, keys
            )
        )
    return other, long_bytes, views, data, keys, increasing


def _reference_keys(strings: list[str]) -> tuple[np.ndarray, int]:
    """Twin keys by the independent string-view kernel, and the order by plain byte comparison."""
    keys, _ = _keys_and_order(pl.Series(strings, dtype=pl.String), 7)
    raw = [v.encode("ascii") for v in strings]
    return keys, int(all(a < b for a, b in itertools.pairwise(raw)))


def _fast(name: str, values: np.ndarray, settings: FrameEncodingConfig) -> pl.Series | None:
    """The column ``_ascii_strings`` reads from the objects' memory, or None when it does not."""
    read = _ascii_strings(name, values, settings)
    return read[0] if isinstance(read, tuple) else None


def _random_ascii(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` strings of seeded random lengths 0..40 and characters 0..127 (NUL and DEL included)."""
    lengths = rng.integers(0, 41, n)
    codes = rng.integers(0, 128, int(lengths.sum())).astype(np.uint8).tobytes()
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [codes[a:b].decode("ascii") for a, b in itertools.pairwise(bounds)]


def _ascii_cases() -> list[str]:
    """Strings of every length class, built at run time (so not shared constants), plus interned ones,
    ASCII strings produced by slicing non-ASCII text, and control characters."""
    digits = "".join(str(d % 10) for d in range(300))
    lengths = (0, 1, 4, 5, 11, 12, 13, 20, 21, 64, 300)
    out = ["q" + digits[: n - 1] if n else digits[:0] for n in lengths]
    out += [sys.intern("interned-" + digits[:3]), sys.intern("interned-long-id-" + digits[:9])]
    out += [("Δ" + "abc")[1:], ("é" + "x" * 20)[1:], "a\x00b\x7f", bytes([1, 2, 127] * 5).decode("ascii")]
    return out


def _sys_like(**changes: object) -> types.SimpleNamespace:
    """What ``object_strings`` reads of ``sys``, with ``changes`` (the real module is left alone)."""
    fields = {name: getattr(sys, name) for name in ("implementation", "getsizeof", "byteorder", "intern")}
    return types.SimpleNamespace(**{**fields, **changes})


class TestProbeLayout:
    def test_layout_of_this_cpython(self):
        layout = K.probe_layout()
        assert layout is not None
        assert layout.data_offset == sys.getsizeof("") - 1
        assert layout.type_offset == 8
        assert layout.length_offset == 16
        assert layout.state_offset == 32
        assert layout.str_type == id(str)
        assert _ascii_layout() == layout
        assert _ascii_layout() is _ascii_layout()  # probed once

    def test_wrong_data_offset_fails_the_probe(self, monkeypatch):
        # 8 bytes too early: inside the header, so the probe strings' bytes do not match
        monkeypatch.setattr(K, "sys", _sys_like(getsizeof=lambda obj: sys.getsizeof(obj) - 8))
        assert K.probe_layout() is None
        monkeypatch.setattr(K, "sys", _sys_like())
        assert K.probe_layout() == _ascii_layout()  # the same module proxy, unchanged: probe passes

    def test_other_interpreter_or_wrong_state_bits_give_none(self, monkeypatch):
        monkeypatch.setattr(K, "_KIND_COMPACT_ASCII", 0x68)  # kind 2 (UCS-2): no ASCII probe passes
        assert K.probe_layout() is None
        monkeypatch.undo()
        assert K.probe_layout() is not None
        monkeypatch.setattr(K, "sys", _sys_like(implementation=types.SimpleNamespace(name="pypy")))
        assert K.probe_layout() is None
        monkeypatch.setattr(K, "sys", _sys_like(byteorder="big"))
        assert K.probe_layout() is None


class TestViewsAgainstReference:
    @pytest.mark.parametrize("n_blocks", [1, 3, 64])
    def test_views_and_data_word_for_word(self, n_blocks):
        strings = _ascii_cases()
        repeated = "repeated-object-" + "z" * 10  # one object (> 12 bytes) in many rows
        short = "short" + "1"
        strings += [repeated] * 4 + [short] * 3
        values = np.empty(len(strings), dtype=object)
        values[:] = strings
        assert values[-7] is values[-4] and values[-3] is values[-1]  # one object in several rows
        other, long_bytes, views, data, keys, increasing = _kernel_views(values, n_blocks)
        want_views, want_data = _reference_views(strings)
        want_keys, want_increasing = _reference_keys(strings)
        assert other == 0
        np.testing.assert_array_equal(keys, want_keys)
        assert increasing == want_increasing == 0
        assert int(long_bytes.sum()) == len(want_data)
        np.testing.assert_array_equal(views, want_views)
        assert data.shape[0] == max(len(want_data), 1)
        assert data[: len(want_data)].tobytes() == want_data

    @pytest.mark.parametrize("length", [0, 1, 4, 5, 11, 12, 13, 20, 21, 64, 300])
    def test_every_length_alone_and_more_blocks_than_rows(self, length):
        s = "".join(chr(33 + (7 * j) % 90) for j in range(length))
        values = np.array([s, s + "", s[:length]], dtype=object)
        results = [_kernel_views(values, b) for b in (1, 3, 64)]
        want_views, want_data = _reference_views([s, s, s])
        for other, long_bytes, views, data, _, increasing in results:
            assert increasing == 0  # three equal strings
            assert other == 0
            np.testing.assert_array_equal(views, want_views)
            assert data[: len(want_data)].tobytes() == want_data
            assert int(long_bytes.sum()) == (3 * length if length > 12 else 0)
        # inline strings keep every byte in the view; long ones a 4-byte prefix and offsets 0, L, 2L
        if length > 12:
            np.testing.assert_array_equal(results[0][2][1::2] >> np.uint64(32), [0, length, 2 * length])
            np.testing.assert_array_equal(results[0][2][1::2] & np.uint64(0xFFFFFFFF), [0, 0, 0])

    def test_seeded_random_strings_same_for_any_block_count(self):
        strings = _random_ascii(np.random.default_rng(20261203), 3000)
        values = np.array(strings, dtype=object)
        want_views, want_data = _reference_views(strings)
        want_keys, _ = _reference_keys(strings)
        ordered = sorted(set(strings))
        want_sorted_keys, sorted_increasing = _reference_keys(ordered)
        for n_blocks in (1, 3, 64, 5000):
            other, _, views, data, keys, increasing = _kernel_views(values, n_blocks)
            assert other == 0 and increasing == 0
            np.testing.assert_array_equal(keys, want_keys)
            *_, keys, increasing = _kernel_views(np.array(ordered, dtype=object), n_blocks)
            np.testing.assert_array_equal(keys, want_sorted_keys)
            assert increasing == sorted_increasing == 1
            np.testing.assert_array_equal(views, want_views)
            assert data[: len(want_data)].tobytes() == want_data

    def test_ascii_strings_is_the_arrow_array_of_these_views(self):
        strings = _ascii_cases()
        values = np.array(strings, dtype=object)
        got = _fast("ids", values, SMALL)
        assert got is not None
        assert got.name == "ids" and got.dtype == pl.String
        assert got.to_list() == strings
        assert got.equals(pl.Series("ids", strings, dtype=pl.String), check_dtypes=True, check_names=True)


class TestAsciiStrings:
    def test_seeded_random_ascii_equals_polars(self):
        values = np.array(_random_ascii(np.random.default_rng(7), 10_000), dtype=object)
        want = pl.Series("twin_id", values, dtype=pl.String)
        for settings in (SMALL, load_config().simulation.frame_encoding):
            got = _fast("twin_id", values, settings)
            assert got is not None
            assert got.equals(want, check_dtypes=True, check_names=True)
            assert got.len() == 10_000 and got.null_count() == 0

    def test_many_ids_equal_polars(self):
        values = np.array([f"hcp-{i:08d}" for i in range(200_000)], dtype=object)
        enc = load_config().simulation.frame_encoding
        got = _fast("twin_id", values, enc)
        assert got is not None
        assert got.equals(pl.Series("twin_id", values, dtype=pl.String), check_dtypes=True, check_names=True)
        assert got[123_456] == "hcp-00123456"
        long_ids = np.array([f"hcp-long-{i:012d}" for i in range(0, 200_000, 7)], dtype=object)
        for k in (1, 2, 64):
            got = _fast("twin_id", long_ids, enc.model_copy(update={"key_blocks": k}))
            assert got is not None
            assert got.to_list() == long_ids.tolist()

    def test_strided_input_and_empty_and_single_row(self):
        values = np.array([f"row-{i}-" + "x" * (i % 17) for i in range(101)], dtype=object)
        strided = values[::3]
        got = _fast("s", strided, SMALL)
        assert got is not None and got.to_list() == strided.tolist()
        empty = _fast("s", np.empty(0, dtype=object), SMALL)
        assert empty is not None and empty.len() == 0 and empty.dtype == pl.String
        one = _fast("s", np.array(["a-single-long-string"], dtype=object), SMALL)
        assert one is not None and one.to_list() == ["a-single-long-string"]

    def test_no_layout_takes_the_polars_path(self, monkeypatch):
        import twinkernel.population_encode as E

        values = np.array(["abc", "a-longer-string-here"], dtype=object)
        monkeypatch.setattr(E, "_ascii_layout", lambda: None)
        assert E._ascii_strings("s", values, SMALL) is None
        assert E._object_strings("s", pd.Series(values), SMALL) is None  # pl.from_pandas decides
        got = frame_from_pandas(pd.DataFrame({"s": values}), (), ("s",), SMALL).frame["s"]
        assert got.equals(pl.Series("s", values, dtype=pl.String), check_dtypes=True, check_names=True)


_OTHERS = [*NON_ASCII_STR, None, float("nan"), 17, _MyStr("sub"), b"bytes"]


class TestFallback:
    @pytest.mark.parametrize("bad", _OTHERS, ids=lambda v: type(v).__name__ + ":" + repr(v))
    @pytest.mark.parametrize("row", [1, 57, 99])
    def test_one_other_value_sends_the_column_to_polars(self, bad, row):
        values = np.array([f"id-{i:04d}" + "y" * (i % 15) for i in range(100)], dtype=object)
        values[row] = bad
        assert _fast("c", values, SMALL) is None
        for n_blocks in (1, 3, 64):
            other, foreign, _ = _row_counts(values, n_blocks)
            assert other == 1
            assert foreign == (0 if bad is None or type(bad) is str else 1)
        text = bad is None or type(bad) is str  # text and missing values: Polars' String conversion
        assert _ascii_strings("c", values, SMALL) == (0 if text else 1)
        got = _object_strings("c", pd.Series(values), SMALL)
        if not text:
            assert got is None  # pl.from_pandas decides
        else:
            assert got is not None and got[1] is None
            assert got[0].equals(pl.Series("c", values, dtype=pl.String), check_dtypes=True, check_names=True)
            assert got[0][row] == bad
        try:
            want = pl.from_pandas(pd.Series(values, name="c"))
        except TypeError as err:  # str mixed with int or bytes: the same error as pl.from_pandas
            with pytest.raises(type(err)):
                frame_from_pandas(pd.DataFrame({"c": values}), (), ("c",), SMALL)
        else:
            whole = frame_from_pandas(pd.DataFrame({"c": values}), (), ("c",), SMALL).frame["c"]
            assert whole.equals(want, check_dtypes=True)

    def test_count_of_other_rows_on_a_mixed_array(self):
        rng = np.random.default_rng(11)
        n = 5000
        values = np.array([f"ok-{i}" + "w" * int(rng.integers(0, 20)) for i in range(n)], dtype=object)
        picks = rng.choice(len(_OTHERS), n)
        is_other = rng.random(n) < 0.03
        for i in np.flatnonzero(is_other):
            values[i] = _OTHERS[picks[i]]
        interned = sys.intern("interned-ascii-id")
        values[1] = interned
        want = sum(1 for v in values if not (type(v) is str and v.isascii()))  # naive count
        assert want == int(is_other.sum()) > 0
        for n_blocks in (1, 3, 64, n + 5):
            got, foreign, long_bytes = _row_counts(values, n_blocks)
            assert got == want
            assert foreign == sum(1 for v in values if v is not None and type(v) is not str)
            ascii_long = sum(len(v) for v in values if type(v) is str and v.isascii() and len(v) > 12)
            assert int(long_bytes.sum()) == ascii_long
        assert _fast("c", values, SMALL) is None

    def test_non_ascii_ids_equal_polars_conversion(self):
        values = np.array([f"hcp-{i}-" + NON_ASCII_STR[i % 3] * (i % 5) for i in range(300)], dtype=object)
        got = _object_strings("twin_id", pd.Series(values), SMALL)
        assert got is not None and got[1] is None
        assert got[0].equals(
            pl.Series("twin_id", values, dtype=pl.String), check_dtypes=True, check_names=True
        )
        assert got[0].equals(pl.from_pandas(pd.Series(values, name="twin_id")), check_dtypes=True)

    @pytest.mark.parametrize("values", [[17, "a"], [float("nan")], [1.5, 2.5]], ids=["int", "nan", "floats"])
    def test_number_first_falls_back_to_pl_from_pandas(self, values):
        col = pd.Series(values, dtype=object, name="twin_id")
        assert _object_strings("twin_id", col, SMALL) is None

    def test_bytes_column_keeps_pl_from_pandas_dtype(self):
        col = pd.Series([b"x", b"y"], dtype=object, name="twin_id")
        got = frame_from_pandas(col.to_frame(), CATEGORIES, ("twin_id",), SMALL).frame
        assert got["twin_id"].dtype == pl.from_pandas(col).dtype == pl.Binary


def _pandas_frame(n: int, seed: int, non_ascii: bool) -> pd.DataFrame:
    """A small frame as a user's pandas frame: object columns, a missing category in each category
    column, and (optionally) non-ASCII ids."""
    pdf = make_population_frame(n, seed=seed).to_pandas()
    if non_ascii:
        pdf["twin_id"] = pd.Series([f"hcp-{i:05d}-" + NON_ASCII_STR[i % 3] for i in range(n)], dtype=object)
    else:
        pdf["twin_id"] = pd.Series(
            [f"hcp-{i:05d}" + "-long-suffix" * (i % 2) for i in range(n)], dtype=object
        )
    for j, col in enumerate(CATEGORIES):
        pdf.loc[5 + j, col] = None
    return pdf


class TestEndToEnd:
    @pytest.mark.parametrize("non_ascii", [False, True], ids=["ascii_ids", "non_ascii_ids"])
    @pytest.mark.parametrize("small", [False, True], ids=["default", "small_settings"])
    def test_from_frame_pandas_equals_from_polars(self, config, non_ascii, small):
        pdf = _pandas_frame(400, seed=3, non_ascii=non_ascii)
        assert all(pdf[c].dtype == object for c in ("twin_id", *CATEGORIES))
        if small:
            config = config.model_copy(
                update={"simulation": config.simulation.model_copy(update={"frame_encoding": SMALL})}
            )
        fast_ids = _fast("twin_id", pdf["twin_id"].to_numpy(), SMALL)
        assert (fast_ids is None) == non_ascii  # ASCII ids are read from memory, others by Polars
        fast = TwinPopulation.from_frame(pdf, config=config)
        slow = TwinPopulation.from_frame(pl.from_pandas(pdf), config=config)
        assert fast.frame.equals(slow.frame)
        assert fast.frame.schema == slow.frame.schema
        np.testing.assert_array_equal(fast._columns.twin_key, slow._columns.twin_key)
        assert fast.frame["twin_id"].to_list() == pdf["twin_id"].tolist()
        for col in CATEGORIES:
            assert isinstance(fast.frame[col].dtype, pl.Enum)
            assert fast.frame[col].dtype == slow.frame[col].dtype
            assert fast.frame[col].cast(pl.String).to_list() == slow.frame[col].cast(pl.String).to_list()

    @pytest.mark.parametrize("non_ascii", [False, True], ids=["ascii_ids", "non_ascii_ids"])
    def test_frame_from_pandas_columns_with_missing_categories(self, non_ascii):
        pdf = _pandas_frame(300, seed=4, non_ascii=non_ascii)
        got = frame_from_pandas(pdf, CATEGORIES, ("twin_id",), SMALL).frame
        want = pl.from_pandas(pdf)
        assert got.columns == want.columns
        assert got["twin_id"].equals(want["twin_id"], check_dtypes=True, check_names=True)
        for col in CATEGORIES:
            labels = sorted({v for v in pdf[col] if v is not None})
            assert got[col].dtype == pl.Enum(labels)
            assert got[col].cast(pl.String).to_list() == want[col].to_list()
            assert got[col].null_count() == 1 and got[col][5 + CATEGORIES.index(col)] is None
        for col in want.columns:
            if col not in CATEGORIES:
                assert got[col].equals(want[col], check_dtypes=True), col

    @pytest.mark.parametrize("n_labels", [3, 300], ids=["uint8_codes", "uint32_codes"])
    def test_category_series_null_code(self, n_labels):
        rng = np.random.default_rng(n_labels)
        labels = [f"label-{k:03d}" for k in range(n_labels)]
        raw: list[str | None] = [labels[int(k)] for k in rng.integers(0, n_labels, 2000)]
        raw[:n_labels] = labels  # every label present
        for i in (0, 999, 1999):
            raw[i] = None
        col = pd.Series(raw, dtype=object)
        settings = load_config().simulation.frame_encoding
        parts = _object_category("region", col, settings)
        assert parts is not None
        name, codes, got_labels, has_null = parts
        assert name == "region" and got_labels == sorted(set(labels)) and has_null
        assert codes.dtype == (np.uint8 if n_labels < 255 else np.uint32)
        series = _category_series(parts)
        assert series.dtype == pl.Enum(sorted(labels)) and series.name == "region"
        assert series.cast(pl.String).to_list() == raw
        assert series.null_count() == 3


class TestInColumnOrder:
    @pytest.mark.parametrize("threads", [1, 2, 4])
    def test_results_in_column_order(self, threads):
        names = [f"col{k}" for k in (9, 3, 7, 1, 5, 0, 8)]
        got = in_column_order(lambda name: name[::-1] + "!", names, threads)
        assert list(got) == names
        assert got == {name: name[::-1] + "!" for name in names}
        assert in_column_order(lambda name: 1, [], threads) == {}
        assert in_column_order(lambda name: len(name), ["only"], threads) == {"only": 4}

    def test_two_threads_raise_the_first_error_in_column_order(self):
        second_failed = threading.Event()
        ran: list[str] = []

        def fn(name: str) -> str:
            ran.append(name)
            if name == "b":  # fails only after "c" has failed, so it is the later error in time
                second_failed.wait(timeout=30)
                raise ValueError("error of b")
            if name == "c":
                second_failed.set()
                raise KeyError("error of c")
            return name

        with pytest.raises(ValueError, match="error of b"):
            in_column_order(fn, ["a", "b", "c", "d"], 2)
        assert second_failed.is_set() and {"a", "b", "c"} <= set(ran)
        with pytest.raises(ValueError, match="error of b"):  # one thread: the plain loop stops at "b"
            in_column_order(fn, ["a", "b", "c", "d"], 1)
