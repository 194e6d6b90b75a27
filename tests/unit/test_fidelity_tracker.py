"""FidelityTracker: grades, coverage by the prediction interval, persistence and per-model reports."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import make_population_frame
from twinkernel import InterventionConfig, PopulationFilter, SimulationEngine, TwinPopulation
from twinkernel.fidelity_tracker import (
    FidelityTracker,
    UnknownSimulationError,
    assess_prediction,
    fidelity_score,
)
from twinkernel.models import FidelityGrade
from twinkernel.models.experiment import ExperimentResult
from twinkernel.repository import TwinRepository

EMAIL = InterventionConfig(intervention_type="email_campaign", channel="email")


def _engine(model_id: str = "model-a", n: int = 2000, seed: int = 0) -> SimulationEngine:
    pop = TwinPopulation.from_frame(make_population_frame(n, seed), model_id=model_id)
    return SimulationEngine(pop, cache=False, repository=False)


@pytest.fixture
def repo(tmp_path):
    r = TwinRepository(data_dir=tmp_path)
    yield r
    r.close()


@pytest.fixture(scope="module")
def engine():
    return _engine()


def _sim(engine, seed=1, ic=EMAIL, pf=None):
    return engine.simulate(ic, pf, seed=seed, calculate_heterogeneity=False)


class TestAssessment:
    def test_fidelity_score_is_the_spec_formula(self, config):
        f = config.fidelity
        assert fidelity_score(0.2, 0.9) == pytest.approx(f.error_weight * 0.8 + f.coverage_weight * 0.9)
        assert fidelity_score(1.7, 1.0) == pytest.approx(f.coverage_weight)  # max(0, 1 - error)
        # no coverage checked: the configured default coverage rate (0.5), not 0
        assert fidelity_score(0.0, None) == pytest.approx(f.error_weight + f.coverage_weight * 0.5)
        assert fidelity_score(None, None) is None

    def test_zero_error_is_excellent(self):
        a = assess_prediction(0.04, 0.04, None)
        assert a.prediction_error == 0.0
        assert a.grade is FidelityGrade.EXCELLENT
        assert a.ci_coverage is None

    @pytest.mark.parametrize(
        ("sim", "grade"), [(0.056, "good"), (0.0625, "fair"), (0.07, "poor"), (0.0504, "excellent")]
    )
    def test_grades_by_relative_error(self, sim, grade):
        assert assess_prediction(sim, 0.05, None).grade.value == grade

    def test_actual_zero_is_graded_on_the_absolute_error(self, config):
        min_effect = config.simulation.recommendations.deploy_threshold
        a = assess_prediction(0.004, 0.0, (-0.01, 0.02))
        assert a.error_basis == "absolute"
        assert a.prediction_error == pytest.approx(0.004 / min_effect)
        assert a.grade is FidelityGrade.EXCELLENT  # 0.08 of the minimum effect
        assert "relative error is undefined" in a.note and f"{min_effect:g}" in a.note
        assert a.ci_coverage is True


class TestValidate:
    def test_perfect_prediction_is_excellent_and_persisted(self, engine, repo):
        tracker = FidelityTracker(repo)
        r = _sim(engine)
        rec = tracker.record_prediction(r)
        assert rec.fidelity_grade is FidelityGrade.UNVALIDATED and rec.model_id == "model-a"
        v = tracker.validate(
            r.simulation_id, r.simulated_ate, actual_std_error=0.004, actual_sample_size=2000
        )
        assert v.prediction_error == 0.0
        assert v.fidelity_grade is FidelityGrade.EXCELLENT
        assert v.ci_coverage is True
        # a new tracker over the same store reads the validated record back
        again = FidelityTracker(TwinRepository(data_dir=repo.data_dir)).get_fidelity_record(r.simulation_id)
        assert again == v

    def test_coverage_uses_the_prediction_interval_at_the_experiments_own_size(self, engine, repo):
        tracker = FidelityTracker(repo)
        r = _sim(engine, seed=2)
        tracker.record_prediction(r)
        lo, hi = r.prediction_interval(n_per_arm=400, confidence_level=r.confidence_level)
        # inside the prediction interval for 400 per arm, far outside the population interval
        actual = r.simulated_ate + 0.8 * (hi - r.simulated_ate)
        assert actual > r.simulated_ci_upper
        v = tracker.validate(r.simulation_id, actual, actual_std_error=0.01, actual_sample_size=800)
        assert v.ci_coverage is True
        assert (v.prediction_interval_lower, v.prediction_interval_upper) == pytest.approx((lo, hi))
        assert v.n_per_arm == 400
        assert v.prediction_error == pytest.approx((r.simulated_ate - actual) / actual)

        r2 = _sim(engine, seed=3)
        tracker.record_prediction(r2)
        _, hi2 = r2.prediction_interval(n_per_arm=400)
        v2 = tracker.validate(r2.simulation_id, hi2 + 0.01, actual_std_error=0.01, actual_sample_size=800)
        assert v2.ci_coverage is False

    def test_actual_zero_is_validated_with_a_note(self, engine, repo):
        tracker = FidelityTracker(repo)
        r = _sim(engine, seed=4)
        tracker.record_prediction(r)
        v = tracker.validate(r.simulation_id, 0.0, actual_std_error=0.01, actual_sample_size=1000)
        assert v.error_basis == "absolute"
        assert math.isfinite(v.prediction_error)
        assert "minimum effect" in v.validation_notes

    def test_unknown_simulation_is_a_clear_error(self, repo):
        tracker = FidelityTracker(repo)
        with pytest.raises(
            UnknownSimulationError, match=r"never recorded: call FidelityTracker\.record_prediction"
        ):
            tracker.validate("7d7e0c4e-1111-4222-8333-944455556666", 0.05)

    def test_bad_values_name_the_parameter(self, engine, repo):
        tracker = FidelityTracker(repo)
        r = _sim(engine, seed=5)
        tracker.record_prediction(r)
        with pytest.raises(ValueError, match="`actual_ate` must be a finite number; got nan"):
            tracker.validate(r.simulation_id, float("nan"))
        with pytest.raises(ValueError, match="`actual_std_error` must be a finite number > 0; got -1"):
            tracker.validate(r.simulation_id, 0.05, actual_std_error=-1)
        with pytest.raises(ValueError, match="`actual_sample_size` must be an integer >= 2"):
            tracker.validate(r.simulation_id, 0.05, actual_sample_size=1)

    def test_failed_simulation_cannot_be_recorded(self, engine, repo):
        failed = engine.simulate(EMAIL, PopulationFilter(deciles=[1], regions=["nowhere"]), seed=1)
        with pytest.raises(ValueError, match="must be a completed simulation"):
            FidelityTracker(repo).record_prediction(failed)

    def test_validation_stores_the_experiment_for_calibration(self, engine, repo):
        tracker = FidelityTracker(repo)
        pf = PopulationFilter(deciles=[8, 9, 10])
        r = _sim(engine, seed=6, pf=pf)
        tracker.record_prediction(r)
        tracker.validate(
            r.simulation_id,
            0.031,
            actual_ci=(0.011, 0.051),
            actual_sample_size=1501,
            actual_experiment_id="exp-42",
            completion_date=date(2026, 3, 1),
        )
        (exp,) = tracker.experiments(["model-a"])
        assert isinstance(exp, ExperimentResult)
        assert exp.experiment_id == "exp-42"
        assert exp.population_filter == pf and exp.intervention == EMAIL
        assert (exp.n_treated, exp.n_control) == (751, 750)
        assert exp.observed_ate == 0.031 and exp.completion_date == date(2026, 3, 1)
        assert exp.standard_error == pytest.approx(0.02 / 1.959963984540054)
        assert tracker.experiments(["another-model"]) == []


class TestReport:
    def test_report_score_rates_and_types(self, engine, repo, config):
        tracker = FidelityTracker(repo)
        errors = []
        covered = []
        for i, ic in enumerate([EMAIL, EMAIL, InterventionConfig(intervention_type="digital_engagement")]):
            r = _sim(engine, seed=10 + i, ic=ic)
            tracker.record_prediction(r)
            actual = r.simulated_ate * (1.25 if i else 1.0)
            v = tracker.validate(r.simulation_id, actual, actual_std_error=0.01, actual_sample_size=600)
            errors.append(abs(v.prediction_error))
            covered.append(v.ci_coverage)
        tracker.record_prediction(_sim(engine, seed=20))  # predicted, never validated
        rep = tracker.get_model_fidelity_report("model-a")
        mae = sum(errors) / 3
        cov = sum(covered) / 3
        assert rep.n_predictions == 4 and rep.n_validations == 3
        assert rep.mean_absolute_error == pytest.approx(mae)
        assert rep.coverage_rate == pytest.approx(cov)
        assert rep.fidelity_score == pytest.approx(fidelity_score(mae, cov))
        assert rep.grade_counts["unvalidated"] == 1 and rep.grade_counts["excellent"] == 1
        assert rep.by_intervention_type["email_campaign"].n_validations == 2
        assert rep.by_intervention_type["digital_engagement"].mean_absolute_error == pytest.approx(0.2)
        assert rep.degradation_detected is False and rep.degradation_detail is None  # too few

    def test_reports_never_mix_models_and_empty_is_unknown(self, engine, repo):
        tracker = FidelityTracker(repo)
        other = _engine("model-b", seed=1)
        r = _sim(other, seed=1)
        tracker.record_prediction(r)
        tracker.validate(r.simulation_id, r.simulated_ate * 2, actual_std_error=0.01, actual_sample_size=600)
        empty = tracker.get_model_fidelity_report("model-a")
        assert empty.n_validations == 0 and empty.fidelity_score is None and empty.coverage_rate is None
        assert tracker.get_model_fidelity_report("model-b").n_validations == 1

    @pytest.mark.parametrize(("older", "recent", "expected"), [(1.0, 1.5, True), (1.5, 1.0, False)])
    def test_degradation_compares_recent_and_older_halves(self, engine, repo, older, recent, expected):
        tracker = FidelityTracker(repo)
        for i in range(10):
            r = _sim(engine, seed=100 + i)
            tracker.record_prediction(r)
            factor = older if i < 5 else recent  # actual = sim / factor: |error| = factor - 1
            tracker.validate(
                r.simulation_id, r.simulated_ate / factor, actual_std_error=0.01, actual_sample_size=600
            )
        rep = tracker.get_model_fidelity_report("model-a")
        assert rep.degradation_detected is expected
        assert "recent mean |error|" in rep.degradation_detail

    def test_lookback_leaves_out_old_validations(self, engine, repo):
        tracker = FidelityTracker(repo)
        r = _sim(engine, seed=30)
        rec = tracker.record_prediction(r)
        old = rec.model_copy(
            update={
                "actual_ate": 0.1,
                "prediction_error": 0.5,
                "fidelity_grade": FidelityGrade.POOR,
                "validated_at": datetime.now(UTC) - timedelta(days=200),
            }
        )
        repo.save_fidelity_record({**old.to_dict(), "id": str(old.simulation_id)})
        assert tracker.get_model_fidelity_report("model-a").n_validations == 0
        assert tracker.get_model_fidelity_report("model-a", lookback_days=365).n_validations == 1
        with pytest.raises(ValueError, match="`lookback_days` must be a positive integer; got 0"):
            tracker.get_model_fidelity_report("model-a", lookback_days=0)
