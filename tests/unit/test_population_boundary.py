"""TwinPopulation at the boundary: every defect of issue 8 that a calling service hit, one test each."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tests.conftest import CHANNELS, REGIONS, SPECIALTIES, make_population_frame
from twinkernel import InterventionConfig, PopulationFilter, SimulationEngine, TwinPopulation
from twinkernel.models import ADOPTION_STAGES
from twinkernel.population import DEFAULTED_BITS

EMAIL = InterventionConfig(intervention_type="email_campaign")
PEER = InterventionConfig(intervention_type="peer_influence_activation")


def _engine(pop: TwinPopulation) -> SimulationEngine:
    engine = SimulationEngine(pop)
    engine.cache = None
    return engine


def _with_checks(config, **update):
    checks = config.simulation.population_checks.model_copy(update=update)
    sim = config.simulation.model_copy(update={"population_checks": checks})
    return config.model_copy(update={"simulation": sim})


class TestCategoricalFlavours:
    """Defect: pandas ``category`` and Polars ``Categorical`` columns crashed ``from_frame`` with
    "'Categories' object has no attribute 'to_list'" (polars 2.1)."""

    def _flavours(self) -> dict[str, object]:
        frame = make_population_frame(400, seed=21)
        cats = ["specialty", "region", "preferred_channel", "adoption_stage"]
        enum_of = {
            "specialty": SPECIALTIES,
            "region": REGIONS,
            "preferred_channel": CHANNELS,
            "adoption_stage": ADOPTION_STAGES,
        }
        return {
            "string": frame,
            "categorical": frame.with_columns([pl.col(c).cast(pl.Categorical) for c in cats]),
            # Enum categories in a non-sorted order, with an unused category.
            "enum": frame.with_columns(
                [pl.col(c).cast(pl.Enum([*reversed(enum_of[c]), "zz_unused"])) for c in cats]
            ),
            "pandas_category": frame.to_pandas().astype({c: "category" for c in cats}),
            "pandas_object": frame.to_pandas().astype({c: object for c in cats}),
        }

    def test_every_flavour_builds_the_same_population_and_result(self):
        pops = {name: TwinPopulation.from_frame(df) for name, df in self._flavours().items()}
        reference = pops["string"]
        ate = _engine(reference).simulate(EMAIL, seed=3).simulated_ate
        for name, pop in pops.items():
            c, r = pop.kernel_columns, reference.kernel_columns
            assert c.specialty_labels == r.specialty_labels == tuple(sorted(SPECIALTIES)), name
            np.testing.assert_array_equal(c.specialty, r.specialty, err_msg=name)
            np.testing.assert_array_equal(c.region, r.region, err_msg=name)
            np.testing.assert_array_equal(c.adoption, r.adoption, err_msg=name)
            np.testing.assert_array_equal(c.twin_key, r.twin_key, err_msg=name)
            assert pop.fingerprint() == reference.fingerprint(), name
            assert _engine(pop).simulate(EMAIL, seed=3).simulated_ate == ate, name

    def test_categorical_with_nulls_takes_the_default(self):
        s = pl.Series("region", ["south", None, "west"], dtype=pl.Categorical)
        pop = TwinPopulation.from_frame(pl.DataFrame({"region": s}))
        assert pop.frame["region"].to_list() == ["south", "unknown", "west"]
        assert pop.kernel_columns.defaulted[1] & DEFAULTED_BITS["region"]


class TestMissingColumns:
    """Defect: a frame without the model's columns (or with ``Decile`` / ``speciality`` typos) was
    accepted, every value defaulted, with no warning."""

    def test_absent_columns_are_named_with_the_share_and_a_near_miss(self):
        frame = pl.DataFrame({"Decile": [1, 2, 3, 4], "speciality": ["a", "b", "c", "d"]})
        pop = TwinPopulation.from_frame(frame)
        text = "\n".join(pop.warnings)
        assert "column 'decile' is absent: 4 of 4 twins (100.0%) took the default 5" in text
        assert "did you mean 'decile'?" in text
        assert "column 'speciality' is not recognised; did you mean 'specialty'?" in text
        assert "column 'digital_engagement_score' is absent" in text
        assert "column 'baseline_outcome' is absent" in text
        assert set(pop.missing_columns) >= {"decile", "specialty", "baseline_outcome"}
        assert "Decile" in pop.frame.columns  # unrecognised columns are kept as they are

    def test_mostly_missing_column_warns_and_a_complete_frame_does_not(self, config):
        frame = make_population_frame(100, seed=2)
        assert TwinPopulation.from_frame(frame).warnings == ()
        assert TwinPopulation.from_frame(frame).missing_columns == ()
        share = config.simulation.population_checks.warn_defaulted_share
        k = math.ceil(share * 100)
        holes = frame.with_columns(
            pl.when(pl.int_range(pl.len()) < k).then(None).otherwise(pl.col("decile")).alias("decile")
        )
        warnings = TwinPopulation.from_frame(holes).warnings
        assert warnings == (
            f"column 'decile' is mostly missing: {k} of 100 twins ({k / 100:.1%}) took the default 5",
        )
        fewer = frame.with_columns(
            pl.when(pl.int_range(pl.len()) < k - 1).then(None).otherwise(pl.col("decile")).alias("decile")
        )
        assert TwinPopulation.from_frame(fewer).warnings == ()

    def test_error_above_the_configured_share(self, config):
        strict = _with_checks(config, error_defaulted_share=0.9)
        frame = make_population_frame(50, seed=3).drop("priority_tier")
        with pytest.raises(ValueError, match=r"'priority_tier' \(100\.0%\).*error_defaulted_share = 0\.9"):
            TwinPopulation.from_frame(frame, config=strict)
        assert TwinPopulation.from_frame(make_population_frame(50, seed=3), config=strict).n == 50

    def test_filtered_population_keeps_what_was_defaulted(self):
        frame = make_population_frame(300, seed=4).drop("baseline_outcome")
        pop = TwinPopulation.from_frame(frame)
        sub = pop.filter(PopulationFilter(regions=["south"]))
        assert sub.missing_columns == pop.missing_columns
        assert np.all(sub.kernel_columns.defaulted & DEFAULTED_BITS["baseline_outcome"])
        assert any("'baseline_outcome' is absent" in w for w in sub.warnings)


class TestIntegerFeatures:
    """Defects: decile 3.7 silently became 4, True became 1; 40000 in an Int64 column became null."""

    def test_fractional_decile_is_rejected_naming_column_and_row(self):
        frame = pl.DataFrame({"twin_id": ["a", "b", "c"], "decile": [1.0, 2.0, 3.7]})
        with pytest.raises(
            ValueError, match=r"`decile` must hold whole numbers; row 2 \(twin_id 'c'\) has 3\.7"
        ):
            TwinPopulation.from_frame(frame)

    def test_fractional_tier_is_rejected(self):
        with pytest.raises(ValueError, match=r"`priority_tier` must hold whole numbers; row 1 has 2\.5"):
            TwinPopulation.from_frame(pl.DataFrame({"priority_tier": [1.0, 2.5]}))

    @pytest.mark.parametrize("name", ["decile", "priority_tier", "peer_influence_score"])
    def test_booleans_are_rejected(self, name):
        with pytest.raises(ValueError, match=rf"`{name}` must be a numeric column; got Boolean"):
            TwinPopulation.from_frame(pl.DataFrame({name: [True, False]}))

    def test_whole_floats_and_numeric_strings_are_accepted(self):
        pop = TwinPopulation.from_frame(pl.DataFrame({"decile": [3.0, None, float("nan")]}))
        assert pop.frame["decile"].to_list() == [3, 5, 5]
        pop = TwinPopulation.from_frame(pl.DataFrame({"decile": ["3", " 7 ", None]}))
        assert pop.frame["decile"].to_list() == [3, 7, 5]
        with pytest.raises(ValueError, match=r"`decile` must hold numbers; row 1 has 'ten'"):
            TwinPopulation.from_frame(pl.DataFrame({"decile": ["3", "ten"]}))

    def test_out_of_storage_range_values_are_clamped_not_defaulted(self):
        frame = pl.DataFrame(
            {"decile": pl.Series([40000, -40000, 10, 1], dtype=pl.Int64), "priority_tier": [200, -200, 5, 1]}
        )
        pop = TwinPopulation.from_frame(frame.vstack(frame.clear(100).fill_null(3)).head(104))
        assert pop.frame["decile"].head(4).to_list() == [32767, -32768, 10, 1]
        assert pop.frame["priority_tier"].head(4).to_list() == [127, -128, 5, 1]
        bits = DEFAULTED_BITS["decile"] | DEFAULTED_BITS["priority_tier"]
        assert not np.any(pop.kernel_columns.defaulted[:4] & bits)
        table = _engine(pop).modifier_table(
            InterventionConfig(intervention_type="speaker_program_invitation")
        )
        # 40000 acts as decile 10 and tier 200 as tier 5 (clamped by the kernel, and counted there).
        assert table["decile"][0] == table["decile"][2] and table["tier"][0] == table["tier"][2]
        assert table["decile"][1] == table["decile"][3] and table["tier"][1] == table["tier"][3]
        dq = (
            _engine(pop)
            .simulate(InterventionConfig(intervention_type="speaker_program_invitation"))
            .data_quality
        )
        assert dq["decile"]["clamped"] == 2 and dq["priority_tier"]["clamped"] == 2


class TestIds:
    def test_duplicate_twin_ids_are_an_error_naming_one(self):
        with pytest.raises(ValueError, match=r"`twin_id` must be unique; 'b' appears at rows \[1, 3\]"):
            TwinPopulation.from_frame(pl.DataFrame({"twin_id": ["a", "b", "c", "b"]}))

    def test_null_twin_id_is_an_error(self):
        with pytest.raises(ValueError, match=r"`twin_id` must not be null; row 1 is null"):
            TwinPopulation.from_frame(pl.DataFrame({"twin_id": [1, None, 3]}))


class TestFloatFeatures:
    def test_float32_threshold_value_stays_at_the_threshold(self):
        """Defect: Float32 0.7 became 0.6999999 and fell below the inclusive 0.7 peer threshold."""
        frame = make_population_frame(200, seed=5).with_columns(
            pl.Series("peer_influence_score", [0.7, 0.69] * 100, dtype=pl.Float32)
        )
        pop = TwinPopulation.from_frame(frame)
        assert pop.kernel_columns.peer[0] == 0.7 and pop.kernel_columns.peer[1] == 0.69
        gate = _engine(pop).modifier_table(PEER, seed=1)["peer_gate"].to_list()
        assert gate[:4] == [1.0, 0.0, 1.0, 0.0]

    @pytest.mark.parametrize("bad", [float("inf"), -float("inf"), 1e200, float("nan")])
    def test_bad_baseline_outcome_is_counted_and_defaulted(self, bad):
        """Defect: one inf / 1e200 in baseline_outcome raised "cannot convert float NaN to integer"."""
        frame = make_population_frame(300, seed=6)
        baseline = frame["baseline_outcome"].to_numpy().copy()
        baseline[7] = bad
        pop = TwinPopulation.from_frame(frame.with_columns(pl.Series("baseline_outcome", baseline)))
        assert pop.kernel_columns.baseline[7] == 0.0  # the configured default
        assert pop.kernel_columns.defaulted[7] & DEFAULTED_BITS["baseline_outcome"]
        if not math.isnan(bad):
            assert any(
                "1 of 300 values are NaN, infinite or beyond" in w and "row 7" in w for w in pop.warnings
            )
        result = _engine(pop).simulate(EMAIL, seed=2)
        assert result.data_quality["baseline_outcome"]["defaulted"] == 1
        assert math.isfinite(result.simulated_ate) and result.recommended_sample_size >= 100

    def test_infinite_engagement_is_clamped_and_counted(self):
        frame = make_population_frame(200, seed=7).with_columns(
            pl.Series("digital_engagement_score", [np.inf, -np.inf] * 100)
        )
        result = _engine(TwinPopulation.from_frame(frame)).simulate(EMAIL, seed=1)
        assert result.data_quality["digital_engagement_score"]["clamped"] == 200
        assert math.isfinite(result.simulated_ate)

    def test_numeric_strings_parse_and_junk_is_rejected(self):
        pop = TwinPopulation.from_frame(pl.DataFrame({"baseline_outcome": ["0.25", "1e-3"]}))
        assert pop.kernel_columns.baseline.tolist() == [0.25, 0.001]
        with pytest.raises(ValueError, match=r"`baseline_outcome` must hold numbers; row 0 has 'n/a'"):
            TwinPopulation.from_frame(pl.DataFrame({"baseline_outcome": ["n/a", "1"]}))


class TestUnmatchedValues:
    """Defect: a filter value that matched nothing gave "Insufficient twins: 0" without naming it."""

    def test_unmatched_filter_and_target_values_are_named_with_suggestions(self):
        frame = make_population_frame(500, seed=8).with_columns(
            pl.col("decile").clip(1, 9)  # no decile-10 twin
        )
        pop = TwinPopulation.from_frame(frame)
        pf = PopulationFilter(
            regions=["atlantis", "Northeast", "south"],
            specialties=["cardiolgy"],
            adoption_stages=["Innovator", "pioneer"],
            deciles=[9, 10],
        )
        ic = InterventionConfig(intervention_type="email_campaign", target_regions=["West"])
        unmatched = pop.unmatched_values(pf, ic)
        assert unmatched == {
            "specialties": ["cardiolgy"],
            "deciles": [10],
            "regions": ["Northeast", "atlantis"],  # the filter keeps its values sorted
            "adoption_stages": ["pioneer"],
            "target_regions": ["West"],
        }
        assert pop.suggestions(unmatched) == {
            "Northeast": "northeast",
            "cardiolgy": "cardiology",
            "West": "west",
        }
        message = pop.describe_unmatched(pf, ic)
        assert (
            message is not None and "regions ['Northeast', 'atlantis'] (did you mean 'northeast'" in message
        )
        assert pop.unmatched_values(PopulationFilter(regions=["south"])) == {}
        assert pop.describe_unmatched() is None
