"""Entity tables, the truth behind a synthetic world, and the helpers every world builder shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import polars as pl

from ..models import InterventionType

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
        >>> from twinkernel.synthetic import hcp_world
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
        >>> from twinkernel.synthetic import hcp_world
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
        return int(self.history["month_index"].max()) + 1 if self.history.height else 0  # type: ignore[arg-type]


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
    cum: np.ndarray = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    u = np.asarray(rng.random(probs.shape[0]))[:, None]
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


def _replace_realised(truth: WorldTruth, realised: np.ndarray) -> WorldTruth:
    from dataclasses import replace

    return replace(truth, realised_effects=realised)
