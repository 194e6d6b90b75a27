"""Mixture of Gaussian copulas: the synthesis that keeps nominal and nonlinear dependence.

One Gaussian copula puts every category on one latent axis in level order, so dependence on an unordered
category (specialty, region) and step functions (tier from decile) are mostly lost. Here the training rows
are split into ``synthesis.components`` clusters (seeded k-means on rank normal scores of numeric columns
and one-hot categories), clusters under ``synthesis.min_component_rows`` rows are merged into the nearest
larger one, and each cluster gets its own marginals (level frequencies; quantile functions through the
cluster's values, each at the middle of its probability cell, so tails never reach past the cluster's own
observed values) and its own latent correlation (normal scores; polyserial / polychoric for discrete
columns with ``synthesis.component_correlation``). Label levels are ordered per cluster along their leading
principal axis (``synthesis.order_levels``). A twin first draws its component (counter RNG, stream
``STREAM_GENERATOR + 2``) and then its columns from that component's copula; its draws depend only on
``(seed, twin index)``.

Constraints: every component's plan is resolved against its own marginals and the component weights are
conditioned on the constraints (``P(k | C) ∝ w_k P_k(C)``): exact for one constrained column; for several,
``P_k(C)`` is a seeded Monte-Carlo estimate (``synthesis.constraint_mc_draws``) with continuous equalities
weighted by the component's density at the value. Within the component the constrained columns follow the
copula's conditional law exactly as in :mod:`.constraints`.

Privacy: nothing copies a training row; continuous values are interpolated inside each cluster's quantile
function and ``min_component_rows`` keeps clusters large (the fidelity report measures exact copies and
distance to the closest record beside held-out rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from ..config import SynthesisConfig, TwinGenerationConfig
from ..kernels._rng import STREAM_GENERATOR
from ..kernels.copula import correlated_normals, counter_uniforms
from ..kernels.synthesis import mixture_columns, mixture_normals_rows
from ._common import FrozenResult, readonly
from .constraints import STREAM_LATENT, Plan, column_from_latent, draw_latent, plan_constraints
from .copula import fit_latent_correlation, latent_scores_correlation
from .marginals import ColumnMarginal, code_of, discrete_marginal

STREAM_COMPONENT = STREAM_GENERATOR + 2
STREAM_CONSTRAINT_MC = STREAM_GENERATOR + 3


@dataclass(frozen=True, eq=False)
class MixtureComponent(FrozenResult):
    """One cluster's copula: its weight, training-row count, marginals and latent correlation."""

    weight: float
    n_rows: int
    marginals: tuple[ColumnMarginal, ...]
    latent_correlation: np.ndarray = field(repr=False)
    level_orders: tuple[np.ndarray | None, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "marginals", tuple(self.marginals))
        orders = tuple(None if o is None else readonly(o, np.int64) for o in self.level_orders)
        object.__setattr__(self, "level_orders", orders or (None,) * len(self.marginals))
        object.__setattr__(self, "latent_correlation", readonly(self.latent_correlation))
        object.__setattr__(self, "_chol", readonly(np.linalg.cholesky(self.latent_correlation)))

    @property
    def chol(self) -> np.ndarray:
        """Cholesky factor of the latent correlation."""
        return self._chol  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "n_rows": self.n_rows,
            "marginals": [m.to_dict() for m in self.marginals],
            "latent_correlation": self.latent_correlation.tolist(),
            "level_orders": [None if o is None else o.tolist() for o in self.level_orders],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MixtureComponent:
        return cls(
            weight=float(d["weight"]),
            n_rows=int(d["n_rows"]),
            marginals=tuple(ColumnMarginal.from_dict(m) for m in d["marginals"]),
            latent_correlation=np.asarray(d["latent_correlation"], dtype=np.float64),
            level_orders=tuple(None if o is None else np.asarray(o) for o in d.get("level_orders", ())),
        )


# ---------------------------------------------------------------------------------------------------------
def _cluster_features(
    marginals: Sequence[ColumnMarginal], encoded: np.ndarray, sc: SynthesisConfig
) -> np.ndarray:
    from scipy.stats import rankdata

    parts = []
    n = encoded.shape[0]
    for j, mg in enumerate(marginals):
        if mg.kind in ("categorical", "boolean") or (
            mg.is_discrete and len(mg.levels) <= sc.onehot_max_levels
        ):
            codes = code_of(encoded[:, j], mg)
            onehot = np.zeros((n, len(mg.levels)))
            onehot[np.arange(n), codes] = sc.category_weight
            parts.append(onehot)
        else:
            parts.append(special.ndtri(rankdata(encoded[:, j]) / (n + 1.0))[:, None])
    return np.hstack(parts)


def _assign(features: np.ndarray, sc: SynthesisConfig, seed: int, threads: int | None) -> np.ndarray:
    """Cluster labels 0..K-1; clusters smaller than ``min_component_rows`` merged into the nearest larger."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = features.shape[0]
    k = max(1, min(sc.components, n // sc.min_component_rows))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=1, max_iter=sc.kmeans_max_iter, random_state=seed)
    with threadpool_limits(threads):
        labels = km.fit_predict(features)
    centers = km.cluster_centers_
    while True:
        counts = np.bincount(labels, minlength=centers.shape[0])
        small = np.flatnonzero((counts > 0) & (counts < sc.min_component_rows))
        if small.size == 0:
            break
        worst = small[np.argmin(counts[small])]  # merge the smallest first, then look again
        others = np.flatnonzero((counts > 0) & (np.arange(counts.size) != worst))
        rows = np.flatnonzero(labels == worst)
        dist = ((features[rows, None, :] - centers[None, others, :]) ** 2).sum(-1)
        labels[rows] = others[np.argmin(dist, axis=1)]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)


def _component_marginal(mg: ColumnMarginal, x: np.ndarray, order: np.ndarray | None) -> ColumnMarginal:
    """The global marginal's shape (same levels, in ``order`` when given) refitted to one cluster's encoded
    values (local level codes for a reordered column)."""
    if mg.is_discrete:
        counts = np.bincount(code_of(x, mg), minlength=len(mg.levels))[: len(mg.levels)].astype(np.float64)
        levels = mg.levels if order is None else tuple(mg.levels[i] for i in order)
        return discrete_marginal(mg.name, mg.kind, mg.dtype, levels, counts)
    # the i-th smallest value sits at the middle of its probability cell, (i + 1/2) / n, and the end cells
    # are flat: each value keeps its empirical weight 1/n (a linear quantile function from the minimum at 0
    # to the maximum at 1 gives the top value a third of it and shrinks a heavy tail's SD)
    xs = np.sort(x)
    grid = np.concatenate([[0.0], (np.arange(xs.size) + 0.5) / xs.size, [1.0]])
    return ColumnMarginal(
        name=mg.name,
        kind="continuous",
        dtype=mg.dtype,
        grid=grid,
        quantiles=np.concatenate([xs[:1], xs, xs[-1:]]),
        integer=mg.integer,
        fill_value=mg.fill_value,
    )


def _level_order(marginals: Sequence[ColumnMarginal], rows: np.ndarray, j: int) -> np.ndarray | None:
    """Order of a label column's levels along the leading principal axis of its level means.

    A copula puts a label column on one latent axis, so only dependence that is monotone in the level order
    survives. Within one cluster the levels are sorted by the projection of each level's mean normal scores
    of the other numeric and boolean columns onto their leading (count-weighted) principal direction: the
    order in which the largest share of the between-level differences is monotone. ``None`` (keep the
    order) with at most two levels present, where the order cannot matter, or no numeric column.
    """
    from scipy.stats import rankdata

    mg = marginals[j]
    others = [i for i, m in enumerate(marginals) if i != j and m.kind != "categorical"]
    codes = rows[:, j].astype(np.int64)
    counts = np.bincount(codes, minlength=len(mg.levels)).astype(np.float64)
    present = counts > 0
    if present.sum() <= 2 or not others:
        return None
    scores = special.ndtri(rankdata(rows[:, others], axis=0) / (rows.shape[0] + 1.0))
    sums = np.stack([np.bincount(codes, scores[:, c], minlength=counts.size) for c in range(len(others))], 1)
    means = sums[present] / counts[present, None]
    centred = (means - counts[present] @ means / counts.sum()) * np.sqrt(counts[present])[:, None]
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    # one sign whatever LAPACK returns: the largest entry positive
    direction = direction * np.sign(direction[np.argmax(np.abs(direction))])
    position = np.full(counts.size, np.inf)
    position[present] = means @ direction
    return np.argsort(position, kind="stable")


def fit_mixture(
    marginals: Sequence[ColumnMarginal], encoded: np.ndarray, tg: TwinGenerationConfig
) -> tuple[MixtureComponent, ...]:
    """Fit the components on the encoded (imputed) training rows; see the module docstring."""
    sc = tg.synthesis
    labels = _assign(_cluster_features(marginals, encoded, sc), sc, tg.random_state, tg.sklearn_threads)
    n = encoded.shape[0]
    out = []
    for k in range(int(labels.max()) + 1):
        rows = encoded[labels == k]
        orders: list[np.ndarray | None] = [None] * len(marginals)
        if sc.order_levels:
            local = rows.copy()
            for j, mg in enumerate(marginals):
                if mg.kind == "categorical":
                    orders[j] = order = _level_order(marginals, rows, j)
                    if order is not None:  # global code -> position in the component's order
                        local[:, j] = np.argsort(order)[rows[:, j].astype(np.int64)]
            rows = local
        comp_marginals = tuple(
            _component_marginal(mg, rows[:, j], orders[j]) for j, mg in enumerate(marginals)
        )
        if sc.component_correlation == "polyserial":
            corr = latent_scores_correlation(comp_marginals, rows, tg.copula)
        else:
            corr = fit_latent_correlation(comp_marginals, rows, "normal_scores", tg.copula)
        out.append(MixtureComponent(rows.shape[0] / n, rows.shape[0], comp_marginals, corr, tuple(orders)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------
def _density(mg: ColumnMarginal, v: float) -> float:
    """Density of a continuous marginal at ``v`` (slope of its CDF over one grid cell either side)."""
    q = mg.quantiles
    h = max((float(q[-1]) - float(q[0])) / max(q.size - 1, 1), 1e-12)
    lo, hi = np.interp([v - h, v + h], q, mg.grid, left=0.0, right=1.0)
    return float(hi - lo) / (2.0 * h)


def condition_components(
    components: Sequence[MixtureComponent],
    constraints: Mapping[str, Any],
    tg: TwinGenerationConfig,
    seed: int,
) -> tuple[list[Plan | None], np.ndarray]:
    """Each component's plan (``None`` when the constraints have probability 0 in it) and the cumulative
    component weights conditioned on the constraints."""
    clip = tg.copula.equality_quantile_clip
    plans: list[Plan | None] = []
    mass = np.zeros(len(components))
    first_error: ValueError | None = None
    for k, comp in enumerate(components):
        try:
            plan = plan_constraints(comp.marginals, constraints, clip)
        except ValueError as exc:
            first_error = first_error or exc
            plans.append(None)
            continue
        p = _constraint_probability(comp, plan, tg.synthesis, seed)
        plans.append(plan if p > 0 else None)
        mass[k] = comp.weight * p
    if mass.sum() <= 0.0:
        if first_error is not None and len(constraints) == 1:
            raise first_error
        raise ValueError(
            f"constraints {dict(constraints)} have probability 0 under the fitted model (no component of "
            "the training data satisfies them together)"
        )
    cum = np.cumsum(mass / mass.sum())
    cum[-1] = 1.0
    return plans, cum


def _constraint_probability(comp: MixtureComponent, plan: Plan, sc: SynthesisConfig, seed: int) -> float:
    dens = 1.0
    for j in plan.fixed:
        dens *= _density(comp.marginals[j], plan.fixed_values[j])
    if not plan.intervals:
        return dens
    ncdf = special.ndtr
    if len(plan.intervals) == 1:
        lows, highs = next(iter(plan.intervals.values()))
        return dens * float(np.sum(ncdf(highs) - ncdf(lows)))
    d = comp.latent_correlation.shape[0]
    z = np.empty((sc.constraint_mc_draws, d))
    correlated_normals(seed, STREAM_CONSTRAINT_MC, 0, np.ascontiguousarray(comp.chol), z)
    ok = np.ones(z.shape[0], dtype=bool)
    for j, (lows, highs) in plan.intervals.items():
        inside = ((z[:, j, None] > lows[None, :]) & (z[:, j, None] <= highs[None, :])).any(axis=1)
        ok &= inside
    return dens * float(ok.mean())


def draw_chunk(
    components: Sequence[MixtureComponent],
    plans: Sequence[Plan | None],
    cum: np.ndarray,
    start: int,
    m: int,
    seed: int,
    gibbs_sweeps: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(stored outputs, encoded values) per column for twins ``start .. start + m - 1``."""
    u = np.empty((m, 1))
    counter_uniforms(seed, STREAM_COMPONENT, start, 1, 0, u)
    comp = np.minimum(np.searchsorted(cum, u[:, 0], side="right"), len(components) - 1)
    if all(p is None or (not p.fixed and not p.intervals) for p in plans):
        return _draw_free(components, comp.astype(np.int64), start, seed)
    first = components[0].marginals
    stored = [np.empty(m, dtype=np.int64 if mg.is_discrete else np.float64) for mg in first]
    values = [np.empty(m, dtype=np.float64) for _ in first]
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(len(components) + 1))
    for k in range(len(components)):
        local = order[bounds[k] : bounds[k + 1]]
        if local.size == 0:
            continue
        plan = plans[k]
        assert plan is not None  # zero-probability components have zero weight
        c = components[k]
        rows = (start + local).astype(np.int64)
        z = draw_latent(0, local.size, plan, seed, c.latent_correlation, c.chol, gibbs_sweeps, rows=rows)
        for j, mg in enumerate(c.marginals):
            st, val = column_from_latent(mg, j, z[:, j], plan)
            level_order = c.level_orders[j]
            if level_order is not None:  # the component's level order back to the global codes
                st = level_order[st]
                val = st.astype(np.float64)
            stored[j][local] = st
            values[j][local] = val
    return stored, values


def _draw_free(
    components: Sequence[MixtureComponent], comp: np.ndarray, start: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """No constraints: one latent kernel and one column kernel over all twins of the chunk (the draws and
    outputs of the per-component path, bit for bit)."""
    pk = packed_components(components)
    m, d = comp.size, pk.discrete.size
    # twins sorted by component: each component's grids stay in cache while its twins are read
    order = np.argsort(comp, kind="stable")
    z = np.empty((m, d))
    mixture_normals_rows(seed, STREAM_LATENT, start + order, comp[order], pk.chols, z)
    # Phi(z) of the continuous columns, contiguous per column (ndtr on a strided view costs ~5x more)
    u = np.ascontiguousarray(z[:, pk.continuous].T)
    special.ndtr(u, out=u)
    codes = np.empty((d, m), dtype=np.int64)
    values = np.empty((d, m))
    mixture_columns(
        z, u, comp[order], pk.discrete, pk.integer, pk.knots, pk.knot_start, pk.knot_count,
        pk.table, pk.table_start, pk.codes, pk.slot, order, codes, values,
    )  # fmt: skip
    stored = [codes[j] if pk.discrete[j] else values[j] for j in range(d)]
    return stored, [values[j] for j in range(d)]


@dataclass(frozen=True, eq=False)
class PackedComponents:
    """Every component's marginals as flat arrays with offsets, the layout of
    :func:`~twinkernel.kernels.synthesis.mixture_columns` (see its docstring for the fields)."""

    chols: np.ndarray
    discrete: np.ndarray
    integer: np.ndarray
    continuous: np.ndarray
    slot: np.ndarray
    knots: np.ndarray
    knot_start: np.ndarray
    knot_count: np.ndarray
    table: np.ndarray
    table_start: np.ndarray
    codes: np.ndarray


_PACKED: dict[int, tuple[Sequence[MixtureComponent], PackedComponents]] = {}


def packed_components(components: Sequence[MixtureComponent]) -> PackedComponents:
    """The packed layout of ``components``, built once per components tuple (kept while it lives)."""
    hit = _PACKED.get(id(components))
    if hit is not None and hit[0] is components:
        return hit[1]
    pk = _pack(components)
    if len(_PACKED) >= 8:  # a few generators at a time; an old entry is only rebuilt if needed again
        _PACKED.clear()
    _PACKED[id(components)] = (components, pk)
    return pk


def _pack(components: Sequence[MixtureComponent]) -> PackedComponents:
    first = components[0].marginals
    n_comp, d = len(components), len(first)
    knots: list[np.ndarray] = []
    table: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    knot_start = np.empty((n_comp, d), dtype=np.int64)
    knot_count = np.empty((n_comp, d), dtype=np.int64)
    table_start = np.empty((n_comp, d), dtype=np.int64)
    n_knots = n_table = 0
    for k, c in enumerate(components):
        for j, mg in enumerate(c.marginals):
            if mg.is_discrete:
                order = c.level_orders[j]
                local = np.arange(len(mg.levels), dtype=np.int64)
                glob = local if order is None else order
                cut, tab = mg.thresholds, mg.encoded_levels if order is None else glob.astype(np.float64)
            else:
                cut, tab, glob = mg.grid, mg.quantiles, np.zeros(mg.quantiles.size, dtype=np.int64)
            knot_start[k, j], knot_count[k, j], table_start[k, j] = n_knots, cut.size, n_table
            knots.append(cut)
            table.append(tab)
            codes.append(glob)
            n_knots += cut.size
            n_table += tab.size
    return PackedComponents(
        chols=stacked_chols(components),
        discrete=np.array([mg.is_discrete for mg in first], dtype=np.uint8),
        integer=np.array([mg.integer and not mg.is_discrete for mg in first], dtype=np.uint8),
        continuous=np.flatnonzero([not mg.is_discrete for mg in first]),
        slot=np.cumsum([not mg.is_discrete for mg in first]) - 1,
        knots=np.ascontiguousarray(np.concatenate(knots), dtype=np.float64),
        knot_start=knot_start,
        knot_count=knot_count,
        table=np.ascontiguousarray(np.concatenate(table), dtype=np.float64),
        table_start=table_start,
        codes=np.ascontiguousarray(np.concatenate(codes), dtype=np.int64),
    )


def stacked_chols(components: Sequence[MixtureComponent]) -> np.ndarray:
    """(K, d, d) Cholesky factors of the components (cached on the first component tuple's owner)."""
    return np.ascontiguousarray(np.stack([c.chol for c in components]))


def n_components_text(components: Sequence[MixtureComponent]) -> str:
    """``"K components of n_min..n_max training rows"`` (for reprs and docs)."""
    if not components:
        return "single copula"
    sizes = [c.n_rows for c in components]
    return f"{len(sizes)} components of {min(sizes)}..{max(sizes)} training rows"


__all__ = [
    "MixtureComponent",
    "condition_components",
    "draw_chunk",
    "fit_mixture",
]
