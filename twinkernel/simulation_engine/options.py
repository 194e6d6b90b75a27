"""Validate a ``simulate`` call and resolve its defaults from the configuration (before any cache lookup)."""

from __future__ import annotations

import numbers
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import TwinkernelConfig
from ..effect_model import EffectModel, EffectParameters
from ..models import InterventionConfig, PopulationFilter

__all__ = ["CI_METHODS", "Call", "Selection", "as_number", "resolve_call"]

CI_METHODS = ("analytic", "percentile", "basic", "bca")


@dataclass(frozen=True)
class Call:
    """One ``simulate`` call with every default resolved and every argument validated."""

    ic: InterventionConfig
    pf: PopulationFilter
    confidence_level: float
    method: str
    n_resamples: int | None
    seed: int
    seed_given: bool
    heterogeneity: bool
    params: EffectParameters


@dataclass(frozen=True)
class Selection:
    """The twins a call simulates: population rows (``index``; ``None`` for every row in order)."""

    index: np.ndarray | None
    n: int
    population_size: int
    targeted: int


def as_number(name: str, value: Any) -> float:
    """``value`` as a float, or a ValueError naming ``name`` (booleans and strings are not numbers).

    Examples
    --------
    >>> as_number("confidence_threshold", "0.7")
    Traceback (most recent call last):
    ...
    ValueError: `confidence_threshold` must be a number; got '0.7'
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number; got {value!r}")
    return float(value)


def _confidence_level(config: TwinkernelConfig, confidence_level: Any) -> float:
    level = config.simulation.default_confidence_level if confidence_level is None else confidence_level
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(
            "`confidence_level` must be a number strictly between 0 and 1 (or None for "
            f"simulation.default_confidence_level); got {confidence_level!r}"
        )
    return float(level)


def _method_and_resamples(
    config: TwinkernelConfig, ci_method: Any, n_resamples: Any
) -> tuple[str, int | None]:
    sim = config.simulation
    method = ci_method if ci_method is not None else sim.ci_method
    method = method.strip().lower() if isinstance(method, str) else method
    if method not in CI_METHODS:
        raise ValueError(f"`ci_method` must be one of {', '.join(CI_METHODS)}; got {ci_method!r}")
    if method == "analytic":
        return method, None
    value = sim.n_resamples if n_resamples is None else n_resamples
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 10:
        raise ValueError(f"`n_resamples` must be an integer of at least 10; got {n_resamples!r}")
    return method, int(value)


def resolve_call(
    config: TwinkernelConfig,
    effect_model: EffectModel,
    ic: Any,
    pf: Any,
    confidence_level: Any,
    heterogeneity: bool,
    seed: Any,
    ci_method: Any,
    n_resamples: Any,
) -> Call:
    """Check every argument of ``SimulationEngine.simulate`` and fill in the config's defaults.

    Raises
    ------
    TypeError
        ``ic`` is not an :class:`InterventionConfig` or ``pf`` not a :class:`PopulationFilter`.
    ValueError
        A bad ``confidence_level``, ``ci_method``, ``n_resamples``, ``seed`` or effect parameter; the
        message names the parameter, the rule and the value.
    """
    if not isinstance(ic, InterventionConfig):
        raise TypeError(f"`intervention_config` must be an InterventionConfig; got {type(ic).__name__}")
    if pf is not None and not isinstance(pf, PopulationFilter):
        raise TypeError(f"`population_filter` must be a PopulationFilter or None; got {type(pf).__name__}")
    level = _confidence_level(config, confidence_level)
    method, resamples = _method_and_resamples(config, ci_method, n_resamples)
    seed_given = seed is not None
    if seed is None:
        seed = secrets.randbits(63)
    elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
        raise ValueError(f"`seed` must be an integer in [0, 2**64); got {seed!r}")
    return Call(
        ic=ic,
        pf=pf if pf is not None else PopulationFilter(),
        confidence_level=level,
        method=method,
        n_resamples=resamples,
        seed=int(seed),
        seed_given=seed_given,
        heterogeneity=bool(heterogeneity),
        params=effect_model.parameters(ic),
    )
