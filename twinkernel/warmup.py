"""Compile every kernel up front: ``twinkernel.compile()``.

Numba compiles a kernel on its first call (seconds on a fresh install, less when its on-disk cache is
warm). A service can pay that cost at start-up instead of inside its first request; the CLI shows the
returned timings.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

__all__ = ["compile"]

# Tiny inputs: large enough for the engine's minimum twin count and every bootstrap path, small enough
# that running them costs nothing next to compiling.
_WARMUP_SEED = 0
_WARMUP_RESAMPLES = 20


def _timed(steps: dict[str, float], name: str, fn: Callable[[], object]) -> None:
    t = time.perf_counter()
    fn()
    steps[name] = time.perf_counter() - t


def compile() -> dict[str, float]:
    """Compile (or load from numba's cache) every kernel the engine and :func:`bootstrap_ci` use.

    Runs each code path once on tiny inputs: building a population from string columns (short and long
    strings; also from a pandas frame of ``object`` columns when pandas is installed), the engine's fused
    pass (with and without segments, over all twins and over a selection), the debug-trace kernel, the
    sweep kernel, and every bootstrap resampling scheme (multinomial, Poisson, Bag of Little Bootstraps),
    with and without groups. Importing this module imports numba; ``import twinkernel`` does not.

    Returns
    -------
    dict[str, float]
        Seconds per step, in the order run (``"import"``, ``"simulate"``, ..., ``"total"``); building the
        warm-up population (and compiling the frame kernels) counts in ``"total"`` only.

    Examples
    --------
    >>> import twinkernel
    >>> steps = twinkernel.compile()
    >>> steps["total"] >= steps["simulate"] >= 0.0
    True
    """
    steps: dict[str, float] = {}
    t_total = time.perf_counter()
    t = time.perf_counter()
    from .bootstrap import bootstrap_ci, engine_intervals
    from .config import get_config
    from .models import InterventionConfig, PopulationFilter
    from .population import TwinPopulation
    from .simulation_engine import SimulationEngine

    steps["import"] = time.perf_counter() - t

    cfg = get_config()
    n = max(cfg.simulation.min_twins, 2 * cfg.simulation.min_segment_size)
    codes = np.arange(n, dtype=np.int64) % 2
    columns = {
        "twin_id": np.asarray([f"warmup-{i:06d}" for i in range(n)]),
        "decile": 1 + np.arange(n, dtype=np.int64) % 10,
        "digital_engagement_score": np.linspace(0.0, 1.0, n),
        "baseline_outcome": np.linspace(0.2, 0.4, n),
        "region": np.where(codes == 0, "a", "b"),
        "specialty": np.where(codes == 0, "a-specialty-name-longer-than-12-bytes", "b"),
    }
    population = TwinPopulation.from_numpy(columns, model_id="twinkernel-warmup")
    try:
        import pandas as pd
    except ImportError:  # pandas is optional: its frame kernels compile on first use
        pd = None
    if pd is not None:  # object columns: the kernels that read Python strings and object pointers
        frame = pd.DataFrame({k: v.astype(object) if v.dtype.kind == "U" else v for k, v in columns.items()})
        _timed(steps, "from_pandas", lambda: TwinPopulation.from_frame(frame, model_id="twinkernel-warmup"))
    engine = SimulationEngine(population, cache=False, config=cfg)
    ic = InterventionConfig(intervention_type="email_campaign")
    decile = cfg.simulation.intervention_effects.decile
    some = PopulationFilter(deciles=tuple(range(decile.low, decile.high + 1)))

    _timed(steps, "simulate", lambda: engine.simulate(ic, seed=_WARMUP_SEED))
    _timed(
        steps,
        "simulate_selection",
        lambda: engine.simulate(ic, some, calculate_heterogeneity=False, seed=_WARMUP_SEED),
    )
    _timed(steps, "trace", lambda: engine.modifier_table(ic, seed=_WARMUP_SEED, limit=10))
    swept = [ic, InterventionConfig(intervention_type="email_campaign", intensity_multiplier=2.0)]
    _timed(steps, "sweep", lambda: engine.sweep(swept, seed=_WARMUP_SEED))
    values = np.linspace(-1.0, 1.0, n)
    for resampling in ("multinomial", "poisson", "blb"):
        for grouped in (False, True):
            name = f"bootstrap_{resampling}{'_groups' if grouped else ''}"
            run = functools.partial(
                bootstrap_ci,
                values,
                codes if grouped else None,
                n_resamples=_WARMUP_RESAMPLES,
                method="bca",
                resampling=resampling,
                seed=_WARMUP_SEED,
            )
            _timed(steps, name, run)
    for label, blb_min_n in (("poisson", n + 1), ("blb", 1)):
        run_engine = functools.partial(
            engine_intervals,
            values,
            [codes],
            [2],
            method="bca",
            n_resamples=_WARMUP_RESAMPLES,
            confidence_level=cfg.simulation.default_confidence_level,
            seed=_WARMUP_SEED,
            blb_min_n=blb_min_n,
        )
        _timed(steps, f"engine_intervals_{label}", run_engine)
    steps["total"] = time.perf_counter() - t_total
    return steps
