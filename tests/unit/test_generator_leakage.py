"""Leakage gaps of issue 12: noisy target copies, timestamps without ``time_col``, missing timestamps,
repeated ids without ``entity_col``, and time splits that cannot be cross-validated by time."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from twinkernel import synthetic
from twinkernel.config import get_config
from twinkernel.twin_generator import TwinGenerator
from twinkernel.twin_generator.leakage import association_scores


def _config(cv_folds: int = 2):
    cfg = get_config()
    tg = cfg.twin_generation.model_copy(update={"cv_folds": cv_folds})
    return cfg.model_copy(update={"twin_generation": tg})


FAST = _config()


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic.hcp_training_frame(synthetic.hcp_world(4000, months=8, seed=11))


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return synthetic.hcp_panel_frame(synthetic.hcp_world(1200, months=8, seed=12))


def _noisy_copy(frame: pl.DataFrame, sd_share: float = 0.2, seed: int = 5) -> pl.DataFrame:
    y = frame["brand_share"].to_numpy()
    noise = np.random.default_rng(seed).normal(0.0, sd_share * y.std(), y.size)
    return frame.with_columns(pl.Series("share_signal", y + noise))


class TestNoisyTargetCopy:
    def test_noisy_copy_is_refused(self, frame):
        data = _noisy_copy(frame).drop("prior_brand_share_as_of", "treated", strict=False)
        gen = TwinGenerator(config=FAST)
        with pytest.raises(
            ValueError, match=r"feature 'share_signal' predicts the target out of fold with R² 0\.9"
        ):
            gen.train(data, "brand_share")
        with pytest.raises(ValueError, match=r"allow_strong_features=\['share_signal'\]"):
            gen.train(data, "brand_share", feature_cols=["decile", "specialty", "share_signal"])

    def test_named_option_allows_it(self, frame):
        data = _noisy_copy(frame).drop("prior_brand_share_as_of", "treated", strict=False)
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        m = gen.train(data, "brand_share", allow_strong_features=["share_signal"])
        assert "share_signal" in m.feature_cols and m.r2 > 0.9
        assert m.feature_association["share_signal"] > 0.93
        assert m.feature_association["prior_brand_share"] < 0.9
        with pytest.raises(
            ValueError, match=r"`allow_strong_features`: column\(s\) \['nope'\] not in the data"
        ):
            gen.train(data, "brand_share", allow_strong_features=["nope"])

    def test_association_scores_values(self, frame):
        data = _noisy_copy(frame)
        usable = np.ones(data.height, dtype=bool)
        scores = association_scores(
            data, "brand_share", ["share_signal", "decile"], usable, FAST.twin_generation
        )
        # a noisy copy with 0.2 SD noise: R² = 1 / 1.04 in the population, a binned model loses a little
        assert 0.93 < scores["share_signal"] < 1 / 1.04 + 0.01
        y = data["brand_share"].to_numpy()
        r2_decile = np.corrcoef(data["decile"].to_numpy(), y)[0, 1] ** 2
        assert scores["decile"] == pytest.approx(r2_decile, abs=0.05)

    def test_legitimate_lag_is_accepted(self, panel):
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        m = gen.train(panel, "brand_share", feature_cols=["decile", "brand_share_lag1"], time_col="month")
        assert 0.8 < m.feature_association["brand_share_lag1"] < 0.93


class TestTimestamps:
    def _future(self, panel: pl.DataFrame) -> pl.DataFrame:
        return panel.with_columns(
            pl.col("brand_share").shift(-1).over("hcp_id").fill_null(0.0).alias("share_next"),
            pl.col("month").shift(-1).over("hcp_id").fill_null(pl.col("month")).alias("share_next_as_of"),
        )

    def test_future_feature_without_time_col_is_an_error(self, panel):
        gen = TwinGenerator(config=FAST)
        with pytest.raises(
            ValueError, match=r"carry timestamps \(\['share_next_as_of'\]\) but no `time_col`"
        ):
            gen.train(
                self._future(panel).drop("brand_share_lag1_as_of"),
                "brand_share",
                feature_cols=["decile", "share_next"],
                entity_col="hcp_id",
            )

    def test_target_as_of_is_the_reference_without_time_col(self, panel):
        data = self._future(panel).with_columns(pl.col("month").alias("brand_share_as_of"))
        gen = TwinGenerator(config=FAST)
        with pytest.raises(ValueError, match=r"'share_next_as_of' is later than 'brand_share_as_of'"):
            gen.train(data, "brand_share", feature_cols=["decile", "share_next"], entity_col="hcp_id")

    def test_null_timestamp_is_an_error_unless_allowed(self, panel):
        stamps = panel["brand_share_lag1_as_of"].to_list()
        for i in (3, 50, 700):
            stamps[i] = None
        data = panel.with_columns(pl.Series("brand_share_lag1_as_of", stamps, dtype=pl.Date))
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        feats = ["decile", "brand_share_lag1"]
        with pytest.raises(
            ValueError, match=r"timestamp column 'brand_share_lag1_as_of' .* is missing in 3 rows"
        ):
            gen.train(data, "brand_share", feature_cols=feats, time_col="month")
        m = gen.train(
            data, "brand_share", feature_cols=feats, time_col="month", allow_missing_timestamps=True
        )
        assert m.feature_cols == tuple(feats)


class TestRepeatedIds:
    def test_repeated_ids_without_entity_col(self, panel):
        gen = TwinGenerator(config=FAST)
        data = panel.drop("brand_share_lag1_as_of")
        with pytest.raises(
            ValueError, match=r"id column 'hcp_id' repeats: 1200 of 1200 ids .*pass `entity_col='hcp_id'`"
        ):
            gen.train(data, "brand_share")
        # repeated within one time: still an error with time_col
        doubled = pl.concat([data, data[:10]])
        with pytest.raises(
            ValueError, match=r"id column 'hcp_id' repeats within one 'month': 2 of 1200 ids .*\(20 rows\)"
        ):
            gen.train(doubled, "brand_share", time_col="month")
        # panel rows across times with a time split, or an entity split: accepted
        m = gen.train(data, "brand_share", entity_col="hcp_id")
        ids = data["hcp_id"].to_numpy()
        assert set(ids[gen.training_rows_]).isdisjoint(ids[gen.validation_rows_]) and m.split == "entity"


class TestTimeCrossValidation:
    def test_few_times_reduce_time_ordered_folds(self, panel):
        # 3 training months with cv_folds 5: 2 time-ordered folds, said in the metrics and a warning
        gen = TwinGenerator(config=_config(cv_folds=5), permutation_repeats=1)
        with pytest.warns(UserWarning, match="allow 2 time-ordered folds, not the configured 5"):
            m = gen.train(panel, "brand_share", time_col="month", cutoff="2025-05-01")
        assert m.cv_scheme == "time_ordered" and len(m.cv_scores) == 2
        assert any("2 time-ordered folds" in w for w in m.warnings)

    def test_single_time_says_not_by_time(self, frame):
        gen = TwinGenerator(config=FAST, permutation_repeats=1)
        with pytest.warns(UserWarning) as rec:
            m = gen.train(frame.drop("treated", strict=False), "brand_share", time_col="month")
        texts = [str(w.message) for w in rec]
        assert any("not cross-validated by time" in t for t in texts)
        assert any("not split by time" in t for t in texts)
        assert m.cv_scheme == "kfold" and len(m.warnings) == 2
        assert "1 distinct 'month' value(s)" in m.warnings[1]

    def test_enough_times_no_warning(self, panel):
        gen = TwinGenerator(config=_config(cv_folds=3), permutation_repeats=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = gen.train(panel, "brand_share", time_col="month", cutoff="2025-06-01")
        assert m.warnings == () and m.cv_scheme == "time_ordered" and len(m.cv_scores) == 3
