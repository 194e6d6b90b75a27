"""A built-in, seeded synthetic world with known ground truth.

Nothing here downloads data. :func:`hcp_world` builds healthcare professionals (HCPs) whose columns depend on
each other the way commercial data does (decile follows patient volume, preferred channel follows digital
engagement, the specialty mix differs by region, adoption stage follows experience and engagement), a
monthly history with an outcome drawn from a known generating function and, optionally, past interventions
whose true effects differ from the configuration's priors and may drift over time. :func:`patient_world`
and :func:`territory_world` are smaller variants. All three return a frozen :class:`SyntheticWorld` holding
Polars frames and the :class:`WorldTruth` that generated them.

Randomness: one ``numpy.random.Generator`` (PCG64) seeded with ``seed``; the same arguments always give the
same world.

The HCP outcome is ``brand_share``, the share of an HCP's target patients on the brand in a month::

    mu = sigmoid(intercept + sum_k coef_k * (x_k - center_k) / scale_k + specialty_effect + adoption_effect
                 + trend * month_index + seasonality * sin(2 pi month_index / 12) + hidden_hcp_effect)
    brand_share = mu + realised intervention effect (if treated that month) + Normal(0, noise_sd)

Deciles follow the commercial convention: decile 10 holds the HCPs with the largest patient volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import polars as pl

from .models import ADOPTION_STAGES, InterventionType

__all__ = [
    "CHANNELS",
    "INTERVENTION_TYPES",
    "PRACTICE_TYPES",
    "REGIONS",
    "SPECIALTIES",
    "SyntheticWorld",
    "TrueEffect",
    "WorldTruth",
    "hcp_panel_frame",
    "hcp_training_frame",
    "hcp_world",
    "panel_frame",
    "patient_world",
    "territory_world",
    "training_frame",
]

REGIONS: tuple[str, ...] = ("northeast", "southeast", "midwest", "southwest", "west")
SPECIALTIES: tuple[str, ...] = (
    "allergy_immunology",
    "dermatology",
    "hematology",
    "oncology",
    "primary_care",
    "rheumatology",
)
PRACTICE_TYPES: tuple[str, ...] = ("academic", "hospital", "group", "solo")
CHANNELS: tuple[str, ...] = ("in_person", "email", "digital", "phone")
INTERVENTION_TYPES: tuple[str, ...] = tuple(t.value for t in InterventionType)

_REGION_P = np.array([0.20, 0.25, 0.21, 0.12, 0.22])
# specialty mix by region (rows: REGIONS, columns: SPECIALTIES)
_SPECIALTY_GIVEN_REGION = np.array(
    [
        [0.10, 0.16, 0.10, 0.20, 0.32, 0.12],
        [0.08, 0.14, 0.06, 0.12, 0.50, 0.10],
        [0.09, 0.12, 0.07, 0.14, 0.46, 0.12],
        [0.07, 0.20, 0.05, 0.10, 0.48, 0.10],
        [0.12, 0.22, 0.08, 0.16, 0.32, 0.10],
    ]
)
# practice type by specialty (rows: SPECIALTIES, columns: PRACTICE_TYPES)
_PRACTICE_GIVEN_SPECIALTY = np.array(
    [
        [0.10, 0.15, 0.50, 0.25],
        [0.08, 0.07, 0.50, 0.35],
        [0.35, 0.45, 0.17, 0.03],
        [0.30, 0.45, 0.22, 0.03],
        [0.04, 0.16, 0.45, 0.35],
        [0.12, 0.20, 0.50, 0.18],
    ]
)
_PRACTICE_LOG_SIZE = np.array([5.0, 4.0, 2.5, 0.3])
_SPECIALTY_LOG_VOLUME = np.array([5.6, 5.9, 5.2, 5.7, 6.3, 5.5])
_SPECIALTY_TARGET_SHARE = np.array([0.18, 0.10, 0.04, 0.12, 0.02, 0.05])
_ADOPTION_P = np.array([0.025, 0.135, 0.34, 0.34, 0.16])  # Rogers' diffusion proportions
_TIER_LAST_INTERACTION_DAYS = np.array([12.0, 20.0, 35.0, 60.0, 95.0])
_TIER_CALLS_PER_MONTH = np.array([4.0, 3.0, 2.0, 1.2, 0.6])


@dataclass(frozen=True)
class TrueEffect:
    """The true effect of one intervention type in a synthetic world.

    The realised effect for a unit in month ``m`` is ``base_effect * (1 + drift_per_month * m)`` times the
    world's true modifiers, plus ``Normal(0, noise_sd)``.
    """

    base_effect: float
    noise_sd: float
    drift_per_month: float = 0.0
    peer_influence_threshold: float | None = None
    use_priority_tier: bool = False


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class WorldTruth:
    """The generating parameters of a synthetic world.

    ``outcome_terms`` maps a numeric column to ``(center, scale, coefficient)``; ``category_effects`` maps a
    categorical column to its per-level additive effects on the linear predictor. ``hidden_effects[i]`` is
    the unobserved persistent effect of entity ``i`` (entity ids are ``0 .. n - 1``). ``true_effects`` is
    the intervention effect model that generated past treatment responses; it deliberately differs from the
    configuration's priors. ``effect_modifiers`` holds its decile, engagement, adoption-stage and
    priority-tier multipliers.
    """

    kind: str
    seed: int
    outcome_col: str
    link: Literal["logistic", "identity"]
    intercept: float
    outcome_terms: Mapping[str, tuple[float, float, float]]
    category_effects: Mapping[str, Mapping[str, float]]
    trend_per_month: float
    seasonality: float
    hidden_effect_sd: float
    noise_sd: float
    hidden_effects: np.ndarray = field(repr=False)
    true_effects: Mapping[str, TrueEffect] = field(default_factory=lambda: _frozen({}))
    effect_modifiers: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    treatment_model: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    realised_effects: np.ndarray | None = field(default=None, repr=False)

    def linear_predictor(
        self, frame: pl.DataFrame, month_index: int | np.ndarray = 0, include_hidden: bool = True
    ) -> np.ndarray:
        """The outcome's linear predictor for each row of ``frame`` (entity columns as in the world)."""
        eta = np.full(frame.height, self.intercept, dtype=np.float64)
        for col, (center, scale, coef) in self.outcome_terms.items():
            eta += coef * (frame[col].cast(pl.Float64).to_numpy() - center) / scale
        for col, effects in self.category_effects.items():
            eta += frame[col].cast(pl.String).replace_strict(effects, return_dtype=pl.Float64).to_numpy()
        m = np.asarray(month_index, dtype=np.float64)
        eta += self.trend_per_month * m + self.seasonality * np.sin(2.0 * np.pi * m / 12.0)
        if include_hidden:
            ids = frame[_ENTITY_COL[self.kind]].to_numpy()
            eta += self.hidden_effects[ids]
        return eta

    def expected_outcome(
        self, frame: pl.DataFrame, month_index: int | np.ndarray = 0, include_hidden: bool = True
    ) -> np.ndarray:
        """The outcome's expectation without interventions, ``link^-1(linear_predictor)``.

        Examples
        --------
        >>> w = hcp_world(200, months=3, seed=1)
        >>> mu = w.truth.expected_outcome(w.hcps, month_index=0)
        >>> bool(((mu > 0) & (mu < 1)).all())
        True
        """
        eta = self.linear_predictor(frame, month_index, include_hidden)
        return _sigmoid(eta) if self.link == "logistic" else eta

    def individual_effect(
        self, frame: pl.DataFrame, intervention_type: str, month_index: int | np.ndarray = 0
    ) -> np.ndarray:
        """The expected (noise-free) true effect of ``intervention_type`` for each row of ``frame``.

        Examples
        --------
        >>> w = hcp_world(200, months=3, seed=1, with_interventions=True)
        >>> eff = w.truth.individual_effect(w.hcps, "email_campaign")
        >>> bool((eff > 0).all())
        True
        """
        if intervention_type not in self.true_effects:
            raise ValueError(
                f"`intervention_type` must be one of {sorted(self.true_effects)}; got {intervention_type!r}"
            )
        te = self.true_effects[intervention_type]
        mods = self.effect_modifiers
        m = np.asarray(month_index, dtype=np.float64)
        eff = np.full(frame.height, te.base_effect, dtype=np.float64) * (1.0 + te.drift_per_month * m)
        if "decile" in mods and "decile" in frame.columns:
            d = np.clip(frame["decile"].cast(pl.Float64).to_numpy(), 1, 10)
            a, b = mods["decile"]
            eff *= a - b * (d - 1.0)
        if "engagement" in mods and "digital_engagement_score" in frame.columns:
            e = np.clip(frame["digital_engagement_score"].to_numpy(), 0.0, 1.0)
            a, b = mods["engagement"]
            eff *= a + b * e
        if "adoption_stage" in mods and "adoption_stage" in frame.columns:
            stage = frame["adoption_stage"].cast(pl.String)
            eff *= stage.replace_strict(
                dict(mods["adoption_stage"]), default=1.0, return_dtype=pl.Float64
            ).to_numpy()
        if te.use_priority_tier and "priority_tier" in mods and "priority_tier" in frame.columns:
            tiers = np.clip(frame["priority_tier"].to_numpy().astype(np.int64), 1, 5)
            eff *= np.asarray(mods["priority_tier"], dtype=np.float64)[tiers - 1]
        if te.peer_influence_threshold is not None and "peer_influence_score" in frame.columns:
            eff *= frame["peer_influence_score"].to_numpy() >= te.peer_influence_threshold
        return eff


_ENTITY_COL = {"hcp": "hcp_id", "patient": "patient_id", "territory": "territory_id"}


@dataclass(frozen=True)
class SyntheticWorld:
    """A synthetic world: static entity rows, a monthly history and the truth behind both.

    Attributes
    ----------
    kind
        ``"hcp"``, ``"patient"`` or ``"territory"``.
    entities
        One row per entity with its static columns (``hcp_id`` / ``patient_id`` / ``territory_id`` is
        ``0 .. n - 1``).
    history
        One row per entity and month: the entity id, ``month`` (a date), ``month_index``, activity columns,
        the outcome and, with interventions, ``treated`` and ``intervention_type``.
    truth
        The :class:`WorldTruth` that generated them.
    """

    kind: str
    entities: pl.DataFrame
    history: pl.DataFrame
    truth: WorldTruth
    entity_col: str
    time_col: str
    outcome_col: str

    @property
    def hcps(self) -> pl.DataFrame:
        """The HCP rows (only for an HCP world)."""
        if self.kind != "hcp":
            raise AttributeError(f"a {self.kind} world has no `hcps`; use `entities`")
        return self.entities

    @property
    def n_entities(self) -> int:
        return self.entities.height

    @property
    def months(self) -> int:
        return int(self.history["month_index"].max()) + 1 if self.history.height else 0


# --- helpers ---------------------------------------------------------------------------------------------
def _enum(codes: np.ndarray, labels: tuple[str, ...], name: str) -> pl.Series:
    """An Enum column built from integer codes (no Python strings are materialised)."""
    return pl.Series(name, np.asarray(codes, dtype=np.uint8)).cat.to(pl.Enum(list(labels)))


def _optional_enum(present: np.ndarray, codes: np.ndarray, labels: tuple[str, ...], name: str) -> pl.Series:
    """An Enum column from codes, null where ``present`` is False."""
    return (
        pl.Series(name, np.where(present, codes, -1).astype(np.int8))
        .replace(-1, None)
        .cast(pl.UInt8)
        .cat.to(pl.Enum(list(labels)))
    )


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a row-stochastic matrix."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    u = rng.random(probs.shape[0])[:, None]
    return (u > cum).sum(axis=1).astype(np.int64)


def _month_dates(start: str, months: int) -> np.ndarray:
    first = np.datetime64(start, "M")
    return np.arange(first, first + months).astype("datetime64[D]")


def _check_sizes(n: int, months: int, name: str) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {n!r}")
    if not isinstance(months, (int, np.integer)) or months < 1:
        raise ValueError(f"`months` must be a positive integer; got {months!r}")


def _history_frame(entity_col: str, n: int, months: int, start: str, columns: dict[str, Any]) -> pl.DataFrame:
    ids = np.repeat(np.arange(n, dtype=np.int64), months)
    midx = np.tile(np.arange(months, dtype=np.int16), n)
    dates = np.tile(_month_dates(start, months), n)
    return pl.DataFrame(
        [pl.Series(entity_col, ids), pl.Series("month", dates), pl.Series("month_index", midx)]
        + [v if isinstance(v, pl.Series) else pl.Series(k, v) for k, v in columns.items()]
    )


def _interventions(
    rng: np.random.Generator,
    score: np.ndarray,
    months: int,
    intercept: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Confounded past treatment: per entity-month probability sigmoid(intercept + score); a type each."""
    n = score.shape[0]
    p = _sigmoid(intercept + np.repeat(score, months))
    treated = rng.random(n * months) < p
    types = rng.integers(0, len(INTERVENTION_TYPES), n * months)
    return treated, types


# --- HCP world -------------------------------------------------------------------------------------------
_HCP_TRUE_EFFECTS = {
    "email_campaign": TrueEffect(0.035, 0.015, drift_per_month=-0.02),
    "call_frequency_increase": TrueEffect(0.09, 0.03),
    "speaker_program_invitation": TrueEffect(0.10, 0.04, use_priority_tier=True),
    "sample_distribution": TrueEffect(0.03, 0.01),
    "peer_influence_activation": TrueEffect(0.13, 0.04, peer_influence_threshold=0.7),
    "digital_engagement": TrueEffect(0.075, 0.02, drift_per_month=0.02),
}
_HCP_EFFECT_MODIFIERS = {
    "decile": (1.1, 0.02),  # 1.1 - 0.02 (d - 1)
    "engagement": (0.7, 0.6),  # 0.7 + 0.6 e
    "adoption_stage": _frozen(
        {"innovator": 0.7, "early_adopter": 0.85, "early_majority": 1.0, "late_majority": 1.1, "laggard": 1.2}
    ),
    "priority_tier": (1.5, 1.2, 1.0, 0.8, 0.6),
}


def hcp_world(
    n_hcps: int = 10_000,
    months: int = 12,
    seed: int = 0,
    with_interventions: bool = False,
    start: str = "2025-01",
) -> SyntheticWorld:
    """A seeded world of HCPs with correlated features, a monthly history and a known outcome function.

    Parameters
    ----------
    n_hcps
        Number of HCPs (``hcp_id`` is ``0 .. n_hcps - 1``).
    months
        Monthly history rows per HCP, starting at ``start``.
    seed
        Seed of the ``numpy.random.Generator`` (PCG64) that draws everything.
    with_interventions
        Add confounded past interventions (high-decile, engaged HCPs are treated more often): history gets
        ``treated`` and ``intervention_type`` and the outcome includes the true effects in ``truth``.
    start
        First month, ``"YYYY-MM"``.

    Returns
    -------
    SyntheticWorld
        ``entities`` (= ``hcps``) holds ``hcp_id``, ``region``, ``specialty``, ``practice_type``,
        ``practice_size``, ``years_experience``, ``total_patient_volume``, ``target_patient_volume``,
        ``decile``, ``priority_tier``, ``digital_engagement_score``, ``preferred_channel``,
        ``adoption_stage``, ``peer_influence_score``, ``last_interaction_days`` and
        ``interaction_frequency``; ``history`` holds ``brand_share`` per HCP and month.

    Examples
    --------
    >>> w = hcp_world(1000, months=6, seed=7)
    >>> w.hcps.height, w.history.height
    (1000, 6000)
    >>> hi = w.hcps.filter(pl.col("decile") == 10)["total_patient_volume"].median()
    >>> lo = w.hcps.filter(pl.col("decile") == 1)["total_patient_volume"].median()
    >>> bool(hi > 3 * lo)
    True
    """
    _check_sizes(n_hcps, months, "n_hcps")
    rng = np.random.default_rng(seed)
    n = int(n_hcps)

    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    specialty = _choice_rows(rng, _SPECIALTY_GIVEN_REGION[region])
    practice = _choice_rows(rng, _PRACTICE_GIVEN_SPECIALTY[specialty])
    academic = (practice == 0).astype(np.float64)
    practice_size = np.maximum(1, np.rint(np.exp(_PRACTICE_LOG_SIZE[practice] + rng.normal(0, 0.5, n))))
    years = np.clip(np.rint(2.0 + rng.gamma(3.0, 5.0, n)), 1, 45)

    log_volume = (
        _SPECIALTY_LOG_VOLUME[specialty]
        + 0.15 * np.log(practice_size)
        + 0.02 * np.minimum(years, 25.0)
        + rng.normal(0.0, 0.45, n)
    )
    total_volume = np.rint(np.exp(log_volume))
    # decile = volume decile of (slightly noisy) prescribing potential; 10 is the highest
    ranks = np.argsort(np.argsort(log_volume + rng.normal(0.0, 0.1, n), kind="stable"), kind="stable")
    decile = 1 + (10 * ranks) // n
    target_volume = rng.binomial(total_volume.astype(np.int64), _SPECIALTY_TARGET_SHARE[specialty])
    tier = np.clip(6 - np.ceil(decile / 2.0) + rng.choice([-1, 0, 1], size=n, p=[0.15, 0.7, 0.15]), 1, 5)

    engagement = _sigmoid(
        0.3 - 0.06 * (years - 17.0) + 0.5 * academic + 0.2 * (region == 4) + rng.normal(0.0, 0.8, n)
    )
    utilities = np.column_stack(
        [
            0.8 - 1.5 * engagement + 0.4 * (tier <= 2),
            0.2 + 1.0 * engagement,
            -1.2 + 3.0 * engagement,
            -0.6 + 0.3 * (practice == 3),
        ]
    )
    channel = np.argmax(utilities + rng.gumbel(size=utilities.shape), axis=1)

    innovativeness = -0.05 * (years - 17.0) + 1.2 * (engagement - 0.5) + 0.4 * academic + rng.normal(0, 1, n)
    cuts = np.quantile(innovativeness, 1.0 - np.cumsum(_ADOPTION_P)[:-1])
    adoption = (innovativeness < cuts[:, None]).sum(axis=0)  # 0 = innovator (most innovative)

    peer = _sigmoid(
        -0.6 + 0.03 * (years - 17.0) + 0.9 * academic + 0.25 * (decile - 5.5) / 2.87 + rng.normal(0, 0.7, n)
    )
    tier_idx = tier.astype(np.int64) - 1
    last_days = 1 + np.floor(rng.exponential(_TIER_LAST_INTERACTION_DAYS[tier_idx]))
    frequency = np.round(_TIER_CALLS_PER_MONTH[tier_idx] * rng.gamma(4.0, 0.25, n), 2)

    hcps = pl.DataFrame(
        [
            pl.Series("hcp_id", np.arange(n, dtype=np.int64)),
            _enum(region, REGIONS, "region"),
            _enum(specialty, SPECIALTIES, "specialty"),
            _enum(practice, PRACTICE_TYPES, "practice_type"),
            pl.Series("practice_size", practice_size.astype(np.int32)),
            pl.Series("years_experience", years.astype(np.int16)),
            pl.Series("total_patient_volume", total_volume.astype(np.int32)),
            pl.Series("target_patient_volume", target_volume.astype(np.int32)),
            pl.Series("decile", decile.astype(np.int16)),
            pl.Series("priority_tier", tier.astype(np.int8)),
            pl.Series("digital_engagement_score", engagement),
            _enum(channel, CHANNELS, "preferred_channel"),
            _enum(adoption, ADOPTION_STAGES, "adoption_stage"),
            pl.Series("peer_influence_score", peer),
            pl.Series("last_interaction_days", last_days.astype(np.int32)),
            pl.Series("interaction_frequency", frequency),
        ]
    )

    hidden_sd = 0.3
    hidden = rng.normal(0.0, hidden_sd, n)
    truth_kwargs: dict[str, Any] = {}
    if with_interventions:
        truth_kwargs = {
            "true_effects": _frozen(_HCP_TRUE_EFFECTS),
            "effect_modifiers": _frozen(_HCP_EFFECT_MODIFIERS),
            "treatment_model": _frozen({"intercept": -1.8, "decile": 0.8, "engagement": 0.6}),
        }
    truth = WorldTruth(
        kind="hcp",
        seed=seed,
        outcome_col="brand_share",
        link="logistic",
        intercept=-1.6,
        outcome_terms=_frozen(
            {
                "decile": (5.5, 2.87, 0.55),
                "digital_engagement_score": (0.5, 1.0, 0.8),
                "peer_influence_score": (0.5, 1.0, 0.5),
                "interaction_frequency": (2.0, 1.0, 0.05),
            }
        ),
        category_effects=_frozen(
            {
                "specialty": _frozen(
                    {
                        "allergy_immunology": 0.3,
                        "dermatology": 0.25,
                        "hematology": -0.1,
                        "oncology": 0.1,
                        "primary_care": -0.4,
                        "rheumatology": -0.2,
                    }
                ),
                "adoption_stage": _frozen(
                    {
                        "innovator": 0.6,
                        "early_adopter": 0.35,
                        "early_majority": 0.0,
                        "late_majority": -0.25,
                        "laggard": -0.5,
                    }
                ),
            }
        ),
        trend_per_month=0.01,
        seasonality=0.05,
        hidden_effect_sd=hidden_sd,
        noise_sd=0.03,
        hidden_effects=hidden,
        **truth_kwargs,
    )

    # monthly history
    expanded = hcps.select(pl.all().repeat_by(months).explode())  # HCP-major, months inner
    midx = np.tile(np.arange(months, dtype=np.float64), n)
    mu = truth.expected_outcome(expanded, midx)
    calls = rng.poisson(np.repeat(frequency, months))
    emails = rng.poisson(np.repeat(2.0 * engagement, months))
    outcome = mu + rng.normal(0.0, truth.noise_sd, n * months)
    columns: dict[str, Any] = {"calls": calls.astype(np.int16), "emails_opened": emails.astype(np.int16)}
    realised = None
    if with_interventions:
        score = 0.8 * (decile - 5.5) / 2.87 + 0.6 * (engagement - 0.5)
        treated, types = _interventions(rng, score, months, -1.8)
        realised = np.zeros(n * months)
        noise = rng.standard_normal(n * months)
        for k, name in enumerate(INTERVENTION_TYPES):
            rows = np.flatnonzero(treated & (types == k))
            if rows.size:
                sub = expanded[rows]
                realised[rows] = (
                    truth.individual_effect(sub, name, midx[rows])
                    + _HCP_TRUE_EFFECTS[name].noise_sd * noise[rows]
                )
        outcome = outcome + realised
        columns["treated"] = pl.Series("treated", treated)
        columns["intervention_type"] = _optional_enum(treated, types, INTERVENTION_TYPES, "intervention_type")
        truth = _replace_realised(truth, realised)
    columns["brand_share"] = outcome
    history = _history_frame("hcp_id", n, months, start, columns)
    return SyntheticWorld("hcp", hcps, history, truth, "hcp_id", "month", "brand_share")


def _replace_realised(truth: WorldTruth, realised: np.ndarray) -> WorldTruth:
    from dataclasses import replace

    return replace(truth, realised_effects=realised)


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


# --- training frames -------------------------------------------------------------------------------------
def training_frame(world: SyntheticWorld, target_month: int = -1, lookback: int = 3) -> pl.DataFrame:
    """One row per entity: static columns, the prior outcome, the prediction month and the target.

    Columns added to the entity rows: ``prior_<outcome>`` (mean outcome over the ``lookback`` months before
    the target month), ``prior_<outcome>_as_of`` (the last month that mean used: the feature's own
    timestamp), ``month`` (the prediction time), ``treated`` (0/1 in the target month, with interventions)
    and the outcome of the target month.

    Examples
    --------
    >>> w = hcp_world(300, months=4, seed=0)
    >>> f = training_frame(w)
    >>> f.height, f["month"].n_unique(), bool((f["prior_brand_share_as_of"] < f["month"]).all())
    (300, 1, True)
    """
    months = world.months
    t = target_month % months if months else 0
    if t < 1:
        raise ValueError(f"`target_month` needs at least one earlier month; got {target_month} of {months}")
    y = world.outcome_col
    h = world.history
    first = max(0, t - lookback)
    prior = (
        h.filter((pl.col("month_index") >= first) & (pl.col("month_index") < t))
        .group_by(world.entity_col)
        .agg(pl.col(y).mean().alias(f"prior_{y}"), pl.col("month").max().alias(f"prior_{y}_as_of"))
    )
    keep = [world.entity_col, "month", y] + (["treated"] if "treated" in h.columns else [])
    target = h.filter(pl.col("month_index") == t).select(keep)
    if "treated" in target.columns:
        target = target.with_columns(pl.col("treated").cast(pl.Int8))
    out = world.entities.join(prior, on=world.entity_col, how="left").join(target, on=world.entity_col)
    return out.sort(world.entity_col)


def hcp_training_frame(world: SyntheticWorld, target_month: int = -1, lookback: int = 3) -> pl.DataFrame:
    """:func:`training_frame` for an HCP world (target ``brand_share``).

    Examples
    --------
    >>> f = hcp_training_frame(hcp_world(200, months=3, seed=0))
    >>> "prior_brand_share" in f.columns and "brand_share" in f.columns
    True
    """
    if world.kind != "hcp":
        raise ValueError(f"`world` must be an HCP world; got a {world.kind} world")
    return training_frame(world, target_month, lookback)


def panel_frame(world: SyntheticWorld) -> pl.DataFrame:
    """Entity-month rows from the second month on, with the previous month's outcome as a lag feature.

    Columns: static entity columns, ``month``, ``month_index``, ``<outcome>_lag1`` with its timestamp
    ``<outcome>_lag1_as_of`` (the previous month), ``treated`` (0/1, with interventions) and the outcome.
    Use it with ``time_col="month"`` and ``entity_col=world.entity_col`` for out-of-time training.

    Examples
    --------
    >>> p = panel_frame(hcp_world(100, months=4, seed=0))
    >>> p.height, int(p["month_index"].min())
    (300, 1)
    """
    y = world.outcome_col
    e = world.entity_col
    h = world.history.sort([e, "month_index"])
    lagged = h.with_columns(
        pl.col(y).shift(1).over(e).alias(f"{y}_lag1"),
        pl.col("month").shift(1).over(e).alias(f"{y}_lag1_as_of"),
    ).filter(pl.col("month_index") >= 1)
    keep = [e, "month", "month_index", f"{y}_lag1", f"{y}_lag1_as_of", y]
    if "treated" in h.columns:
        lagged = lagged.with_columns(pl.col("treated").cast(pl.Int8))
        keep.insert(-1, "treated")
    return world.entities.join(lagged.select(keep), on=e).sort([e, "month_index"])


def hcp_panel_frame(world: SyntheticWorld) -> pl.DataFrame:
    """:func:`panel_frame` for an HCP world."""
    if world.kind != "hcp":
        raise ValueError(f"`world` must be an HCP world; got a {world.kind} world")
    return panel_frame(world)
