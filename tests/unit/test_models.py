"""Boundary models (issue 8): frozen and hashable values, exact JSON round trips, validation from config."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from twinkernel.config import get_config
from twinkernel.models import (
    DigitalTwin,
    EffectHeterogeneity,
    FidelityRecord,
    FrozenMapping,
    InterventionConfig,
    PopulationFilter,
    SegmentEffect,
    SimulationRecommendation,
    SimulationResult,
    SimulationStatus,
)
from twinkernel.models import intervention as intervention_module


def _result(**overrides) -> SimulationResult:
    seg = {"ate": 0.1 + 0.2, "std": 1 / 3, "n": 12, "ci_lower": 5e-324, "ci_upper": 0.7}
    fields = dict(
        intervention_config=InterventionConfig(intervention_type="email_campaign", channel="email"),
        twin_count=500,
        simulated_ate=0.1 + 0.2,
        simulated_ci_lower=1 / 3,
        simulated_ci_upper=2 / 3 + 1e-17,
        simulated_std_error=1e-300,
        confidence_level=0.95,
        effect_heterogeneity={"by_region": {"south": seg}, "by_decile": {"3": seg}},
        recommendation=SimulationRecommendation.REFINE,
        recommendation_rationale="because",
        simulation_confidence=0.123456789012345678,
        status=SimulationStatus.COMPLETED,
        timings_ms={"kernel_ms": 0.1 + 0.7},
        warnings=["one", "two"],
        data_quality={"decile": {"clamped": 3}},
        effect_size_cohens_d=math.inf,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        seed=2**63 + 5,
    )
    fields.update(overrides)
    return SimulationResult(**fields)


class TestFrozenResults:
    def test_result_fields_cannot_be_assigned(self):
        r = _result()
        # Defect: `r.twin_count = -5` used to be accepted.
        with pytest.raises(ValidationError, match="frozen"):
            r.twin_count = 1
        with pytest.raises(ValidationError, match="frozen"):
            r.recommendation = SimulationRecommendation.DEPLOY
        assert r.twin_count == 500

    def test_nested_containers_are_read_only(self):
        r = _result()
        assert isinstance(r.warnings, tuple) and r.warnings == ("one", "two")
        with pytest.raises(TypeError, match="does not support item assignment"):
            r.effect_heterogeneity.by_region["north"] = r.effect_heterogeneity.by_region["south"]
        with pytest.raises(TypeError, match="does not support item assignment"):
            r.data_quality["decile"]["clamped"] = 0
        with pytest.raises(TypeError, match="does not support item assignment"):
            r.timings_ms["kernel_ms"] = 0.0
        with pytest.raises(ValidationError, match="frozen"):
            r.effect_heterogeneity.by_region["south"].ate = 1.0
        assert r.data_quality == {"decile": {"clamped": 3}}

    def test_results_hash_and_compare_by_value(self):
        sid = uuid4()
        a, b = _result(simulation_id=sid), _result(simulation_id=sid)
        assert a == b and hash(a) == hash(b)
        assert len({a, b}) == 1

    def test_segment_reads_by_name_and_attribute(self):
        seg = SegmentEffect(ate=0.2, std=0.1, n=40, ci_lower=0.15, ci_upper=0.25)
        assert seg["ate"] == seg.ate == 0.2 and seg["n"] == 40
        with pytest.raises(KeyError):
            seg["median"]
        het = EffectHeterogeneity(by_region={"south": seg, "west": {"ate": -0.3, "std": 0.1, "n": 12}})
        top = het.get_top_segments(1)
        assert top == [
            {
                "dimension": "region",
                "segment": "west",
                "ate": -0.3,
                "std": 0.1,
                "n": 12,
                "ci_lower": None,
                "ci_upper": None,
                "prob_above_deploy": None,
            }
        ]
        with pytest.raises(ValueError, match=r"`n` must be a non-negative integer; got -1"):
            het.get_top_segments(-1)


class TestSerialisation:
    def test_json_round_trip_is_exact(self):
        r = _result()
        back = SimulationResult.model_validate_json(r.model_dump_json())
        assert back == r
        assert back.simulated_ate == 0.1 + 0.2
        assert back.simulated_std_error == 1e-300
        assert back.effect_size_cohens_d == math.inf  # not turned into null
        assert back.effect_heterogeneity.by_region["south"].ci_lower == 5e-324
        assert back.seed == 2**63 + 5

    def test_to_dict_is_json_safe_plain_data(self):
        r = _result()
        d = r.to_dict()
        text = json.dumps(d)
        assert json.loads(text)["effect_heterogeneity"]["by_region"]["south"]["n"] == 12
        assert d["warnings"] == ["one", "two"]
        assert d["data_quality"] == {"decile": {"clamped": 3}} and type(d["data_quality"]) is dict
        assert d["intervention_config"]["target_deciles"] == []
        assert d["recommendation"] == "refine" and d["status"] == "completed"
        assert SimulationResult.model_validate(d) == r

    def test_failed_result_may_have_no_recommendation(self):
        r = _result(recommendation=None, status=SimulationStatus.FAILED, twin_count=0)
        assert r.recommendation is None
        assert SimulationResult.model_validate_json(r.model_dump_json()).recommendation is None

    def test_other_values_export_dicts(self):
        ic = InterventionConfig(
            intervention_type="call_frequency_increase", extra_params={"additional_calls": 2}
        )
        assert json.loads(json.dumps(ic.to_dict()))["extra_params"] == {"additional_calls": 2}
        pf = PopulationFilter(regions=["west", "south"])
        assert pf.to_dict()["regions"] == ["south", "west"]
        rec = FidelityRecord(
            simulation_id=uuid4(),
            simulated_ate=0.1,
            simulated_ci_lower=0.0,
            simulated_ci_upper=0.2,
            confounding_factors=["season"],
        )
        assert json.loads(json.dumps(rec.to_dict()))["confounding_factors"] == ["season"]
        twin = DigitalTwin(twin_id="a", features={"decile": 3, "tags": ["x"]})
        assert json.loads(json.dumps(twin.to_dict()))["features"] == {"decile": 3, "tags": ["x"]}


class TestInterventionConfig:
    def test_hashable_and_canonical(self):
        a = InterventionConfig(
            intervention_type="Email_Campaign ",
            target_deciles=[3, 1, 3],
            target_regions=["west", "south"],
        )
        b = InterventionConfig(
            intervention_type="email_campaign", target_deciles=(1, 3), target_regions=["south", "west"]
        )
        # Defect: list fields made the frozen config unhashable and mutable in place.
        assert a == b and hash(a) == hash(b)
        assert a.target_deciles == (1, 3) and a.target_regions == ("south", "west")
        assert {a: "x"}[b] == "x"
        assert a.canonical_json() == b.canonical_json()

    def test_extra_params_is_an_immutable_hashable_mapping(self):
        ic = InterventionConfig(
            intervention_type="call_frequency_increase", extra_params={"additional_calls": 2}
        )
        assert isinstance(ic.extra_params, FrozenMapping)
        assert ic.extra_params == {"additional_calls": 2}
        with pytest.raises(TypeError, match="does not support item assignment"):
            ic.extra_params["additional_calls"] = 5
        same = InterventionConfig(
            intervention_type="call_frequency_increase", extra_params=FrozenMapping({"additional_calls": 2})
        )
        assert hash(ic) == hash(same)
        assert InterventionConfig.model_validate_json(ic.model_dump_json()) == ic

    def test_unknown_extra_params_key_lists_known_keys(self):
        # Defect: a typo was ignored and the default of 0 calls silently used.
        with pytest.raises(
            ValidationError,
            match=r"unknown keys \['adittional_calls'\] for intervention_type "
            r"'call_frequency_increase'; known keys: additional_calls",
        ):
            InterventionConfig(
                intervention_type="call_frequency_increase", extra_params={"adittional_calls": 2}
            )
        with pytest.raises(ValidationError, match=r"unknown keys \['additional_calls'\].*known keys: none"):
            InterventionConfig(intervention_type="email_campaign", extra_params={"additional_calls": 2})

    @pytest.mark.parametrize("bad", [-1, 11, 2.5, "3", True])
    def test_additional_calls_checked_at_validation(self, bad):
        limit = get_config().simulation.intervention_effects.types["call_frequency_increase"]
        assert limit.max_additional_calls == 10
        with pytest.raises(ValidationError, match=r"additional_calls'\]` must be an integer from 0 to 10"):
            InterventionConfig(
                intervention_type="call_frequency_increase", extra_params={"additional_calls": bad}
            )

    def test_unknown_channel_lists_known_channels(self):
        known = get_config().simulation.known_channels
        with pytest.raises(
            ValidationError, match=r"`channel` must be one of email, digital, in_person, phone; got 'fax'"
        ):
            InterventionConfig(intervention_type="email_campaign", channel="fax")
        assert InterventionConfig(intervention_type="email_campaign", channel=" EMAIL ").channel == "email"
        assert "email" in known

    def test_duration_and_decile_bounds_come_from_config(self, monkeypatch):
        cfg = get_config()
        assert InterventionConfig(intervention_type="x").duration_weeks == (
            cfg.simulation.recommendations.default_duration_weeks
        )
        sim = cfg.simulation
        effects = sim.intervention_effects.model_copy(
            update={"decile": sim.intervention_effects.decile.model_copy(update={"high": 12})}
        )
        changed = cfg.model_copy(
            update={
                "simulation": sim.model_copy(
                    update={
                        "intervention_effects": effects,
                        "recommendations": sim.recommendations.model_copy(
                            update={"default_duration_weeks": 13}
                        ),
                    }
                )
            }
        )
        monkeypatch.setattr(intervention_module, "get_config", lambda: changed)
        assert InterventionConfig(intervention_type="x").duration_weeks == 13
        assert InterventionConfig(intervention_type="x", target_deciles=[12]).target_deciles == (12,)
        assert PopulationFilter(deciles=[11, 12]).deciles == (11, 12)
        with pytest.raises(ValidationError, match=r"`deciles` must be between 1 and 12; got \[13\]"):
            PopulationFilter(deciles=[13])


class TestOtherValues:
    def test_population_filter_frozen_and_hashable(self):
        a = PopulationFilter(specialties=["b", "a", "a"], deciles=[2, 1])
        b = PopulationFilter(specialties=("a", "b"), deciles=[1, 2])
        assert a == b and hash(a) == hash(b) and a.specialties == ("a", "b")
        with pytest.raises(ValidationError, match="frozen"):
            a.deciles = (3,)
        with pytest.raises(ValidationError, match=r"`deciles` must be between 1 and 10; got \[0\]"):
            PopulationFilter(deciles=[0])

    def test_fidelity_record_and_twin_frozen(self):
        rec = FidelityRecord(
            simulation_id=uuid4(), simulated_ate=0.1, simulated_ci_lower=0.0, simulated_ci_upper=0.2
        )
        with pytest.raises(ValidationError, match="frozen"):
            rec.actual_ate = 0.1
        validated = rec.model_copy(update={"actual_ate": 0.1})
        assert validated.actual_ate == 0.1 and rec.actual_ate is None
        assert hash(rec) != hash(validated)
        twin = DigitalTwin(twin_id="t1", features={"decile": 3, "tags": ["a", "b"]})
        assert twin.features["tags"] == ("a", "b")
        with pytest.raises(TypeError, match="does not support item assignment"):
            twin.features["decile"] = 4
        assert hash(twin) == hash(DigitalTwin(twin_id="t1", features={"tags": ["a", "b"], "decile": 3}))
