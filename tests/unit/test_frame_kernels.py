"""The string-view and pointer kernels of from_frame (kernels/frame_views.py, kernels/frame.py)
against plain Python references, on any block count and on one or two threads."""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pytest

from tests import naive_population as ref
from tests.frame_settings import SMALL
from tests.naive import twin_key
from twinkernel.kernels import frame as K
from twinkernel.population_checks import _encode_category
from twinkernel.population_encode import (
    _object_addresses,
    _perfect_table,
    frame_from_pandas,
    string_codes,
    string_view_keys,
)

# inline (<= 12 bytes), long up to 20 bytes (keys only), longer (middle bytes compared), look-alikes that
# share length and first 12 bytes, non-ASCII, empty
LABELS = (
    "",
    "west",
    "x" * 12,
    "x" * 13,
    "early_majority",
    "rheumatology-x",
    "a" * 12 + "MIDDLE-1" + "b" * 8,
    "a" * 12 + "MIDDLE-1" + "c" * 8,
    "hématologie pédiatrique",
    "日本語のラベル",
)


def _column(n: int, seed: int, labels=LABELS, null_share: float = 0.1) -> list[str | None]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), n)
    nulls = rng.random(n) < null_share
    return [None if z else labels[k] for k, z in zip(picks, nulls, strict=True)]


def _with_threads(threads: int, fn):
    saved = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(saved)


class TestViewCodes:
    @pytest.mark.parametrize("blocks", [1, 3, 64])
    def test_codes_equal_reference_on_any_blocks_and_threads(self, blocks):
        values = _column(5000, seed=1)
        s = pl.Series("c", values, dtype=pl.String)
        settings = SMALL.model_copy(update={"key_blocks": blocks, "chunk_rows": 4096})

        def table_for(labels):
            return np.arange(len(labels) + 1, dtype=np.uint32) + 100

        runs = [_with_threads(t, lambda: string_codes(s, settings, table_for)) for t in (1, 2)]
        for got in runs:
            assert got is not None
            labels, codes = got
            assert labels == sorted(set(LABELS))
            expected = [100 + len(labels) if v is None else 100 + labels.index(v) for v in values]
            assert codes.tolist() == expected
        np.testing.assert_array_equal(runs[0][1], runs[1][1])

    def test_values_outside_the_guess_are_found_by_the_second_pass(self):
        values = ["west"] * 300 + ["a" * 12 + "MIDDLE-1" + "c" * 8, "a" * 12 + "MIDDLE-1" + "b" * 8, "zz"]
        s = pl.Series("c", values)
        calls: list[list[str]] = []

        def table_for(labels):
            calls.append(list(labels))
            return np.arange(len(labels) + 1, dtype=np.uint8)

        got = string_codes(s, SMALL, table_for)
        assert got is not None and len(calls) == 2 and calls[0] == ["west"]
        labels, codes = got
        assert codes.tolist() == [labels.index(v) for v in values]

    def test_middle_bytes_of_long_strings_are_compared(self):
        """A value equal to a label in length, first 12 and last 8 bytes is not that label: the first
        pass misses it (a second pass is needed), and the two cannot be told apart by the keys."""
        one, other = "a" * 12 + "MIDDLE-1" + "b" * 8, "a" * 12 + "MIDDLE-2" + "b" * 8
        s = pl.Series("c", [one] * 300 + [other])
        calls: list[list[str]] = []

        def table_for(labels):
            calls.append(list(labels))
            return np.arange(len(labels) + 1, dtype=np.uint8)

        assert string_codes(s, SMALL, table_for) is None
        assert calls == [[one]]  # the second pass found no collision-free table for both

    def test_labels_the_keys_cannot_separate_take_the_polars_path(self):
        twins = ["p" * 12 + "A" + "q" * 8, "p" * 12 + "B" + "q" * 8]  # same length, first 12, last 8 bytes
        values = [twins[i % 2] for i in range(100)] + [None]
        s = pl.Series("region", values)
        assert string_codes(s, SMALL, lambda labels: np.arange(len(labels) + 1, dtype=np.uint8)) is None
        out = _encode_category(s, "unknown", encoding=SMALL)
        target, codes = ref.category_codes(values, "unknown")
        assert out.dtype.categories.to_list() == target and out.to_physical().to_list() == codes

    def test_sliced_multi_chunk_column(self):
        values = _column(3000, seed=2, null_share=0.0)
        s = pl.concat([pl.Series(values[:1000]), pl.Series(values[1000:])], rechunk=False).slice(7, 2500)
        got = string_codes(s, SMALL, lambda labels: np.arange(len(labels) + 1, dtype=np.uint32))
        assert got is not None
        labels, codes = got
        assert codes.tolist() == [labels.index(v) for v in values[7:2507]]


class TestStringKeys:
    @pytest.mark.parametrize("blocks", [1, 2, 5, 64])
    def test_keys_and_order_of_mixed_lengths_equal_reference(self, blocks):
        ids = sorted({f"{v}-{i}" for i, v in enumerate(_column(800, seed=3, null_share=0.0))})
        for values in (ids, ids[::-1], ids[:5] + ids[4:]):
            got = _with_threads(2, lambda values=values: string_view_keys(pl.Series(values), blocks))
            assert got is not None
            keys, increasing = got
            expected_keys, expected_increasing = ref.keys_and_order(values)
            assert keys.tolist() == expected_keys
            assert increasing is expected_increasing

    def test_one_and_two_threads_agree(self):
        values = [f"twin-{i:07d}" + ("-long-suffix" if i % 3 == 0 else "") for i in range(20_000)]
        runs = [_with_threads(t, lambda: string_view_keys(pl.Series(values), 64)) for t in (1, 2)]
        assert runs[0] is not None and runs[1] is not None
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        assert runs[0][1] is runs[1][1] is True
        assert runs[0][0][:50].tolist() == [twin_key(v) for v in values[:50]]


class TestAddressCodes:
    def test_codes_equal_a_dictionary_lookup_and_misses_are_counted(self):
        rng = np.random.default_rng(4)
        keys = np.append(rng.integers(1, 2**62, 9, dtype=np.int64).view(np.uint64), np.uint64(0))
        m = keys.shape[0] - 1
        zeros = np.zeros(m, dtype=np.uint64)
        found = _perfect_table(keys[:m], zeros, zeros, np.zeros(m, dtype=np.bool_))
        assert found is not None
        table, mult, shift = found
        assert np.unique(table[table < m]).tolist() == list(range(m))  # every key has its own slot
        rows = keys[rng.integers(0, m, 3000)]
        final = np.arange(m + 1, dtype=np.uint32) * 3
        for blocks in (1, 7):
            out = np.empty(rows.shape[0], dtype=np.uint32)
            assert K.address_codes(rows, table, mult, shift, keys, final, blocks, out) == 0
            index = {int(k): i for i, k in enumerate(keys[:m])}
            assert out.tolist() == [3 * index[int(v)] for v in rows]
        strangers = rows.copy()
        strangers[[5, 900]] = np.uint64(12345)
        out = np.empty(rows.shape[0], dtype=np.uint32)
        assert K.address_codes(strangers, table, mult, shift, keys, final, 7, out) == 2

    def test_equal_keys_have_no_collision_free_table(self):
        keys = np.array([5, 9, 5], dtype=np.uint64)
        zeros = np.zeros(3, dtype=np.uint64)
        assert _perfect_table(keys, zeros, zeros, np.zeros(3, dtype=np.bool_)) is None

    def test_pandas_column_with_a_late_new_object_equals_pl_from_pandas(self):
        pd = pytest.importorskip("pandas")
        values = ["west", "south", None] * 200 + [("nor" + "th")[:5], float("nan"), "west"]
        pdf = pd.DataFrame({"region": pd.Series(values, dtype=object)})
        addresses = _object_addresses(np.ascontiguousarray(pdf["region"].to_numpy()))
        assert len(set(addresses[:256].tolist())) == 3  # the guess from the first rows misses "north"
        fast = frame_from_pandas(pdf, ("region",), (), SMALL).frame
        slow = pl.from_pandas(pdf)
        assert fast["region"].cast(pl.String).to_list() == slow["region"].to_list()
