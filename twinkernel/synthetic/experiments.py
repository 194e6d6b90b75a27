"""Real-experiment ground truth: randomised tests run inside a synthetic world.

:func:`run_experiment` samples ``2 * n_per_arm`` entities from the world (after the population filter and
the intervention's targets), randomises them to two arms, draws each unit's outcome from the world's
outcome model in that month and adds the world's true effect to the treated arm. It returns the unit-level
frame and the :class:`~twinkernel.models.experiment.ExperimentResult` a real test would report: the
difference in means and its two-sample standard error. :func:`true_ate` is the quantity that difference
estimates without bias: the mean true effect over the eligible population.

The world's true effect of an intervention on a unit in month ``m`` is
``truth.individual_effect(unit, type, m)`` (drifting over months) times the dose,
``intensity_multiplier * ln(1 + weeks) / ln(1 + reference_weeks)`` with the configuration's reference
duration: the world shares the model's dose response, so a calibrated factor transfers across doses. The
channel and ``extra_params`` do not change the true effect. Each treated unit adds
``Normal(0, true noise_sd)`` around its expected effect; every unit adds the outcome's
``Normal(0, truth.noise_sd)``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from ..config import TwinkernelConfig, get_config
from ..models.experiment import ExperimentResult
from ..models.intervention import InterventionConfig, PopulationFilter
from ._world import SyntheticWorld

__all__ = ["eligible_units", "run_experiment", "true_ate"]

# PopulationFilter / InterventionConfig list fields -> the entity column they restrict
_FILTER_COLUMNS = {
    "specialties": "specialty",
    "deciles": "decile",
    "regions": "region",
    "adoption_stages": "adoption_stage",
}
_TARGET_COLUMNS = {
    "target_deciles": "decile",
    "target_specialties": "specialty",
    "target_regions": "region",
}


def _as_config(intervention_config: InterventionConfig | dict[str, Any]) -> InterventionConfig:
    if isinstance(intervention_config, InterventionConfig):
        return intervention_config
    return InterventionConfig.model_validate(intervention_config)


def _as_filter(population_filter: PopulationFilter | dict[str, Any] | None) -> PopulationFilter | None:
    if population_filter is None or isinstance(population_filter, PopulationFilter):
        return population_filter
    return PopulationFilter.model_validate(population_filter)


def _check_month(month: int) -> int:
    if isinstance(month, bool) or not isinstance(month, (int, np.integer)) or month < 0:
        raise ValueError(f"`month` must be an integer month index >= 0; got {month!r}")
    return int(month)


def _isin(world: SyntheticWorld, field: str, column: str, values: Any) -> np.ndarray:
    if column not in world.entities.columns:
        raise ValueError(f"`{field}` needs a `{column}` column; a {world.kind} world has none")
    col = world.entities[column]
    if col.dtype == pl.Enum or col.dtype == pl.Categorical:
        col = col.cast(pl.String)
    return col.is_in(list(values)).to_numpy()


def eligible_units(
    world: SyntheticWorld,
    intervention_config: InterventionConfig | dict[str, Any],
    month: int,
    population_filter: PopulationFilter | dict[str, Any] | None = None,
) -> np.ndarray:
    """Row indices of the world's entities an experiment may enrol: the filter intersected with the targets.

    ``min_baseline_outcome`` / ``max_baseline_outcome`` bound the entity's expected outcome in ``month``
    without interventions (its twin's baseline).
    """
    cfg = _as_config(intervention_config)
    filt = _as_filter(population_filter)
    m = _check_month(month)
    keep = np.ones(world.n_entities, dtype=bool)
    if filt is not None:
        for field, column in _FILTER_COLUMNS.items():
            values = getattr(filt, field)
            if len(values):
                keep &= _isin(world, field, column, values)
        lo, hi = filt.min_baseline_outcome, filt.max_baseline_outcome
        if lo is not None or hi is not None:
            baseline = world.truth.expected_outcome(world.entities, m)
            if lo is not None:
                keep &= baseline >= lo
            if hi is not None:
                keep &= baseline <= hi
    for field, column in _TARGET_COLUMNS.items():
        values = getattr(cfg, field)
        if len(values):
            keep &= _isin(world, field, column, values)
    return np.flatnonzero(keep)


def _dose(cfg: InterventionConfig, config: TwinkernelConfig) -> float:
    ref = config.simulation.intervention_effects.duration_reference_weeks
    return cfg.intensity_multiplier * math.log1p(cfg.duration_weeks) / math.log1p(ref)


def _check_type(world: SyntheticWorld, cfg: InterventionConfig) -> None:
    if cfg.intervention_type not in world.truth.true_effects:
        if not world.truth.true_effects:
            raise ValueError(
                "`world` has no true intervention effects; build it with `with_interventions=True` or "
                "`true_effect_factors`"
            )
        raise ValueError(
            f"`intervention_config.intervention_type` must be one of {sorted(world.truth.true_effects)}; "
            f"got {cfg.intervention_type!r}"
        )


def true_ate(
    world: SyntheticWorld,
    intervention_config: InterventionConfig | dict[str, Any],
    month: int,
    population_filter: PopulationFilter | dict[str, Any] | None = None,
    config: TwinkernelConfig | None = None,
) -> float:
    """The world's true average effect of the intervention over the eligible population in ``month``.

    Examples
    --------
    >>> from twinkernel.synthetic import hcp_world
    >>> w = hcp_world(2000, months=2, seed=1, true_effect_factors={"sample_distribution": -1.0})
    >>> true_ate(w, {"intervention_type": "sample_distribution"}, month=0) < 0
    True
    """
    cfg = _as_config(intervention_config)
    _check_type(world, cfg)
    rows = eligible_units(world, cfg, month, population_filter)
    if rows.size == 0:
        raise ValueError("no entity of `world` passes `population_filter` and the intervention's targets")
    c = config if config is not None else get_config()
    sub = world.entities[rows]
    return float(world.truth.individual_effect(sub, cfg.intervention_type, month).mean() * _dose(cfg, c))


def _experiment_id(cfg: InterventionConfig, filt: PopulationFilter | None, month: int, seed: int) -> str:
    text = cfg.canonical_json() + "|" + ("" if filt is None else filt.canonical_json())
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"synthetic-{cfg.intervention_type}-m{month}-s{seed}-{digest}"


def run_experiment(
    world: SyntheticWorld,
    intervention_config: InterventionConfig | dict[str, Any],
    n_per_arm: int,
    month: int,
    seed: int,
    population_filter: PopulationFilter | dict[str, Any] | None = None,
    *,
    experiment_id: str | None = None,
    config: TwinkernelConfig | None = None,
) -> tuple[pl.DataFrame, ExperimentResult]:
    """Run a randomised two-arm test of an intervention inside the world, in month index ``month``.

    Parameters
    ----------
    world
        A world with true effects (``with_interventions=True`` or ``true_effect_factors``).
    intervention_config
        What is tested (an :class:`InterventionConfig` or its mapping); its targets restrict who is enrolled.
    n_per_arm
        Units per arm (>= 2); ``2 * n_per_arm`` distinct entities must be eligible.
    month
        Month index the test runs in (may lie past the history: effects and the outcome trend extrapolate).
    seed
        Seed of the ``numpy.random.Generator`` that samples, randomises and draws the noise.
    population_filter
        Who may be enrolled (over the world's entities), as in a simulation.
    experiment_id
        Default: ``synthetic-<type>-m<month>-s<seed>-<digest of config and filter>``.

    Returns
    -------
    frame : polars.DataFrame
        One row per unit: the entity id, ``arm`` (``"treatment"`` / ``"control"``), ``treated``,
        ``true_effect`` (the unit's expected true effect, dose included; 0 in control) and the outcome.
    result : ExperimentResult
        Observed ATE (difference in means), its two-sample SE √(s_t²/n + s_c²/n), the arm sizes and the
        completion date (the first day of the month plus the intervention's duration).

    Examples
    --------
    >>> from twinkernel.synthetic import hcp_world
    >>> w = hcp_world(3000, months=3, seed=4, with_interventions=True)
    >>> units, res = run_experiment(w, {"intervention_type": "email_campaign"}, 500, month=2, seed=1)
    >>> units.height, res.n_treated, res.n_control, str(res.completion_date)
    (1000, 500, 500, '2025-04-26')
    """
    cfg = _as_config(intervention_config)
    filt = _as_filter(population_filter)
    m = _check_month(month)
    if isinstance(n_per_arm, bool) or not isinstance(n_per_arm, (int, np.integer)) or n_per_arm < 2:
        raise ValueError(f"`n_per_arm` must be an integer >= 2; got {n_per_arm!r}")
    n = int(n_per_arm)
    _check_type(world, cfg)
    c = config if config is not None else get_config()
    rows = eligible_units(world, cfg, m, filt)
    if rows.size < 2 * n:
        raise ValueError(
            f"`n_per_arm` = {n} needs {2 * n} eligible entities; the filter and targets leave {rows.size}"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(rows, size=2 * n, replace=False)  # a random sample in random order
    treated = np.zeros(2 * n, dtype=bool)
    treated[:n] = True
    units = world.entities[chosen]
    truth = world.truth
    te = truth.true_effects[cfg.intervention_type]
    expected_effect = np.where(
        treated, truth.individual_effect(units, cfg.intervention_type, m) * _dose(cfg, c), 0.0
    )
    noise = rng.standard_normal((2, 2 * n))
    outcome = (
        truth.expected_outcome(units, m)
        + truth.noise_sd * noise[0]
        + expected_effect
        + np.where(treated, te.noise_sd * noise[1], 0.0)
    )
    y_t, y_c = outcome[treated], outcome[~treated]
    ate = float(y_t.mean() - y_c.mean())
    se = math.sqrt(float(y_t.var(ddof=1)) / n + float(y_c.var(ddof=1)) / n)
    frame = pl.DataFrame(
        [
            pl.Series(world.entity_col, units[world.entity_col]),
            pl.Series("arm", np.where(treated, "treatment", "control")).cast(
                pl.Enum(["treatment", "control"])
            ),
            pl.Series("treated", treated),
            pl.Series("true_effect", expected_effect),
            pl.Series(world.outcome_col, outcome),
        ]
    )
    first_month: date = world.history["month"].min()  # type: ignore[assignment]
    month_start = _add_months(first_month, m)
    result = ExperimentResult(
        experiment_id=experiment_id if experiment_id is not None else _experiment_id(cfg, filt, m, seed),
        intervention=cfg,
        population_filter=filt,
        observed_ate=ate,
        std_error=se,
        n_treated=n,
        n_control=n,
        completion_date=month_start + timedelta(weeks=cfg.duration_weeks),
    )
    return frame, result


def _add_months(d: date, months: int) -> date:
    total = d.year * 12 + (d.month - 1) + months
    return date(total // 12, total % 12 + 1, 1)
