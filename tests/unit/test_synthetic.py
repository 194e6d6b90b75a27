"""The synthetic world: seeded, correlated the way commercial data is, with a known generating function."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from twinkernel import synthetic
from twinkernel.config import get_config
from twinkernel.models import ADOPTION_STAGES


@pytest.fixture(scope="module")
def world() -> synthetic.SyntheticWorld:
    return synthetic.hcp_world(20_000, months=6, seed=3, with_interventions=True)


def test_same_seed_same_world_and_different_seed_differs():
    a = synthetic.hcp_world(500, months=3, seed=9, with_interventions=True)
    b = synthetic.hcp_world(500, months=3, seed=9, with_interventions=True)
    c = synthetic.hcp_world(500, months=3, seed=10, with_interventions=True)
    assert a.hcps.equals(b.hcps) and a.history.equals(b.history)
    np.testing.assert_array_equal(a.truth.hidden_effects, b.truth.hidden_effects)
    assert not a.hcps.equals(c.hcps)


def test_shapes_types_and_ranges(world):
    h = world.hcps
    assert h.height == 20_000 and world.history.height == 120_000 and world.months == 6
    assert h["hcp_id"].to_list() == list(range(20_000))
    assert h["decile"].min() == 1 and h["decile"].max() == 10
    assert set(h["priority_tier"].unique().to_list()) == {1, 2, 3, 4, 5}
    for col in ("digital_engagement_score", "peer_influence_score"):
        assert 0.0 < h[col].min() and h[col].max() < 1.0
    assert h["adoption_stage"].dtype == pl.Enum(list(ADOPTION_STAGES))
    assert h["region"].dtype == pl.Enum(list(synthetic.REGIONS))
    # decile is a volume decile: every decile holds a tenth of the HCPs
    counts = h["decile"].value_counts()["count"].to_numpy()
    assert counts.min() >= 1990 and counts.max() <= 2010
    months = world.history.filter(pl.col("hcp_id") == 0)["month"].cast(pl.String).to_list()
    assert months == ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01"]


def test_decile_follows_patient_volume(world):
    h = world.hcps
    rho = h.select(pl.corr("decile", "total_patient_volume", method="spearman")).item()
    assert rho > 0.9
    med = (
        h.group_by("decile")
        .agg(pl.col("total_patient_volume").median())
        .sort("decile")["total_patient_volume"]
    )
    assert np.all(np.diff(med.to_numpy()) > 0)  # medians rise with every decile


def test_engagement_drives_preferred_channel(world):
    by = world.hcps.group_by("preferred_channel").agg(pl.col("digital_engagement_score").mean())
    means = dict(
        zip(
            by["preferred_channel"].cast(pl.String).to_list(),
            by["digital_engagement_score"].to_list(),
            strict=False,
        )
    )
    assert means["digital"] > means["email"] > means["in_person"] + 0.1


def test_specialty_mix_differs_by_region(world):
    h = world.hcps
    share = (
        h.group_by("region")
        .agg(
            (pl.col("specialty") == "primary_care").mean().alias("pc"),
            (pl.col("specialty") == "oncology").mean().alias("onc"),
        )
        .sort("region")
    )
    pc = dict(zip(share["region"].cast(pl.String).to_list(), share["pc"].to_list(), strict=False))
    onc = dict(zip(share["region"].cast(pl.String).to_list(), share["onc"].to_list(), strict=False))
    assert pc["southeast"] - pc["northeast"] > 0.12  # 0.50 vs 0.32 in the generating table
    assert onc["northeast"] - onc["southeast"] > 0.05


def test_adoption_stage_follows_experience(world):
    h = world.hcps
    years = h.group_by("adoption_stage").agg(pl.col("years_experience").mean()).sort("adoption_stage")
    y = years["years_experience"].to_numpy()
    assert y[0] < y[-1] - 5  # innovators are younger than laggards
    share = h["adoption_stage"].value_counts(normalize=True).sort("adoption_stage")["proportion"].to_numpy()
    np.testing.assert_allclose(share, [0.025, 0.135, 0.34, 0.34, 0.16], atol=0.002)


def test_outcome_follows_the_known_function():
    w = synthetic.hcp_world(20_000, months=4, seed=5)  # no interventions: outcome = mu + noise
    expanded = w.hcps.join(w.history, on="hcp_id")
    mu = w.truth.expected_outcome(expanded, expanded["month_index"].to_numpy())
    resid = expanded["brand_share"].to_numpy() - mu
    assert abs(resid.mean()) < 0.001
    assert resid.std() == pytest.approx(w.truth.noise_sd, rel=0.03)
    # the known coefficients show up: higher deciles have a higher share
    by = (
        expanded.group_by("decile").agg(pl.col("brand_share").mean()).sort("decile")["brand_share"].to_numpy()
    )
    assert by[-1] > by[0] + 0.05


def test_interventions_are_confounded_and_follow_the_true_effects(world):
    hist = world.history.join(world.hcps, on="hcp_id")
    rate = hist.group_by("decile").agg(pl.col("treated").mean()).sort("decile")["treated"].to_numpy()
    assert rate[-1] > 1.5 * rate[0]  # high-decile HCPs are targeted more often
    realised = world.truth.realised_effects
    assert realised is not None and realised.shape == (hist.height,)
    untreated = ~world.history["treated"].to_numpy()
    assert np.all(realised[untreated] == 0.0)
    idx = np.arange(hist.height)
    for name in ("email_campaign", "peer_influence_activation"):
        rows = idx[(world.history["intervention_type"] == name).fill_null(False).to_numpy()]
        expected = world.truth.individual_effect(hist[rows], name, hist["month_index"].to_numpy()[rows])
        te = world.truth.true_effects[name]
        assert realised[rows].mean() == pytest.approx(
            expected.mean(), abs=4 * te.noise_sd / np.sqrt(rows.size)
        )
    # peer activation acts only above the threshold
    low_peer = world.hcps["peer_influence_score"].to_numpy() < 0.7
    assert np.all(world.truth.individual_effect(world.hcps, "peer_influence_activation")[low_peer] == 0.0)


def test_true_effects_differ_from_config_priors(world):
    priors = get_config().simulation.intervention_effects.types
    differing = [k for k, te in world.truth.true_effects.items() if te.base_effect != priors[k].base_effect]
    assert len(differing) >= 4
    email = world.truth.true_effects["email_campaign"]
    assert email.drift_per_month < 0  # fatigue: the email effect shrinks over time
    e0 = world.truth.individual_effect(world.hcps[:10], "email_campaign", 0)
    e6 = world.truth.individual_effect(world.hcps[:10], "email_campaign", 6)
    np.testing.assert_allclose(e6, e0 * (1 + 6 * email.drift_per_month))
    with pytest.raises(ValueError, match="`intervention_type` must be one of"):
        world.truth.individual_effect(world.hcps, "skywriting")


def test_training_frame_prior_outcome_and_timestamps(world):
    f = synthetic.hcp_training_frame(world, lookback=3)
    assert f.height == world.hcps.height
    assert f["month"].n_unique() == 1 and str(f["month"][0]) == "2025-06-01"
    assert (f["prior_brand_share_as_of"] < f["month"]).all()
    h0 = world.history.filter((pl.col("hcp_id") == 7) & pl.col("month_index").is_in([2, 3, 4]))
    assert f.filter(pl.col("hcp_id") == 7)["prior_brand_share"].item() == pytest.approx(
        h0["brand_share"].mean()
    )
    last = world.history.filter((pl.col("hcp_id") == 7) & (pl.col("month_index") == 5))
    assert f.filter(pl.col("hcp_id") == 7)["brand_share"].item() == last["brand_share"].item()
    assert set(f["treated"].unique().to_list()) == {0, 1}


def test_panel_frame_lags(world):
    p = synthetic.hcp_panel_frame(world)
    assert p.height == world.hcps.height * 5
    row = p.filter((pl.col("hcp_id") == 3) & (pl.col("month_index") == 2))
    prev = world.history.filter((pl.col("hcp_id") == 3) & (pl.col("month_index") == 1))
    assert row["brand_share_lag1"].item() == prev["brand_share"].item()
    assert row["brand_share_lag1_as_of"].item() == prev["month"].item()


def test_patient_and_territory_worlds():
    pw = synthetic.patient_world(5000, months=3, seed=1, with_interventions=True)
    e = pw.entities
    assert pw.kind == "patient" and pw.history.height == 15_000 and "adherence" in pw.history.columns
    old = e.filter(pl.col("age_group").is_in(["65-74", "75+"]))
    assert (old["insurance_type"] == "medicare").mean() > 0.6
    assert ((e["insurance_type"] == "uninsured") == ~e["insurance_coverage_flag"]).all()
    assert e.select(pl.corr("comorbidity_count", "risk_score")).item() > 0.3
    with pytest.raises(AttributeError, match="has no `hcps`"):
        _ = pw.hcps
    tw = synthetic.territory_world(300, months=12, seed=2)
    t = tw.entities
    np.testing.assert_allclose(
        t["coverage_rate"].to_numpy(), t["covered_hcps"].to_numpy() / t["total_hcps"].to_numpy()
    )
    assert t.select(pl.corr("zip_count", "total_hcps")).item() > 0.5
    assert tw.history.height == 3600 and tw.outcome_col == "market_share"
    f = synthetic.training_frame(tw)
    assert f.height == 300 and "prior_market_share" in f.columns


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: synthetic.hcp_world(0), "`n_hcps` must be a positive integer"),
        (lambda: synthetic.hcp_world(10, months=0), "`months` must be a positive integer"),
        (lambda: synthetic.patient_world(-1), "`n_patients` must be a positive integer"),
        (
            lambda: synthetic.training_frame(synthetic.hcp_world(10, months=1)),
            "needs at least one earlier month",
        ),
        (
            lambda: synthetic.hcp_training_frame(synthetic.territory_world(10, months=2)),
            "must be an HCP world",
        ),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
