"""The retraining service's value types: its settings, training data, serving models, worker ids."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from ..config import AutoRetrainingConfig, TwinkernelConfig, get_config
from ..effect_model import EffectModel
from ..population import TwinPopulation

if TYPE_CHECKING:
    from ..simulation_engine import SimulationEngine
    from ..twin_generator import TwinGenerator

__all__ = [
    "LeaseLostError",
    "ServingModel",
    "TrainingData",
    "TrainingDataProvider",
    "TwinRetrainingConfig",
    "default_worker_id",
    "utc_now",
]


class TwinRetrainingConfig(AutoRetrainingConfig):
    """The ``auto_retraining`` section, as the service reads it (no number repeated here).

    Examples
    --------
    >>> TwinRetrainingConfig.from_config().fidelity_threshold
    0.7
    >>> TwinRetrainingConfig.from_config(require_approval=False).require_approval
    False
    """

    @classmethod
    def from_config(cls, config: TwinkernelConfig | None = None, **overrides: Any) -> TwinRetrainingConfig:
        cfg = config if config is not None else get_config()
        return cls.model_validate({**cfg.auto_retraining.model_dump(), **overrides})


@dataclass(frozen=True)
class TrainingData:
    """What a ``training_data_provider`` returns: the frame and :meth:`TwinGenerator.train` arguments."""

    frame: pl.DataFrame
    target_col: str
    time_col: str | None = None
    feature_cols: Sequence[str] | None = None
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)


TrainingDataProvider = Callable[[str], "TrainingData | None"]
"""Called with the model id; returns fresh training data, or None to keep the outcome model."""


@dataclass
class ServingModel:
    """A model the service can retrain: twins, effect model and (optionally) the generator behind them."""

    model_id: str
    population: TwinPopulation
    effect_model: EffectModel
    generator: TwinGenerator | None = None
    parent_model_id: str | None = None

    def engine(self, **kwargs: Any) -> SimulationEngine:
        """A :class:`~twinkernel.simulation_engine.SimulationEngine` over this model's twins and effects."""
        from ..simulation_engine import SimulationEngine

        return SimulationEngine(self.population, effect_model=self.effect_model, **kwargs)


def utc_now() -> datetime:
    """The current UTC time (the service's default clock)."""
    return datetime.now(UTC)


class LeaseLostError(RuntimeError):
    """A worker's lease on a running job expired and another worker took the job over."""


def default_worker_id() -> str:
    """``<host>:<pid>:<random>``: names the worker holding a job's lease (unique per service object)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
