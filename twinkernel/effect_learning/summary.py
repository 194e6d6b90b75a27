"""Provenance text and the parameter summary of an effect model with learned and calibrated types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import polars as pl

from ..calibration import TypeCalibration
from ..models import ADOPTION_STAGES
from .result import LearnedEffect

if TYPE_CHECKING:
    from ..effect_model import EffectModel

__all__ = ["combined_provenance", "summary_frame"]


def combined_provenance(
    learned: Mapping[str, LearnedEffect], calibrations: Mapping[str, TypeCalibration], types: Iterable[str]
) -> str:
    """Each type's sources, e.g. ``"email_campaign: learned from 48 210 rows (DML, 2025-01..2025-12) +
    calibrated from 4 experiments (2026-01-10..2026-06-02), τ=0.004; sample_distribution: prior"``."""
    parts = []
    for t in sorted(set(learned) | set(calibrations) | set(types)):
        pieces = []
        if t in learned:
            pieces.append(learned[t].provenance().split(": ", 1)[1])
        if t in calibrations:
            pieces.append(calibrations[t].provenance().split(": ", 1)[1])
        parts.append(f"{t}: {' + '.join(pieces) if pieces else 'prior'}")
    return "; ".join(parts)


def _prior_rows(model: EffectModel, t: str) -> dict[str, float]:
    eff = model.effects
    rows = {
        "base_effect": model.overrides.get(t, {}).get("base_effect", eff.types[t].base_effect),
        "decile_slope": eff.decile.slope,
        "engagement_slope": eff.engagement.slope,
        "propensity_slope": eff.propensity.slope,
    }
    for s in ADOPTION_STAGES:
        rows[f"adoption:{s}"] = eff.adoption_stage.get(s, eff.unknown_adoption_multiplier)
    if eff.types[t].use_priority_tier:
        for k, m in sorted(eff.priority_tier.items()):
            rows[f"tier:{k}"] = m
    return rows


def summary_frame(model: EffectModel) -> pl.DataFrame:
    """One row per type and parameter: estimate, standard error (None when the prior's modifier carries
    none) and source (``prior``, ``learned (DML)``, ``calibrated`` or ``learned (DML) + calibrated``)."""
    eff = model.effects
    out: dict[str, list] = {
        k: [] for k in ("intervention_type", "parameter", "estimate", "std_error", "source")
    }

    def add(t: str, name: str, est: float, se: float | None, source: str) -> None:
        out["intervention_type"].append(t)
        out["parameter"].append(name)
        out["estimate"].append(float(est))
        out["std_error"].append(None if se is None else float(se))
        out["source"].append(source)

    for t in sorted(eff.types):
        le = model.learned.get(t)
        cal = model.calibrations.get(t)
        for name, prior_value in _prior_rows(model, t).items():
            if name == "base_effect":
                if cal is not None:
                    src = "learned (DML) + calibrated" if le is not None else "calibrated"
                    add(t, name, cal.base_effect(prior_value), cal.base_effect_sd(prior_value), src)
                elif le is not None:
                    add(t, name, le.base_effect, le.base_effect_sd, f"learned ({le.method})")
                else:
                    add(t, name, prior_value, eff.prior_relative_sd * abs(prior_value), "prior")
            elif le is not None and name in le.names:
                add(t, name, le.value(name, prior_value), le.std_error(name), f"learned ({le.method})")
            else:
                add(t, name, prior_value, None, "prior")
    schema = {"intervention_type": pl.String, "parameter": pl.String, "estimate": pl.Float64,
              "std_error": pl.Float64, "source": pl.String}  # fmt: skip
    return pl.DataFrame(out, schema=schema)
