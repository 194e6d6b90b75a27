"""The synthetic world the calibration and end-to-end tests share: true base effects differ from the priors
by factors 0.3 .. 2 (sample distribution is harmful), and one intervention config per type."""

from __future__ import annotations

from twinkernel import InterventionConfig

FACTORS = {
    "email_campaign": 0.3,
    "call_frequency_increase": 2.0,
    "speaker_program_invitation": 0.6,
    "sample_distribution": -1.0,
    "peer_influence_activation": 1.5,
    "digital_engagement": 0.8,
}
CONFIGS = {
    "email_campaign": InterventionConfig(intervention_type="email_campaign", channel="email"),
    "call_frequency_increase": InterventionConfig(
        intervention_type="call_frequency_increase", extra_params={"additional_calls": 1}
    ),
    "speaker_program_invitation": InterventionConfig(intervention_type="speaker_program_invitation"),
    "sample_distribution": InterventionConfig(intervention_type="sample_distribution"),
    "peer_influence_activation": InterventionConfig(intervention_type="peer_influence_activation"),
    "digital_engagement": InterventionConfig(intervention_type="digital_engagement", channel="digital"),
}
