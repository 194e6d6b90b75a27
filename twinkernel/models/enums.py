"""Enumerations shared by the domain models."""

from __future__ import annotations

from enum import StrEnum


class TwinType(StrEnum):
    """What a twin stands for."""

    HCP = "hcp"
    PATIENT = "patient"
    TERRITORY = "territory"


class SimulationStatus(StrEnum):
    """A result's state. PARTIAL: ``simulate(timeout_s=...)`` ran out of time and estimated the ATE from a
    seeded random sample of blocks of twins (``twins_used`` of ``twin_count``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"


class SimulationRecommendation(StrEnum):
    """What to do with the intervention: run the real test, rework it first, or drop it."""

    DEPLOY = "deploy"
    REFINE = "refine"
    SKIP = "skip"


class FidelityGrade(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNVALIDATED = "unvalidated"


class InterventionType(StrEnum):
    """The six intervention types with priors in the configuration (other strings are accepted)."""

    EMAIL_CAMPAIGN = "email_campaign"
    CALL_FREQUENCY_INCREASE = "call_frequency_increase"
    SPEAKER_PROGRAM_INVITATION = "speaker_program_invitation"
    SAMPLE_DISTRIBUTION = "sample_distribution"
    PEER_INFLUENCE_ACTIVATION = "peer_influence_activation"
    DIGITAL_ENGAGEMENT = "digital_engagement"


ADOPTION_STAGES: tuple[str, ...] = (
    "innovator",
    "early_adopter",
    "early_majority",
    "late_majority",
    "laggard",
)
"""Known adoption stages, in diffusion order. Any other value is coded as ``other`` (multiplier 1.0)."""
