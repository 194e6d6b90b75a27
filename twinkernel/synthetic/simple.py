"""The patient and territory worlds (smaller variants)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ._world import (
    _ENTITY_COL,
    _REGION_P,
    REGIONS,
    SyntheticWorld,
    TrueEffect,
    WorldTruth,
    _check_sizes,
    _enum,
    _frozen,
    _history_frame,
    _optional_enum,
    _replace_realised,
    _sigmoid,
)

# --- patient world ---------------------------------------------------------------------------------------
AGE_GROUPS: tuple[str, ...] = ("18-34", "35-49", "50-64", "65-74", "75+")
INSURANCE_TYPES: tuple[str, ...] = ("commercial", "medicare", "medicaid", "uninsured")
DIAGNOSES: tuple[str, ...] = ("L50.1", "D59.5", "C50.9", "L20.9", "M05.9")
JOURNEY_STAGES: tuple[str, ...] = ("diagnosis", "treatment_initiation", "maintenance", "switch")


def patient_world(
    n_patients: int = 5_000,
    months: int = 6,
    seed: int = 0,
    with_interventions: bool = False,
    start: str = "2025-01",
) -> SyntheticWorld:
    """A smaller seeded world of patients; the monthly outcome is ``adherence`` (0-1 scale plus noise).

    Age drives comorbidities, risk and insurance (65+ are mostly on Medicare); the socioeconomic index
    differs by region and drives coverage; journey duration drives the treatment line.

    Examples
    --------
    >>> w = patient_world(500, months=3, seed=2)
    >>> w.entities.height, w.outcome_col
    (500, 'adherence')
    """
    _check_sizes(n_patients, months, "n_patients")
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    age = rng.choice(len(AGE_GROUPS), size=n, p=[0.18, 0.24, 0.28, 0.18, 0.12])
    gender = rng.integers(0, 2, n)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    ses = _sigmoid(np.array([0.4, -0.3, 0.0, -0.2, 0.3])[region] + rng.normal(0, 0.8, n))
    diagnosis = rng.choice(len(DIAGNOSES), size=n, p=[0.3, 0.1, 0.25, 0.2, 0.15])
    comorbidity = rng.poisson(0.4 + 0.5 * age)
    risk = _sigmoid(-1.5 + 0.4 * age + 0.35 * comorbidity + rng.normal(0, 0.5, n))
    complexity = _sigmoid(-0.5 + 0.3 * comorbidity + 0.5 * (diagnosis == 2) + rng.normal(0, 0.6, n))
    ins_util = np.column_stack(
        [
            1.0 + 2.0 * ses - 3.0 * (age >= 3),
            -2.0 + 5.0 * (age >= 3),
            0.5 - 2.5 * ses,
            -1.5 - 1.5 * ses,
        ]
    )
    insurance = np.argmax(ins_util + rng.gumbel(size=ins_util.shape), axis=1)
    covered = insurance != 3
    duration = np.rint(rng.gamma(2.0, 120.0 + 60.0 * complexity)).astype(np.int32) + 1
    line = np.clip(1 + rng.poisson(duration / 300.0), 1, 4)
    stage = np.clip((duration > 60).astype(int) + (duration > 200) + (line >= 3), 0, 3)
    entities = pl.DataFrame(
        [
            pl.Series("patient_id", np.arange(n, dtype=np.int64)),
            _enum(age, AGE_GROUPS, "age_group"),
            _enum(gender, ("female", "male"), "gender"),
            _enum(region, REGIONS, "geographic_region"),
            pl.Series("socioeconomic_index", ses),
            _enum(diagnosis, DIAGNOSES, "primary_diagnosis_code"),
            pl.Series("comorbidity_count", comorbidity.astype(np.int16)),
            pl.Series("risk_score", risk),
            pl.Series("journey_complexity_score", complexity),
            _enum(insurance, INSURANCE_TYPES, "insurance_type"),
            pl.Series("insurance_coverage_flag", covered),
            _enum(stage, JOURNEY_STAGES, "journey_stage"),
            pl.Series("journey_duration_days", duration),
            pl.Series("treatment_line", line.astype(np.int8)),
        ]
    )
    hidden = rng.normal(0.0, 0.4, n)
    truth = WorldTruth(
        kind="patient",
        seed=seed,
        outcome_col="adherence",
        link="logistic",
        intercept=0.6,
        outcome_terms=_frozen(
            {
                "socioeconomic_index": (0.5, 1.0, 1.2),
                "risk_score": (0.5, 1.0, -0.8),
                "journey_complexity_score": (0.5, 1.0, -0.6),
                "treatment_line": (1.0, 1.0, -0.15),
            }
        ),
        category_effects=_frozen(
            {
                "insurance_type": _frozen(
                    {"commercial": 0.2, "medicare": 0.1, "medicaid": -0.1, "uninsured": -0.6}
                )
            }
        ),
        trend_per_month=-0.02,
        seasonality=0.0,
        hidden_effect_sd=0.4,
        noise_sd=0.05,
        hidden_effects=hidden,
    )
    return _simple_history(
        world_kind="patient",
        entities=entities,
        truth=truth,
        months=months,
        start=start,
        rng=rng,
        with_interventions=with_interventions,
        score=1.0 * (ses - 0.5) - 0.5 * (risk - 0.5),
    )


# --- territory world -------------------------------------------------------------------------------------
COMPETITOR_LEVELS: tuple[str, ...] = ("low", "medium", "high")


def territory_world(
    n_territories: int = 300,
    months: int = 12,
    seed: int = 0,
    with_interventions: bool = False,
    start: str = "2025-01",
) -> SyntheticWorld:
    """A small seeded world of sales territories; the monthly outcome is ``market_share``.

    Bigger territories span more states and ZIP codes and hold more HCPs and patients; coverage falls with
    size; competitor presence is higher in big territories and lowers the share.

    Examples
    --------
    >>> w = territory_world(100, months=4, seed=3)
    >>> w.entities.height, w.history.height
    (100, 400)
    """
    _check_sizes(n_territories, months, "n_territories")
    rng = np.random.default_rng(seed)
    n = int(n_territories)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    states = 1 + rng.binomial(3, 0.3, n)
    zips = np.rint(np.exp(3.5 + 0.4 * states + rng.normal(0, 0.4, n))).astype(np.int32)
    total_hcps = np.rint(zips * rng.gamma(8.0, 1.0, n)).astype(np.int32) + 5
    coverage_p = _sigmoid(1.2 - 0.0015 * total_hcps + rng.normal(0, 0.4, n))
    covered = rng.binomial(total_hcps, coverage_p).astype(np.int32)
    coverage = covered / total_hcps
    volume = np.rint(total_hcps * rng.gamma(20.0, 15.0, n)).astype(np.int64)
    growth = rng.normal(0.02, 0.03, n) + 0.02 * (region == 3)
    comp_latent = 0.002 * total_hcps + rng.normal(0, 1.0, n)
    competitor = np.digitize(comp_latent, np.quantile(comp_latent, [0.35, 0.75]))
    entities = pl.DataFrame(
        [
            pl.Series("territory_id", np.arange(n, dtype=np.int64)),
            _enum(region, REGIONS, "region"),
            pl.Series("state_count", states.astype(np.int8)),
            pl.Series("zip_count", zips),
            pl.Series("total_hcps", total_hcps),
            pl.Series("covered_hcps", covered),
            pl.Series("coverage_rate", coverage),
            pl.Series("total_patient_volume", volume),
            pl.Series("growth_rate", growth),
            _enum(competitor, COMPETITOR_LEVELS, "competitor_presence"),
        ]
    )
    hidden = rng.normal(0.0, 0.2, n)
    truth = WorldTruth(
        kind="territory",
        seed=seed,
        outcome_col="market_share",
        link="logistic",
        intercept=-1.4,
        outcome_terms=_frozen({"coverage_rate": (0.6, 1.0, 1.5), "growth_rate": (0.0, 1.0, 3.0)}),
        category_effects=_frozen({"competitor_presence": _frozen({"low": 0.3, "medium": 0.0, "high": -0.4})}),
        trend_per_month=0.005,
        seasonality=0.03,
        hidden_effect_sd=0.2,
        noise_sd=0.01,
        hidden_effects=hidden,
    )
    return _simple_history(
        world_kind="territory",
        entities=entities,
        truth=truth,
        months=months,
        start=start,
        rng=rng,
        with_interventions=with_interventions,
        score=1.0 * (coverage - 0.6),
    )


_SIMPLE_TRUE_EFFECTS = {
    "email_campaign": TrueEffect(0.02, 0.01, drift_per_month=-0.02),
    "digital_engagement": TrueEffect(0.04, 0.015, drift_per_month=0.01),
}


def _simple_history(
    *,
    world_kind: str,
    entities: pl.DataFrame,
    truth: WorldTruth,
    months: int,
    start: str,
    rng: np.random.Generator,
    with_interventions: bool,
    score: np.ndarray,
) -> SyntheticWorld:
    n = entities.height
    entity_col = _ENTITY_COL[world_kind]
    if with_interventions:
        from dataclasses import replace

        truth = replace(
            truth,
            true_effects=_frozen(_SIMPLE_TRUE_EFFECTS),
            treatment_model=_frozen({"intercept": -1.5, "score": 1.0}),
        )
    expanded = entities.select(pl.all().repeat_by(months).explode())
    midx = np.tile(np.arange(months, dtype=np.float64), n)
    outcome = truth.expected_outcome(expanded, midx) + rng.normal(0.0, truth.noise_sd, n * months)
    columns: dict[str, Any] = {}
    if with_interventions:
        p = _sigmoid(-1.5 + np.repeat(score, months))
        treated = rng.random(n * months) < p
        names = tuple(_SIMPLE_TRUE_EFFECTS)
        types = rng.integers(0, len(names), n * months)
        realised = np.zeros(n * months)
        noise = rng.standard_normal(n * months)
        for k, name in enumerate(names):
            rows = np.flatnonzero(treated & (types == k))
            te = _SIMPLE_TRUE_EFFECTS[name]
            realised[rows] = (
                te.base_effect * (1.0 + te.drift_per_month * midx[rows]) + te.noise_sd * noise[rows]
            )
        outcome = outcome + realised
        columns["treated"] = pl.Series("treated", treated)
        columns["intervention_type"] = _optional_enum(treated, types, names, "intervention_type")
        truth = _replace_realised(truth, realised)
    columns[truth.outcome_col] = outcome
    history = _history_frame(entity_col, n, months, start, columns)
    return SyntheticWorld(world_kind, entities, history, truth, entity_col, "month", truth.outcome_col)
