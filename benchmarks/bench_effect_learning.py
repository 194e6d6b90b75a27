"""asv benchmarks of learning effects from history (issue 11), and the side-by-side run against EconML.

Cases are seeded frames with the population's modifier columns, a confounded 0/1 treatment and an outcome
whose effect is a known base effect times the configuration's modifiers. Timed: the whole
``learn_effect`` (cross-fitted gradient-boosting nuisance models + final stage), the final-stage moment
kernel alone, and EconML's ``LinearDML`` with the same nuisance models and folds (skipped when EconML is not
importable; it is an optional dependency, e.g. in a separate venv).

Run offline::

    asv run -E existing:$(which python) --quick --set-commit-hash $(git rev-parse HEAD) \\
        --bench bench_effect_learning

The README's numbers come from (EconML installed, e.g. /work/venv-econml)::

    PYTHONPATH=. python -m benchmarks.bench_effect_learning --rows 1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import polars as pl

from twinkernel import get_config
from twinkernel.effect_learning import learn_effect
from twinkernel.effect_learning.moments import weighted_moments
from twinkernel.models import ADOPTION_STAGES

SEED = 20_261_203
TYPE = "digital_engagement"
TRUE_BASE = 0.08
ARGS = {"intervention_type": TYPE, "treatment_col": "treated", "outcome_col": "brand_share", "seed": 1}


@functools.lru_cache(maxsize=4)
def history_case(n: int, seed: int = SEED) -> pl.DataFrame:
    """``n`` seeded rows: decile, engagement, adoption stage, two other features, a confounded treatment."""
    rng = np.random.default_rng(seed)
    decile = rng.integers(1, 11, n)
    e = rng.random(n)
    stage = rng.choice(len(ADOPTION_STAGES), size=n, p=[0.05, 0.15, 0.3, 0.3, 0.2])
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-(-0.4 + 0.25 * (decile - 5.5) + 1.2 * (e - 0.5) + 0.3 * x1)))
    t = (rng.random(n) < p).astype(np.int8)
    mult = np.array([0.6, 0.8, 1.0, 1.2, 1.4])[stage]
    tau = TRUE_BASE * (1.2 - 0.04 * (decile - 1)) * (0.8 + 0.4 * e) * mult
    y = 0.3 + 0.03 * decile + 0.25 * e + 0.1 * np.sin(x1) + 0.05 * x2 + t * tau + rng.normal(0, 0.05, n)
    stages = pl.Series(np.asarray(ADOPTION_STAGES)[stage]).cast(pl.Enum(list(ADOPTION_STAGES)))
    columns = {"decile": decile.astype(np.int16), "digital_engagement_score": e, "adoption_stage": stages}
    return pl.DataFrame({**columns, "x1": x1, "x2": x2, "treated": t, "brand_share": y})


def _base_only_config():
    """Modifiers held at the configuration's and no trimming: the estimand EconML's LinearDML shares."""
    cfg = get_config()
    el = cfg.effect_learning.model_copy(
        update={"learn_modifiers": (), "propensity_low": 1e-9, "propensity_high": 1.0 - 1e-9}
    )
    return cfg.model_copy(update={"effect_learning": el})


def econml_linear_dml(frame: pl.DataFrame, features: tuple[str, ...]) -> tuple[float, float]:
    """EconML's LinearDML with twinkernel's nuisance models and folds; returns (base effect, its SE)."""
    from econml.dml import LinearDML

    from twinkernel.effect_learning.api import _modifier_inputs, _prior
    from twinkernel.effect_learning.final_stage import BASE, tau_and_jacobian
    from twinkernel.effect_learning.nuisance import _estimator, assign_folds, encode_features

    cfg = _base_only_config()
    el, eff = cfg.effect_learning, cfg.simulation.intervention_effects
    x, cat = encode_features(frame, features)
    fold = assign_folds(frame, None, el.folds, ARGS["seed"])
    splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(el.folds)]
    inp, _ = _modifier_inputs(frame, eff, cfg, TYPE, [])
    m = tau_and_jacobian({BASE: 1.0}, [BASE], inp, _prior(eff, TYPE))[1][:, 0]
    cat_xw = np.concatenate([[False], cat])
    est = LinearDML(
        model_y=_estimator("regressor", el.nuisance, cat_xw, 1),
        model_t=_estimator("classifier", el.nuisance, cat_xw, 1),
        discrete_treatment=True,
        fit_cate_intercept=False,
        cv=splits,
        random_state=0,
    )
    est.fit(frame["brand_share"].to_numpy(), frame["treated"].to_numpy(), X=m[:, None], W=x)
    lo, hi = (float(np.ravel(v)[0]) for v in est.coef__interval(alpha=0.05))
    return float(np.ravel(est.coef_)[0]), (hi - lo) / (2 * 1.959963984540054)


class TimeLearnEffect:
    params = ([100_000, 1_000_000],)
    param_names = ("rows",)
    timeout = 1800

    def setup(self, rows: int) -> None:
        self.frame = history_case(rows)
        learn_effect(history_case(2000), **ARGS)  # compile the kernels outside the timing

    def time_learn_effect(self, rows: int) -> None:
        learn_effect(self.frame, **ARGS)

    def track_base_effect_error_in_se(self, rows: int) -> float:
        le = learn_effect(self.frame, **ARGS)
        return abs(le.base_effect - TRUE_BASE) / le.base_effect_sd


class TimeFinalStageMoments:
    params = ([1_000_000, 10_000_000],)
    param_names = ("rows",)

    def setup(self, rows: int) -> None:
        rng = np.random.default_rng(SEED)
        self.x = rng.normal(size=(rows, 10))
        self.w = rng.random(rows)
        self.y = rng.normal(size=rows)
        weighted_moments(self.x[:100], self.w[:100], self.y[:100])

    def time_weighted_moments(self, rows: int) -> None:
        weighted_moments(self.x, self.w, self.y)


class TimeEconMLLinearDML:
    params = ([100_000, 1_000_000],)
    param_names = ("rows",)
    timeout = 1800

    def setup(self, rows: int) -> None:
        try:
            import econml  # noqa: F401
        except ImportError as exc:  # asv skips a benchmark whose setup raises NotImplementedError
            raise NotImplementedError("EconML is not installed") from exc
        self.frame = history_case(rows)
        self.features = learn_effect(
            history_case(2000), config=_base_only_config(), **ARGS
        ).diagnostics.features

    def time_econml_linear_dml(self, rows: int) -> None:
        econml_linear_dml(self.frame, self.features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    frame = history_case(args.rows)
    cfg = _base_only_config()
    learn_effect(history_case(2000), **ARGS)
    times: dict[str, list[float]] = {
        "twinkernel (full model)": [],
        "twinkernel (base only)": [],
        "EconML": [],
    }
    try:
        import econml  # noqa: F401

        have_econml = True
    except ImportError:
        have_econml = False
    for _ in range(args.rounds):  # interleaved rounds: the load changes alike for all
        t0 = time.perf_counter()
        full = learn_effect(frame, **ARGS)
        times["twinkernel (full model)"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = learn_effect(frame, config=cfg, **ARGS)
        times["twinkernel (base only)"].append(time.perf_counter() - t0)
        if have_econml:
            t0 = time.perf_counter()
            theirs = econml_linear_dml(frame, ours.diagnostics.features)
            times["EconML"].append(time.perf_counter() - t0)
    x = np.ascontiguousarray(np.random.default_rng(1).normal(size=(args.rows, 10)))
    w = np.ones(args.rows)
    weighted_moments(x, w, w)
    t0 = time.perf_counter()
    weighted_moments(x, w, w)
    kernel = time.perf_counter() - t0
    print(f"| case ({args.rows:,} rows, median of {args.rounds}) | seconds | base effect ± SE |")
    print("|---|---:|---|")
    print(f"| twinkernel, base + 7 modifier parameters | {np.median(times['twinkernel (full model)']):.2f} | "
          f"{full.base_effect:.5f} ± {full.base_effect_sd:.5f} |")  # fmt: skip
    print(f"| twinkernel, base effect only | {np.median(times['twinkernel (base only)']):.2f} | "
          f"{ours.base_effect:.5f} ± {ours.base_effect_sd:.5f} |")  # fmt: skip
    if have_econml:
        print(f"| EconML LinearDML, same nuisance models and folds | {np.median(times['EconML']):.2f} | "
              f"{theirs[0]:.5f} ± {theirs[1]:.5f} |")  # fmt: skip
    else:
        print("| EconML LinearDML | not installed | |")
    print(f"| final-stage moments kernel alone (10 columns) | {kernel:.3f} | |")
    print(f"true base effect {TRUE_BASE}")


if __name__ == "__main__":
    main()
