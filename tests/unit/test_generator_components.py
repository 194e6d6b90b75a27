"""The mixture's per-component pieces (issue 12): label levels ordered along their leading principal axis,
and latent (polyserial / polychoric) correlations for discrete columns, each against a plain reference."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import special

from tests.naive_generator import naive_level_order
from twinkernel.config import get_config
from twinkernel.twin_generator.copula import latent_scores_correlation, pearson
from twinkernel.twin_generator.marginals import discrete_marginal, fit_marginal
from twinkernel.twin_generator.mixture import MixtureComponent, _level_order, fit_mixture

NUMERICS = get_config().twin_generation.copula
LABELS = ("a", "b", "c", "d", "e")


def _rows(n: int, seed: int) -> tuple[np.ndarray, list]:
    """A label column whose level means are not monotone in code order, two numerics and a 0/1 column."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 5, n)
    shift = np.array([2.0, -1.0, 0.5, -2.0, 1.0])[codes]
    x = shift + rng.normal(0, 0.5, n)
    y = np.exp(0.5 * shift + rng.normal(0, 0.3, n))
    flag = (rng.random(n) < 0.3).astype(np.float64)
    frame = pl.DataFrame({"label": [LABELS[k] for k in codes], "x": x, "y": y, "flag": flag == 1.0})
    marginals = [fit_marginal(c, frame[c], 257, 64) for c in frame.columns]
    return np.column_stack([codes.astype(np.float64), x, y, flag]), marginals


def test_level_order_matches_the_reference_and_sorts_by_the_dependence():
    rows, marginals = _rows(3000, seed=1)
    order = _level_order(marginals, rows, 0)
    assert order is not None
    ref = naive_level_order(rows[:, 0].astype(np.int64), rows[:, 1:], 5)
    assert order.tolist() in (ref.tolist(), ref[::-1].tolist())  # the axis has no sign
    # the levels' shifts are 2, -1, 0.5, -2, 1: sorted, they run d < b < c < e < a
    assert order.tolist() in ([3, 1, 2, 4, 0], [0, 4, 2, 1, 3])


def test_level_order_is_kept_when_it_cannot_matter():
    rows, marginals = _rows(500, seed=2)
    two = rows.copy()
    two[:, 0] = np.where(two[:, 0] < 2, 0.0, 4.0)  # two levels present: order is irrelevant
    assert _level_order(marginals, two, 0) is None
    rows[:, 0] = np.where(rows[:, 0] == 1, 3.0, rows[:, 0])  # absent level b goes last
    order = _level_order(marginals, rows, 0)
    assert order is not None and order[-1] == 1


@pytest.mark.parametrize("rho", [0.8, -0.5, 0.3])
def test_polyserial_and_polychoric_correlations_recover_the_latent_one(rho):
    rng = np.random.default_rng(5)
    n = 40_000
    z1 = rng.normal(size=n)
    z2 = rho * z1 + np.sqrt(1 - rho * rho) * rng.normal(size=n)
    z3 = rho * z1 + np.sqrt(1 - rho * rho) * rng.normal(size=n)
    cuts = np.array([-0.8, 0.1, 1.2])
    steps = np.searchsorted(cuts, z1).astype(np.float64)  # a step function of z1 with 4 levels
    other = (z3 > 0.4).astype(np.float64)  # a 0/1 column of z3
    encoded = np.column_stack([steps, np.exp(z2), other])
    counts = np.bincount(steps.astype(np.int64), minlength=4).astype(np.float64)
    marginals = [
        discrete_marginal("steps", "discrete", "Int64", (0, 1, 2, 3), counts),
        fit_marginal("v", pl.Series(np.exp(z2)), 1025, 64),
        discrete_marginal("other", "boolean", "Boolean", (False, True), np.bincount(other.astype(int))),
    ]
    r = latent_scores_correlation(marginals, encoded, NUMERICS)
    assert r[0, 1] == pytest.approx(rho, abs=0.02)  # polyserial
    assert r[0, 2] == pytest.approx(rho, abs=0.03)  # polychoric
    assert r[1, 2] == pytest.approx(rho * rho, abs=0.03)  # polyserial: corr(z2, z3) = rho^2
    scores = special.ndtri((np.argsort(np.argsort(encoded, axis=0), axis=0) + 1) / (n + 1.0))
    plain = pearson(scores)
    assert abs(plain[0, 1]) < abs(rho) - 0.02  # what the plain normal scores give: attenuated
    assert np.all(np.linalg.eigvalsh(r) > 0)


def test_components_store_their_level_orders_and_read_old_files():
    rows, marginals = _rows(4000, seed=3)
    tg = get_config().twin_generation
    update = {"min_component_rows": 300, "category_weight": 0.1}  # clusters that mix the labels
    tg = tg.model_copy(update={"synthesis": tg.synthesis.model_copy(update=update)})
    comps = fit_mixture(marginals, rows, tg)
    ordered = [c for c in comps if c.level_orders[0] is not None]
    assert len(comps) >= 2 and ordered
    for c in ordered:
        order = c.level_orders[0]
        assert order.dtype == np.int64 and sorted(order.tolist()) == [0, 1, 2, 3, 4]
        assert c.marginals[0].levels == tuple(LABELS[k] for k in order)
        assert c.level_orders[1:] == (None, None, None)
        back = MixtureComponent.from_dict(c.to_dict())
        assert back.level_orders[0].tolist() == order.tolist()
        old = {k: v for k, v in c.to_dict().items() if k != "level_orders"}
        assert MixtureComponent.from_dict(old).level_orders == (None,) * 4
