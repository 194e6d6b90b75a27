"""ExperimentResult: a real experiment as calibration consumes it (twinkernel.models.experiment)."""

from __future__ import annotations

import csv
import doctest
import io
import json
from datetime import date

import pytest
from pydantic import ValidationError
from scipy import stats

from twinkernel.models import InterventionConfig, PopulationFilter
from twinkernel.models import experiment as experiment_module
from twinkernel.models.experiment import CSV_COLUMNS, ExperimentResult


def _base(**overrides):
    data = {
        "experiment_id": "exp-1",
        "intervention": {"intervention_type": "email_campaign", "channel": "email", "duration_weeks": 6},
        "observed_ate": 0.031,
        "std_error": 0.008,
        "n_treated": 800,
        "n_control": 790,
        "completion_date": "2026-03-14",
    }
    data.update(overrides)
    return data


def test_doctests_pass():
    result = doctest.testmod(experiment_module, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0


def test_from_dict_fields_and_derived_values():
    e = ExperimentResult.from_dict(_base())
    assert e.experiment_id == "exp-1"
    assert isinstance(e.intervention, InterventionConfig)
    assert e.intervention.duration_weeks == 6 and e.intervention_type == "email_campaign"
    assert e.population_filter is None
    assert e.standard_error == 0.008
    assert e.n_total == 1590
    assert e.completion_date == date(2026, 3, 14)
    assert e.age_days(date(2026, 4, 13)) == 30.0


def test_accepts_model_instances():
    e = ExperimentResult(
        **_base(
            intervention=InterventionConfig(intervention_type="digital_engagement"),
            population_filter=PopulationFilter(deciles=[9, 10]),
        )
    )
    assert e.intervention_type == "digital_engagement"
    assert list(e.population_filter.deciles) == [9, 10]


def test_standard_error_from_a_confidence_interval():
    e = ExperimentResult.from_dict(
        _base(std_error=None, ci_lower=0.010, ci_upper=0.050, confidence_level=0.95)
    )
    assert e.standard_error == pytest.approx(0.04 / (2 * stats.norm.ppf(0.975)), rel=1e-12)
    e90 = ExperimentResult.from_dict(
        _base(std_error=None, ci_lower=0.0, ci_upper=0.0329, confidence_level=0.9)
    )
    assert e90.standard_error == pytest.approx(0.0329 / (2 * 1.6448536269514722), rel=1e-12)


def test_std_error_wins_when_both_are_given():
    e = ExperimentResult.from_dict(_base(std_error=0.002, ci_lower=0.0, ci_upper=0.1, confidence_level=0.95))
    assert e.standard_error == 0.002


def test_frozen():
    e = ExperimentResult.from_dict(_base())
    with pytest.raises(ValidationError, match="frozen"):
        e.observed_ate = 1.0


def test_to_dict_is_json_safe_and_round_trips():
    e = ExperimentResult.from_dict(
        _base(population_filter={"regions": ["west"], "min_baseline_outcome": 0.0})
    )
    d = e.to_dict()
    assert d["completion_date"] == "2026-03-14"
    text = json.dumps(d)  # plain json, no custom encoder
    assert ExperimentResult.from_dict(json.loads(text)) == e
    assert ExperimentResult.from_json(e.to_json()) == e
    assert ExperimentResult.from_json(e.to_json()).population_filter.min_baseline_outcome == 0.0


# --- bad values: one test per message ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"std_error": -0.01}, r"std_error\n  Input should be greater than 0"),
        ({"std_error": 0.0}, r"std_error\n  Input should be greater than 0"),
        ({"n_treated": 0}, r"n_treated\n  Input should be greater than or equal to 1"),
        ({"n_control": -3}, r"n_control\n  Input should be greater than or equal to 1"),
        ({"observed_ate": float("nan")}, r"observed_ate\n  Input should be a finite number"),
        ({"experiment_id": "  "}, r"experiment_id\n  Value error, experiment_id must not be blank"),
        ({"completion_date": "14/03/2026"}, r"completion_date\n  Input should be a valid date"),
        (
            {"confidence_level": 1.5, "ci_lower": 0.0, "ci_upper": 0.1},
            r"confidence_level\n  Input should be less",
        ),
        (
            {"std_error": None},
            r"std_error or a CI \(ci_lower, ci_upper, confidence_level\) is required; got neither",
        ),
        (
            {"std_error": None, "ci_lower": 0.05, "ci_upper": 0.01, "confidence_level": 0.95},
            r"ci_lower \(0.05\) must be below ci_upper \(0.01\)",
        ),
        (
            {"std_error": None, "ci_lower": 0.05, "ci_upper": 0.05, "confidence_level": 0.95},
            r"ci_lower \(0.05\) must be below ci_upper \(0.05\)",
        ),
        ({"ci_lower": 0.01}, r"ci_upper is required when the other CI bound is given"),
        ({"ci_upper": 0.01}, r"ci_lower is required when the other CI bound is given"),
        (
            {"std_error": None, "ci_lower": 0.0, "ci_upper": 0.1},
            r"confidence_level is required with ci_lower / ci_upper",
        ),
        (
            {"intervention": {"intervention_type": "email_campaign", "duration_weeks": 0}},
            r"intervention.duration_weeks",
        ),
        ({"population_filter": {"deciles": [11]}}, r"population_filter.deciles"),
        ({"sample_size": 10}, r"sample_size\n  Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValidationError, match=message):
        ExperimentResult.from_dict(_base(**overrides))


# --- CSV rows -----------------------------------------------------------------------------------------------
def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_from_csv_row_with_flat_columns():
    text = (
        "experiment_id,intervention_type,channel,duration_weeks,intensity_multiplier,target_deciles,"
        "extra_params,observed_ate,std_error,ci_lower,ci_upper,confidence_level,n_treated,n_control,"
        "completion_date,filter_regions,filter_deciles,filter_min_baseline_outcome\n"
        'e1,call_frequency_increase,in_person,12,1.5,8;9;10,"{""additional_calls"": 2}",0.052,0.011,,,,'
        "1200,1180,2026-06-02,west;midwest,,0.0\n"
    )
    (row,) = _csv_rows(text)
    e = ExperimentResult.from_csv_row(row)
    assert e.intervention == InterventionConfig(
        intervention_type="call_frequency_increase",
        channel="in_person",
        duration_weeks=12,
        intensity_multiplier=1.5,
        target_deciles=[8, 9, 10],
        extra_params={"additional_calls": 2},
    )
    assert e.population_filter == PopulationFilter(regions=["west", "midwest"], min_baseline_outcome=0.0)
    assert e.observed_ate == 0.052 and e.standard_error == 0.011
    assert (e.n_treated, e.n_control, e.completion_date) == (1200, 1180, date(2026, 6, 2))
    assert e.ci_lower is None and e.confidence_level is None  # empty cells are missing values


def test_from_csv_row_with_json_columns_and_a_ci():
    row = {
        "experiment_id": "e2",
        "intervention": json.dumps({"intervention_type": "email_campaign", "channel": "digital"}),
        "population_filter": json.dumps({"specialties": ["oncology"]}),
        "observed_ate": "-0.004",
        "ci_lower": "-0.02",
        "ci_upper": "0.012",
        "confidence_level": "0.9",
        "n_treated": "300",
        "n_control": "310",
        "completion_date": "2026-01-10",
    }
    e = ExperimentResult.from_csv_row(row)
    assert e.intervention.channel == "digital"
    assert list(e.population_filter.specialties) == ["oncology"]
    assert e.standard_error == pytest.approx(0.032 / (2 * 1.6448536269514722), rel=1e-12)
    assert e.observed_ate == -0.004


def test_from_csv_row_without_filter_columns_has_no_filter():
    row = {k: str(v) for k, v in _base().items() if k != "intervention"}
    row["intervention_type"] = "digital_engagement"
    e = ExperimentResult.from_csv_row(row)
    assert e.population_filter is None and e.intervention_type == "digital_engagement"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"colour": "red"}, ValueError, r"unknown CSV column\(s\) \['colour'\]"),
        ({"extra_params": "{not json"}, ValueError, r"CSV column `extra_params` must hold valid JSON"),
        (
            {"intervention": '{"intervention_type": "email_campaign"}'},
            ValueError,
            r"CSV column `intervention` and flat columns \['intervention_type'\] both given",
        ),
        ({"n_treated": "many"}, ValidationError, r"n_treated\n  Input should be a valid integer"),
        ({"std_error": "-0.5"}, ValidationError, r"std_error\n  Input should be greater than 0"),
        ({"target_deciles": "1;x"}, ValidationError, r"intervention.target_deciles.1"),
    ],
)
def test_from_csv_row_rejects_bad_rows(change, error, message):
    row = {k: str(v) for k, v in _base().items() if k != "intervention"}
    row["intervention_type"] = "email_campaign"
    row.update(change)
    with pytest.raises(error, match=message):
        ExperimentResult.from_csv_row(row)


def test_population_filter_json_column_must_be_an_object():
    row = {k: str(v) for k, v in _base().items() if k != "intervention"}
    row.update(intervention_type="email_campaign", population_filter="[1, 2]")
    with pytest.raises(
        ValueError, match=r"CSV column `population_filter` must hold a JSON object; got '\[1, 2\]'"
    ):
        ExperimentResult.from_csv_row(row)


def test_csv_columns_cover_every_model_field():
    fields = set(ExperimentResult.model_fields)
    assert fields <= set(CSV_COLUMNS)
    assert {c for c in CSV_COLUMNS if c in InterventionConfig.model_fields} == set(
        InterventionConfig.model_fields
    )
    assert {c.removeprefix("filter_") for c in CSV_COLUMNS if c.startswith("filter_")} == set(
        PopulationFilter.model_fields
    )
