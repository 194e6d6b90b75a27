"""Effect learning (DML): kernels against the naive reference, recovery on designed data, every fail-closed
cause, and how a learned effect enters the effect model (parameters, summary, provenance, save/load)."""

from __future__ import annotations

from datetime import date

import numba
import numpy as np
import polars as pl
import pytest

from tests import naive_learning
from tests.effect_learning_data import TRUE_BASE, designed_history
from twinkernel import EffectModel, InterventionConfig
from twinkernel.effect_learning import EffectLearningError, LearnedEffect, learn_effect
from twinkernel.effect_learning.moments import sandwich_covariance, weighted_moments
from twinkernel.kernels import effects as K

TYPE = "digital_engagement"
ARGS = {"intervention_type": TYPE, "treatment_col": "treated", "outcome_col": "brand_share"}


@pytest.fixture(scope="module")
def designed():
    return designed_history(6000, seed=11)


@pytest.fixture(scope="module")
def learned(designed):
    return EffectModel.from_config().learn_from_history(designed, time_col="month", seed=3, **ARGS)


# --- kernels -----------------------------------------------------------------------------------------------
class TestMomentKernels:
    @pytest.mark.parametrize("n", [1, 2, 37, 40_000])
    def test_weighted_moments_match_reference(self, n):
        rng = np.random.default_rng(n)
        x = rng.normal(size=(n, 4))
        w = rng.random(n)
        y = rng.normal(size=n)
        xx, xy = weighted_moments(x, w, y)
        if n <= 37:
            ref_xx, ref_xy = naive_learning.weighted_moments(x, w, y)
        else:  # the loop reference is slow; the same sums in numpy
            ref_xx, ref_xy = (x * w[:, None]).T @ x, (x * w[:, None]).T @ y
        np.testing.assert_allclose(xx, ref_xx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xy, ref_xy, rtol=1e-12, atol=1e-12)
        assert np.array_equal(xx, xx.T)

    @pytest.mark.parametrize("clustered", [False, True])
    def test_sandwich_matches_reference(self, clustered):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(300, 3))
        r = rng.normal(size=300) * (1 + np.abs(x[:, 0]))
        clusters = rng.integers(0, 40, 300) if clustered else None
        cov, g = sandwich_covariance(x, r, clusters)
        ref = naive_learning.sandwich_covariance(x, r, clusters)
        np.testing.assert_allclose(cov, ref, rtol=1e-10)
        assert g == (40 if clustered else 300)

    def test_bit_identical_on_one_and_two_threads(self):
        rng = np.random.default_rng(9)
        x = rng.normal(size=(100_000, 5))
        w, y = rng.random(100_000), rng.normal(size=100_000)
        default = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = weighted_moments(x, w, y)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            two = weighted_moments(x, w, y)
        finally:
            numba.set_num_threads(default)
        assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


# --- recovery on designed data ------------------------------------------------------------------------------
class TestRecovery:
    def test_base_effect_and_modifiers_recovered(self, learned):
        le = learned.learned[TYPE]
        assert abs(le.base_effect - TRUE_BASE) < 2.5 * le.base_effect_sd
        assert le.base_effect_sd < 0.02
        # modifiers are the configuration's in the designed world
        assert abs(le.value("decile_slope", 0) - 0.04) < 3 * le.std_error("decile_slope")
        assert abs(le.value("engagement_slope", 0) - 0.4) < 3 * le.std_error("engagement_slope")
        assert le.diagnostics.converged and le.diagnostics.treatment_kind == "binary"
        # the naive difference in means is confounded upwards (treated rows have higher deciles)
        d = le.diagnostics
        assert (d.naive_difference - TRUE_BASE) / d.naive_std_error > 3

    def test_same_seed_same_numbers_and_pandas_input(self, designed, learned):
        again = learn_effect(designed.to_pandas(), time_col="month", seed=3, **ARGS)
        assert again.estimates == learned.learned[TYPE].estimates
        assert again.std_errors == learned.learned[TYPE].std_errors

    def test_continuous_treatment(self):
        df = designed_history(6000, seed=4, continuous=True)
        le = learn_effect(df, seed=1, **ARGS)
        assert le.diagnostics.treatment_kind == "continuous"
        assert abs(le.base_effect - TRUE_BASE) < 3 * le.base_effect_sd
        assert le.diagnostics.treatment_score_name == "r2"


# --- fail-closed --------------------------------------------------------------------------------------------
class TestFailClosed:
    def test_no_overlap_when_only_deciles_1_to_3_are_treated(self):
        df = designed_history(6000, seed=2, treat_deciles=(1, 2, 3))
        with pytest.raises(
            EffectLearningError, match=r"no overlap .*propensity outside \[0.02, 0.98\]"
        ) as exc:
            learn_effect(df, seed=1, **ARGS)
        assert exc.value.cause == "no_overlap"
        assert "no treated rows at decile 4, 5, 6, 7, 8, 9, 10" in str(exc.value)

    def test_too_few_rows(self):
        with pytest.raises(EffectLearningError, match=r"too few rows .*500 usable rows") as exc:
            learn_effect(designed_history(500, seed=1), **ARGS)
        assert exc.value.cause == "too_few_rows"

    def test_no_treatment_variation(self):
        df = designed_history(2000, seed=1).with_columns(pl.lit(0, dtype=pl.Int8).alias("treated"))
        with pytest.raises(EffectLearningError, match=r"no treatment variation .*0 treated") as exc:
            learn_effect(df, **ARGS)
        assert exc.value.cause == "no_treatment_variation"

    def test_continuous_treatment_determined_by_features(self):
        df = designed_history(3000, seed=1).with_columns((pl.col("x1") * 2.0 + 1.0).alias("treated"))
        with pytest.raises(EffectLearningError, match=r"no overlap .*explain") as exc:
            learn_effect(df, **ARGS)
        assert exc.value.cause == "no_overlap"

    def test_post_treatment_feature(self):
        df = designed_history(2000, seed=1).with_columns(
            pl.col("x1").alias("visits_after"),
            (pl.col("month") + pl.duration(days=20)).alias("visits_after_as_of"),
        )
        with pytest.raises(EffectLearningError, match=r"post-treatment feature .*'visits_after'") as exc:
            learn_effect(df, time_col="month", **ARGS)
        assert exc.value.cause == "post_treatment_feature"

    def test_target_leak(self):
        df = designed_history(2000, seed=1).with_columns(
            (pl.col("brand_share") * 3.0 + 1.0).alias("share_x3")
        )
        with pytest.raises(EffectLearningError, match=r"target leak .*'share_x3'") as exc:
            learn_effect(df, **ARGS)
        assert exc.value.cause == "target_leak"

    def test_treatment_as_feature_is_refused(self):
        with pytest.raises(
            EffectLearningError, match="treatment column 'treated' cannot be a feature"
        ) as exc:
            learn_effect(designed_history(2000, seed=1), feature_cols=["decile", "treated"], **ARGS)
        assert exc.value.cause == "target_leak"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"intervention_type": "fax_blast"}, "`intervention_type` must be one of"),
            ({"outcome_col": "nope"}, "`outcome_col` names column 'nope'"),
            ({"cutoff": "2025-06-01"}, "`cutoff` needs `time_col`"),
            ({"seed": -1}, "`seed` must be a non-negative integer"),
        ],
    )
    def test_bad_input_names_the_field(self, kwargs, message):
        with pytest.raises(EffectLearningError, match=message) as exc:
            learn_effect(designed_history(2000, seed=1), **{**ARGS, **kwargs})
        assert exc.value.cause == "bad_input"

    def test_cutoff_keeps_earlier_rows_only(self):
        df = designed_history(6000, seed=11)
        le = learn_effect(df, time_col="month", cutoff=date(2025, 7, 1), seed=3, **ARGS)
        assert le.last_time == "2025-06" and le.first_time == "2025-01"
        assert le.diagnostics.n_rows_input == int((df["month"] < date(2025, 7, 1)).sum())


# --- the learned model --------------------------------------------------------------------------------------
class TestLearnedModel:
    def test_parameters_use_learned_values(self, learned):
        le = learned.learned[TYPE]
        p = learned.parameters(InterventionConfig(intervention_type=TYPE))
        assert p.value(K.P_BASE) == le.base_effect
        assert p.base_sd == le.base_effect_sd
        assert p.value(K.P_DECILE_SLOPE) == le.value("decile_slope", -1)
        assert p.value(K.P_ENGAGEMENT_SLOPE) == le.value("engagement_slope", -1)
        assert p.adoption_multipliers[0] == le.value("adoption:innovator", -1)
        # other types keep the priors
        prior = EffectModel.from_config().parameters(InterventionConfig(intervention_type="email_campaign"))
        other = learned.parameters(InterventionConfig(intervention_type="email_campaign"))
        assert np.array_equal(prior.params, other.params) and prior.base_sd == other.base_sd

    def test_provenance_and_summary(self, learned):
        n = learned.learned[TYPE].n_rows
        rows = f"{n:,}".replace(",", " ")
        assert f"digital_engagement: learned from {rows} rows (DML, 2025-01..2025-12)" in learned.provenance
        assert "email_campaign: prior" in learned.provenance
        assert learned.model_id.startswith("learned-")
        s = learned.summary()
        base = s.filter(intervention_type=TYPE, parameter="base_effect").row(0, named=True)
        assert base["source"] == "learned (DML)"
        assert base["estimate"] == learned.learned[TYPE].base_effect
        assert base["std_error"] == learned.learned[TYPE].base_effect_sd
        prop = s.filter(intervention_type=TYPE, parameter="propensity_slope").row(0, named=True)
        assert prop["source"] == "prior" and prop["std_error"] is None  # no baseline_propensity column

    def test_absent_modifier_column_is_reported(self, learned):
        warnings = learned.learned[TYPE].warnings
        assert any("'baseline_propensity' absent" in w and "default 0.5" in w for w in warnings)

    def test_save_and_load_keep_learned_parameters(self, learned, tmp_path):
        again = EffectModel.load(learned.save(tmp_path / "m.json"))
        assert again.model_id == learned.model_id and again.provenance == learned.provenance
        a, b = again.learned[TYPE], learned.learned[TYPE]
        assert a == b
        assert isinstance(a, LearnedEffect)
        cfg = InterventionConfig(intervention_type=TYPE)
        assert np.array_equal(again.parameters(cfg).params, learned.parameters(cfg).params)


def test_twin_generator_learns_the_effect_model_alongside(designed):
    from twinkernel import TwinGenerator

    gen = TwinGenerator("hcp")
    metrics = gen.train(designed, "brand_share", time_col="month", treatment_col="treated", effect_types=TYPE)
    assert metrics.propensity_auc is not None
    direct = EffectModel.from_config().learn_from_history(designed, time_col="month", **ARGS)
    assert gen.effect_model.learned[TYPE].estimates == direct.learned[TYPE].estimates
    assert gen.effect_model.provenance == direct.provenance
    with pytest.raises(ValueError, match="`effect_types` needs `treatment_col`"):
        TwinGenerator("hcp").train(designed, "brand_share", time_col="month", effect_types=TYPE)


def test_modifiers_of_a_null_effect_keep_their_priors():
    """Modifiers are ratios to the base effect: with b indistinguishable from 0 they are not learned."""
    le = learn_effect(designed_history(6000, seed=8, base=0.0), seed=2, **ARGS)
    assert le.names == ("base_effect",)
    assert "decile_slope" in le.fixed and "engagement_slope" in le.fixed
    assert any("too weak to learn its modifiers" in w for w in le.warnings)
    assert abs(le.base_effect) < 3 * le.base_effect_sd
