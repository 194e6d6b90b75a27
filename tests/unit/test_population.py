"""TwinPopulation: construction from every input, encodings, vectorised filters, fingerprint."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import make_population_frame
from twinkernel import DigitalTwin, PopulationFilter, TwinPopulation, TwinType, get_config
from twinkernel.population import ADOPTION_CATEGORIES, DEFAULTED_BITS


def _same_kernel_columns(a: TwinPopulation, b: TwinPopulation) -> None:
    ca, cb = a.kernel_columns, b.kernel_columns
    for name in (
        "decile",
        "engagement",
        "adoption",
        "tier",
        "peer",
        "propensity",
        "baseline",
        "specialty",
        "region",
        "channel",
        "defaulted",
    ):
        np.testing.assert_array_equal(getattr(ca, name), getattr(cb, name), err_msg=name)
    assert ca.specialty_labels == cb.specialty_labels
    assert ca.segment_labels == cb.segment_labels


def test_from_polars_pandas_numpy_and_twins_agree():
    frame = make_population_frame(300, seed=1)
    from_pl = TwinPopulation.from_frame(frame, twin_type="hcp", brand="Fabhalta")
    from_pd = TwinPopulation.from_frame(frame.to_pandas(), twin_type=TwinType.HCP, brand="Fabhalta")
    from_np = TwinPopulation.from_numpy({c: frame[c].to_numpy() for c in frame.columns}, brand="Fabhalta")
    twins = [
        DigitalTwin(
            twin_id=row["twin_id"],
            brand="Fabhalta",
            features={
                k: v
                for k, v in row.items()
                if k not in ("twin_id", "baseline_outcome", "baseline_propensity")
            },
            baseline_outcome=row["baseline_outcome"],
            baseline_propensity=row["baseline_propensity"],
        )
        for row in frame.iter_rows(named=True)
    ]
    from_twins = TwinPopulation.from_twins(twins, brand="Fabhalta")
    for other in (from_pd, from_np, from_twins):
        _same_kernel_columns(from_pl, other)
    assert from_pl.fingerprint() == from_pd.fingerprint() == from_np.fingerprint()
    assert from_pl.twin_type is TwinType.HCP and from_pl.brand == "Fabhalta"


def test_categorical_columns_are_enums_with_small_codes():
    pop = TwinPopulation.from_frame(make_population_frame(100))
    for col in ("specialty", "region", "preferred_channel", "adoption_stage"):
        assert pop.frame[col].dtype == pl.Enum
    assert pop.frame["adoption_stage"].dtype.categories.to_list() == list(ADOPTION_CATEGORIES)
    assert pop.kernel_columns.adoption.dtype == np.uint8
    assert all(c.dtype == np.uint8 for c in pop.kernel_columns.segment_codes)
    assert not pop.kernel_columns.segment_codes[0].flags.writeable


def test_decile_segment_codes_are_the_clipped_decile_minus_low():
    """The decile dimension's segment code of each row, against a per-row reference: out-of-range deciles
    (below, above, far outside uint8) land in the end segments, codes are uint8 and read-only."""
    frame = make_population_frame(2000, seed=4)
    deciles = frame["decile"].to_numpy().astype(np.int64)
    deciles[:6] = [0, -3, 11, 300, -(2**40), 2**40]
    pop = TwinPopulation.from_frame(frame.with_columns(pl.Series("decile", deciles)))
    d = get_config().simulation.intervention_effects.decile
    want = [min(max(int(v), d.low), d.high) - d.low for v in pop.kernel_columns.decile]
    got = pop.kernel_columns.segment_codes[1]
    assert got.dtype == np.uint8 and not got.flags.writeable
    assert got.tolist() == want
    assert got[:6].tolist() == [0, 0, d.high - d.low, d.high - d.low, 0, d.high - d.low]


def test_filter_mask_matches_polars_expression():
    pop = TwinPopulation.from_frame(make_population_frame(5000, seed=2))
    pf = PopulationFilter(
        specialties=["oncology", "nephrology"],
        deciles=[1, 4, 9],
        regions=["south", "west"],
        adoption_stages=["innovator", "laggard"],
        min_baseline_outcome=0.25,
        max_baseline_outcome=0.4,
    )
    expected = pop.frame.filter(
        pl.col("specialty").cast(pl.String).is_in(pf.specialties)
        & pl.col("decile").is_in(pf.deciles)
        & pl.col("region").cast(pl.String).is_in(pf.regions)
        & pl.col("adoption_stage").cast(pl.String).is_in(pf.adoption_stages)
        & (pl.col("baseline_outcome") >= 0.25)
        & (pl.col("baseline_outcome") <= 0.4)
    )
    mask = pop.mask(pf)
    assert mask.dtype == np.bool_ and int(mask.sum()) == expected.height > 0
    assert pop.filter(pf).frame["twin_id"].to_list() == expected["twin_id"].to_list()
    assert pop.mask(PopulationFilter()) is None


def test_mask_with_targets_and_unknown_values_equals_a_per_row_reference():
    frame = make_population_frame(3000, seed=17).with_columns(
        pl.Series("decile", np.random.default_rng(17).integers(-2, 14, 3000))  # some out of range
    )
    pop = TwinPopulation.from_frame(frame)
    pf = PopulationFilter(
        deciles=[1, 2, 9, 10], specialties=["oncology", "no_such"], adoption_stages=["Laggard"]
    )
    mask = pop.mask(pf, target_deciles=[10, 12], target_regions=["west", "nowhere"])
    assert mask is not None
    rows = pop.frame.select(
        pl.col("decile"), pl.col("specialty").cast(pl.String), pl.col("region").cast(pl.String),
        pl.col("adoption_stage").cast(pl.String),
    ).rows()  # fmt: skip
    band = pop._config.simulation.intervention_effects.decile
    assert (band.low, band.high) == (1, 10)  # the data above straddles this range
    expected = []
    for decile, specialty, region, stage in rows:
        clamped = min(max(decile, band.low), band.high)  # the kernels' clamp; 12 selects nothing
        expected.append(
            clamped in (1, 2, 9, 10) and clamped == 10 and specialty == "oncology" and stage == "laggard"
            and region == "west"
        )  # fmt: skip
    np.testing.assert_array_equal(mask, np.array(expected))
    assert 0 < int(mask.sum()) < 3000


def test_fingerprint_is_stable_and_content_sensitive():
    frame = make_population_frame(400, seed=3)
    a = TwinPopulation.from_frame(frame, model_id="m1")
    assert a.fingerprint() == TwinPopulation.from_frame(frame.clone(), model_id="m1").fingerprint()
    assert len(a.fingerprint()) == 32
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7)
        .then(0.99)
        .otherwise(pl.col("baseline_outcome"))
        .alias("baseline_outcome")
    )
    assert TwinPopulation.from_frame(changed, model_id="m1").fingerprint() != a.fingerprint()
    assert TwinPopulation.from_frame(frame, model_id="m2").fingerprint() != a.fingerprint()


def test_missing_values_take_defaults_and_set_bits(config):
    frame = pl.DataFrame(
        {
            "decile": [None, 3],
            "adoption_stage": [None, "Laggard "],
            "digital_engagement_score": [float("nan"), 0.2],
        }
    )
    pop = TwinPopulation.from_frame(frame)
    defaults = config.simulation.missing_value_defaults
    assert pop.frame["decile"].to_list() == [defaults.decile, 3]
    assert pop.frame["adoption_stage"].cast(pl.String).to_list() == [defaults.adoption_stage, "laggard"]
    assert pop.frame["digital_engagement_score"].to_list() == [defaults.digital_engagement_score, 0.2]
    bits = pop.kernel_columns.defaulted
    assert bits[0] & DEFAULTED_BITS["decile"] and not bits[1] & DEFAULTED_BITS["decile"]
    assert bits[0] & DEFAULTED_BITS["digital_engagement_score"]
    assert bits[1] & DEFAULTED_BITS["specialty"]  # absent column: defaulted everywhere
    assert pop.has_defaults


def test_extra_columns_are_kept_and_ids_generated():
    pop = TwinPopulation.from_frame(pl.DataFrame({"decile": [1, 2], "years_experience": [3, 30]}))
    assert pop.frame["years_experience"].to_list() == [3, 30]
    assert pop.frame["twin_id"].to_list() == [0, 1]


def test_bad_input():
    with pytest.raises(TypeError, match="polars or pandas DataFrame"):
        TwinPopulation.from_frame({"decile": [1]})
    with pytest.raises(ValueError, match="same length"):
        TwinPopulation.from_numpy({"decile": np.arange(3), "region": np.array(["a"])})
    with pytest.raises(ValueError, match=r"'robot' is not a valid TwinType"):
        TwinPopulation(pl.DataFrame({"decile": [1]}), twin_type="robot")
    with pytest.raises(ValueError, match="outcome_residual_sd"):
        TwinPopulation(pl.DataFrame({"decile": [1]}), outcome_residual_sd=-1.0)
