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


def naive_mixture_chunk(
    components: Any, cum: np.ndarray, start: int, m: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The mixture's unconstrained chunk the NumPy way (the path before the column kernel): latent rows,
    then per component and column ``np.searchsorted`` on the cut points or ``np.interp`` on the quantile
    grid, then the component's level order back to global codes."""
    from twinkernel.twin_generator.mixture import STREAM_COMPONENT

    u = np.empty(m)
    fill_uniform(seed, STREAM_COMPONENT, start, u)  # twin i's component draw is uniform start + i
    comp = np.minimum(np.searchsorted(cum, u, side="right"), len(components) - 1).astype(np.int64)
    return naive_mixture_columns(components, comp, start, seed)


def naive_mixture_columns(
    components: Any, comp: np.ndarray, start: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Columns of twins ``start ..`` with components ``comp``, one component and one column at a time."""
    from scipy import special

    from twinkernel.kernels.synthesis import mixture_normals_rows
    from twinkernel.twin_generator.constraints import STREAM_LATENT

    m = comp.size
    chols = np.ascontiguousarray(np.stack([c.chol for c in components]))
    z_all = np.empty((m, len(components[0].marginals)))
    mixture_normals_rows(seed, STREAM_LATENT, start + np.arange(m), comp, chols, z_all)
    first = components[0].marginals
    stored = [np.empty(m, dtype=np.int64 if mg.is_discrete else np.float64) for mg in first]
    values = [np.empty(m) for _ in first]
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(len(components) + 1))
    for k, c in enumerate(components):
        local = order[bounds[k] : bounds[k + 1]]
        for j, mg in enumerate(c.marginals):
            z = z_all[local, j]
            if mg.is_discrete:
                st = np.searchsorted(mg.thresholds, z, side="left")
                val = mg.encoded_levels[st]
                if c.level_orders[j] is not None:
                    st = c.level_orders[j][st]
                    val = st.astype(np.float64)
            else:
                st = val = np.interp(special.ndtr(z), mg.grid, mg.quantiles)
                if mg.integer:
                    st = val = np.rint(val)
            stored[j][local] = st
            values[j][local] = val
    return stored, values


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


def naive_level_order(codes: np.ndarray, others: np.ndarray, n_levels: int) -> np.ndarray:
    """Levels sorted by their mean normal scores projected on the leading eigenvector of the count-weighted
    between-level covariance (loops and ``eigh``; the mixture uses an SVD). Absent levels go last."""
    from scipy import special
    from scipy.stats import rankdata

    n, p = others.shape
    scores = np.empty((n, p))
    for c in range(p):
        scores[:, c] = special.ndtri(rankdata(others[:, c]) / (n + 1.0))
    counts = np.zeros(n_levels)
    sums = np.zeros((n_levels, p))
    for i in range(n):
        counts[codes[i]] += 1
        sums[codes[i]] += scores[i]
    present = [k for k in range(n_levels) if counts[k] > 0]
    means = {k: sums[k] / counts[k] for k in present}
    grand = sum(counts[k] * means[k] for k in present) / n
    between = np.zeros((p, p))
    for k in present:
        dev = means[k] - grand
        between += counts[k] * np.outer(dev, dev)
    direction = np.linalg.eigh(between)[1][:, -1]
    position = [float(means[k] @ direction) if k in means else np.inf for k in range(n_levels)]
    return np.argsort(position, kind="stable")


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


DIAGNOSES = tuple(f"dx_{k:02d}" for k in range(24))
PAYERS = ("commercial", "medicaid", "medicare", "uninsured")


def patient_frame(n: int, seed: int) -> Any:
    """Patient-level data shaped unlike :func:`designed_frame`, for the synthesis's "data you did not design
    for" check (issue 12): nobody tuned the synthesis on it.

    * ``age``: integer, bimodal (young adults and the elderly);
    * ``diagnosis``: 24 nominal levels with Zipf-like frequencies; a diagnosis group sets the lab value's
      level and the comorbidity rate, not in code order;
    * ``payer``: ``medicare`` exactly from age 65, otherwise commercial / medicaid / uninsured by age;
    * ``comorbidities``: a Poisson count with few distinct values, growing with age;
    * ``er_visits``: zero-inflated negative binomial, more with comorbidities;
    * ``lab_value``: bimodal by diagnosis group; ``adherence``: a share with a point mass at 1;
    * ``days_since_diagnosis``: exponential (heavy right tail); ``annual_cost``: lognormal, a product of
      the comorbidity count and a payer factor;
    * target ``next_year_cost_index``: a nonlinear function of all of them plus noise.
    """
    import polars as pl

    rng = np.random.default_rng(seed)
    old = rng.random(n) < 0.45
    age = np.where(old, rng.normal(72.0, 7.0, n), rng.normal(34.0, 9.0, n))
    age = np.clip(np.rint(age), 18, 95).astype(np.int64)
    zipf = 1.0 / np.arange(1, len(DIAGNOSES) + 1) ** 0.9
    dx = rng.permutation(len(DIAGNOSES))[rng.choice(len(DIAGNOSES), n, p=zipf / zipf.sum())]
    group = (dx * 7) % 3  # three groups scattered over the codes
    comorb = rng.poisson(0.3 + 0.035 * np.maximum(age - 30, 0) + np.array([0.0, 0.8, 0.3])[group])
    comorb = np.minimum(comorb, 9).astype(np.int64)
    young_payer = rng.choice([0, 1, 3], n, p=[0.62, 0.26, 0.12])
    payer = np.where(age >= 65, 2, young_payer)
    active = rng.random(n) > 0.62
    er = np.where(active, rng.negative_binomial(2, 2.0 / (2.0 + 0.8 + 0.6 * comorb)), 0).astype(np.int64)
    lab = rng.normal(np.array([5.4, 8.1, 6.6])[group] + 0.15 * comorb, np.array([0.4, 0.9, 0.6])[group])
    adherence = np.clip(rng.beta(5, 1.5, n) + 0.02 * (payer == 0), 0.0, 1.0)
    adherence[rng.random(n) < 0.18] = 1.0
    days = np.rint(rng.exponential(420.0, n) + 1).astype(np.int64)
    cost = np.exp(rng.normal(7.5, 0.8, n)) * (1 + comorb) * np.array([1.0, 0.7, 1.3, 0.5])[payer]
    y = (
        0.4 * np.log1p(cost)
        + 0.3 * er
        + 0.25 * np.where(group == 1, lab - 7.0, 0.0)
        - 0.8 * adherence
        + 0.002 * age
        + rng.normal(0, 0.3, n)
    )
    return pl.DataFrame(
        {
            "patient_id": np.arange(n, dtype=np.int64),
            "age": age,
            "diagnosis": pl.Series([DIAGNOSES[k] for k in dx], dtype=pl.String),
            "payer": pl.Series([PAYERS[k] for k in payer], dtype=pl.Enum(list(PAYERS))),
            "comorbidities": comorb,
            "er_visits": er,
            "lab_value": lab,
            "adherence": adherence,
            "days_since_diagnosis": days,
            "annual_cost": cost,
            "next_year_cost_index": y,
        }
    )


def sklearn_frame(name: str) -> tuple[Any, str]:
    """One of scikit-learn's bundled real datasets (no download) as a frame, with its target column:
    ``breast_cancer`` (569 tumours, 30 measurements, target 0/1 benign) or ``diabetes`` (442 patients, 10
    baseline variables, target disease progression)."""
    import polars as pl
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}[name]
    bunch = loader(scaled=False) if name == "diabetes" else loader()
    names = [str(c).replace(" ", "_") for c in bunch.feature_names]
    frame = pl.DataFrame(np.asarray(bunch.data, dtype=np.float64), schema=names, orient="row")
    return frame.with_columns(pl.Series("target", np.asarray(bunch.target, dtype=np.float64))), "target"
