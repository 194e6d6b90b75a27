"""The identity of a simulation request: everything that determines its result (the cache key's input)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .intervention import InterventionConfig, PopulationFilter

__all__ = ["RESULT_SCHEMA_VERSION", "SimulationRequest"]

RESULT_SCHEMA_VERSION = "2"
"""Bumped when results change meaning without a kernel change (2: predictive recommendation, issue 10).
Part of every request identity, so a cache never serves results of an older meaning."""


@dataclass(frozen=True)
class SimulationRequest:
    """What a :class:`~twinkernel.SimulationEngine` call asked for, once defaults are resolved.

    Two requests with equal :meth:`identity` produce bit-identical results (given the same effect model).
    """

    model_id: str | None
    population_fingerprint: str
    intervention_config: InterventionConfig
    population_filter: PopulationFilter
    confidence_level: float
    ci_method: str
    n_resamples: int | None
    seed: int
    seed_was_given: bool
    calculate_heterogeneity: bool
    kernel_version: str
    effect_model_id: str = "prior"

    def identity(self) -> str:
        """Canonical text of every field that changes the result (list order in configs does not)."""
        return "|".join(
            (
                f"model={self.model_id}",
                f"pop={self.population_fingerprint}",
                f"cfg={self.intervention_config.canonical_json()}",
                f"filter={self.population_filter.canonical_json()}",
                f"cl={self.confidence_level!r}",
                f"ci={self.ci_method}",
                f"B={self.n_resamples}",
                f"seed={self.seed}",
                f"het={int(self.calculate_heterogeneity)}",
                f"kernel={self.kernel_version}",
                f"schema={RESULT_SCHEMA_VERSION}",
                f"effects={self.effect_model_id}",
            )
        )

    def digest(self) -> str:
        """SHA-256 hex digest of :meth:`identity`."""
        return hashlib.sha256(self.identity().encode()).hexdigest()
