"""Settings (:class:`SimulationCacheConfig`) and counters (:class:`CacheStats`) of the simulation cache.

Every default and every bound lives in one place: the ``simulation_cache`` section of
``config/digital_twin_config.yaml``, validated by :class:`twinkernel.config.SimulationCacheSection`.
:class:`SimulationCacheConfig` is that section model; fields not given are taken from the loaded
configuration, and given ones are checked against the same bounds as the file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from pydantic import ValidationError, model_validator

from ..config import (
    ConfigError,
    SimulationCacheSection,
    TwinkernelConfig,
    _constraint_text,
    get_config,
)

__all__ = ["CacheStats", "SimulationCacheConfig"]


class SimulationCacheConfig(SimulationCacheSection):
    """Settings of a :class:`~twinkernel.simulation_cache.SimulationCache`.

    The fields are those of the ``simulation_cache`` config section (see ``docs/cache.md``); any field not
    given takes the value of the loaded configuration (:func:`twinkernel.config.get_config`, with
    ``TWINKERNEL_REDIS_URL`` applied). A given value outside the section's bounds raises
    :class:`~twinkernel.config.ConfigError` naming the key, the rule and the value.

    Examples
    --------
    >>> SimulationCacheConfig().key_prefix == get_config().simulation_cache.key_prefix
    True
    >>> SimulationCacheConfig(ttl_seconds=60).ttl_seconds
    60
    """

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            lines = ["invalid simulation cache settings:"]
            for err in exc.errors():
                loc = ("simulation_cache", *err["loc"])
                got = "" if isinstance(err.get("input"), dict) else f" (got {err.get('input')!r})"
                # The same wording and bounds as a bad value in the file (one validator, one message).
                lines.append(
                    f"  {'.'.join(str(p) for p in loc)}: {err['msg']}{got}"
                    f"{_constraint_text(TwinkernelConfig, loc)}"
                )
            raise ConfigError("\n".join(lines)) from None

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_config(cls, data: Any) -> Any:
        # Only fields left out are filled, so an explicit value is always validated as given.
        if isinstance(data, dict) and not set(SimulationCacheSection.model_fields) <= set(data):
            return {**get_config().simulation_cache.model_dump(), **data}
        return data

    @classmethod
    def from_section(cls, section: SimulationCacheSection) -> SimulationCacheConfig:
        """Build from an already validated ``simulation_cache`` section."""
        return cls(**section.model_dump())

    @classmethod
    def from_config(cls, config: TwinkernelConfig | None = None) -> SimulationCacheConfig:
        """Build from a whole configuration (``None``: :func:`twinkernel.config.get_config`)."""
        return cls.from_section((config if config is not None else get_config()).simulation_cache)

    def with_overrides(self, **overrides: Any) -> SimulationCacheConfig:
        """A copy with ``overrides`` applied, validated like the file (unlike ``model_copy``)."""
        return type(self)(**{**self.model_dump(), **overrides})

    @property
    def prefix(self) -> str:
        """The key prefix (``key_prefix``; the plan's interface calls it ``prefix``)."""
        return self.key_prefix

    @property
    def resolved_backend(self) -> Literal["memory", "redis"]:
        """The backend ``backend`` selects: ``auto`` means Redis exactly when ``redis_url`` is set."""
        if self.backend == "redis" or (self.backend == "auto" and self.redis_url is not None):
            return "redis"
        return "memory"


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache (this process only): an immutable snapshot.

    ``hits`` / ``misses`` count lookups answered from / not found in the cache (a ``get_or_compute`` call
    counts once, however long it waited); ``errors`` counts backend failures and timeouts; ``bypassed``
    counts calls that ran without the cache because of an error or an open circuit breaker;
    ``evictions`` counts results dropped by the LRU bound; ``invalidations`` counts results removed by
    ``invalidate_model_cache``; ``decode_errors`` counts stored values that were not a valid result (each is
    also a miss, and deleted); ``stores`` counts results written.

    Examples
    --------
    >>> stats = CacheStats(hits=3, misses=1)
    >>> stats.hit_rate
    0.75
    >>> stats.to_dict()["hit_rate"]
    0.75
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    evictions: int = 0
    invalidations: int = 0
    decode_errors: int = 0
    stores: int = 0
    bypassed: int = 0

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``; 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, int | float]:
        """Every counter (int) and ``hit_rate`` (float): JSON-safe."""
        out: dict[str, int | float] = {f.name: int(getattr(self, f.name)) for f in fields(self)}
        out["hit_rate"] = float(self.hit_rate)
        return out
