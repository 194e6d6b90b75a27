"""The mixture's column kernel (issue 12, speed): one parallel pass over twins gives, bit for bit, what the
per-component NumPy path (``tests.naive_generator.naive_mixture_chunk``) gives, on any thread count and
chunking, with and without level orders, for discrete, label, boolean, integer and continuous columns."""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pytest

from tests.naive_generator import naive_mixture_chunk
from twinkernel.config import get_config
from twinkernel.twin_generator.marginals import encoded_matrix, fit_marginal
from twinkernel.twin_generator.mixture import draw_chunk, fit_mixture, packed_components


def _components(order_levels: bool, seed: int = 4):
    rng = np.random.default_rng(seed)
    n = 4000
    codes = rng.integers(0, 5, n)
    shift = np.array([2.0, -1.0, 0.5, -2.0, 1.0])[codes]
    frame = pl.DataFrame(
        {
            "label": [("a", "b", "c", "d", "e")[k] for k in codes],
            "x": shift + rng.normal(0, 0.5, n),
            "count": rng.poisson(200 + 60 * shift.clip(0)).astype(np.int64),  # > 64 levels: continuous
            "decile": rng.integers(1, 11, n).astype(np.int64),
            "flag": rng.random(n) < 0.3,
            "tail": np.exp(0.5 * shift + rng.normal(0, 1.5, n)),
        }
    )
    marginals = [fit_marginal(c, frame[c], 257, 64) for c in frame.columns]
    tg = get_config().twin_generation
    tg = tg.model_copy(update={"synthesis": tg.synthesis.model_copy(update={"order_levels": order_levels})})
    comps = fit_mixture(marginals, encoded_matrix(marginals, frame, impute=True), tg)
    cum = np.cumsum([c.weight for c in comps])
    cum[-1] = 1.0
    return comps, cum


@pytest.mark.parametrize("order_levels", [True, False])
@pytest.mark.parametrize("seed", [0, 3, 2**40 + 7])
def test_column_kernel_is_bit_identical_to_the_numpy_path(order_levels, seed):
    comps, cum = _components(order_levels)
    kinds = {mg.kind for mg in comps[0].marginals}
    assert kinds == {"categorical", "continuous", "discrete", "boolean"}
    assert any(mg.integer for mg in comps[0].marginals if not mg.is_discrete)  # "count" is rounded
    assert len(comps) > 1
    has_order = any(o is not None for c in comps for o in c.level_orders)
    assert has_order == order_levels
    plans = [None] * len(comps)  # unconstrained: every plan is empty
    start, m = 1000, 6000
    stored, values = draw_chunk(comps, plans, cum, start, m, seed, 0)
    ref_stored, ref_values = naive_mixture_chunk(comps, cum, start, m, seed)
    for j, mg in enumerate(comps[0].marginals):
        assert stored[j].dtype == ref_stored[j].dtype, mg.name
        assert np.array_equal(stored[j], ref_stored[j]), mg.name
        assert values[j].tobytes() == ref_values[j].tobytes(), mg.name
    assert 0 < values[1].std()  # values vary, not a constant fill


def test_column_kernel_does_not_depend_on_threads_or_chunking():
    comps, cum = _components(True, seed=9)
    plans = [None] * len(comps)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = draw_chunk(comps, plans, cum, 0, 5000, 11, 0)[1]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = draw_chunk(comps, plans, cum, 0, 5000, 11, 0)[1]
    finally:
        numba.set_num_threads(before)
    parts = [draw_chunk(comps, plans, cum, s, e - s, 11, 0)[1] for s, e in ((0, 1234), (1234, 5000))]
    for j in range(len(one)):
        assert one[j].tobytes() == two[j].tobytes()
        assert one[j].tobytes() == np.concatenate([parts[0][j], parts[1][j]]).tobytes()


def test_packed_layout_holds_each_components_grids():
    comps, _ = _components(True)
    pk = packed_components(comps)
    assert packed_components(comps) is pk  # packed once per components tuple
    j = 5  # "tail": continuous
    for k in (0, len(comps) - 1):
        s, c, t = pk.knot_start[k, j], pk.knot_count[k, j], pk.table_start[k, j]
        assert np.array_equal(pk.knots[s : s + c], comps[k].marginals[j].grid)
        assert np.array_equal(pk.table[t : t + c], comps[k].marginals[j].quantiles)
    assert pk.discrete.tolist() == [1, 0, 0, 1, 1, 0]
    assert pk.integer.tolist() == [0, 0, 1, 0, 0, 0]


@pytest.mark.parametrize("n", [1, 7, 8, 1003])
def test_tree_kernel_equals_sklearn_with_nan_and_ragged_groups_on_any_thread_count(n):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from tests.naive_generator import naive_tree_predict
    from twinkernel.twin_generator.trees import compile_trees, predict_with

    rng = np.random.default_rng(21)
    X = rng.normal(size=(3000, 4))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values at training time: learned directions
    y = np.nan_to_num(X[:, 0]) ** 2 + np.sin(np.nan_to_num(X[:, 1])) + rng.normal(0, 0.1, 3000)
    model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=31, random_state=0).fit(X, y)
    trees = compile_trees(model)
    assert trees is not None
    Xt = rng.normal(size=(n, 4))
    Xt[rng.random(Xt.shape) < 0.1] = np.nan
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = predict_with(model, trees, Xt)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = predict_with(model, trees, Xt)
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == two.tobytes()
    assert one.tobytes() == model.predict(Xt).tobytes()
    np.testing.assert_allclose(one[:20], naive_tree_predict(model, Xt[:20]), rtol=1e-12)
