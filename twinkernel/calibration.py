"""Random-effects calibration of one intervention type's effect from real experiments.

Pure functions over arrays (NumPy/SciPy, no numba). For a type with experiments j = 1..J (see SPEC §3
"Calibration from real experiments" and ``docs/calibration.md``):

- μ_j: the current model's simulated ATE for experiment j's config and filter;
- y_j: the observed ATE, e_j its standard error;
- w_j = 2^(−age_j / half_life): a recency weight (an old experiment counts as if its variance were 1/w_j
  times larger);

model y_j = k·μ_j + u_j + ε_j with u_j ~ N(0, τ²), ε_j ~ N(0, e_j²) and prior k ~ N(m0, r²).

How the prior enters: τ is estimated by **restricted maximum likelihood with k profiled out** (the standard
random-effects meta-regression with one covariate μ and no intercept: k integrated over a flat prior), so τ̂
depends only on how the experiments scatter around the best line through them, never on how far that line
is from the prior. Then, **given τ̂**, k's posterior is normal with precision
P = 1/r² + Σ w_j μ_j²/(e_j² + τ̂²) and mean (m0/r² + Σ w_j μ_j y_j/(e_j² + τ̂²)) / P. (Integrating k over
its informative prior inside the likelihood instead would read a data/prior conflict, such as a harmful true
effect against a prior of +1, as between-experiment spread and inflate τ̂.) k may be negative.

With one experiment (J = 1) the restricted likelihood is flat in τ (no residual degrees of freedom): τ̂ = 0
and ``TypeCalibration.tau_identified`` is False. When every μ_j is 0 the experiments say nothing about k: τ
is then estimated by maximum likelihood of y_j ~ N(0, (e_j² + τ²)/w_j) and k keeps its prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from scipy import optimize

from .config import TwinkernelConfig, get_config
from .models.experiment import ExperimentResult

__all__ = [
    "TypeCalibration",
    "calibrate_experiments",
    "calibrate_type",
    "calibration_report",
    "estimate_tau",
    "posterior_k",
    "provenance_text",
    "recency_weights",
    "reml_log_likelihood",
]


# --- validation --------------------------------------------------------------------------------------------
def _vector(name: str, values: Any, n: int | None = None) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1))
    if a.size == 0:
        raise ValueError(f"`{name}` must hold at least one experiment; got an empty array")
    if n is not None and a.size != n:
        raise ValueError(f"`{name}` must have one value per experiment ({n}); got {a.size}")
    if not np.isfinite(a).all():
        bad = a[~np.isfinite(a)][0]
        raise ValueError(f"`{name}` must hold finite numbers; got {bad}")
    return a


def _inputs(mu: Any, y: Any, se: Any, weights: Any) -> tuple[np.ndarray, ...]:
    m = _vector("mu", mu)
    yy = _vector("y", y, m.size)
    e = _vector("se", se, m.size)
    if (e <= 0).any():
        raise ValueError(f"`se` must be > 0 for every experiment; got {e[e <= 0][0]}")
    w = _vector("weights", weights, m.size)
    if (w <= 0).any():
        raise ValueError(f"`weights` must be > 0 for every experiment; got {w[w <= 0][0]}")
    return m, yy, e, w


_TIE_RTOL = 1e-12  # relative log-likelihood difference below which tau = 0 is preferred (rounding only)


# --- building blocks ---------------------------------------------------------------------------------------
def recency_weights(ages_days: Any, half_life_days: float) -> np.ndarray:
    """w_j = 2^(−age_j / half_life): 1 for a fresh experiment, 1/2 after one half-life.

    Examples
    --------
    >>> recency_weights([0, 180, 360], 180).tolist()
    [1.0, 0.5, 0.25]
    """
    ages = _vector("ages_days", ages_days)
    if (ages < 0).any():
        raise ValueError(
            f"`ages_days` must be >= 0 (an experiment cannot complete after the calibration date); "
            f"got {ages[ages < 0][0]}"
        )
    h = float(half_life_days)
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(f"`half_life_days` must be a finite number > 0; got {half_life_days!r}")
    return np.exp2(-ages / h)


def _reml(tau: np.ndarray, mu: np.ndarray, y: np.ndarray, se: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Restricted log-likelihood (constants dropped) at each τ in ``tau`` (shape (G,))."""
    v = (se[None, :] ** 2 + tau[:, None] ** 2) / w[None, :]  # (G, J) variances
    sxx = (mu[None, :] ** 2 / v).sum(axis=1)
    out = -0.5 * np.log(v).sum(axis=1)
    if float(np.abs(mu).max()) == 0.0:  # k unidentified: plain ML of y ~ N(0, V)
        return out - 0.5 * (y[None, :] ** 2 / v).sum(axis=1)
    sxy = (mu[None, :] * y[None, :] / v).sum(axis=1)
    k = sxy / sxx
    resid = y[None, :] - k[:, None] * mu[None, :]
    return out - 0.5 * np.log(sxx) - 0.5 * (resid**2 / v).sum(axis=1)


def reml_log_likelihood(tau: float | np.ndarray, mu: Any, y: Any, se: Any, weights: Any) -> Any:
    """The restricted log-likelihood of τ, k profiled out (additive constants dropped).

    ℓ(τ) = −½ [Σ log V_j + log Σ μ_j²/V_j + Σ (y_j − k̃ μ_j)²/V_j], V_j = (e_j² + τ²)/w_j,
    k̃ = Σ μ_j y_j/V_j / Σ μ_j²/V_j (the weighted least-squares slope at this τ).

    Examples
    --------
    >>> ll = reml_log_likelihood([0.0, 0.01], [0.05, 0.04, 0.06], [0.03, 0.05, 0.02], [0.01] * 3, [1.0] * 3)
    >>> bool(ll[1] > ll[0])  # the observations scatter more than their SEs: tau > 0 is likelier
    True
    """
    m, yy, e, w = _inputs(mu, y, se, weights)
    t = np.asarray(tau, dtype=np.float64)
    out = _reml(np.abs(t.reshape(-1)), m, yy, e, w)
    return float(out[0]) if t.ndim == 0 else out


def estimate_tau(
    mu: Any,
    y: Any,
    se: Any,
    weights: Any,
    *,
    tau_upper_factor: float,
    xatol: float,
    max_iterations: int,
    grid_points: int,
) -> float:
    """τ̂ ≥ 0 maximising :func:`reml_log_likelihood` over [0, τ_max].

    τ_max = ``tau_upper_factor`` · (max y − min y + max e). A coarse grid (denser near 0) brackets the best
    point, a bounded scalar optimisation refines it inside the bracket, and the boundary τ = 0 wins when its
    likelihood is at least as high. With J = 1 the likelihood is flat and τ̂ = 0.
    """
    m, yy, e, w = _inputs(mu, y, se, weights)
    if m.size == 1:
        return 0.0
    upper = float(tau_upper_factor) * (float(yy.max() - yy.min()) + float(e.max()))
    grid = upper * np.linspace(0.0, 1.0, int(grid_points)) ** 2
    ll = _reml(grid, m, yy, e, w)
    best = int(np.argmax(ll))
    lo = grid[max(best - 1, 0)]
    hi = grid[min(best + 1, grid.size - 1)]
    res = optimize.minimize_scalar(
        lambda t: -float(_reml(np.array([t]), m, yy, e, w)[0]),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": float(xatol), "maxiter": int(max_iterations)},
    )
    candidates = [(float(ll[best]), float(grid[best])), (-float(res.fun), float(res.x))]
    top_ll, top_tau = max(candidates, key=lambda c: (c[0], -c[1]))
    # The likelihood depends on tau^2, so it is flat at 0: a point a rounding error above the boundary
    # is the boundary.
    if float(ll[0]) >= top_ll - _TIE_RTOL * max(1.0, abs(top_ll)):
        return 0.0
    return top_tau


def posterior_k(
    mu: Any, y: Any, se: Any, weights: Any, tau: float, prior_mean: float, prior_sd: float
) -> tuple[float, float]:
    """k's normal posterior given τ: returns ``(mean, sd)``.

    P = 1/r² + Σ w_j μ_j²/(e_j² + τ²); mean = (m0/r² + Σ w_j μ_j y_j/(e_j² + τ²)) / P; sd = 1/√P.
    ``prior_sd = inf`` is a flat prior; ``prior_sd = 0`` pins k at ``prior_mean``.

    Examples
    --------
    >>> k, sd = posterior_k([0.05], [0.02], [0.01], [1.0], 0.0, 1.0, 0.25)
    >>> round(k, 4), round(sd, 4)  # P = 16 + 25 = 41; mean = (16 + 10) / 41
    (0.6341, 0.1562)
    """
    m, yy, e, w = _inputs(mu, y, se, weights)
    t = float(tau)
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"`tau` must be a finite number >= 0; got {tau!r}")
    r = float(prior_sd)
    if not r >= 0:
        raise ValueError(f"`prior_sd` must be >= 0 (inf: a flat prior); got {prior_sd!r}")
    m0 = float(prior_mean)
    if r == 0.0:
        return m0, 0.0
    denom = e**2 + t**2
    prior_precision = 0.0 if math.isinf(r) else 1.0 / r**2
    precision = prior_precision + float((w * m**2 / denom).sum())
    if precision == 0.0:
        raise ValueError("k is not identified: every `mu` is 0 and the prior is flat (`prior_sd` = inf)")
    mean = (prior_precision * m0 + float((w * m * yy / denom).sum())) / precision
    return mean, 1.0 / math.sqrt(precision)


# --- one type ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TypeCalibration:
    """The calibration of one intervention type from J experiments.

    ``k_hat`` / ``k_sd``: the posterior of the factor k that multiplies the model's simulated ATE (and the
    prior base effect: calibrated b̂ = k̂·b(prior), s = |b(prior)|·k_sd). ``tau``: the between-experiment
    SD. ``df`` = J − 1, the Student-t degrees of freedom for predictions (:attr:`prediction_df` floors it
    at 1 for J = 1). ``residuals``: per experiment (y_j − k̂ μ_j) / √(e_j² + τ̂² + μ_j² k_sd²), the
    standardised difference between what was observed and what the calibrated model predicts.
    """

    intervention_type: str
    n_experiments: int
    k_hat: float
    k_sd: float
    tau: float
    df: int
    first_date: date | None
    last_date: date | None
    experiment_ids: tuple[str, ...]
    residuals: tuple[float, ...]
    weights: tuple[float, ...]
    prior_mean: float
    prior_sd: float
    tau_identified: bool

    @property
    def prediction_df(self) -> float:
        """Degrees of freedom for Student's t in predictions: J − 1, at least 1."""
        return float(max(self.df, 1))

    def base_effect(self, prior_base_effect: float) -> float:
        """Calibrated base effect b̂ = k̂ · b(prior)."""
        return self.k_hat * prior_base_effect

    def base_effect_sd(self, prior_base_effect: float) -> float:
        """SD of the calibrated base effect, s = |b(prior)| · k_sd (= b(prior)/√P)."""
        return abs(prior_base_effect) * self.k_sd

    def provenance(self) -> str:
        """E.g. ``"email_campaign: calibrated from 6 experiments (2026-01-10..2026-06-02), τ=0.004"``."""
        noun = "experiment" if self.n_experiments == 1 else "experiments"
        span = ""
        if self.first_date is not None and self.last_date is not None:
            span = f" ({self.first_date.isoformat()}..{self.last_date.isoformat()})"
        return (
            f"{self.intervention_type}: calibrated from {self.n_experiments} {noun}{span}, τ={self.tau:.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe mapping; :meth:`from_dict` reads it back."""
        return {
            "intervention_type": self.intervention_type,
            "n_experiments": self.n_experiments,
            "k_hat": self.k_hat,
            "k_sd": self.k_sd,
            "tau": self.tau,
            "df": self.df,
            "first_date": None if self.first_date is None else self.first_date.isoformat(),
            "last_date": None if self.last_date is None else self.last_date.isoformat(),
            "experiment_ids": list(self.experiment_ids),
            "residuals": list(self.residuals),
            "weights": list(self.weights),
            "prior_mean": self.prior_mean,
            "prior_sd": None if math.isinf(self.prior_sd) else self.prior_sd,
            "tau_identified": self.tau_identified,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TypeCalibration:
        d = dict(data)
        for key in ("first_date", "last_date"):
            d[key] = None if d.get(key) is None else date.fromisoformat(d[key])
        d["prior_sd"] = math.inf if d.get("prior_sd") is None else float(d["prior_sd"])
        for key in ("experiment_ids", "residuals", "weights"):
            d[key] = tuple(d[key])
        return cls(**d)


def calibrate_type(
    intervention_type: str,
    mu: Any,
    y: Any,
    se: Any,
    ages_days: Any,
    *,
    dates: Sequence[date] | None = None,
    experiment_ids: Sequence[str] | None = None,
    prior_mean: float = 1.0,
    prior_sd: float | None = None,
    half_life_days: float | None = None,
    config: TwinkernelConfig | None = None,
) -> TypeCalibration:
    """Calibrate one intervention type: τ̂ by REML, then k's posterior given τ̂.

    Parameters
    ----------
    intervention_type
        The type's name (for the provenance text).
    mu, y, se, ages_days
        Per experiment: the model's simulated ATE, the observed ATE, its SE (> 0) and the age in days at
        the calibration date (>= 0).
    dates, experiment_ids
        Completion dates and ids, for the provenance and the report (optional).
    prior_mean, prior_sd
        Prior of k: N(m0, r²). Defaults: m0 = 1, r = ``simulation.intervention_effects.prior_relative_sd``.
        A learned prior (b_L with SE s_L) passes m0 = b_L / b(prior), r = s_L / b(prior).
    half_life_days
        Recency half-life; default ``calibration.half_life_days``.

    Examples
    --------
    >>> cal = calibrate_type("email_campaign", [0.05, 0.04, 0.06], [0.03, 0.025, 0.034],
    ...                      [0.004, 0.005, 0.004], [0, 30, 60])
    >>> cal.n_experiments, cal.df, round(cal.k_hat, 3), round(cal.tau, 4)
    (3, 2, 0.605, 0.0)
    """
    cfg = config if config is not None else get_config()
    cal_cfg = cfg.calibration
    m = _vector("mu", mu)
    ages = _vector("ages_days", ages_days, m.size)
    h = cal_cfg.half_life_days if half_life_days is None else half_life_days
    w = recency_weights(ages, h)
    mm, yy, e, w = _inputs(m, y, se, w)
    r = cfg.simulation.intervention_effects.prior_relative_sd if prior_sd is None else float(prior_sd)
    ids = tuple(str(i) for i in experiment_ids) if experiment_ids is not None else ()
    if ids and len(ids) != mm.size:
        raise ValueError(f"`experiment_ids` must have one id per experiment ({mm.size}); got {len(ids)}")
    ds = tuple(dates) if dates is not None else ()
    if ds and len(ds) != mm.size:
        raise ValueError(f"`dates` must have one date per experiment ({mm.size}); got {len(ds)}")
    tau = estimate_tau(
        mm,
        yy,
        e,
        w,
        tau_upper_factor=cal_cfg.tau_upper_factor,
        xatol=cal_cfg.reml_xatol,
        max_iterations=cal_cfg.reml_max_iterations,
        grid_points=cal_cfg.reml_grid_points,
    )
    k_hat, k_sd = posterior_k(mm, yy, e, w, tau, prior_mean, r)
    resid = (yy - k_hat * mm) / np.sqrt(e**2 + tau**2 + mm**2 * k_sd**2)
    return TypeCalibration(
        intervention_type=intervention_type,
        n_experiments=int(mm.size),
        k_hat=float(k_hat),
        k_sd=float(k_sd),
        tau=float(tau),
        df=int(mm.size) - 1,
        first_date=min(ds) if ds else None,
        last_date=max(ds) if ds else None,
        experiment_ids=ids,
        residuals=tuple(float(v) for v in resid),
        weights=tuple(float(v) for v in w),
        prior_mean=float(prior_mean),
        prior_sd=float(r),
        tau_identified=bool(mm.size >= 2),
    )


# --- many experiments --------------------------------------------------------------------------------------
def calibrate_experiments(
    experiments: Iterable[ExperimentResult],
    simulated_ate: Callable[[ExperimentResult], float],
    *,
    as_of: date | None = None,
    priors: Mapping[str, tuple[float, float]] | None = None,
    config: TwinkernelConfig | None = None,
) -> dict[str, TypeCalibration]:
    """Group experiments by intervention type and calibrate each (sorted by type name).

    Parameters
    ----------
    experiments
        The real experiments (ids must be unique).
    simulated_ate
        Returns μ_j, the current model's simulated ATE for an experiment's config and filter.
    as_of
        Calibration date the ages are measured from; default the latest completion date (never the wall
        clock, so a calibration is reproducible).
    priors
        Per type ``(m0, r)`` for k; a type not listed uses m0 = 1 and r = ``prior_relative_sd``.
    """
    exps = list(experiments)
    if not exps:
        return {}
    ids = [e.experiment_id for e in exps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"`experiments` must have unique experiment_id values; repeated: {dupes}")
    when = as_of if as_of is not None else max(e.completion_date for e in exps)
    by_type: dict[str, list[ExperimentResult]] = {}
    for e in exps:
        by_type.setdefault(e.intervention_type, []).append(e)
    out: dict[str, TypeCalibration] = {}
    for t in sorted(by_type):
        group = sorted(by_type[t], key=lambda e: (e.completion_date, e.experiment_id))
        m0, r = (priors or {}).get(t, (1.0, None))
        out[t] = calibrate_type(
            t,
            [float(simulated_ate(e)) for e in group],
            [e.observed_ate for e in group],
            [e.standard_error for e in group],
            [e.age_days(when) for e in group],
            dates=[e.completion_date for e in group],
            experiment_ids=[e.experiment_id for e in group],
            prior_mean=m0,
            prior_sd=r,
            config=config,
        )
    return out


def provenance_text(calibrations: Mapping[str, TypeCalibration], types: Iterable[str] = ()) -> str:
    """One line naming each type's source, e.g. ``"email_campaign: calibrated from 6 experiments
    (2026-01-10..2026-06-02), τ=0.004; speaker_program_invitation: prior"``.

    ``types`` lists further types to name (those without a calibration read ``"<type>: prior"``).
    """
    names = sorted(set(calibrations) | set(types))
    return "; ".join(calibrations[t].provenance() if t in calibrations else f"{t}: prior" for t in names)


def calibration_report(calibrations: Mapping[str, TypeCalibration]) -> pl.DataFrame:
    """One row per calibrated type: type, J, k_hat, k_sd, tau, df, dates, ids and standardised residuals.

    Examples
    --------
    >>> cal = calibrate_type("email_campaign", [0.05, 0.04], [0.03, 0.025], [0.004, 0.005], [0, 30])
    >>> calibration_report({"email_campaign": cal}).columns[:6]
    ['type', 'J', 'k_hat', 'k_sd', 'tau', 'df']
    """
    rows = [calibrations[t] for t in sorted(calibrations)]
    return pl.DataFrame(
        {
            "type": [c.intervention_type for c in rows],
            "J": [c.n_experiments for c in rows],
            "k_hat": [c.k_hat for c in rows],
            "k_sd": [c.k_sd for c in rows],
            "tau": [c.tau for c in rows],
            "df": [c.df for c in rows],
            "first_date": [c.first_date for c in rows],
            "last_date": [c.last_date for c in rows],
            "experiment_ids": [list(c.experiment_ids) for c in rows],
            "residuals": [list(c.residuals) for c in rows],
            "provenance": [c.provenance() for c in rows],
        },
        schema={
            "type": pl.String,
            "J": pl.Int64,
            "k_hat": pl.Float64,
            "k_sd": pl.Float64,
            "tau": pl.Float64,
            "df": pl.Int64,
            "first_date": pl.Date,
            "last_date": pl.Date,
            "experiment_ids": pl.List(pl.String),
            "residuals": pl.List(pl.Float64),
            "provenance": pl.String,
        },
    )
