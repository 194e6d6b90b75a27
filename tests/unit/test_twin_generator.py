"""TwinGenerator: leakage prevention, copula fidelity, constraints, determinism, kernels and persistence."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import polars as pl
import pytest

from tests.naive_generator import naive_correlated_normals, naive_counter_uniforms, naive_tree_predict
from twinkernel import synthetic
from twinkernel.config import ConfigError, config_from_mapping, get_config
from twinkernel.kernels.copula import correlated_normals, counter_uniforms
from twinkernel.population import TwinPopulation
from twinkernel.twin_generator import Constraint, QualityReport, TwinGenerator, TwinModelMetrics
from twinkernel.twin_generator.copula import phi2, truncated_normal_union
from twinkernel.twin_generator.outcome import make_model


def _config(cv_folds: int = 2, min_rows: int | None = None):
    cfg = get_config()
    tg = cfg.twin_generation.model_copy(
        update={"cv_folds": cv_folds, **({"min_training_rows": min_rows} if min_rows is not None else {})}
    )
    return cfg.model_copy(update={"twin_generation": tg})


FAST = _config()
# hcp_training_frame is one target month: training with time_col falls back to a random split and kfold CV
# and warns about both (asserted where it happens instead of leaking into the test output)
ONE_MONTH = "not (split|cross-validated) by time"


@pytest.fixture(scope="module")
def world() -> synthetic.SyntheticWorld:
    return synthetic.hcp_world(4000, months=8, seed=11, with_interventions=True)


@pytest.fixture(scope="module")
def frame(world) -> pl.DataFrame:
    return synthetic.hcp_training_frame(world)


@pytest.fixture(scope="module")
def gen(frame) -> TwinGenerator:
    g = TwinGenerator("hcp", "Kisqali", FAST, permutation_repeats=2)
    with pytest.warns(UserWarning, match=ONE_MONTH):
        g.train(frame.drop("treated"), "brand_share", time_col="month")
    return g


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    """Monthly rows (Feb-Aug 2025) of 1200 HCPs with last month's share as a lag feature."""
    return synthetic.hcp_panel_frame(synthetic.hcp_world(1200, months=8, seed=12))


# ==========================================================================================================
class TestDataLeakagePrevention:
    def test_no_future_features_in_training(self, panel):
        # a "lead" feature: next month's share, honestly timestamped -> refused
        leaky = panel.with_columns(
            pl.col("brand_share").shift(-1).over("hcp_id").fill_null(0.0).alias("share_next"),
            pl.col("month").shift(-1).over("hcp_id").fill_null(pl.col("month")).alias("share_next_as_of"),
        )
        gen = TwinGenerator(config=FAST)
        with pytest.raises(
            ValueError, match=r"feature 'share_next' is measured after the prediction time in \d+ rows"
        ):
            gen.train(leaky, "brand_share", feature_cols=["decile", "share_next"], time_col="month")
        # the same check through a declared mapping
        renamed = leaky.rename({"share_next_as_of": "observed_on"})
        with pytest.raises(ValueError, match="its timestamp 'observed_on' is later than 'month'"):
            gen.train(
                renamed,
                "brand_share",
                feature_cols=["decile", "share_next"],
                time_col="month",
                feature_time_cols={"share_next": "observed_on"},
            )
        # the lagged feature is known at prediction time and is accepted
        m = gen.train(panel, "brand_share", feature_cols=["decile", "brand_share_lag1"], time_col="month")
        assert m.feature_cols == ("decile", "brand_share_lag1") and m.r2 > 0.5

    def test_temporal_ordering_preserved(self, panel):
        gen = TwinGenerator(config=_config(cv_folds=3))
        m = gen.train(panel, "brand_share", time_col="month", cutoff="2025-06-01")
        months = panel["month"].to_numpy()
        train_months, valid_months = months[gen.training_rows_], months[gen.validation_rows_]
        assert train_months.max() < np.datetime64("2025-06-01") <= valid_months.min()
        assert m.split == "temporal" and m.cutoff == "2025-06-01"
        assert m.training_rows == int((months < np.datetime64("2025-06-01")).sum())
        assert m.validation_rows == panel.height - m.training_rows
        assert m.cv_scheme == "time_ordered" and len(m.cv_scores) == 3
        # without a cutoff the latest months are held out, never a random slice
        m2 = gen.train(panel, "brand_share", time_col="month")
        assert months[gen.training_rows_].max() < months[gen.validation_rows_].min()
        assert m2.split == "temporal"
        with pytest.raises(ValueError, match="`cutoff` needs `time_col`"):
            gen.train(panel, "brand_share", cutoff="2025-06-01")

    def test_target_not_in_features(self, frame):
        gen = TwinGenerator(config=FAST)
        base = ["decile", "digital_engagement_score"]
        with pytest.raises(ValueError, match="the target column 'brand_share' cannot be a feature"):
            gen.train(frame, "brand_share", feature_cols=[*base, "brand_share"])
        y = pl.col("brand_share")
        disguised = {
            "share_copy": (y, "is a copy of the target"),
            "share_pct": (y * 100 + 1, "is a deterministic function of the target"),
            "share_sq": ((y - 0.15) ** 2, "is a deterministic function of the target"),
            "share_band": (
                pl.when(y < 0.1)
                .then(pl.lit("low"))
                .when(y < 0.25)
                .then(pl.lit("mid"))
                .otherwise(pl.lit("high")),
                "is a deterministic function of the target",
            ),
        }
        for name, (expr, message) in disguised.items():
            data = frame.with_columns(expr.alias(name))
            with pytest.raises(ValueError, match=f"feature '{name}' {message}"):
                gen.train(data, "brand_share", feature_cols=[*base, name])
            with pytest.raises(ValueError, match=f"feature '{name}'"):  # also when features are chosen for us
                gen.train(data.drop("prior_brand_share_as_of"), "brand_share")
        # default features never include the target, ids, timestamps or the time column
        with pytest.warns(UserWarning, match=ONE_MONTH):
            m = gen.train(frame.drop("treated"), "brand_share", time_col="month")
        assert "brand_share" not in m.feature_cols and "hcp_id" not in m.feature_cols
        assert not any(c.endswith("_as_of") or c == "month" for c in m.feature_cols)
        assert "brand_share" not in gen.columns

    def test_no_train_test_contamination(self, panel):
        gen = TwinGenerator(config=_config(cv_folds=3))
        ids = panel["hcp_id"].to_numpy()
        m = gen.train(panel.drop("brand_share_lag1_as_of"), "brand_share", entity_col="hcp_id")
        train_ids, valid_ids = set(ids[gen.training_rows_]), set(ids[gen.validation_rows_])
        assert train_ids.isdisjoint(valid_ids)
        assert len(valid_ids) == int(np.ceil(0.2 * len(set(ids))))
        assert m.split == "entity" and m.cv_scheme == "group_kfold"
        assert m.training_rows + m.validation_rows == panel.height
        # out of time and out of entity at once: rows of validation entities before the cutoff are unused
        m2 = gen.train(panel, "brand_share", time_col="month", cutoff="2025-06-01", entity_col="hcp_id")
        train_ids, valid_ids = set(ids[gen.training_rows_]), set(ids[gen.validation_rows_])
        assert train_ids.isdisjoint(valid_ids) and m2.split == "temporal+entity"
        assert m2.cv_scheme == "time_ordered+entity"
        assert m2.excluded_rows == panel.height - m2.training_rows - m2.validation_rows > 0

    def test_feature_statistics_from_train_only(self, panel):
        # after the cutoff engagement jumps and a new channel appears: statistics must not see either
        late = pl.col("month") >= pl.date(2025, 6, 1)
        shifted = panel.with_columns(
            pl.when(late)
            .then(pl.col("digital_engagement_score") + 0.5)
            .otherwise(pl.col("digital_engagement_score")),
            pl.when(late)
            .then(pl.lit("podcast"))
            .otherwise(pl.col("preferred_channel").cast(pl.String))
            .alias("preferred_channel"),
        )
        gen = TwinGenerator(config=FAST)
        gen.train(shifted, "brand_share", time_col="month", cutoff="2025-06-01")
        train = shifted[gen.training_rows_]
        eng = gen.marginal("digital_engagement_score")
        grid = eng.grid
        np.testing.assert_array_equal(
            eng.quantiles, np.quantile(train["digital_engagement_score"].to_numpy(), grid)
        )
        all_rows = np.quantile(shifted["digital_engagement_score"].to_numpy(), grid)
        assert np.abs(eng.quantiles - all_rows).max() > 0.3
        assert eng.fill_value == pytest.approx(float(np.median(train["digital_engagement_score"].to_numpy())))
        chan = gen.marginal("preferred_channel")
        assert "podcast" not in chan.levels
        counts = train["preferred_channel"].value_counts().sort("preferred_channel")
        np.testing.assert_allclose(chan.probs, counts["count"].to_numpy() / train.height)
        # correlations of the training rows, not of all rows
        enc = gen.encoded_matrix(train, impute=True)
        np.testing.assert_allclose(gen.data_correlation, np.corrcoef(enc, rowvar=False), atol=1e-10)
        # twins never leave the training support
        pop = gen.generate(5000, seed=4)
        assert pop.frame["digital_engagement_score"].max() <= train["digital_engagement_score"].max()
        assert "podcast" not in pop.frame["preferred_channel"].cast(pl.String).unique().to_list()


# ==========================================================================================================
class TestTrainingValidation:
    def test_too_few_rows_names_the_counts(self, frame):
        gen = TwinGenerator(config=FAST)
        with pytest.raises(ValueError, match=r"at least 1000 rows .*got 720 training rows of 900"):
            gen.train(frame[:900], "brand_share", time_col="month")

    def test_missing_columns_are_named(self, frame):
        gen = TwinGenerator(config=FAST)
        with pytest.raises(ValueError, match=r"`target_col`: column\(s\) \['sales'\] not in the data"):
            gen.train(frame, "sales")
        with pytest.raises(
            ValueError, match=r"`feature_cols`: column\(s\) \['tenure', 'zip'\] not in the data"
        ):
            gen.train(frame, "brand_share", feature_cols=["decile", "tenure", "zip"])
        with pytest.raises(ValueError, match="`algorithm` must be one of"):
            gen.train(frame, "brand_share", algorithm="xgboost")

    def test_rows_without_target_are_counted(self, frame):
        y = frame["brand_share"].to_numpy().copy()
        y[:50] = np.nan
        gen = TwinGenerator(config=FAST)
        with pytest.warns(UserWarning, match=ONE_MONTH):
            m = gen.train(
                frame.with_columns(pl.Series("brand_share", y)).drop("treated"),
                "brand_share",
                time_col="month",
            )
        assert m.excluded_rows == 50 and m.training_rows + m.validation_rows == frame.height - 50

    def test_metrics_values(self, gen, frame):
        m = gen.metrics
        assert m.training_rows == 3200 and m.validation_rows == 800 and m.split == "random"
        assert [w.split(":")[0] for w in m.warnings] == ["not split by time", "not cross-validated by time"]
        assert 0.7 < m.r2 < 1.0 and m.rmse == pytest.approx(gen.residual_sd, rel=0.01)
        assert m.mae < m.rmse and len(m.cv_scores) == 2 and m.cv_scheme == "kfold"
        assert max(m.feature_importances, key=m.feature_importances.get) == "prior_brand_share"
        assert m.model_id == gen.model_id and m.model_id.startswith("twin-hcp-")
        assert m.training_duration_seconds > 0

    def test_pandas_input(self, frame):
        gen = TwinGenerator(config=FAST)
        m = gen.train(frame.drop("treated", "prior_brand_share_as_of").to_pandas(), "brand_share")
        assert m.training_rows == 3200 and m.r2 > 0.7
        assert gen.marginal("region").kind == "categorical"

    @pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting"])
    def test_other_algorithms(self, frame, algorithm):
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        feats = ["decile", "specialty", "digital_engagement_score", "adoption_stage", "prior_brand_share"]
        with pytest.warns(UserWarning, match=ONE_MONTH):
            m = gen.train(frame, "brand_share", feature_cols=feats, algorithm=algorithm, time_col="month")
        assert m.algorithm == algorithm and m.r2 > 0.7
        pop = gen.generate(300, seed=1)
        X = gen.feature_matrix(pop.frame)
        np.testing.assert_allclose(pop.frame["baseline_outcome"].to_numpy(), gen.outcome_model.predict(X))


# ==========================================================================================================
class TestGeneration:
    def test_population_columns_and_outcome(self, gen):
        pop = gen.generate(2000, seed=5)
        assert isinstance(pop, TwinPopulation) and pop.n == 2000
        assert (
            pop.model_id == gen.model_id
            and pop.outcome_residual_sd == gen.residual_sd
            and pop.brand == "Kisqali"
        )
        f = pop.frame
        assert f["twin_id"].to_list() == list(range(2000))
        assert f["decile"].min() >= 1 and f["decile"].max() <= 10
        assert (
            f["adoption_stage"]
            .cast(pl.String)
            .is_in(["innovator", "early_adopter", "early_majority", "late_majority", "laggard"])
            .all()
        )
        assert int(pop.kernel_columns.defaulted.sum()) == 0  # every recognised column was synthesised
        # baseline_outcome is one batched predict of the twins' features (bit-identical to scikit-learn)
        X = gen.feature_matrix(f)
        np.testing.assert_array_equal(f["baseline_outcome"].to_numpy(), gen.outcome_model.predict(X))

    def test_heuristic_propensity(self, gen):
        f = gen.generate(1000, seed=6).frame
        h = gen.tg.propensity_heuristic
        expected = np.clip(
            h.intercept
            + h.per_decile_step * (h.reference_decile - f["decile"].to_numpy())
            + h.engagement_weight * f["digital_engagement_score"].to_numpy(),
            h.low,
            h.high,
        )
        np.testing.assert_allclose(f["baseline_propensity"].to_numpy(), expected)

    def test_logistic_propensity_and_untreated_baseline(self, frame):
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        with pytest.warns(UserWarning, match=ONE_MONTH):
            m = gen.train(frame, "brand_share", time_col="month", treatment_col="treated")
        assert "treated" not in gen.columns and m.feature_cols[-1] != "treated"
        assert m.propensity_auc is not None and m.propensity_auc > 0.55
        f = gen.generate(5000, seed=2).frame
        p = f["baseline_propensity"].to_numpy()
        assert 0.0 < p.min() and p.max() < 1.0
        assert np.corrcoef(p, f["decile"].to_numpy())[0, 1] > 0.3  # the world treats high deciles more
        X = gen.feature_matrix(f.with_columns(pl.lit(0).alias("treated")))
        np.testing.assert_array_equal(f["baseline_outcome"].to_numpy(), gen.outcome_model.predict(X))
        X[:, -1] = 1.0
        assert (
            gen.outcome_model.predict(X).mean() > f["baseline_outcome"].mean()
        )  # treatment raised the share

    def test_same_seed_identical_population(self, gen):
        a = gen.generate(3000, seed=42)
        b = gen.generate(3000, seed=42)
        assert a.frame.equals(b.frame) and a.fingerprint() == b.fingerprint()
        assert not gen.generate(3000, seed=43).frame.equals(a.frame)
        # twin i depends only on (seed, i): a smaller population is a prefix, whatever the chunking
        small = TwinGenerator.__new__(TwinGenerator)
        small.__dict__.update(gen.__dict__)
        small.config = gen.config.model_copy(
            update={"twin_generation": gen.tg.model_copy(update={"chunk_size": 1024})}
        )
        assert small.tg.chunk_size == 1024 and gen.tg.chunk_size > 3000
        assert small.generate(3000, seed=42).frame.equals(a.frame)
        assert gen.generate(1000, seed=42).frame.equals(a.frame[:1000])
        assert gen.generate(10).frame.equals(
            gen.generate(10, seed=get_config().twin_generation.random_state).frame
        )

    def test_decile_keeps_its_patient_volume(self, gen, frame):
        f = gen.generate(20_000, seed=8).frame
        for d in (1, 10):
            twins = f.filter(pl.col("decile") == d)["total_patient_volume"].median()
            data = frame.filter(pl.col("decile") == d)["total_patient_volume"].median()
            assert twins == pytest.approx(data, rel=0.1)
        assert (
            f.filter(pl.col("decile") == 10)["total_patient_volume"].median()
            > 3 * f.filter(pl.col("decile") == 1)["total_patient_volume"].median()
        )

    def test_quality_report_values(self, gen, frame):
        pop = gen.generate(50_000, seed=9)
        rep = gen.quality_report(pop)
        assert rep.n_twins == 50_000 and rep.n_reference == 3200 and rep.columns == gen.columns
        # 3 200 training rows make 16 mixture components of 200 rows: each estimates its own correlations
        # (issue 12), so pooled Pearson correlations carry more sampling noise than one copula's (0.064)
        assert rep.max_correlation_difference < 0.08
        assert max(rep.max_frequency_difference.values()) < 0.02
        assert (
            rep.marginal_metric["decile"] == "tv" and rep.marginal_metric["digital_engagement_score"] == "ks"
        )
        assert rep.worst_marginal[1] < 0.03
        # against an explicit reference (exact KS) the numbers agree with the stored summaries
        rep2 = gen.quality_report(pop, reference=frame[gen.training_rows_])
        assert rep2.marginal_distance["digital_engagement_score"] == pytest.approx(
            rep.marginal_distance["digital_engagement_score"], abs=0.005
        )
        np.testing.assert_allclose(rep2.reference_correlation, gen.data_correlation, atol=1e-10)
        # twins drawn with independent marginals (the original generator) fail the correlation check
        cols = {}
        rng = np.random.default_rng(0)
        for c in gen.columns:
            cols[c] = (
                pop.frame[c].to_numpy()[rng.permutation(pop.n)] if pop.frame[c].dtype != pl.Enum else None
            )
        indep = pop.frame.with_columns(
            [pl.Series(c, v) for c, v in cols.items() if v is not None]
            + [
                pop.frame[c].sample(pop.n, shuffle=True, seed=1).alias(c)
                for c, v in cols.items()
                if v is None
            ]
        )
        assert gen.quality_report(indep).max_correlation_difference > 0.5
        assert set(rep.to_dict()) >= {"marginal_distance", "max_correlation_difference", "twin_correlation"}


# ==========================================================================================================
class TestConstraints:
    def test_constraints_hold_exactly(self, gen, frame):
        cons = {"decile": 3, "region": {"northeast", "southwest"}, "digital_engagement_score": (0.2, 0.8)}
        f = gen.generate(20_000, constraints=cons, seed=1).frame
        assert f["decile"].unique().to_list() == [3]
        assert set(f["region"].cast(pl.String).unique().to_list()) == {"northeast", "southwest"}
        e = f["digital_engagement_score"]
        assert e.min() >= 0.2 and e.max() <= 0.8
        # the rest is drawn conditionally: decile-3 twins look like decile-3 HCPs, not like everyone
        d3 = frame.filter(pl.col("decile") == 3)
        assert f["total_patient_volume"].mean() == pytest.approx(d3["total_patient_volume"].mean(), rel=0.08)
        assert f["total_patient_volume"].mean() < 0.75 * frame["total_patient_volume"].mean()
        # a Gaussian copula keeps pairwise dependence, not every conditional law exactly (tier is a step
        # function of decile in the world): close, and far from the unconditional mean tier
        assert f["priority_tier"].mean() == pytest.approx(d3["priority_tier"].mean(), abs=0.25)
        assert f["priority_tier"].mean() > frame["priority_tier"].mean() + 0.8

    def test_fixed_continuous_value_and_helpers(self, gen):
        f = gen.generate(
            2000,
            constraints={
                "years_experience": Constraint.between(10, 20),
                "peer_influence_score": 0.5,
                "specialty": Constraint.one_of(["oncology"]),
                "priority_tier": Constraint.equal(2),
            },
            seed=3,
        ).frame
        assert f["peer_influence_score"].unique().to_list() == [0.5]
        assert f["years_experience"].min() >= 10 and f["years_experience"].max() <= 20
        assert f["specialty"].cast(pl.String).unique().to_list() == ["oncology"]
        assert f["priority_tier"].unique().to_list() == [2]

    def test_one_constraint_is_sampled_exactly(self, gen):
        # one truncated column: the conditional law of the others is exact, so P(decile | tier) matches
        tier1 = gen.generate(30_000, constraints={"priority_tier": 1}, seed=2).frame
        free = gen.generate(60_000, seed=2).frame.filter(pl.col("priority_tier") == 1)
        a = tier1["decile"].value_counts(normalize=True).sort("decile")
        b = free["decile"].value_counts(normalize=True).sort("decile")
        joined = a.join(b, on="decile", how="full", coalesce=True).fill_null(0.0)
        assert np.abs(joined["proportion"] - joined["proportion_right"]).max() < 0.03

    @pytest.mark.parametrize(
        ("cons", "match"),
        [
            ({"region": "atlantis"}, r"value 'atlantis' never occurs in the training data \(probability 0\)"),
            ({"decile": 11}, "value 11 never occurs in the training data"),
            ({"decile": (11, 15)}, r"no observed value lies in \[11, 15\]"),
            ({"digital_engagement_score": (1.5, 2.0)}, "has probability 0 under the training data"),
            ({"digital_engagement_score": 7.0}, "is outside the observed support"),
            ({"digital_engagement_score": (0.8, 0.2)}, r"low \(0.8\) must not exceed high \(0.2\)"),
            ({"digital_engagement_score": {0.1, 0.2}}, "a set of values needs a discrete column"),
            ({"region": set()}, "the set of allowed values is empty"),
            ({"region": ("a", "b")}, "a range needs a numeric column"),
            (
                {"baseline_outcome": 0.3},
                "cannot constrain 'baseline_outcome': it is not a synthesised column",
            ),
            ({"total_patient_volume": (10.2, 10.8)}, r"no integer lies in \[10.2, 10.8\]"),
        ],
    )
    def test_unsatisfiable_constraints_fail_clearly(self, gen, cons, match):
        with pytest.raises(ValueError, match=match):
            gen.generate(100, constraints=cons, seed=0)

    def test_argument_validation(self, gen):
        with pytest.raises(ValueError, match="`n` must be a positive integer; got 0"):
            gen.generate(0)
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*63\); got -1"):
            gen.generate(10, seed=-1)
        with pytest.raises(RuntimeError, match="not trained"):
            TwinGenerator().generate(10)
        with pytest.raises(ValueError, match="`correlation` must be 'norta' or 'normal_scores'"):
            TwinGenerator(correlation="spearman")


# ==========================================================================================================
class TestKernels:
    def test_correlated_normals_match_reference(self):
        rng = np.random.default_rng(0)
        a = rng.normal(size=(4, 4))
        chol = np.linalg.cholesky(a @ a.T + 4 * np.eye(4))
        out = np.empty((50, 4))
        correlated_normals(7, 32, 1000, chol, out)
        np.testing.assert_allclose(
            out, naive_correlated_normals(7, 32, 1000, chol, 50), rtol=1e-12, atol=1e-14
        )

    def test_counter_uniforms_match_reference(self):
        out = np.empty((40, 3))
        counter_uniforms(5, 33, 17, 8, 2, out)
        np.testing.assert_array_equal(out, naive_counter_uniforms(5, 33, 17, 8, 2, 40, 3))
        assert 0.0 < out.min() and out.max() < 1.0

    def test_tree_kernel_matches_sklearn_with_missing_values(self, gen, frame):
        X = gen.feature_matrix(frame[:300])
        X[::7, 0] = np.nan
        X[::5, -1] = np.nan
        fast = gen.predict(X)
        np.testing.assert_array_equal(fast, gen.outcome_model.predict(X))
        np.testing.assert_allclose(fast[:40], naive_tree_predict(gen.outcome_model, X[:40]), rtol=1e-12)

    def test_bivariate_normal_cdf(self):
        from scipy.stats import multivariate_normal

        pts = [(0.0, 0.0, 0.5), (0.0, 1.0, -0.3), (-2.0, -2.0, 0.9), (1.5, 0.0, 0.2), (0.3, -0.5, -0.95)]
        for x, y, r in pts:
            ref = multivariate_normal([0, 0], [[1, r], [r, 1]]).cdf([x, y])
            assert float(phi2(np.array(x), np.array(y), r)) == pytest.approx(ref, abs=1e-7)

    def test_truncated_normal_union_stays_inside_and_has_the_right_law(self):
        rng = np.random.default_rng(1)
        n = 200_000
        mu = np.full(n, 0.5)
        lows, highs = np.array([-np.inf, 1.0]), np.array([-1.0, 40.0])
        z = truncated_normal_union(mu, 1.0, lows, highs, rng.random(n), rng.random(n))
        assert np.all((z <= -1.0) | (z >= 1.0))
        from scipy.stats import norm

        p_left = norm.cdf(-1.5) / (norm.cdf(-1.5) + norm.sf(0.5))
        assert (z < 0).mean() == pytest.approx(p_left, abs=0.005)
        # far in the tail: finite, inside, no spinning
        far = truncated_normal_union(
            np.zeros(5), 1.0, np.array([30.0]), np.array([np.inf]), rng.random(5), rng.random(5)
        )
        assert np.all(far >= 30.0) and np.all(np.isfinite(far))


# ==========================================================================================================
class TestPersistence:
    def test_save_load_roundtrip(self, gen, tmp_path):
        path = gen.save(tmp_path / "gen")
        assert (path / "generator.json").exists() and (path / "models.joblib").exists()
        loaded = TwinGenerator.load(path)
        assert loaded.model_id == gen.model_id and loaded.columns == gen.columns
        assert loaded.config.twin_generation == gen.config.twin_generation
        assert loaded.metrics == gen.metrics
        a = gen.generate(2000, constraints={"decile": [1, 2]}, seed=3)
        b = loaded.generate(2000, constraints={"decile": [1, 2]}, seed=3)
        assert a.frame.equals(b.frame)
        with pytest.raises(ValueError, match="cannot read a saved generator"):
            TwinGenerator.load(tmp_path / "nowhere")

    def test_load_a_save_from_before_the_new_config_keys(self, gen, tmp_path):
        # generators saved before twin_generation gained copula / outcome_models / caps still load; the
        # missing keys take today's defaults, which reproduce the earlier behaviour bit for bit
        path = gen.save(tmp_path / "old")
        meta = json.loads((path / "generator.json").read_text())
        for key in ("copula", "outcome_models", "propensity_max_iter", "leakage_check_max_rows"):
            del meta["config"]["twin_generation"][key]
        del meta["config"]["twin_generation"]["propensity_heuristic"]["reference_decile"]
        (path / "generator.json").write_text(json.dumps(meta))
        loaded = TwinGenerator.load(path)
        assert loaded.tg.copula == gen.tg.copula and loaded.tg.outcome_models == gen.tg.outcome_models
        assert loaded.generate(500, seed=4).frame.equals(gen.generate(500, seed=4).frame)


# ==========================================================================================================
class TestImmutableResults:
    """Issue 8, defect 1: results could be changed after the fact, `==` raised on arrays, no JSON export."""

    def test_quality_report_is_frozen_read_only_comparable_and_json_safe(self, gen):
        pop = gen.generate(3000, seed=12)
        rep = gen.quality_report(pop)
        assert isinstance(rep, QualityReport)
        with pytest.raises(dataclasses.FrozenInstanceError):
            rep.max_correlation_difference = 0.0  # type: ignore[misc]
        with pytest.raises(ValueError, match="read-only"):
            rep.twin_correlation[0, 1] = 0.5
        with pytest.raises(TypeError):
            rep.marginal_distance["decile"] = 0.0  # type: ignore[index]
        again = gen.quality_report(pop)
        assert rep == again and hash(rep) == hash(again)  # raised ValueError on the arrays before
        other = gen.quality_report(gen.generate(3000, seed=13))
        assert rep != other
        data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
        assert data["n_twins"] == 3000 and data["columns"] == list(gen.columns)
        np.testing.assert_array_equal(np.asarray(data["twin_correlation"]), rep.twin_correlation)
        assert data["max_correlation_pair"] == list(rep.max_correlation_pair)

    def test_metrics_are_frozen_hashable_and_json_safe(self, gen):
        m = gen.metrics
        assert isinstance(m, TwinModelMetrics)
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.r2 = 1.0  # type: ignore[misc]
        with pytest.raises(TypeError):
            m.feature_importances["decile"] = 9.0  # type: ignore[index]
        assert isinstance(m.cv_scores, tuple) and isinstance(m.feature_cols, tuple)
        copy = TwinModelMetrics.from_dict(json.loads(json.dumps(m.to_dict(), allow_nan=False)))
        assert copy == m and hash(copy) == hash(m)  # hash raised on the mapping fields before
        assert dataclasses.replace(m, r2=m.r2 / 2) != m
        # undefined numbers are None in JSON (strict JSON has no NaN) and read back as NaN
        undefined = dataclasses.replace(m, cv_scores=(), cv_mean=math.nan, cv_std=math.nan)
        d = undefined.to_dict()
        assert d["cv_mean"] is None and d["cv_scores"] == []
        json.dumps(d, allow_nan=False)
        back = TwinModelMetrics.from_dict(d)
        assert math.isnan(back.cv_mean) and back == undefined

    def test_fitted_marginals_are_read_only(self, gen):
        mg = gen.marginal("digital_engagement_score")
        with pytest.raises(ValueError, match="read-only"):
            mg.quantiles[0] = -1.0
        assert mg == type(mg).from_dict(json.loads(json.dumps(mg.to_dict())))


# ==========================================================================================================
class TestSettingsFromConfig:
    """Issue 8, defect 3: scikit-learn hyper-parameters, caps and tolerances were literals in code."""

    def test_each_algorithm_uses_the_configured_hyper_parameters(self):
        tg = FAST.twin_generation
        om = tg.outcome_models
        custom = om.model_copy(
            update={
                "gradient_boosting": om.gradient_boosting.model_copy(update={"n_estimators": 7}),
                "random_forest": om.random_forest.model_copy(update={"min_samples_leaf": 9}),
                "hist_gradient_boosting": om.hist_gradient_boosting.model_copy(update={"max_iter": 11}),
            }
        )
        tg2 = tg.model_copy(update={"outcome_models": custom})
        for algorithm in ("hist_gradient_boosting", "random_forest", "gradient_boosting"):
            params = make_model(algorithm, tg2).get_params()
            expected = getattr(custom, algorithm).model_dump()
            assert {k: params[k] for k in expected} == expected
            assert params["random_state"] == tg2.random_state
        assert make_model("gradient_boosting", tg2).n_estimators == 7

    def test_training_reads_caps_and_hyper_parameters(self, frame):
        tg = FAST.twin_generation
        om = tg.outcome_models
        cfg = FAST.model_copy(
            update={
                "twin_generation": tg.model_copy(
                    update={
                        "outcome_models": om.model_copy(
                            update={
                                "hist_gradient_boosting": om.hist_gradient_boosting.model_copy(
                                    update={"max_iter": 5}
                                )
                            }
                        ),
                        "propensity_max_iter": 3,
                    }
                )
            }
        )
        gen = TwinGenerator(config=cfg, permutation_repeats=1)
        with pytest.warns(Warning):  # 3 iterations do not converge: the configured value is used
            gen.train(frame, "brand_share", time_col="month", treatment_col="treated")
        assert gen.outcome_model.max_iter == 5 and gen.outcome_model.n_iter_ <= 5

    def test_overrides_are_validated_by_the_config_rules(self):
        with pytest.raises(ValueError, match=r"`quantile_points` must be greater than or equal to 2; got 1"):
            TwinGenerator(quantile_points=1)
        with pytest.raises(ValueError, match=r"`test_size` must be less than 1; got 1.5"):
            TwinGenerator(test_size=1.5)
        with pytest.raises(ValueError, match=r"`gibbs_sweeps` must be a number; got True"):
            TwinGenerator(gibbs_sweeps=True)
        gen = TwinGenerator(config=FAST, chunk_size=4096, sklearn_threads=None)
        assert gen.tg.chunk_size == 4096 and gen.tg.sklearn_threads is None
        assert gen.settings["chunk_size"] == 4096 and FAST.twin_generation.chunk_size != 4096

    def test_bad_config_value_names_the_key(self):
        data = get_config().model_dump(mode="json")
        data["twin_generation"]["outcome_models"]["random_forest"]["n_jobs"] = 0
        with pytest.raises(ConfigError, match=r"twin_generation\.outcome_models\.random_forest"):
            config_from_mapping(data)
        data = get_config().model_dump(mode="json")
        data["twin_generation"]["copula"]["rho_limit"] = 1.0
        with pytest.raises(
            ConfigError, match=r"twin_generation.copula.rho_limit.*allowed range \(0.0, 1.0\)"
        ):
            config_from_mapping(data)


# ==========================================================================================================
LABELS = ("region", "specialty", "practice_type", "preferred_channel", "adoption_stage")


@pytest.fixture(scope="module")
def small_frame() -> pl.DataFrame:
    frame = synthetic.hcp_training_frame(synthetic.hcp_world(1500, months=3, seed=31))
    return frame.drop("prior_brand_share_as_of", "treated", strict=False)


def _flavour(frame: pl.DataFrame, flavour: str):
    if flavour == "categorical":
        return frame.with_columns([pl.col(c).cast(pl.String).cast(pl.Categorical) for c in LABELS])
    if flavour == "string":
        return frame.with_columns([pl.col(c).cast(pl.String) for c in LABELS])
    if flavour == "pandas_category":
        return frame.to_pandas()  # Enum -> pandas category with the declared (ordered) categories
    if flavour == "pandas_object":
        return frame.with_columns([pl.col(c).cast(pl.String) for c in LABELS]).to_pandas()
    return frame


class TestCategoricalInputs:
    """Issue 8, defect 5: every pandas/Polars categorical flavour trains, generates and reports."""

    FEATURES = (
        "decile",
        "specialty",
        "region",
        "adoption_stage",
        "digital_engagement_score",
        "prior_brand_share",
    )

    def _train(self, data) -> TwinGenerator:
        gen = TwinGenerator(config=_config(min_rows=500), permutation_repeats=1)
        gen.train(data, "brand_share", feature_cols=list(self.FEATURES))
        return gen

    @pytest.mark.parametrize("flavour", ["enum", "categorical", "string", "pandas_category", "pandas_object"])
    def test_each_flavour(self, small_frame, flavour):
        data = _flavour(small_frame, flavour)
        if flavour == "pandas_category":
            assert str(data["adoption_stage"].dtype) == "category"
        gen = self._train(data)
        declared = small_frame["adoption_stage"].dtype.categories.to_list()
        stage = gen.marginal("adoption_stage")
        assert stage.kind == "categorical"
        # Enum and pandas category keep the declared order; String and Categorical labels are sorted
        expected = declared if flavour in ("enum", "pandas_category") else sorted(declared)
        assert list(stage.levels) == expected
        np.testing.assert_allclose(stage.probs.sum(), 1.0)
        pop = gen.generate(2000, constraints={"region": {"west"}}, seed=5)
        stages = pop.frame["adoption_stage"]
        assert stages.dtype == pl.Enum and set(stages.cast(pl.String).unique().to_list()) == set(expected)
        assert pop.frame["region"].cast(pl.String).unique().to_list() == ["west"]
        rep = gen.quality_report(pop)
        assert rep.marginal_metric["specialty"] == "tv" and 0.0 <= rep.max_correlation_difference < 1.0
        # a reference of the same flavour as the training data is encoded against the fitted levels
        full = gen.quality_report(gen.generate(4000, seed=6), reference=data)
        assert full.max_frequency_difference["adoption_stage"] < 0.05

    def test_flavours_agree(self, small_frame):
        metrics = {f: self._train(_flavour(small_frame, f)).metrics for f in ("enum", "pandas_category")}
        assert metrics["enum"].r2 == metrics["pandas_category"].r2  # same level codes, same model
        sorted_metrics = [self._train(_flavour(small_frame, f)).metrics for f in ("categorical", "string")]
        assert sorted_metrics[0].r2 == sorted_metrics[1].r2


# ==========================================================================================================
@pytest.mark.slow
def test_large_world_correlations_and_frequencies():
    world = synthetic.hcp_world(200_000, months=4, seed=21)
    frame = synthetic.hcp_training_frame(world).drop("prior_brand_share_as_of")
    gen = TwinGenerator("hcp", "Kisqali", FAST, permutation_repeats=1)
    gen.train(frame, "brand_share")
    pop = gen.generate(200_000, seed=1)
    rep = gen.quality_report(pop)
    assert rep.max_correlation_difference < 0.05, rep.max_correlation_pair
    discrete = [c for c, m in rep.marginal_metric.items() if m == "tv"]
    assert len(discrete) >= 8
    assert max(rep.max_frequency_difference[c] for c in discrete) < 0.01
    assert max(v for c, v in rep.marginal_distance.items() if rep.marginal_metric[c] == "ks") < 0.01
