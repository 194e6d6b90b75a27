"""Obviously-correct reference implementations for the twin-generation kernels, and the original approach.

* :func:`naive_correlated_normals` and :func:`naive_counter_uniforms` rebuild the kernels' draws one by one
  from the same counter RNG (``fill_standard_normal`` / ``fill_uniform``).
* :func:`naive_tree_predict` walks scikit-learn's HistGradientBoosting node arrays in plain Python.
* :func:`per_twin_generate` is the original generator's approach: every feature sampled independently from
  its marginal and the outcome model called once per twin. It is the baseline in the benchmark table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twinkernel.kernels._rng import fill_standard_normal, fill_uniform
from twinkernel.twin_generator import TwinGenerator


def naive_correlated_normals(seed: int, stream: int, row_start: int, chol: np.ndarray, n: int) -> np.ndarray:
    d = chol.shape[0]
    out = np.empty((n, d))
    e = np.empty(d)
    for i in range(n):
        fill_standard_normal(seed, stream, (row_start + i) * d, e)
        for r in range(d):
            acc = 0.0
            for c in range(r + 1):
                acc += chol[r, c] * e[c]
            out[i, r] = acc
    return out


def naive_counter_uniforms(
    seed: int, stream: int, row_start: int, stride: int, offset: int, n: int, k: int
) -> np.ndarray:
    out = np.empty((n, k))
    row = np.empty(k)
    for i in range(n):
        fill_uniform(seed, stream, (row_start + i) * stride + offset, row)
        out[i] = row
    return out


def naive_tree_predict(model: Any, X: np.ndarray) -> np.ndarray:
    """Sum of leaf values of a fitted HistGradientBoostingRegressor, one row and one tree at a time."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        acc = 0.0
        acc += float(np.asarray(model._baseline_prediction).ravel()[0])
        for it in model._predictors:
            nodes = it[0].nodes
            node = 0
            while not nodes["is_leaf"][node]:
                x = X[i, nodes["feature_idx"][node]]
                if np.isnan(x):
                    node = nodes["left"][node] if nodes["missing_go_to_left"][node] else nodes["right"][node]
                elif x <= nodes["num_threshold"][node]:
                    node = nodes["left"][node]
                else:
                    node = nodes["right"][node]
            acc += nodes["value"][node]
        out[i] = acc
    return out


def per_twin_generate(gen: TwinGenerator, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The original approach: independent marginals, one ``predict`` call and one dict per twin."""
    rng = np.random.default_rng(seed)
    twins = []
    for i in range(n):
        features: dict[str, Any] = {}
        row = []
        for name in gen.feature_cols:
            mg = gen.marginal(name)
            if mg.is_discrete:
                k = int(rng.choice(len(mg.levels), p=mg.probs))
                features[name] = mg.levels[k]
                row.append(mg.encoded_levels[k])
            else:
                value = float(np.interp(rng.random(), mg.grid, mg.quantiles))
                features[name] = value
                row.append(value)
        if gen.treatment_col:
            row.append(0.0)
        outcome = float(gen.outcome_model.predict(np.asarray([row]))[0])
        twins.append({"twin_id": i, **features, "baseline_outcome": outcome})
    return twins


SPECIALTIES = ("cardiology", "dermatology", "oncology", "primary_care", "rheumatology")
REGIONS = ("midwest", "northeast", "south", "west")


def designed_frame(n: int, seed: int) -> Any:
    """Data like issue 12's table: nominal and step dependence and a heavy tail, with a target.

    ``region`` is ``northeast`` exactly when ``decile <= 3`` (P = 1); ``priority_tier`` is a step function of
    the decile; ``specialty`` shifts engagement (oncology high) and the decile (rheumatology low) without
    any order; ``spend`` is lognormal (sigma 1.5) scaled by the tier; the target depends on all of them.
    """
    import polars as pl

    rng = np.random.default_rng(seed)
    spec = rng.choice(len(SPECIALTIES), n, p=[0.2, 0.15, 0.2, 0.3, 0.15])
    shift = np.array([0.0, 1.0, 2.0, -1.0, -3.0])[spec]
    decile = np.clip(np.rint(rng.normal(5.5 + shift, 2.2)), 1, 10).astype(np.int64)
    region = np.where(decile <= 3, 1, rng.choice([0, 2, 3], n))
    tier = np.select([decile >= 9, decile >= 7, decile >= 4, decile >= 2], [1, 2, 3, 4], 5).astype(np.int64)
    engagement = np.clip(rng.beta(2, 5, n) + np.array([0.1, 0.0, 0.45, -0.05, 0.2])[spec], 0.0, 1.0)
    spend = np.exp(rng.normal(0.0, 1.5, n)) * (6 - tier)
    y = 0.02 * decile + 0.1 * engagement + 0.01 * np.log1p(spend) + rng.normal(0, 0.03, n)
    return pl.DataFrame(
        {
            "hcp_id": np.arange(n, dtype=np.int64),
            "specialty": pl.Series([SPECIALTIES[k] for k in spec], dtype=pl.Enum(list(SPECIALTIES))),
            "region": pl.Series([REGIONS[k] for k in region], dtype=pl.Enum(list(REGIONS))),
            "decile": decile,
            "priority_tier": tier,
            "digital_engagement_score": engagement,
            "spend": spend,
            "brand_share": y,
        }
    )
