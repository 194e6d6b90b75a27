"""Bootstrap kernels vs the NumPy references; validation, degenerate input, determinism, properties."""

from __future__ import annotations

import itertools
import json
import threading
import warnings

import numba
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tests import naive_bootstrap as nb
from tests.conftest import KERNEL_ATOL, KERNEL_RTOL
from twinkernel import get_config
from twinkernel.bootstrap import BootstrapResult, BootstrapWarning, bootstrap_ci, engine_intervals
from twinkernel.bootstrap import blb as bblb
from twinkernel.bootstrap import columns as bcol
from twinkernel.bootstrap import intervals as biv
from twinkernel.bootstrap import multinomial as bmul
from twinkernel.bootstrap import poisson as bpoi
from twinkernel.kernels import bootstrap as kb
from twinkernel.kernels import bootstrap_multinomial as kbm
from twinkernel.kernels._rng import STREAM_BOOTSTRAP, STREAM_BOOTSTRAP_BLB

RESAMPLINGS = ("multinomial", "poisson", "blb")
METHODS = ("percentile", "basic", "bca")


SETTINGS = get_config().bootstrap
MAX_CELLS = SETTINGS.max_direct_cells


def _data(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, size=n)


@pytest.fixture
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# ----------------------------------------------------------------------------------------------------------
# Kernels against the references.


class TestKernelsAgainstReference:
    def test_rng_key_matches_reference(self):
        assert bpoi.rng_key(12345, STREAM_BOOTSTRAP) == nb.key_for(12345, STREAM_BOOTSTRAP)
        assert bpoi.rng_key(2**64 - 1, STREAM_BOOTSTRAP_BLB) == nb.key_for(2**64 - 1, STREAM_BOOTSTRAP_BLB)

    @pytest.mark.parametrize(
        "starts",
        [
            [0, 37],
            [0, 10, 10, 37],
            [0, 1, 2, 3, 37],
            [0, 13, 37],
            # several full 4 096-row blocks, a short last block, an empty group, a group of exactly one block
            [0, 3 * 4096 + 777],
            [0, 5000, 5000, 9096, 3 * 4096 + 777],
        ],
    )
    def test_multinomial_means(self, starts):
        starts = np.array(starts, dtype=np.int64)
        x = _data(int(starts[-1]), seed=1)
        key = bpoi.rng_key(7, STREAM_BOOTSTRAP)
        n_resamples = 11 if starts[-1] < 100 else 3
        got = kb.multinomial_means(x, starts, key, n_resamples)
        want = nb.multinomial_means(x, starts, key, n_resamples)
        np.testing.assert_allclose(got, want, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        for g in range(starts.shape[0] - 1):
            assert np.isnan(got[g]).all() == (starts[g + 1] == starts[g])

    @pytest.mark.parametrize(
        ("n", "p"), [(1, 0.5), (7, 0.3), (4096, 4096 / 13065), (100_000, 0.004), (50, 0.98)]
    )
    def test_binomial_inverse_matches_scipy(self, n, p):
        # a grid of uniforms plus the smallest one the kernel can draw, (0 + 0.5) * 2**-53; near u = 1
        # the running sum's rounding decides (probability ~1e-16 per draw), so that end is left out
        u = np.concatenate([(np.arange(400) + 0.5) / 400.0, [0.5 * 2.0**-53]])
        got = [kbm.binomial_inverse(v, n, p) for v in u]
        want = [nb.binomial_by_mode_order(v, n, p) for v in u]
        assert got == want
        assert kbm.binomial_inverse(0.3, 0, 0.5) == 0 and kbm.binomial_inverse(0.3, 9, 1.0) == 9

    def test_multinomial_block_counts_are_multinomial(self):
        # 3 groups: 2.5 blocks, 1 short block, 4 blocks; counts sum to the group size and follow
        # Multinomial(m; rows / m): mean m * rows / m = rows, variance m * q * (1 - q) per block.
        sizes = [2 * 4096 + 2048, 100, 4 * 4096]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        _, rows, first = kbm.multinomial_blocks(starts)
        counts, _ = kbm.multinomial_block_counts(rows, first, np.uint64(99), 4000)
        for g, m in enumerate(sizes):
            part = counts[:, first[g] : first[g + 1]]
            assert (part.sum(axis=1) == m).all()
            q = rows[first[g] : first[g + 1]] / m
            se_mean = np.sqrt(m * q * (1 - q) / counts.shape[0])
            assert (np.abs(part.mean(axis=0) - m * q) <= 4.5 * se_mean + 1e-12).all()
            if part.shape[1] > 1:
                np.testing.assert_allclose(part.var(axis=0), m * q * (1 - q), rtol=0.1)

    def test_multinomial_task_sizes_and_threads_bit_identical(self):
        n = 9 * 4096 + 123
        x = _data(n, seed=5)
        starts = np.array([0, 4000, n], dtype=np.int64)
        key = np.uint64(2024)
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = kb.multinomial_means(x, starts, key, 37)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            two = kb.multinomial_means(x, starts, key, 37)
            # replicates per task x hashes computed ahead: results must not depend on either
            tiled = [
                kbm.multinomial_means_chunked(x, starts, key, 37, r, c)
                for r, c in ((1, 1), (3, 5), (64, 1000))
            ]
        finally:
            numba.set_num_threads(before)
        np.testing.assert_array_equal(one, two)
        for other in tiled:
            np.testing.assert_array_equal(one, other)

    def test_poisson_weight_table(self):
        table = kb.poisson1_table()
        np.testing.assert_array_equal(table, nb.poisson1_weight_table())
        probs = np.bincount(table, minlength=9) / 65536.0
        assert np.abs(probs[:8] - stats.poisson.pmf(np.arange(8), 1.0)).max() <= 2.0**-16
        w = table.astype(np.float64)
        assert abs(w.mean() - 1.0) < 1e-4 and abs(w.var() - 1.0) < 1e-4

    @pytest.mark.parametrize("level", range(kb.MAX_BLB_LEVEL + 1))
    def test_poisson_cdf_tables(self, level):
        thr, guide, off, goff = kb.poisson_cdf_tables()
        mine = thr[off[level] : off[level + 1]].astype(np.float64) / 2.0**64
        ref = nb.poisson_thresholds(level).astype(np.float64) / 2.0**64
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-11)
        g = guide[goff[level] : goff[level + 1]]
        assert (np.diff(g) >= 0).all() and g[-1] < mine.shape[0]

    @pytest.mark.parametrize("dims", [(), (3,), (3, 2), (4, 1, 5)])
    def test_poisson_sums_exact(self, dims):
        rng = np.random.default_rng(3)
        n = 61
        x = rng.normal(5.0, 2.0, n)
        codes = [rng.integers(0, g, n) for g in dims]
        center, scale, q = nb.quantization(x)
        assert (center, scale) == bpoi.quantization(x, n)
        np.testing.assert_array_equal(kb.quantize(x, center, scale), q)
        cells, n_cells, cc = bcol.joint_cells(codes, list(dims), n, MAX_CELLS)
        order, starts = kb.sort_by_cell(cells, n_cells)
        qs, ms = kb.gather_sorted(q, order, 0)
        key = bpoi.rng_key(99, STREAM_BOOTSTRAP)
        for quads in (1, 3):
            s, w = kb.poisson_sums(qs, ms, starts, cc, 1 + sum(dims), key, 10, kb.poisson1_table(), quads)
            s_ref, w_ref = nb.poisson_sums(q, codes, list(dims), key, 10)
            np.testing.assert_array_equal(s, s_ref)
            np.testing.assert_array_equal(w, w_ref)

    def test_blb_sums_exact(self):
        rng = np.random.default_rng(4)
        n = 53
        x = rng.gamma(2.0, size=n)
        codes = [rng.integers(0, 3, n)]
        levels = np.array([0, 1, 2, 3] * 13 + [1], dtype=np.int64)
        _, _, q = nb.quantization(x)
        cells, n_cells, cc = bcol.joint_cells(codes, [3], n, MAX_CELLS)
        _, ms = kb.gather_sorted(q, np.arange(n, dtype=np.int64), 0)
        key = bpoi.rng_key(5, STREAM_BOOTSTRAP_BLB)
        got = kb.blb_sums(q, ms, levels, cells, cc, 4, n_cells, key, 3, 4, *kb.poisson_cdf_tables())
        want = nb.blb_sums(q, levels, codes, [3], key, 3, 4)
        for g, w in zip(got[:4], want, strict=True):
            np.testing.assert_array_equal(g, w)
        assert (got[4] >= (levels == 0).sum()).all()  # level-0 rows are in every subset

    def test_group_moments(self):
        rng = np.random.default_rng(5)
        x = rng.normal(size=40)
        codes = rng.integers(0, 4, 40)
        count, mean, m2, m3, vmin, vmax = kb.group_moments(x, codes, 5)
        for g in range(4):
            v = x[codes == g]
            assert count[g] == v.shape[0]
            np.testing.assert_allclose(mean[g], v.mean(), rtol=1e-13)
            np.testing.assert_allclose(m2[g], ((v - v.mean()) ** 2).sum(), rtol=1e-12)
            np.testing.assert_allclose(m3[g], ((v - v.mean()) ** 3).sum(), rtol=1e-10, atol=1e-13)
            assert (vmin[g], vmax[g]) == (v.min(), v.max())
        assert count[4] == 0 and np.isnan(mean[4])

    def test_closed_form_acceleration_matches_jackknife(self):
        x = _data(40, seed=6)
        cols = bcol.column_moments(x, [], [])
        np.testing.assert_allclose(biv.acceleration(cols)[0], nb.jackknife_acceleration(x), rtol=1e-9)

    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    def test_interval_matches_reference(self, method, resampling):
        x = _data(40, seed=7)
        res = bootstrap_ci(x, n_resamples=300, method=method, resampling=resampling, seed=11)
        if resampling == "multinomial":
            reps, ref = bmul.multinomial_replicates(x, [], [], 11, 300)
        elif resampling == "poisson":
            reps, ref = bpoi.poisson_replicates(
                x, [], [], 11, 300, quads_per_task=SETTINGS.poisson_quads_per_task, max_direct_cells=MAX_CELLS
            )
        else:
            reps, ref = bblb.blb_replicates(x, [], [], 11, 300, blb=SETTINGS.blb, max_direct_cells=MAX_CELLS)
        centre = x.mean() if resampling == "multinomial" else ref[0]
        if method == "bca":
            lo, hi = nb.interval(reps[0], centre, x, method, 0.95)
        else:
            lo, hi = nb.interval(reps[0], x.mean(), x, method, 0.95)
        np.testing.assert_allclose(res.confidence_interval, (lo, hi), rtol=1e-10)
        np.testing.assert_allclose(res.standard_error, reps[0].std(ddof=1), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# The boundary.


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"values": []}, r"`values` must not be empty"),
            ({"values": [1.0, np.nan, 2.0]}, r"`values` must be finite.*NaN at index 1"),
            ({"values": [1.0, np.inf]}, r"`values` must be finite.*infinite value at index 1"),
            ({"values": np.ones((3, 2))}, r"`values` must be 1-D; got an array with shape \(3, 2\)"),
            ({"values": ["a", "b"]}, r"`values` must be numeric"),
            (
                {"confidence_level": 1.0},
                r"`confidence_level` must be a number strictly between 0 and 1; got 1.0",
            ),
            ({"confidence_level": 0}, r"`confidence_level` must be .* got 0"),
            ({"confidence_level": "0.9"}, r"`confidence_level` must be"),
            ({"n_resamples": -5}, r"`n_resamples` must be an integer >= 2; got -5"),
            ({"n_resamples": 10.5}, r"`n_resamples` must be an integer >= 2; got 10.5"),
            ({"method": "student"}, r"`method` must be one of percentile, basic, bca; got 'student'"),
            ({"resampling": "jackknife"}, r"`resampling` must be one of multinomial, poisson, blb"),
            ({"seed": -1}, r"`seed` must be None or an integer in \[0, 2\*\*64\); got -1"),
            ({"seed": 1.5}, r"`seed` must be None or an integer"),
            ({"groups": [0, 1]}, r"`groups` must have the same length as `values` \(4\); got 2"),
            ({"groups": [0, -1, 0, 1]}, r"`groups` integer codes must be >= 0; got -1 at index 1"),
            ({"groups": np.zeros((4, 1), dtype=int)}, r"`groups` must be 1-D"),
            ({"groups": [0.0, np.nan, 1.0, 1.0]}, r"`groups` must not contain NaN"),
            ({"groups": ["a", None, "b", "b"]}, r"`groups` must not contain None"),
        ],
    )
    def test_messages(self, kwargs, match):
        args = {"values": [1.0, 2.0, 3.0, 4.0], **kwargs}
        values = args.pop("values")
        with pytest.raises(ValueError, match=match):
            bootstrap_ci(values, **args)

    def test_polars_null_groups(self):
        with pytest.raises(ValueError, match=r"`groups` must not contain nulls; found 1"):
            bootstrap_ci([1.0, 2.0, 3.0], pl.Series(["a", None, "b"]), seed=0)

    def test_engine_validation(self):
        x = _data(20)
        with pytest.raises(ValueError, match=r"`group_codes\[0\]` must lie in \[0, 2\)"):
            engine_intervals(
                x,
                [np.full(20, 2)],
                [2],
                method="bca",
                n_resamples=10,
                confidence_level=0.9,
                seed=1,
                blb_min_n=10**9,
            )
        with pytest.raises(
            ValueError, match=r"`effects` must be finite; found NaN or an infinite value at index 3"
        ):
            engine_intervals(
                np.array([1.0, 2.0, 3.0, np.nan]),
                [],
                [],
                method="bca",
                n_resamples=10,
                confidence_level=0.9,
                seed=1,
                blb_min_n=10**9,
            )
        with pytest.raises(ValueError, match=r"`method` must be one of"):
            engine_intervals(
                x, [], [], method="analytic", n_resamples=10, confidence_level=0.9, seed=1, blb_min_n=10**9
            )

    def test_seed_none_is_drawn_and_recorded(self):
        x = _data(30)
        first = bootstrap_ci(x, n_resamples=200)
        again = bootstrap_ci(x, n_resamples=200, seed=first.seed)
        assert 0 <= first.seed < 2**63
        assert first.confidence_interval == again.confidence_interval

    def test_result_is_frozen(self):
        res = bootstrap_ci(_data(30), n_resamples=100, seed=1)
        assert isinstance(res, BootstrapResult)
        with pytest.raises(AttributeError):
            res.estimate = 0.0  # type: ignore[misc]

    def test_method_names_are_case_insensitive(self):
        a = bootstrap_ci(_data(30), n_resamples=100, seed=1, method="BCa", resampling="Poisson")
        assert (a.method, a.resampling) == ("bca", "poisson")


class TestGroupsInput:
    def setup_method(self):
        rng = np.random.default_rng(8)
        self.x = rng.normal(1.0, 1.0, 90)
        self.codes = rng.integers(0, 3, 90)
        self.labels = np.array(["a", "b", "c"])[self.codes]

    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    @pytest.mark.parametrize(
        "convert",
        [
            lambda c, lab: c.astype(np.int8),
            lambda c, lab: c.astype(np.uint16),
            lambda c, lab: list(lab),
            lambda c, lab: pl.Series(lab),
            lambda c, lab: pl.Series(lab, dtype=pl.Enum(["a", "b", "c"])),
            lambda c, lab: pl.Series(lab, dtype=pl.Categorical),
            lambda c, lab: pd.Series(lab, dtype="category"),
            lambda c, lab: pd.Series(lab),
        ],
    )
    def test_same_result_for_every_representation(self, convert, resampling):
        ref = bootstrap_ci(self.x, self.codes, n_resamples=200, seed=3, resampling=resampling)
        got = bootstrap_ci(
            self.x, convert(self.codes, self.labels), n_resamples=200, seed=3, resampling=resampling
        )
        np.testing.assert_array_equal(got.group_ci_lower, ref.group_ci_lower)
        np.testing.assert_array_equal(got.group_ci_upper, ref.group_ci_upper)
        np.testing.assert_array_equal(got.group_sizes, np.bincount(self.codes))
        assert got.confidence_interval == ref.confidence_interval
        if not isinstance(got.group_labels[0], int):
            assert tuple(got.group_labels) == ("a", "b", "c")

    def test_group_estimates_and_polars_values(self):
        res = bootstrap_ci(pl.Series(self.x), self.codes, n_resamples=200, seed=3)
        for g in range(3):
            np.testing.assert_allclose(res.group_estimates[g], self.x[self.codes == g].mean(), rtol=1e-13)
            assert res.group_ci_lower[g] < res.group_estimates[g] < res.group_ci_upper[g]
            assert res.group_standard_errors[g] > 0

    def test_empty_integer_group_is_nan_with_warning(self):
        codes = np.where(self.codes == 1, 2, self.codes)
        with pytest.warns(BootstrapWarning, match=r"1 group\(s\) of groups with no values"):
            res = bootstrap_ci(self.x, codes, n_resamples=100, seed=1)
        assert np.isnan(res.group_ci_lower[1]) and np.isfinite(res.group_ci_lower[[0, 2]]).all()


# ----------------------------------------------------------------------------------------------------------
# Degenerate input: zero width and a warning, never NaN or an exception.


class TestDegenerate:
    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize(("values", "why"), [([3.5] * 25, "all values equal"), ([2.0], "a single value")])
    def test_constant_and_single(self, values, why, method, resampling):
        with pytest.warns(BootstrapWarning, match=why):
            res = bootstrap_ci(values, n_resamples=50, method=method, resampling=resampling, seed=1)
        assert res.confidence_interval == (values[0], values[0])
        assert res.standard_error == 0.0 and res.estimate == values[0]
        assert any(why in w for w in res.warnings)

    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    @pytest.mark.parametrize("method", METHODS)
    def test_segment_with_one_distinct_value(self, method, resampling):
        x = np.concatenate([_data(30), np.full(5, 7.0), [4.0]])
        g = np.array([0] * 30 + [1] * 5 + [2])
        with pytest.warns(
            BootstrapWarning, match=r"2 group\(s\) of groups with fewer than two distinct values"
        ):
            res = bootstrap_ci(x, g, n_resamples=60, method=method, resampling=resampling, seed=2)
        assert res.group_ci_lower[1] == res.group_ci_upper[1] == 7.0
        assert res.group_ci_lower[2] == res.group_ci_upper[2] == 4.0
        assert res.group_ci_lower[0] < res.group_ci_upper[0]
        assert np.isfinite(res.group_ci_lower).all() and np.isfinite(res.confidence_interval).all()

    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    def test_two_values(self, resampling):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = bootstrap_ci([1.0, 2.0], n_resamples=200, resampling=resampling, seed=3)
        lo, hi = res.confidence_interval
        assert 1.0 <= lo <= 1.5 <= hi <= 2.0


# ----------------------------------------------------------------------------------------------------------
# Determinism: threads, chunkings, repeated calls, concurrent callers.


class TestDeterminism:
    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    def test_one_and_two_threads_bit_identical(self, resampling):
        x = _data(5000, seed=9)
        g = np.random.default_rng(9).integers(0, 7, 5000)
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = bootstrap_ci(x, g, n_resamples=500, resampling=resampling, seed=4)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            two = bootstrap_ci(x, g, n_resamples=500, resampling=resampling, seed=4)
        finally:
            numba.set_num_threads(before)
        assert one.confidence_interval == two.confidence_interval
        assert one.standard_error == two.standard_error
        np.testing.assert_array_equal(one.group_ci_lower, two.group_ci_lower)
        np.testing.assert_array_equal(one.group_ci_upper, two.group_ci_upper)

    @pytest.mark.parametrize("n_chunks", [1, 3, 7])
    def test_poisson_sums_independent_of_chunking(self, n_chunks):
        rng = np.random.default_rng(10)
        n = 1001
        x = rng.gamma(2.0, size=n)
        codes = [rng.integers(0, 4, n), rng.integers(0, 3, n)]
        center, scale = bpoi.quantization(x, n)  # global grid, as a cluster would broadcast it
        q = kb.quantize(x, center, scale)
        cells, n_cells, cc = bcol.joint_cells(codes, [4, 3], n, MAX_CELLS)
        key = bpoi.rng_key(21, STREAM_BOOTSTRAP)
        table = kb.poisson1_table()
        whole = None
        total_s = np.zeros((64, 8), dtype=np.int64)
        total_w = np.zeros((64, 8), dtype=np.int64)
        bounds = np.unique(np.concatenate([[0, n], rng.choice(np.arange(1, n), n_chunks - 1, replace=False)]))
        for a, b in itertools.pairwise(bounds):
            order, starts = kb.sort_by_cell(cells[a:b], n_cells)
            qs, ms = kb.gather_sorted(q[a:b], order, a)
            s, w = kb.poisson_sums(qs, ms, starts, cc, 8, key, 64, table, 2)
            total_s += s
            total_w += w
        order, starts = kb.sort_by_cell(cells, n_cells)
        qs, ms = kb.gather_sorted(q, order, 0)
        whole = kb.poisson_sums(qs, ms, starts, cc, 8, key, 64, table, 5)
        np.testing.assert_array_equal(total_s, whole[0])
        np.testing.assert_array_equal(total_w, whole[1])
        means_chunked = center + scale * (total_s / total_w)
        means_whole = center + scale * (whole[0] / whole[1])
        assert np.array_equal(means_chunked, means_whole)

    @pytest.mark.parametrize("n_chunks", [1, 3, 7])
    def test_blb_sums_independent_of_chunking(self, n_chunks):
        rng = np.random.default_rng(11)
        n = 3000
        x = rng.gamma(2.0, size=n)
        center, scale = bpoi.quantization(x, n)
        q = kb.quantize(x, center, scale)
        levels = np.full(n, 3, dtype=np.int64)
        cells = np.zeros(n, dtype=np.int64)
        cc = np.zeros((1, 0), dtype=np.int64)
        key = bpoi.rng_key(8, STREAM_BOOTSTRAP_BLB)
        tables = kb.poisson_cdf_tables()
        _, ms = kb.gather_sorted(q, np.arange(n, dtype=np.int64), 0)
        whole = kb.blb_sums(q, ms, levels, cells, cc, 1, 1, key, 4, 5, *tables)
        parts = [np.zeros_like(a) for a in whole]
        bounds = np.linspace(0, n, n_chunks + 1).astype(int)
        for a, b in itertools.pairwise(bounds):
            _, ms_part = kb.gather_sorted(q[a:b], np.arange(b - a, dtype=np.int64), a)
            out = kb.blb_sums(q[a:b], ms_part, levels[a:b], cells[a:b], cc, 1, 1, key, 4, 5, *tables)
            for acc, o in zip(parts, out, strict=True):
                acc += o
        for acc, w in zip(parts, whole, strict=True):
            np.testing.assert_array_equal(acc, w)

    def test_same_seed_same_result_different_seed_differs(self):
        x = _data(100)
        a = bootstrap_ci(x, n_resamples=300, seed=1)
        b = bootstrap_ci(x, n_resamples=300, seed=1)
        c = bootstrap_ci(x, n_resamples=300, seed=2)
        assert a == b
        assert a.confidence_interval != c.confidence_interval

    def test_concurrent_callers(self):
        x = _data(20_000, seed=12)
        expected = bootstrap_ci(x, n_resamples=200, resampling="poisson", seed=5).confidence_interval
        results: list[tuple[float, float]] = []

        def work() -> None:
            results.append(bootstrap_ci(x, n_resamples=200, resampling="poisson", seed=5).confidence_interval)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [expected] * 4

    def test_readonly_input(self):
        x = _data(200)
        x.flags.writeable = False
        res = engine_intervals(
            x, [], [], method="bca", n_resamples=100, confidence_level=0.95, seed=1, blb_min_n=10**9
        )
        assert res.ci_lower < x.mean() < res.ci_upper


# ----------------------------------------------------------------------------------------------------------
# The engine entry point.


class TestEngineIntervals:
    def setup_method(self):
        rng = np.random.default_rng(13)
        self.n = 4000
        self.effects = rng.normal(0.05, 0.02, self.n) + rng.gamma(2.0, 0.01, self.n)
        self.n_groups = [4, 10, 3]
        self.codes = [rng.integers(0, g, self.n) for g in self.n_groups]

    def call(self, **kw):
        args = {"method": "bca", "n_resamples": 400, "confidence_level": 0.95, "seed": 17, "blb_min_n": 10**9}
        args.update(kw)
        return engine_intervals(self.effects, self.codes, self.n_groups, **args)

    @pytest.mark.parametrize("method", METHODS)
    def test_each_dimension_equals_bootstrap_ci_with_poisson(self, method):
        out = self.call(method=method)
        assert out.resampling == "poisson"
        for k, g in enumerate(self.n_groups):
            ref = bootstrap_ci(
                self.effects, self.codes[k], n_resamples=400, seed=17, method=method, resampling="poisson"
            )
            assert (out.ci_lower, out.ci_upper) == ref.confidence_interval
            np.testing.assert_array_equal(out.group_ci_lower[k], ref.group_ci_lower)
            np.testing.assert_array_equal(out.group_ci_upper[k], ref.group_ci_upper)
            assert out.group_ci_lower[k].shape == (g,)

    def test_blb_above_threshold(self):
        out = self.call(blb_min_n=self.n)
        exact = self.call()
        assert out.resampling == "blb"
        assert out.ci_lower < self.effects.mean() < out.ci_upper
        assert abs(out.standard_error / exact.standard_error - 1.0) < 0.15

    def test_empty_and_single_segments(self):
        codes = [c.copy() for c in self.codes]
        codes[0][codes[0] == 3] = 2  # segment 3 of dimension 0 is empty
        codes[1][:] = np.where(codes[1] == 9, 8, codes[1])
        codes[1][0] = 9  # segment 9 of dimension 1 has one twin
        out = engine_intervals(
            self.effects,
            codes,
            self.n_groups,
            method="bca",
            n_resamples=100,
            confidence_level=0.9,
            seed=1,
            blb_min_n=10**9,
        )
        assert np.isnan(out.group_ci_lower[0][3]) and np.isfinite(out.group_ci_lower[0][:3]).all()
        assert out.group_ci_lower[1][9] == out.group_ci_upper[1][9] == self.effects[0]
        assert any("dimension 0" in w and "no values" in w for w in out.warnings)
        assert any("dimension 1" in w and "fewer than two distinct" in w for w in out.warnings)

    def test_sparse_joint_cells(self):
        rng = np.random.default_rng(14)
        codes = [rng.integers(0, 300, self.n), rng.integers(0, 400, self.n)]
        out = engine_intervals(
            self.effects,
            codes,
            [300, 400],
            method="percentile",
            n_resamples=50,
            confidence_level=0.9,
            seed=1,
            blb_min_n=10**9,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BootstrapWarning)  # sparse codes leave single-twin segments
            ref = bootstrap_ci(
                self.effects,
                codes[1],
                n_resamples=50,
                confidence_level=0.9,
                seed=1,
                method="percentile",
                resampling="poisson",
            )
        np.testing.assert_array_equal(out.group_ci_lower[1], ref.group_ci_lower)


# ----------------------------------------------------------------------------------------------------------
# Properties.

_finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


class TestProperties:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        values=st.lists(_finite, min_size=2, max_size=60),
        shift=st.floats(min_value=-100, max_value=100, allow_nan=False),
        method=st.sampled_from(METHODS),
        resampling=st.sampled_from(RESAMPLINGS),
    )
    def test_low_le_high_and_shift(self, values, shift, method, resampling):
        x = np.array(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BootstrapWarning)
            a = bootstrap_ci(x, n_resamples=200, method=method, resampling=resampling, seed=5)
            b = bootstrap_ci(x + shift, n_resamples=200, method=method, resampling=resampling, seed=5)
        assert a.confidence_interval[0] <= a.confidence_interval[1]
        tol = 1e-9 * (np.abs(x).max() + abs(shift) + 1.0) + 1e-6 * (a.standard_error + 1e-12)
        np.testing.assert_allclose(np.array(b.confidence_interval) - shift, a.confidence_interval, atol=tol)
        np.testing.assert_allclose(b.standard_error, a.standard_error, atol=tol)

    @settings(max_examples=25, deadline=None)
    @given(
        half=st.lists(st.floats(min_value=0.01, max_value=50), min_size=10, max_size=40),
        center=st.floats(min_value=-100, max_value=100),
        method=st.sampled_from(("percentile", "bca")),
        resampling=st.sampled_from(RESAMPLINGS),
        seed=st.integers(0, 2**32),
    )
    def test_symmetric_data_interval_contains_estimate(self, half, center, method, resampling, seed):
        h = np.array(half)
        x = np.concatenate([center + h, center - h])
        res = bootstrap_ci(x, n_resamples=400, method=method, resampling=resampling, seed=seed)
        lo, hi = res.confidence_interval
        assert lo <= res.estimate <= hi

    @settings(max_examples=15, deadline=None)
    @given(
        base=st.lists(st.floats(min_value=-10, max_value=10), min_size=30, max_size=60, unique=True),
        resampling=st.sampled_from(RESAMPLINGS),
        method=st.sampled_from(METHODS),
    )
    def test_width_shrinks_as_inverse_sqrt_n(self, base, resampling, method):
        x = np.array(base)
        small = bootstrap_ci(x, n_resamples=1000, resampling=resampling, method=method, seed=3)
        large = bootstrap_ci(np.tile(x, 16), n_resamples=1000, resampling=resampling, method=method, seed=3)
        w_small = np.diff(small.confidence_interval)[0]
        w_large = np.diff(large.confidence_interval)[0]
        assert 4.0 / 1.35 < w_small / w_large < 4.0 * 1.35


# ----------------------------------------------------------------------------------------------------------
# Results are values: frozen, read-only arrays, equality, hashing, JSON (issue 8, defect 1).


def _engine_call(x: np.ndarray, codes: list[np.ndarray], n_groups: list[int], **kw) -> object:
    args = {"method": "bca", "n_resamples": 200, "confidence_level": 0.9, "seed": 3, "blb_min_n": 10**9}
    args.update(kw)
    return engine_intervals(x, codes, n_groups, **args)


class TestResultValues:
    def setup_method(self):
        rng = np.random.default_rng(40)
        self.x = rng.gamma(2.0, size=300)
        self.codes = rng.integers(0, 3, 300)
        self.codes[self.codes == 2] = 3  # group 2 is empty: a NaN interval

    def grouped(self, seed: int = 1) -> BootstrapResult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BootstrapWarning)
            return bootstrap_ci(self.x, self.codes, n_resamples=200, seed=seed)

    def engine(self, seed: int = 3):
        return _engine_call(self.x, [self.codes], [4], seed=seed, report_empty=False)

    @pytest.mark.parametrize("field", ["ci_lower", "estimate", "resampling", "group_ci_upper"])
    def test_bootstrap_result_assignment_raises(self, field):
        res = self.grouped()
        with pytest.raises(AttributeError):
            setattr(res, field, 0.0)

    @pytest.mark.parametrize("field", ["ci_lower", "standard_error", "resampling", "group_ci_lower"])
    def test_engine_intervals_assignment_raises(self, field):
        out = self.engine()
        with pytest.raises(AttributeError):
            setattr(out, field, 0.0)

    @pytest.mark.parametrize(
        "field",
        ["group_estimates", "group_ci_lower", "group_ci_upper", "group_standard_errors", "group_sizes"],
    )
    def test_bootstrap_result_arrays_are_read_only(self, field):
        arr = getattr(self.grouped(), field)
        before = arr.copy()
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 99
        np.testing.assert_array_equal(arr, before)

    @pytest.mark.parametrize("field", ["group_ci_lower", "group_ci_upper", "group_standard_errors"])
    def test_engine_interval_arrays_are_read_only(self, field):
        for arr in getattr(self.engine(), field):
            with pytest.raises(ValueError, match="read-only"):
                arr[0] = 99

    def test_equality_with_groups_compares_arrays(self):
        a, b, c = self.grouped(1), self.grouped(1), self.grouped(2)
        assert np.isnan(a.group_ci_lower[2])  # NaN equals NaN: a result equals its recomputation
        assert a == b and hash(a) == hash(b)
        assert a != c
        assert len({a, b, c}) == 2
        e1, e2, e3 = self.engine(3), self.engine(3), self.engine(4)
        assert e1 == e2 and hash(e1) == hash(e2) and e1 != e3
        assert a != e1  # different types are never equal

    def test_to_dict_is_json_safe(self):
        res = self.grouped()
        data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        assert data["ci_lower"] == res.ci_lower and data["ci_upper"] == res.ci_upper
        assert data["resampling"] == "multinomial" and data["method"] == "bca"
        assert data["group_ci_lower"][2] is None  # the empty group's NaN
        assert data["group_ci_lower"][:2] == res.group_ci_lower[:2].tolist()
        assert data["group_sizes"] == [int(v) for v in np.bincount(self.codes, minlength=4)]
        assert data["group_labels"] == [0, 1, 2, 3]
        assert data["warnings"] == list(res.warnings)
        out = self.engine()
        edata = json.loads(json.dumps(out.to_dict(), allow_nan=False))
        assert edata["resampling"] == "poisson" and edata["ci_lower"] == out.ci_lower
        assert edata["group_ci_upper"][0][:2] == out.group_ci_upper[0][:2].tolist()
        assert edata["group_ci_upper"][0][2] is None

    def test_to_dict_string_labels(self):
        labels = np.array(["b", "a", "c"])[np.random.default_rng(41).integers(0, 3, 300)]
        res = bootstrap_ci(self.x, labels, n_resamples=100, seed=1)
        data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        assert data["group_labels"] == ["a", "b", "c"]

    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    def test_result_names_its_resampling(self, resampling):
        assert bootstrap_ci(self.x, n_resamples=50, resampling=resampling, seed=1).resampling == resampling
        assert self.engine().resampling == "poisson"
        assert _engine_call(self.x, [], [], blb_min_n=300).resampling == "blb"

    def test_confidence_interval_is_the_pair(self):
        res = self.grouped()
        assert res.confidence_interval == (res.ci_lower, res.ci_upper)

    def test_result_owns_its_arrays(self):
        lo = np.array([1.0, 2.0])
        res = BootstrapResult(
            ci_lower=0.0,
            ci_upper=1.0,
            standard_error=0.1,
            estimate=0.5,
            method="bca",
            resampling="poisson",
            n_resamples=10,
            seed=1,
            confidence_level=0.9,
            n=2,
            group_ci_lower=lo,
        )
        lo[0] = 5.0  # the caller's array stays writable and the result does not change
        assert res.group_ci_lower[0] == 1.0 and not res.group_ci_lower.flags.writeable


# ----------------------------------------------------------------------------------------------------------
# Numbers from the config (issue 8, defects 3 and 5).


def _config_with(**bootstrap_updates):
    cfg = get_config()
    blb = bootstrap_updates.pop("blb", None)
    section = cfg.bootstrap.model_copy(update=bootstrap_updates)
    if blb is not None:
        section = section.model_copy(update={"blb": cfg.bootstrap.blb.model_copy(update=blb)})
    return cfg.model_copy(update={"bootstrap": section})


class TestConfigDefaults:
    def test_defaults_come_from_the_config(self):
        cfg = get_config()
        x = _data(50)
        res = bootstrap_ci(x, seed=1)
        assert res.n_resamples == cfg.simulation.n_resamples
        assert res.confidence_level == cfg.simulation.default_confidence_level
        explicit = bootstrap_ci(
            x,
            n_resamples=cfg.simulation.n_resamples,
            confidence_level=cfg.simulation.default_confidence_level,
            seed=1,
        )
        assert res == explicit

    def test_defaults_follow_a_given_config(self):
        cfg = get_config()
        sim = cfg.simulation.model_copy(update={"n_resamples": 300, "default_confidence_level": 0.8})
        res = bootstrap_ci(_data(50), seed=1, config=cfg.model_copy(update={"simulation": sim}))
        assert (res.n_resamples, res.confidence_level) == (300, 0.8)
        assert res == bootstrap_ci(_data(50), n_resamples=300, confidence_level=0.8, seed=1)

    def test_n_resamples_above_the_configured_bound(self):
        bound = get_config().bootstrap.max_resamples
        msg = (
            rf"`n_resamples` must be at most {bound} \(bootstrap.max_resamples in the config\); got 10000000"
        )
        with pytest.raises(ValueError, match=msg):
            bootstrap_ci(_data(20), n_resamples=10**7, seed=1)
        with pytest.raises(ValueError, match=msg):
            _engine_call(_data(20), [], [], n_resamples=10**7)
        small = _config_with(max_resamples=100)
        with pytest.raises(ValueError, match=r"must be at most 100 .*got 101"):
            bootstrap_ci(_data(20), n_resamples=101, seed=1, config=small)
        assert bootstrap_ci(_data(20), n_resamples=100, seed=1, config=small).n_resamples == 100

    @pytest.mark.parametrize("bad", ["0.9", True, np.nan, 1.5, [0.9]])
    def test_confidence_level_of_a_wrong_type(self, bad):
        with pytest.raises(ValueError, match=r"`confidence_level` must be a number strictly between 0 and 1"):
            bootstrap_ci(_data(20), confidence_level=bad, seed=1)
        with pytest.raises(ValueError, match=r"`confidence_level` must be a number strictly between 0 and 1"):
            _engine_call(_data(20), [], [], confidence_level=bad)

    def test_engine_confidence_level_none_is_named(self):
        with pytest.raises(ValueError, match=r"`confidence_level` must be .*; got None"):
            _engine_call(_data(20), [], [], confidence_level=None)

    def test_config_of_a_wrong_type(self):
        with pytest.raises(TypeError, match=r"`config` must be None or a TwinkernelConfig; got dict"):
            bootstrap_ci(_data(20), seed=1, config={})

    def test_blb_settings_come_from_the_config(self):
        x = _data(5000, seed=42)
        base = bootstrap_ci(x, n_resamples=100, resampling="blb", seed=3)
        other = _config_with(blb={"n_subsets": 4, "min_subset": 200, "gamma": 0.6})
        changed = bootstrap_ci(x, n_resamples=100, resampling="blb", seed=3, config=other)
        assert changed != base
        reps, _ = bblb.blb_replicates(
            np.ldexp(x, -bcol.binary_exponent(x)),
            [],
            [],
            3,
            100,
            blb=other.bootstrap.blb,
            max_direct_cells=MAX_CELLS,
        )
        assert reps.shape == (1, 100)  # 4 subsets of ceil(100 / 4) = 25
        scale = 2.0 ** bcol.binary_exponent(x)
        np.testing.assert_allclose(changed.standard_error, reps[0].std(ddof=1) * scale, rtol=1e-12)

    def test_performance_knobs_do_not_change_results(self):
        rng = np.random.default_rng(43)
        x = rng.normal(size=2000)
        codes = [rng.integers(0, 30, 2000), rng.integers(0, 40, 2000)]
        base = _engine_call(x, codes, [30, 40])
        knobs = _config_with(poisson_quads_per_task=1, max_direct_cells=10)  # 1200 cells: the sparse path
        assert _engine_call(x, codes, [30, 40], config=knobs) == base

    def test_config_rejects_engine_resamples_above_the_bound(self):
        from twinkernel.config import ConfigError, config_from_mapping

        raw = get_config().model_dump()
        raw["bootstrap"]["max_resamples"] = 1000
        with pytest.raises(ConfigError, match=r"simulation.n_resamples \(2000\) must not exceed"):
            config_from_mapping(raw)
        raw["bootstrap"]["max_resamples"] = 100000
        raw["bootstrap"]["blb"]["gamma"] = 1.5
        with pytest.raises(ConfigError, match=r"bootstrap.blb.gamma"):
            config_from_mapping(raw)


# ----------------------------------------------------------------------------------------------------------
# Any scale: tiny and huge values (issue 8, defect 5: Poisson quantisation overflowed near 1e-300).


class TestScale:
    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    @pytest.mark.parametrize("method", ("percentile", "bca"))
    @pytest.mark.parametrize("factor", [1e-300, 1e-200, 1e200, 1e300])
    def test_interval_within_data_range_and_rescaled(self, factor, method, resampling):
        x = _data(400, seed=44)
        g = np.random.default_rng(44).integers(0, 3, 400)
        unit = bootstrap_ci(x, g, n_resamples=300, method=method, resampling=resampling, seed=9)
        xs = x * factor
        res = bootstrap_ci(xs, g, n_resamples=300, method=method, resampling=resampling, seed=9)
        assert xs.min() <= res.ci_lower <= res.estimate <= res.ci_upper <= xs.max()
        for k in range(3):
            assert xs[g == k].min() <= res.group_ci_lower[k] <= res.group_ci_upper[k] <= xs[g == k].max()
        # x * factor rounds each value once (relative 1.1e-16), so intervals agree to a few ulps of that.
        np.testing.assert_allclose(
            res.confidence_interval, np.array(unit.confidence_interval) * factor, rtol=1e-12
        )
        np.testing.assert_allclose(res.standard_error, unit.standard_error * factor, rtol=1e-9)
        np.testing.assert_allclose(res.group_ci_lower, unit.group_ci_lower * factor, rtol=1e-12)

    @pytest.mark.parametrize("resampling", RESAMPLINGS)
    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize("power", [-1000, -60, 60, 1000])
    def test_power_of_two_scale_is_exact(self, power, method, resampling):
        x = _data(300, seed=45)
        unit = bootstrap_ci(x, n_resamples=200, method=method, resampling=resampling, seed=2)
        res = bootstrap_ci(np.ldexp(x, power), n_resamples=200, method=method, resampling=resampling, seed=2)
        assert res.ci_lower == np.ldexp(unit.ci_lower, power)
        assert res.ci_upper == np.ldexp(unit.ci_upper, power)
        assert res.standard_error == np.ldexp(unit.standard_error, power)

    def test_engine_intervals_tiny_effects(self):
        rng = np.random.default_rng(46)
        x = rng.normal(0.05, 0.02, 1000)
        codes = [rng.integers(0, 4, 1000)]
        unit = _engine_call(x, codes, [4], method="percentile")
        tiny = _engine_call(x * 1e-300, codes, [4], method="percentile")
        assert (x * 1e-300).min() <= tiny.ci_lower < tiny.ci_upper <= (x * 1e-300).max()
        np.testing.assert_allclose(
            [tiny.ci_lower, tiny.ci_upper], [unit.ci_lower * 1e-300, unit.ci_upper * 1e-300], rtol=1e-12
        )
        np.testing.assert_allclose(tiny.group_ci_lower[0], unit.group_ci_lower[0] * 1e-300, rtol=1e-12)

    def test_huge_range_standard_error_is_finite(self):
        x = np.array([-1.7e308, 1.7e308, 0.0, 1e308, -1e308])
        res = bootstrap_ci(x, n_resamples=200, method="percentile", resampling="poisson", seed=1)
        assert np.isfinite([res.ci_lower, res.ci_upper, res.standard_error]).all()
        assert x.min() <= res.ci_lower <= res.ci_upper <= x.max()
