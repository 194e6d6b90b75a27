"""Designed history frames for the effect-learning tests: known effect-model parameters, confounded
treatment, seeded."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from twinkernel.models import ADOPTION_STAGES

ADOPTION_MULT = {"innovator": 0.6, "early_adopter": 0.8, "early_majority": 1.0, "late_majority": 1.2,
                 "laggard": 1.4}  # fmt: skip
TRUE_BASE = 0.08  # the digital_engagement type's designed base effect (prior 0.06)


def designed_history(
    n: int = 6000,
    seed: int = 0,
    base: float = TRUE_BASE,
    treat_deciles: tuple[int, ...] | None = None,
    continuous: bool = False,
) -> pl.DataFrame:
    """Rows with the population's modifier columns, a confounded treatment and an outcome whose effect is
    ``base`` times the configuration's prior modifiers (decile, engagement, adoption stage)."""
    rng = np.random.default_rng(seed)
    decile = rng.integers(1, 11, n)
    e = rng.random(n)
    stage = rng.choice(len(ADOPTION_STAGES), size=n, p=[0.05, 0.15, 0.3, 0.3, 0.2])
    x1 = rng.normal(0.0, 1.0, n)
    score = -0.4 + 0.25 * (decile - 5.5) + 1.2 * (e - 0.5) + 0.3 * x1
    if continuous:
        t = np.maximum(0.0, 1.0 + 0.4 * score + rng.normal(0.0, 0.8, n))
    else:
        p = 1.0 / (1.0 + np.exp(-score))
        if treat_deciles is not None:
            p = np.where(np.isin(decile, treat_deciles), 0.5, 0.0)
        t = (rng.random(n) < p).astype(np.int8)
    mult = np.array([ADOPTION_MULT[s] for s in ADOPTION_STAGES])[stage]
    tau = base * (1.2 - 0.04 * (decile - 1)) * (0.8 + 0.4 * e) * mult
    y = 0.3 + 0.03 * decile + 0.25 * e + 0.1 * np.sin(x1) + t * tau + rng.normal(0.0, 0.05, n)
    months = rng.integers(0, 12, n)
    return pl.DataFrame(
        {
            "hcp_id": np.arange(n, dtype=np.int64),
            "month": [date(2025, 1 + int(m), 1) for m in months],
            "decile": decile.astype(np.int16),
            "digital_engagement_score": e,
            "adoption_stage": pl.Series(np.asarray(ADOPTION_STAGES)[stage]).cast(
                pl.Enum(list(ADOPTION_STAGES))
            ),
            "x1": x1,
            "treated": t,
            "brand_share": y,
        }
    )
