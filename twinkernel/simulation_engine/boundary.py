"""What the population knows about its own boundary problems, turned into result fields.

``TwinPopulation`` reports columns that were missing or defaulted, non-finite values, and filter values
that match no twin; these helpers read that information (guarded with ``getattr`` so an older population
class still works) and the kernels' clamp counters, for the result's ``warnings`` and ``data_quality``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import effects as K
from ..models import ADOPTION_STAGES, InterventionConfig, PopulationFilter
from ..population import DEFAULTED_BITS, TwinPopulation

__all__ = ["baseline_missing", "data_quality", "population_warnings", "unmatched_values"]


def population_warnings(population: TwinPopulation) -> list[str]:
    """The population's construction-time warnings (every result repeats them)."""
    return list(getattr(population, "warnings", ()))


def _selected(mask: np.ndarray, index: np.ndarray | None) -> np.ndarray:
    return mask if index is None else mask[index]


def baseline_missing(population: TwinPopulation, index: np.ndarray | None) -> bool:
    """True when ``baseline_outcome`` is absent from the input, or every selected value was defaulted."""
    if "baseline_outcome" in getattr(population, "missing_columns", ()):
        return True
    if not population.has_defaults:
        return False
    selected = _selected(population.kernel_columns.defaulted, index)
    return bool(np.all(selected & DEFAULTED_BITS["baseline_outcome"]))


def unmatched_values(
    population: TwinPopulation, pf: PopulationFilter, ic: InterventionConfig
) -> dict[str, list[Any]]:
    """Filter and target values that match no twin, by parameter name."""
    method = getattr(population, "unmatched_values", None)
    if callable(method):
        return dict(method(pf, ic))
    # Populations without unmatched_values: check the label dimensions against the labels present.
    c = population.kernel_columns
    wanted = {
        "specialties": (pf.specialties, c.specialty_labels),
        "target_specialties": (ic.target_specialties, c.specialty_labels),
        "regions": (pf.regions, c.region_labels),
        "target_regions": (ic.target_regions, c.region_labels),
        "adoption_stages": (tuple(s.lower() for s in pf.adoption_stages), ADOPTION_STAGES),
    }
    out: dict[str, list[Any]] = {}
    for name, (values, labels) in wanted.items():
        missing = [v for v in values if v not in labels]
        if missing:
            out[name] = missing
    return out


def data_quality(
    population: TwinPopulation, counts: np.ndarray, index: np.ndarray | None
) -> dict[str, dict[str, int]]:
    """Per column, how many selected twins were clamped, unrecognised or defaulted (zeros left out)."""
    dq: dict[str, dict[str, int]] = {}

    def add(column: str, kind: str, value: int) -> None:
        if value:
            dq.setdefault(column, {})[kind] = int(value)

    add("decile", "clamped", counts[K.C_DECILE_CLAMPED])
    add("digital_engagement_score", "clamped", counts[K.C_ENGAGEMENT_CLAMPED])
    add("adoption_stage", "unrecognised", counts[K.C_ADOPTION_UNRECOGNISED])
    add("priority_tier", "clamped", counts[K.C_TIER_CLAMPED])
    add("peer_influence_score", "clamped", counts[K.C_PEER_CLAMPED])
    add("baseline_propensity", "clamped", counts[K.C_PROPENSITY_CLAMPED])
    add("effect", "capped", counts[K.C_EFFECT_CAPPED])
    if population.has_defaults:
        selected = _selected(population.kernel_columns.defaulted, index)
        for column, bit in DEFAULTED_BITS.items():
            add(column, "defaulted", int(np.count_nonzero(selected & bit)))
    return dq
