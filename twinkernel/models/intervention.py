"""Requests: what to simulate and on whom.

Both models are frozen and hashable: list fields are stored as sorted tuples without duplicates (lists are
accepted), ``extra_params`` as a read-only :class:`~twinkernel.models.FrozenMapping`. Bounds and known
values (decile range, channels, ``additional_calls``, the default duration) come from the configuration
(:func:`twinkernel.config.get_config`), never from literals here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import TypeEffect, get_config
from ._frozen import FrozenMapping, freeze_value

__all__ = ["InterventionConfig", "PopulationFilter", "known_extra_params"]


def _sorted_unique(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(set(values), key=lambda v: (str(type(v)), v)))


def _check_deciles(name: str, values: tuple[int, ...]) -> tuple[int, ...]:
    decile = get_config().simulation.intervention_effects.decile
    bad = [d for d in values if not decile.low <= d <= decile.high]
    if bad:
        raise ValueError(f"`{name}` must be between {decile.low} and {decile.high}; got {bad}")
    return _sorted_unique(values)


def _default_duration_weeks() -> int:
    return get_config().simulation.recommendations.default_duration_weeks


def known_extra_params(type_cfg: TypeEffect | None) -> tuple[str, ...]:
    """The ``extra_params`` keys an intervention type understands (from its configuration).

    ``additional_calls`` exists for a type exactly when the configuration gives it a per-call effect.
    """
    if type_cfg is not None and type_cfg.per_additional_call is not None:
        return ("additional_calls",)
    return ()


class InterventionConfig(BaseModel):
    """An intervention to simulate (frozen and hashable: equal configurations hash equal).

    ``target_deciles``, ``target_specialties`` and ``target_regions`` say who receives it; empty (the
    default) means everyone. ``duration_weeks`` defaults to ``recommendations.default_duration_weeks``.
    ``channel`` must be one of ``simulation.known_channels``; ``extra_params`` keys must be known to the
    intervention type (``additional_calls`` for ``call_frequency_increase``, bounded by
    ``max_additional_calls``).

    Examples
    --------
    >>> cfg = InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8)
    >>> cfg.intensity_multiplier, hash(cfg) == hash(cfg.model_copy())
    (1.0, True)
    >>> InterventionConfig(intervention_type="email_campaign", target_deciles=[3, 1, 3]).target_deciles
    (1, 3)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intervention_type: str = Field(min_length=1, max_length=100)
    channel: str | None = None
    frequency: str | None = None
    duration_weeks: int = Field(default_factory=_default_duration_weeks, ge=1, le=52)
    content_type: str | None = None
    personalization_level: str | None = None
    target_deciles: tuple[int, ...] = ()
    target_specialties: tuple[str, ...] = ()
    target_regions: tuple[str, ...] = ()
    intensity_multiplier: float = Field(default=1.0, ge=0.1, le=10.0)
    extra_params: FrozenMapping[str, Any] = Field(default_factory=FrozenMapping)

    @field_validator("intervention_type")
    @classmethod
    def _normalise_type(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, v: str | None) -> str | None:
        if v is None:
            return None
        channel = v.strip().lower()
        known = get_config().simulation.known_channels
        if channel not in known:
            raise ValueError(f"`channel` must be one of {', '.join(known)}; got {v!r}")
        return channel

    @field_validator("target_deciles")
    @classmethod
    def _deciles_in_range(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _check_deciles("target_deciles", v)

    @field_validator("target_specialties", "target_regions")
    @classmethod
    def _canonical_lists(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique(v)

    @field_validator("extra_params")
    @classmethod
    def _freeze_params(cls, v: FrozenMapping[str, Any]) -> FrozenMapping[str, Any]:
        return FrozenMapping({k: freeze_value(v[k]) for k in sorted(v)})

    @model_validator(mode="after")
    def _known_params(self) -> InterventionConfig:
        type_cfg = get_config().simulation.intervention_effects.types.get(self.intervention_type)
        known = known_extra_params(type_cfg)
        unknown = sorted(k for k in self.extra_params if k not in known)
        if unknown:
            listed = ", ".join(known) if known else "none"
            raise ValueError(
                f"`extra_params` has unknown keys {unknown} for intervention_type "
                f"{self.intervention_type!r}; known keys: {listed}"
            )
        if "additional_calls" in self.extra_params and type_cfg is not None:
            calls = self.extra_params["additional_calls"]
            limit = type_cfg.max_additional_calls if type_cfg.max_additional_calls is not None else 0
            if isinstance(calls, bool) or not isinstance(calls, int) or not 0 <= calls <= limit:
                raise ValueError(
                    f"`extra_params['additional_calls']` must be an integer from 0 to {limit} "
                    f"(max_additional_calls); got {calls!r}"
                )
        return self

    def canonical_json(self) -> str:
        """A JSON text that is equal for equal configurations (list order never matters)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (lists and dicts), as in :meth:`model_dump_json`."""
        return self.model_dump(mode="json")


class PopulationFilter(BaseModel):
    """Which twins to simulate. Empty lists mean no restriction; a bound of 0.0 is a bound.

    Frozen and hashable; lists are stored as sorted tuples without duplicates.

    Examples
    --------
    >>> PopulationFilter(deciles=[3, 1, 2]).deciles
    (1, 2, 3)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specialties: tuple[str, ...] = ()
    deciles: tuple[int, ...] = ()
    regions: tuple[str, ...] = ()
    adoption_stages: tuple[str, ...] = ()
    min_baseline_outcome: float | None = None
    max_baseline_outcome: float | None = None

    @field_validator("deciles")
    @classmethod
    def _deciles_in_range(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _check_deciles("deciles", v)

    @field_validator("specialties", "regions", "adoption_stages")
    @classmethod
    def _canonical_lists(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique(v)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PopulationFilter:
        lo, hi = self.min_baseline_outcome, self.max_baseline_outcome
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_baseline_outcome ({lo}) must not exceed max_baseline_outcome ({hi})")
        return self

    def is_empty(self) -> bool:
        """True when the filter restricts nothing."""
        return (
            not self.specialties
            and not self.deciles
            and not self.regions
            and not self.adoption_stages
            and self.min_baseline_outcome is None
            and self.max_baseline_outcome is None
        )

    def canonical_json(self) -> str:
        """A JSON text that is equal for equal filters (list order never matters)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (lists and dicts), as in :meth:`model_dump_json`."""
        return self.model_dump(mode="json")
