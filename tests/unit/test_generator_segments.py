"""Segment fidelity (issue 12 item 3): an intervention simulated on twins and on the real rows they were
learned from gives the same ATE in every segment (specialty, decile, region) with at least 1 000 rows."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from twinkernel import InterventionConfig, TwinPopulation, synthetic
from twinkernel.config import get_config
from twinkernel.simulation_engine import SimulationEngine
from twinkernel.twin_generator import TwinGenerator
from twinkernel.twin_generator.propensity import heuristic_propensity

MIN_SEGMENT_ROWS = 1000
RELATIVE_TOLERANCE = 0.03


def _segment_ates(pop: TwinPopulation, seed: int) -> dict[tuple[str, str], tuple[float, int]]:
    engine = SimulationEngine(pop, cache=False, repository=False)
    res = engine.simulate(InterventionConfig(intervention_type="email_campaign", channel="email"), seed=seed)
    het = res.effect_heterogeneity
    return {(d, s): (st.ate, st.n) for d, s, st in het.segments() if d in ("specialty", "decile", "region")}


@pytest.mark.slow
def test_segment_ates_of_twins_match_the_real_rows():
    cfg = get_config()
    tg = cfg.twin_generation.model_copy(update={"cv_folds": 2, "sklearn_threads": 1})
    cfg = cfg.model_copy(update={"twin_generation": tg})
    world = synthetic.hcp_world(30_000, months=4, seed=21)
    frame = synthetic.hcp_training_frame(world).drop("treated", strict=False)
    gen = TwinGenerator("hcp", config=cfg, permutation_repeats=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one prediction month: no split by time (expected)
        gen.train(frame, "brand_share", time_col="month")
    real = frame[gen.training_rows_].select(gen.columns)
    n = real.height
    real = real.with_columns(
        pl.Series("twin_id", np.arange(n, dtype=np.int64)),
        pl.Series("baseline_outcome", frame[gen.training_rows_]["brand_share"].to_numpy()),
        pl.Series("baseline_propensity", heuristic_propensity({c: real[c] for c in real.columns}, n, cfg)),
    )
    real_pop = TwinPopulation(real, twin_type="hcp", config=cfg)
    twins = gen.generate(300_000, seed=4)
    on_real = _segment_ates(real_pop, seed=1)
    on_twins = _segment_ates(twins, seed=1)
    checked, worst = 0, ("", 0.0)
    for key, (ate, count) in on_real.items():
        if count < MIN_SEGMENT_ROWS:
            continue
        rel = abs(on_twins[key][0] - ate) / abs(ate)
        checked += 1
        worst = max(worst, (f"{key[0]}={key[1]}", rel), key=lambda t: t[1])
    print(f"\n{checked} segments; worst relative ATE difference {worst[1]:.4f} at {worst[0]}")
    assert checked >= 15
    assert worst[1] <= RELATIVE_TOLERANCE, worst
