"""The plan's module name for the retraining service; the code lives in :mod:`twinkernel.retraining`."""

from .models.retraining import JobState, RetrainingDecision, RetrainingJob, TriggerReason
from .retraining import (
    LeaseLostError,
    ServingModel,
    TrainingData,
    TrainingDataProvider,
    TwinRetrainingConfig,
    TwinRetrainingService,
)

__all__ = [
    "JobState",
    "LeaseLostError",
    "RetrainingDecision",
    "RetrainingJob",
    "ServingModel",
    "TrainingData",
    "TrainingDataProvider",
    "TriggerReason",
    "TwinRetrainingConfig",
    "TwinRetrainingService",
]
