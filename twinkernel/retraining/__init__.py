"""Retraining: decisions, durable jobs, leave-one-experiment-out scoring (see :mod:`.service`)."""

from .scoring import LooScore, leave_one_out_score, prior_simulations
from .service import (
    LeaseLostError,
    ServingModel,
    TrainingData,
    TrainingDataProvider,
    TwinRetrainingConfig,
    TwinRetrainingService,
)

__all__ = [
    "LeaseLostError",
    "LooScore",
    "ServingModel",
    "TrainingData",
    "TrainingDataProvider",
    "TwinRetrainingConfig",
    "TwinRetrainingService",
    "leave_one_out_score",
    "prior_simulations",
]
