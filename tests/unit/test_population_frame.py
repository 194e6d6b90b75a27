"""from_frame's fast readers (kernels/frame.py, population_encode.py) against plain references.

Issue 13: building 10 M twins from a frame cost 9x one simulation. The speed-ups must not change a
population: every kernel is compared with a plain-Python reference (tests/naive_population.py), and whole
populations built the fast way are compared with the slow way (Polars' own encoding, ``pl.from_pandas``)
on tricky inputs: nulls, unknown and mis-cased categories, out-of-range values, duplicate ids, long and
non-ASCII strings, high-cardinality columns, every chunk size and thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pandas as pd
import polars as pl
import pytest

from tests import naive_population as ref
from tests.conftest import make_population_frame
from tests.frame_settings import SMALL
from tests.naive import twin_key
from twinkernel import TwinPopulation
from twinkernel.kernels import frame as K
from twinkernel.models import ADOPTION_STAGES
from twinkernel.population import ADOPTION_CATEGORIES, DEFAULTED_BITS
from twinkernel.population_checks import _encode_category, check_twin_ids, twin_keys
from twinkernel.population_encode import (
    _dictionary,
    frame_from_pandas,
    keys_are_unique,
    string_codes,
    string_view_keys,
)

CATEGORIES = ("specialty", "region", "preferred_channel", "adoption_stage")
NO_U8 = np.empty(0, dtype=np.uint8)
NO_U32 = np.empty(0, dtype=np.uint32)


def _tricky_frame(n: int, seed: int) -> pl.DataFrame:
    """Every recognised column with the defects a user's file has: nulls, unknown and mis-cased stages,
    long and non-ASCII labels, out-of-range numbers, NaN and inf."""
    rng = np.random.default_rng(seed)
    frame = make_population_frame(n, seed=seed)
    stages = np.array([*ADOPTION_STAGES, "Laggard ", "pioneer", "EARLY_MAJORITY"], dtype=object)
    specialties = np.array(["oncology", "hématologie", "a very long specialty name indeed", ""], dtype=object)

    def with_nulls(values: np.ndarray, share: float) -> list[object]:
        return [None if r < share else v for v, r in zip(values, rng.random(n), strict=True)]

    decile = rng.integers(-3, 14, n).astype(float)
    decile[rng.random(n) < 0.05] = np.nan
    baseline = rng.normal(0.3, 0.1, n)
    baseline[rng.random(n) < 0.02] = np.inf
    return frame.with_columns(
        pl.Series("specialty", with_nulls(rng.choice(specialties, n), 0.1), dtype=pl.String),
        pl.Series("adoption_stage", with_nulls(rng.choice(stages, n), 0.05), dtype=pl.String),
        pl.Series("region", with_nulls(frame["region"].to_numpy(), 0.2), dtype=pl.String),
        pl.Series("decile", decile),
        pl.Series("baseline_outcome", baseline),
        pl.Series("digital_engagement_score", rng.normal(0.5, 0.6, n)),
    )


def _assert_same_population(a: TwinPopulation, b: TwinPopulation) -> None:
    assert a.frame.equals(b.frame)
    assert a.frame.schema == b.frame.schema
    assert a.warnings == b.warnings and a.missing_columns == b.missing_columns
    ca, cb = a.kernel_columns, b.kernel_columns
    for name in ("decile", "engagement", "adoption", "tier", "peer", "propensity", "baseline", "specialty"):
        np.testing.assert_array_equal(getattr(ca, name), getattr(cb, name), err_msg=name)
    for name in ("region", "channel", "defaulted", "twin_key"):
        np.testing.assert_array_equal(getattr(ca, name), getattr(cb, name), err_msg=name)
    for x, y in zip(ca.segment_codes, cb.segment_codes, strict=True):
        np.testing.assert_array_equal(x, y)
    assert ca.segment_labels == cb.segment_labels


class TestDictionaryKernels:
    @pytest.mark.parametrize("chunk", [256, 1000, 1 << 16])
    def test_codes_match_first_appearance_reference_for_any_chunking(self, chunk):
        rng = np.random.default_rng(3)
        values = rng.choice(np.array([7, 2**63 + 5, 0, 12345, 2**64 - 1], dtype=np.uint64), 5000)
        valid = (rng.random(5000) > 0.1).astype(np.uint8)
        settings = SMALL.model_copy(update={"chunk_rows": chunk})
        d = _dictionary(values, NO_U32, valid, settings)
        assert d is not None
        labels, codes = ref.first_appearance(
            [int(v) if ok else None for v, ok in zip(values, valid, strict=True)]
        )
        assert [int(values[r]) for r in d.first_rows] == labels
        final = np.arange(len(labels), dtype=np.uint32) + 10
        got = d.codes(final, 99)
        assert got.tolist() == [99 if c is None else c + 10 for c in codes]

    def test_same_codes_on_one_and_two_threads(self):
        values = np.random.default_rng(4).integers(0, 30, 20_000).astype(np.uint64)
        saved = numba.get_num_threads()
        try:
            out = []
            for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
                numba.set_num_threads(threads)
                d = _dictionary(values, NO_U32, NO_U8, SMALL)
                assert d is not None
                out.append((d.first_rows.copy(), d.codes(np.arange(30, dtype=np.uint8), 255)))
        finally:
            numba.set_num_threads(saved)
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])
        assert out[0][1].tolist() == ref.first_appearance(values.tolist())[1]

    def test_too_many_distinct_values_overflow(self):
        values = np.arange(300, dtype=np.uint64)  # 256-row chunks of distinct values, cap 40
        assert _dictionary(values, NO_U32, NO_U8, SMALL) is None

    def test_equal_values_with_different_lengths_are_a_collision(self):
        values = np.array([5, 5, 6], dtype=np.uint64)
        assert _dictionary(values, np.array([1, 2, 1], dtype=np.uint32), NO_U8, SMALL) is None
        apart = SMALL.model_copy(update={"chunk_rows": 256})
        many = np.full(600, 5, dtype=np.uint64)  # the second length sits in another chunk: merge sees it
        lengths = np.ones(600, dtype=np.uint32)
        lengths[400] = 3
        assert _dictionary(many, lengths, NO_U8, apart) is None
        lengths[400] = 1
        d = _dictionary(many, lengths, NO_U8, apart)
        assert d is not None and d.first_rows.tolist() == [0]

    def test_code_counts_match_bincount(self):
        codes = np.random.default_rng(5).integers(0, 9, 10_001).astype(np.uint8)
        np.testing.assert_array_equal(K.code_counts(codes, 10), ref.code_counts(codes, 10))
        assert K.code_counts(codes[:0], 3).tolist() == [0, 0, 0]


class TestDuplicateKeys:
    @pytest.mark.parametrize("n", [2, 5, 3000, 50_000])
    def test_unique_and_duplicated_keys(self, n):
        keys = twin_keys(pl.Series([f"id-{i}" for i in range(n)]))
        assert keys_are_unique(keys, SMALL) is (not ref.has_duplicates(keys.tolist())) is True
        with_dup = keys.copy()
        with_dup[n - 1] = keys[n // 2 - 1 if n > 2 else 0]
        assert keys_are_unique(with_dup, SMALL) is False
        assert ref.has_duplicates(with_dup.tolist())

    def test_every_partition_count_agrees(self):
        keys = np.random.default_rng(6).integers(0, 2**63, 4000, dtype=np.int64).view(np.uint64).copy()
        keys[3999] = keys[17]
        for bits in (0, 1, 3, 8):
            assert K.keys_have_duplicates(keys, bits, 5) is True
            assert K.keys_have_duplicates(keys[:3999], bits, 5) is False


class TestStringViewKeys:
    IDS = ("hcp-000001", "hcp-000002", "a" * 13, "é", "日本語のID-0001", "", "zz" * 40)

    def test_keys_match_fnv_reference_short_long_and_unicode(self):
        got = string_view_keys(pl.Series(list(self.IDS)), 3)
        assert got is not None
        keys, increasing = got
        expected_keys, expected_increasing = ref.keys_and_order(self.IDS)
        assert keys.tolist() == expected_keys
        assert increasing is expected_increasing is False

    @pytest.mark.parametrize(
        "ids",
        [
            ["a", "ab", "b", "ba", "bb"],
            ["hcp-0001", "hcp-0002", "hcp-0010"],
            ["x" * 20 + "a", "x" * 20 + "b", "x" * 21],
            ["a", "a"],
            ["b", "a"],
            ["ab", "a"],
            ["x" * 20 + "b", "x" * 20 + "a"],
        ],
    )
    def test_order_flag_matches_reference(self, ids):
        got = string_view_keys(pl.Series(ids), 2)
        assert got is not None and got[1] is ref.keys_and_order(ids)[1]
        assert got[0].tolist() == [twin_key(s) for s in ids]

    def test_sliced_and_multi_chunk_columns(self):
        ids = [f"twin-{i:05d}-with-a-long-suffix" for i in range(2000)]
        s = pl.concat([pl.Series(ids[:700]), pl.Series(ids[700:])], rechunk=False).slice(5, 1500)
        got = string_view_keys(s, 8)
        assert got is not None and got[1] is True
        assert got[0].tolist() == [twin_key(x) for x in ids[5:1505]]

    def test_check_twin_ids_uses_keys_then_exact_ids(self):
        ids = pl.Series([f"id-{i}" for i in range(500)]).shuffle(seed=1)
        keys = check_twin_ids(ids, SMALL)
        assert keys.tolist() == [twin_key(s) for s in ids.to_list()]
        with pytest.raises(ValueError, match=r"`twin_id` must be unique; 'id-7' appears at rows"):
            check_twin_ids(pl.concat([ids, pl.Series(["id-7"])]), SMALL)
        ints = pl.Series([5, 3, 9, 3])
        with pytest.raises(ValueError, match=r"`twin_id` must be unique; 3 appears at rows \[1, 3\]"):
            check_twin_ids(ints, SMALL)


class TestCategoryCodes:
    @pytest.mark.parametrize("forced", [False, True])
    def test_string_column_codes_equal_reference_and_polars_path(self, forced):
        rng = np.random.default_rng(8)
        labels = np.array(["late_majority", "Innovator ", "zeta", "α-stage", "", "laggard"], dtype=object)
        values = [
            None if r < 0.1 else v for v, r in zip(rng.choice(labels, 3000), rng.random(3000), strict=True)
        ]
        s = pl.Series("adoption_stage", values, dtype=pl.String)
        kwargs = {"forced": ADOPTION_CATEGORIES, "normalise": True} if forced else {}
        fast = _encode_category(s, "early_majority", encoding=SMALL, **kwargs)
        slow = _encode_category(s, "early_majority", encoding=None, **kwargs)
        assert fast.equals(slow) and fast.dtype == slow.dtype
        target, codes = ref.category_codes(
            values, "early_majority", ADOPTION_CATEGORIES if forced else None, forced
        )
        assert fast.dtype.categories.to_list() == target
        assert fast.to_physical().to_list() == codes

    def test_high_cardinality_column_takes_polars_path_with_equal_result(self):
        values = [f"label-{i % 700}" for i in range(3000)]
        s = pl.Series("specialty", values)
        assert string_codes(s, SMALL, lambda labels: np.zeros(len(labels) + 1, np.uint32)) is None
        target, codes = ref.category_codes(values, "unknown")
        out = _encode_category(s, "unknown", encoding=SMALL)
        assert out.dtype.categories.to_list() == target and out.to_physical().to_list() == codes

    def test_label_first_seen_late_and_long_look_alikes(self):
        """A label absent from the first chunk_rows rows forces the second pass; long labels that share
        length and first bytes (and an inline one equal to a long one's start) stay apart."""
        base = ["x" * 20 + "a", "x" * 20 + "b", "xxxx", "x" * 12, "x" * 13]
        values = [base[i % 5] for i in range(1000)] + ["late-label", None, "x" * 20 + "a"]
        s = pl.Series("region", values)
        calls = []

        def table_for(labels):
            calls.append(list(labels))
            return np.arange(len(labels) + 1, dtype=np.uint32)

        got = string_codes(s, SMALL, table_for)
        assert got is not None and len(calls) == 2  # the guess from 256 rows missed "late-label"
        labels, codes = got
        assert labels == sorted(set(base) | {"late-label"}) == calls[1]
        assert codes.tolist() == [len(labels) if v is None else labels.index(v) for v in values]
        target, ref_codes = ref.category_codes(values, "unknown")
        out = _encode_category(s, "unknown", encoding=SMALL)
        assert out.dtype.categories.to_list() == target and out.to_physical().to_list() == ref_codes

    def test_all_null_and_empty_string_columns(self):
        for values in ([None, None, None], ["", "", None], [""]):
            s = pl.Series("region", values, dtype=pl.String)
            target, codes = ref.category_codes(values, "unknown")
            out = _encode_category(s, "unknown", encoding=SMALL)
            assert out.dtype.categories.to_list() == target and out.to_physical().to_list() == codes

    def test_enum_with_nulls_unused_and_unsorted_categories(self):
        s = pl.Series("region", ["west", None, "south", "west"], dtype=pl.Enum(["zz", "west", "south"]))
        out = _encode_category(s, "unknown", encoding=SMALL)
        target, codes = ref.category_codes(["west", None, "south", "west"], "unknown")
        assert out.dtype.categories.to_list() == target == ["south", "unknown", "west"]
        assert out.to_physical().to_list() == codes


class TestWholePopulation:
    def test_fast_build_equals_slow_build_on_tricky_frames(self, config):
        frame = _tricky_frame(2500, seed=11)
        # slow: no encoding settings reach the builder when the config's chunks cannot hold the column
        slow_cfg = config.model_copy(
            update={
                "simulation": config.simulation.model_copy(
                    update={
                        "frame_encoding": SMALL.model_copy(
                            update={"dictionary_cap": 1, "threaded_min_rows": 10**9}  # one thread
                        )
                    }
                )
            }
        )
        fast_cfg = config.model_copy(
            update={"simulation": config.simulation.model_copy(update={"frame_encoding": SMALL})}
        )
        fast = TwinPopulation.from_frame(frame, config=fast_cfg)
        slow = TwinPopulation.from_frame(frame, config=slow_cfg)
        _assert_same_population(fast, slow)
        assert fast.warnings == slow.warnings  # threaded checks report in column order
        assert any("baseline_outcome" in w and "infinite" in w for w in fast.warnings)
        spec = fast.frame["specialty"]
        assert spec.dtype.categories.to_list() == sorted(
            ["oncology", "hématologie", "a very long specialty name indeed", "", "unknown"]
        )
        nulls = frame["specialty"].is_null().to_numpy()
        assert np.all((fast.kernel_columns.defaulted[nulls] & DEFAULTED_BITS["specialty"]) != 0)
        stages = frame["adoption_stage"].to_list()
        got = fast.frame["adoption_stage"].cast(pl.String).to_list()
        for raw, out in zip(stages, got, strict=True):
            expected = "early_majority" if raw is None else raw.strip().lower()
            assert out == (expected if expected in ADOPTION_STAGES else "other")

    def test_threaded_checks_raise_the_first_error_in_column_order(self, config):
        frame = _tricky_frame(600, seed=5).with_columns(
            pl.Series("digital_engagement_score", ["x"] * 600),  # first float column: not numbers
            pl.Series("priority_tier", [1.5] * 600),  # an integer column: not whole numbers
        )
        messages = []
        for rows in (0, 10**9):  # threads, then one thread
            encoding = SMALL.model_copy(update={"threaded_min_rows": rows})
            cfg = config.model_copy(
                update={"simulation": config.simulation.model_copy(update={"frame_encoding": encoding})}
            )
            with pytest.raises(ValueError, match="`digital_engagement_score` must hold numbers") as err:
                TwinPopulation.from_frame(frame, config=cfg)
            messages.append(str(err.value))
        assert messages[0] == messages[1]

    @pytest.mark.parametrize("cats", ["object", "category", "string[pyarrow]"])
    def test_pandas_frames_equal_pl_from_pandas(self, cats):
        frame = _tricky_frame(1500, seed=12)
        pdf = frame.to_pandas()
        if cats != "object":
            pdf = pdf.astype({c: cats for c in CATEGORIES})
        # pandas' own missing values, and equal strings held by different Python objects
        if cats == "object":
            pdf.loc[3, "region"] = float("nan")
            pdf.loc[4, "region"] = pd.NA
            copies = [(str(v) + "x")[:-1] if v is not None else None for v in pdf["preferred_channel"]]
            assert copies[0] is not pdf["preferred_channel"][0]  # a new object holding the same string
            pdf["preferred_channel"] = pd.Series(copies, dtype=object)
        fast = TwinPopulation.from_frame(pdf)
        slow = TwinPopulation.from_frame(pl.from_pandas(pdf))
        _assert_same_population(fast, slow)
        assert fast.fingerprint() == slow.fingerprint()
        for col in CATEGORIES:
            assert fast.frame[col].cast(pl.String).to_list() == slow.frame[col].cast(pl.String).to_list()
        if cats == "object":
            assert fast.frame["region"][3] == fast.frame["region"][4] == "unknown"
            assert fast.kernel_columns.defaulted[3] & DEFAULTED_BITS["region"]

    def test_pandas_object_column_with_numbers_fails_as_pl_from_pandas(self):
        pdf = pd.DataFrame({"region": ["west", 3, "south"], "decile": [1, 2, 3]})
        with pytest.raises(Exception) as fast_error:
            TwinPopulation.from_frame(pdf)
        with pytest.raises(Exception) as slow_error:
            pl.from_pandas(pdf)
        assert type(fast_error.value) is type(slow_error.value)
        direct = frame_from_pandas(pdf[["decile"]], CATEGORIES, ("twin_id",), SMALL).frame
        assert direct.equals(pl.from_pandas(pdf[["decile"]]))

    def test_duplicate_string_ids_from_pandas_are_named(self):
        pdf = make_population_frame(300, seed=13).to_pandas()
        pdf.loc[250, "twin_id"] = pdf.loc[17, "twin_id"]
        with pytest.raises(
            ValueError, match=r"`twin_id` must be unique; 'hcp-000017' appears at rows \[17, 250\]"
        ):
            TwinPopulation.from_frame(pdf)

    def test_simulation_identical_whatever_the_input_flavour(self):
        from twinkernel import InterventionConfig, SimulationEngine

        frame = _tricky_frame(3000, seed=14)
        ates = []
        for df in (frame, frame.to_pandas()):
            engine = SimulationEngine(TwinPopulation.from_frame(df), cache=False)
            r = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=5)
            ates.append(r.simulated_ate)
        assert ates[0] == ates[1] and math.isfinite(ates[0])
