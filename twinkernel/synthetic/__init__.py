"""A built-in, seeded synthetic world with known ground truth.

Nothing here downloads data. :func:`hcp_world` builds healthcare professionals (HCPs) whose columns depend on
each other the way commercial data does (decile follows patient volume, preferred channel follows digital
engagement, the specialty mix differs by region, adoption stage follows experience and engagement), a
monthly history with an outcome drawn from a known generating function and, optionally, past interventions
whose true effects differ from the configuration's priors and may drift over time. :func:`patient_world`
and :func:`territory_world` are smaller variants. All three return a frozen :class:`SyntheticWorld` holding
Polars frames and the :class:`WorldTruth` that generated them.

Randomness: one ``numpy.random.Generator`` (PCG64) seeded with ``seed``; the same arguments always give the
same world.

The HCP outcome is ``brand_share``, the share of an HCP's target patients on the brand in a month::

    mu = sigmoid(intercept + sum_k coef_k * (x_k - center_k) / scale_k + specialty_effect + adoption_effect
                 + trend * month_index + seasonality * sin(2 pi month_index / 12) + hidden_hcp_effect)
    brand_share = mu + realised intervention effect (if treated that month) + Normal(0, noise_sd)

:func:`run_experiment` runs a randomised test inside a world (its ground truth for calibration);
``hcp_world(..., true_effect_factors=...)`` builds a world whose true base effects are given multiples of the
configuration's priors.

Deciles follow the commercial convention: decile 10 holds the HCPs with the largest patient volume.
"""

from ._world import (
    CHANNELS,
    INTERVENTION_TYPES,
    PRACTICE_TYPES,
    REGIONS,
    SPECIALTIES,
    SyntheticWorld,
    TrueEffect,
    WorldTruth,
)
from .experiments import eligible_units, run_experiment, true_ate
from .frames import hcp_panel_frame, hcp_training_frame, panel_frame, training_frame
from .hcp import hcp_world
from .simple import (
    AGE_GROUPS,
    COMPETITOR_LEVELS,
    DIAGNOSES,
    INSURANCE_TYPES,
    JOURNEY_STAGES,
    patient_world,
    territory_world,
)

__all__ = [
    "AGE_GROUPS",
    "CHANNELS",
    "COMPETITOR_LEVELS",
    "DIAGNOSES",
    "INSURANCE_TYPES",
    "INTERVENTION_TYPES",
    "JOURNEY_STAGES",
    "PRACTICE_TYPES",
    "REGIONS",
    "SPECIALTIES",
    "SyntheticWorld",
    "TrueEffect",
    "WorldTruth",
    "eligible_units",
    "hcp_panel_frame",
    "hcp_training_frame",
    "hcp_world",
    "panel_frame",
    "patient_world",
    "run_experiment",
    "territory_world",
    "training_frame",
    "true_ate",
]
