"""Constraints on generated twins: planning them against the fitted marginals and sampling the latent
normals conditionally on them.

A constraint becomes latent intervals (unions of level intervals for discrete columns, the quantile-mapped
range for continuous ones, a fixed latent point for a continuous equality). The constrained coordinates
are drawn from truncated normals by inverse CDF in log space (one column exactly from its conditional law,
several by sequential draws followed by ``gibbs_sweeps`` Gibbs sweeps) and the free columns from their
Gaussian conditional given the constrained ones. Nothing rejects and retries, so generation always
terminates. All randomness is counter-based: stream ``STREAM_GENERATOR`` for latent normals,
``STREAM_GENERATOR + 1`` for truncated draws, indexed by twin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special

from ..kernels._rng import STREAM_GENERATOR
from ..kernels.copula import correlated_normals, counter_uniforms
from ..kernels.synthesis import correlated_normals_rows, counter_uniforms_rows
from .copula import conditional, truncated_normal_union
from .marginals import ColumnMarginal, continuous_values

STREAM_LATENT = STREAM_GENERATOR
STREAM_TRUNCATION = STREAM_GENERATOR + 1
# Jitter added to the conditional covariance of the free columns before its Cholesky factor (numerical).
_CHOLESKY_JITTER = 1e-12


@dataclass(frozen=True)
class Constraint:
    """A constraint on one synthesised column.

    Plain values work too in ``generate(constraints=...)``: a scalar fixes the column, a ``set``/``list``/
    ``frozenset`` restricts it to those values, and a 2-tuple ``(low, high)`` bounds it (inclusive; ``None``
    leaves a side open).

    Examples
    --------
    >>> Constraint.between(0.2, 0.8)
    Constraint(kind='range', values=(), low=0.2, high=0.8)
    >>> Constraint.coerce({"b", "a"})
    Constraint(kind='one_of', values=('a', 'b'), low=None, high=None)
    """

    kind: Literal["equal", "one_of", "range"]
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def equal(cls, value: Any) -> Constraint:
        """The column equals ``value``."""
        return cls("equal", (value,))

    @classmethod
    def one_of(cls, values: Sequence[Any] | set[Any] | frozenset[Any]) -> Constraint:
        """The column takes one of ``values``."""
        return cls("one_of", tuple(values))

    @classmethod
    def between(cls, low: float | None = None, high: float | None = None) -> Constraint:
        """The column lies in ``[low, high]`` (``None`` leaves a side open)."""
        return cls("range", (), low, high)

    @classmethod
    def coerce(cls, spec: Any) -> Constraint:
        """Turn a plain value (scalar, set/list, ``(low, high)``) into a constraint."""
        if isinstance(spec, Constraint):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return cls.between(spec[0], spec[1])
        if isinstance(spec, (set, frozenset, list)):
            return cls.one_of(sorted(spec, key=str) if isinstance(spec, (set, frozenset)) else spec)
        if isinstance(spec, (tuple, dict)):
            raise ValueError(f"a constraint must be a scalar, a set/list or a (low, high) pair; got {spec!r}")
        return cls.equal(spec)


@dataclass(frozen=True)
class Plan:
    """Constraints resolved against the fitted marginals (keys are column positions in copula order)."""

    fixed: Mapping[int, float]  # continuous equality -> latent value
    fixed_values: Mapping[int, float]  # continuous equality -> output value
    intervals: Mapping[int, tuple[np.ndarray, np.ndarray]]  # -> latent (lows, highs)
    allowed_codes: Mapping[int, np.ndarray]  # discrete column -> allowed level codes
    bounds: Mapping[int, tuple[float, float]]  # continuous column -> output clip range


def plan_constraints(
    marginals: Sequence[ColumnMarginal], constraints: Mapping[str, Any], quantile_clip: float
) -> Plan:
    """Resolve ``{column: spec}`` against the marginals; a constraint of probability 0 raises naming it."""
    if not isinstance(constraints, Mapping):
        raise ValueError(
            f"`constraints` must be a mapping of column to constraint; got {type(constraints).__name__}"
        )
    columns = [m.name for m in marginals]
    fixed: dict[int, float] = {}
    fixed_values: dict[int, float] = {}
    intervals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    allowed: dict[int, np.ndarray] = {}
    bounds: dict[int, tuple[float, float]] = {}
    for name, spec in constraints.items():
        if name not in columns:
            raise ValueError(
                f"cannot constrain {name!r}: it is not a synthesised column; constrainable: {columns}"
            )
        j = columns.index(name)
        mg = marginals[j]
        c = Constraint.coerce(spec)
        if mg.is_discrete:
            codes = _allowed_codes(mg, c)
            allowed[j] = codes
            intervals[j] = _latent_intervals(mg, codes)
            continue
        q = mg.quantiles
        lo_support, hi_support = float(q[0]), float(q[-1])
        if c.kind == "one_of" and len(c.values) == 1:
            c = Constraint.equal(c.values[0])
        if c.kind == "one_of":
            raise ValueError(
                f"constraint on {name!r}: a set of values needs a discrete column; {name!r} is continuous "
                f"(use a (low, high) range)"
            )
        if c.kind == "range" and c.low is not None and c.high is not None and c.low == c.high:
            c = Constraint.equal(c.low)
        if c.kind == "equal":
            v = _as_float(c.values[0], name)
            if not lo_support <= v <= hi_support:
                raise ValueError(
                    f"constraint {name!r} = {v} is outside the observed support [{lo_support}, {hi_support}]"
                    " of the training data (probability 0)"
                )
            if mg.integer and v != round(v):
                raise ValueError(f"constraint {name!r} = {v}: {name!r} holds integers")
            u = float(np.interp(v, q, mg.grid))
            fixed[j] = float(special.ndtri(np.clip(u, quantile_clip, 1.0 - quantile_clip)))
            fixed_values[j] = v
            continue
        lo = -np.inf if c.low is None else _as_float(c.low, name)
        hi = np.inf if c.high is None else _as_float(c.high, name)
        if lo > hi:
            raise ValueError(f"constraint on {name!r}: low ({lo}) must not exceed high ({hi})")
        if mg.integer:
            lo, hi = math.ceil(lo), math.floor(hi)
            if lo > hi:
                raise ValueError(f"constraint on {name!r}: no integer lies in [{c.low}, {c.high}]")
        ulo = 0.0 if lo <= lo_support else float(np.interp(lo, q, mg.grid))
        uhi = 1.0 if hi >= hi_support else float(np.interp(hi, q, mg.grid))
        if hi < lo_support or lo > hi_support or uhi <= ulo:
            raise ValueError(
                f"constraint on {name!r}: the range [{c.low}, {c.high}] has probability 0 under the "
                f"training data (observed support [{lo_support}, {hi_support}])"
            )
        intervals[j] = (np.array([special.ndtri(ulo)]), np.array([special.ndtri(uhi)]))
        bounds[j] = (max(lo, lo_support), min(hi, hi_support))
    return Plan(fixed, fixed_values, intervals, allowed, bounds)


def draw_latent(
    start: int,
    m: int,
    plan: Plan,
    seed: int,
    latent_correlation: np.ndarray,
    chol: np.ndarray,
    gibbs_sweeps: int,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Latent normal rows ``start .. start + m - 1`` (or the global rows ``rows``, then ``m = rows.size``)
    under the plan's constraints.

    Row ``i`` depends only on ``(seed, i)`` and the plan, never on ``start`` or ``m``.
    """
    d = chol.shape[0]
    z = np.empty((m, d), dtype=np.float64)

    def normals(factor: np.ndarray, out: np.ndarray) -> None:
        if rows is None:
            correlated_normals(seed, STREAM_LATENT, start, factor, out)
        else:
            correlated_normals_rows(seed, STREAM_LATENT, rows, factor, out)

    if not plan.fixed and not plan.intervals:
        normals(chol, z)
        return z
    e = np.empty((m, d), dtype=np.float64)
    normals(np.eye(d), e)
    r = latent_correlation
    fixed = sorted(plan.fixed)
    trunc = sorted(plan.intervals)
    cond = fixed + trunc
    free = [j for j in range(d) if j not in cond]
    for j in fixed:
        z[:, j] = plan.fixed[j]
    sweeps = gibbs_sweeps if len(trunc) > 1 else 0
    stride = 2 * (1 + sweeps) * max(1, len(trunc))

    def uniforms(step: int) -> np.ndarray:
        u = np.empty((m, 2 * len(trunc)), dtype=np.float64)
        if rows is None:
            counter_uniforms(seed, STREAM_TRUNCATION, start, stride, 2 * step * len(trunc), u)
        else:
            counter_uniforms_rows(seed, STREAM_TRUNCATION, rows, stride, 2 * step * len(trunc), u)
        return u

    def draw(j: int, mu: np.ndarray, sigma: float, u: np.ndarray, t: int) -> np.ndarray:
        lows, highs = plan.intervals[j]
        return truncated_normal_union(mu, sigma, lows, highs, u[:, 2 * t], u[:, 2 * t + 1])

    # sequential conditional draws (exact for one truncated column), then Gibbs sweeps for several
    u = uniforms(0)
    for t, j in enumerate(trunc):
        mu, sd = conditional(r, j, fixed + trunc[:t], z)
        z[:, j] = draw(j, mu, sd, u, t)
    if sweeps:
        prec = np.linalg.inv(r[np.ix_(cond, cond)])
        for step in range(1, sweeps + 1):
            u = uniforms(step)
            for t, j in enumerate(trunc):
                a = cond.index(j)
                others = [k for k in range(len(cond)) if k != a]
                mu = -(z[:, [cond[k] for k in others]] @ prec[a, others]) / prec[a, a]
                z[:, j] = draw(j, mu, 1.0 / math.sqrt(prec[a, a]), u, t)
    if free:
        r_oo = r[np.ix_(cond, cond)]
        r_uo = r[np.ix_(free, cond)]
        gain = np.linalg.solve(r_oo, r_uo.T).T
        cov = r[np.ix_(free, free)] - gain @ r_uo.T
        chol_free = np.linalg.cholesky(0.5 * (cov + cov.T) + _CHOLESKY_JITTER * np.eye(len(free)))
        z[:, free] = z[:, cond] @ gain.T + e[:, free] @ chol_free.T
    return z


def column_from_latent(
    mg: ColumnMarginal, j: int, z: np.ndarray, plan: Plan
) -> tuple[np.ndarray, np.ndarray]:
    """(stored output, encoded value) of column ``j`` at latent values ``z``: level codes for discrete
    columns (snapped into the allowed set), values for continuous ones (fixed, rounded or clipped)."""
    if mg.is_discrete:
        codes = np.searchsorted(mg.thresholds, z, side="left")
        if j in plan.allowed_codes:
            codes = _snap_codes(codes, plan.allowed_codes[j])
        return codes, mg.encoded_levels[codes]
    if j in plan.fixed_values:
        values = np.full(z.shape[0], plan.fixed_values[j])
        return values, values
    values = continuous_values(mg, z)
    if mg.integer:
        values = np.rint(values)
    if j in plan.bounds:
        values = np.clip(values, *plan.bounds[j])
    return values, values


def _as_float(v: Any, name: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"constraint on {name!r} needs a number; got {v!r}") from None


def _allowed_codes(mg: ColumnMarginal, c: Constraint) -> np.ndarray:
    levels = list(mg.levels)
    if c.kind == "range":
        if mg.kind != "discrete":
            raise ValueError(
                f"constraint on {mg.name!r}: a range needs a numeric column; use a set of labels"
            )
        lo = -np.inf if c.low is None else float(c.low)
        hi = np.inf if c.high is None else float(c.high)
        codes = [k for k, v in enumerate(levels) if lo <= float(v) <= hi and mg.probs[k] > 0]
        if not codes:
            raise ValueError(
                f"constraint on {mg.name!r}: no observed value lies in [{c.low}, {c.high}] "
                f"(observed: {[v for k, v in enumerate(levels) if mg.probs[k] > 0]})"
            )
        return np.asarray(codes, dtype=np.int64)
    if not c.values:
        raise ValueError(f"constraint on {mg.name!r}: the set of allowed values is empty")
    codes = []
    for v in c.values:
        if mg.kind == "discrete":
            try:
                key: float | None = float(v)
            except (TypeError, ValueError):
                key = None
            matches = [k for k, lv in enumerate(levels) if key is not None and float(lv) == key]
        elif mg.kind == "boolean":
            matches = [
                k for k, lv in enumerate(levels) if isinstance(v, (bool, np.bool_, int)) and bool(v) == lv
            ]
        else:
            matches = [k for k, lv in enumerate(levels) if lv == v]
        if not matches or mg.probs[matches[0]] == 0.0:
            seen = [lv for k, lv in enumerate(levels) if mg.probs[k] > 0]
            raise ValueError(
                f"constraint on {mg.name!r}: value {v!r} never occurs in the training data "
                f"(probability 0); observed: {seen}"
            )
        codes.append(matches[0])
    return np.unique(np.asarray(codes, dtype=np.int64))


def _latent_intervals(mg: ColumnMarginal, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latent intervals of the allowed level codes, adjacent ones merged."""
    tau = np.concatenate([[-np.inf], mg.thresholds, [np.inf]])
    lows: list[float] = []
    highs: list[float] = []
    for k in codes:
        lo, hi = tau[k], tau[k + 1]
        if lows and highs[-1] == lo:
            highs[-1] = hi
        else:
            lows.append(lo)
            highs.append(hi)
    return np.asarray(lows), np.asarray(highs)


def _snap_codes(codes: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Move codes that rounding put just outside the allowed set onto the nearest allowed one."""
    ok = np.isin(codes, allowed)
    if ok.all():
        return codes
    bad = codes[~ok]
    nearest = allowed[np.argmin(np.abs(bad[:, None] - allowed[None, :]), axis=1)]
    codes = codes.copy()
    codes[~ok] = nearest
    return codes
