"""``learn_effect``: one intervention type's effect-model parameters from unit-level history (DML)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from ..config import InterventionEffectsConfig, TwinkernelConfig, get_config
from ..config_effect_learning import EffectLearningConfig
from ..models import ADOPTION_STAGES
from ..twin_generator.leakage import coerce_cutoff, select_features
from .checks import (
    as_polars,
    check_leakage,
    check_overlap,
    check_treatment_rows,
    check_treatment_strength,
    no_support_hint,
)
from .final_stage import (
    BASE,
    DECILE,
    ENGAGEMENT,
    PROPENSITY,
    FinalStageFit,
    ModifierInputs,
    ModifierPrior,
    adoption_name,
    fit_final_stage,
    tau_and_jacobian,
    tier_name,
)
from .nuisance import assign_folds, cross_fit, encode_features
from .result import EffectLearningError, LearnedEffect, LearningDiagnostics

__all__ = ["MODIFIER_COLUMNS", "learn_effect"]

MODIFIER_COLUMNS = {
    "decile": "decile",
    "engagement": "digital_engagement_score",
    "adoption_stage": "adoption_stage",
    "priority_tier": "priority_tier",
    "propensity": "baseline_propensity",
    "peer": "peer_influence_score",
}
"""Effect-model modifier → the twin column it reads (the population's names)."""


def _require(frame: pl.DataFrame, name: str, col: str | None) -> None:
    if col is not None and col not in frame.columns:
        raise EffectLearningError("bad_input", f"`{name}` names column {col!r}, which is not in the frame")


def _time_text(values: pl.Series) -> str:
    if values.dtype == pl.Date:
        days = values.dt.day()
        return str(values[0])[:7] if bool((days == 1).all()) else str(values[0])
    return str(values[0])


def _modifier_inputs(
    frame: pl.DataFrame,
    eff: InterventionEffectsConfig,
    cfg: TwinkernelConfig,
    itype: str,
    warnings: list[str],
) -> tuple[ModifierInputs, set[str]]:
    """Per-row modifier values clamped like the kernel; absent or missing values take the documented
    defaults (``simulation.missing_value_defaults``), counted in ``warnings``."""
    defaults = cfg.simulation.missing_value_defaults
    present: set[str] = set()
    n = frame.height

    def numeric(key: str, default: float) -> np.ndarray:
        col = MODIFIER_COLUMNS[key]
        if col not in frame.columns:
            warnings.append(f"column {col!r} absent: its modifier is evaluated at the default {default}")
            return np.full(n, float(default))
        present.add(key)
        x = frame[col].cast(pl.Float64, strict=False).to_numpy().copy()
        missing = ~np.isfinite(x)
        if missing.any():
            warnings.append(f"{int(missing.sum())} rows miss {col!r}: used the default {default}")
            x[missing] = float(default)
        return x

    d = np.clip(numeric("decile", defaults.decile), eff.decile.low, eff.decile.high)
    e = np.clip(numeric("engagement", defaults.digital_engagement_score), 0.0, 1.0)
    p = np.clip(numeric("propensity", defaults.baseline_propensity), 0.0, 1.0)
    tier = np.clip(np.rint(numeric("priority_tier", defaults.priority_tier)), 1, 5).astype(np.int64)
    peer = np.clip(numeric("peer", defaults.peer_influence_score), 0.0, 1.0)
    col = MODIFIER_COLUMNS["adoption_stage"]
    if col in frame.columns:
        present.add("adoption_stage")
        stages = frame[col].cast(pl.String)
        n_missing = int(stages.is_null().sum())
        if n_missing:
            warnings.append(f"{n_missing} rows miss {col!r}: used the default {defaults.adoption_stage!r}")
        lookup = {s: i for i, s in enumerate(ADOPTION_STAGES)}
        codes = (
            stages.fill_null(defaults.adoption_stage)
            .replace_strict(lookup, default=len(ADOPTION_STAGES), return_dtype=pl.Int64)
            .to_numpy()
        )
    else:
        warnings.append(f"column {col!r} absent: its modifier is evaluated at {defaults.adoption_stage!r}")
        codes = np.full(n, ADOPTION_STAGES.index(defaults.adoption_stage), dtype=np.int64)
    threshold = eff.types[itype].peer_influence_threshold
    gate = np.ones(n) if threshold is None else (peer >= threshold).astype(np.float64)
    return ModifierInputs(d, e, np.ascontiguousarray(codes, dtype=np.int64), tier, p, gate), present


def _prior(eff: InterventionEffectsConfig, itype: str) -> ModifierPrior:
    start = {
        BASE: eff.types[itype].base_effect,
        DECILE: eff.decile.slope,
        ENGAGEMENT: eff.engagement.slope,
        PROPENSITY: eff.propensity.slope,
        "adoption:unrecognised": eff.unknown_adoption_multiplier,
    }
    for s in ADOPTION_STAGES:
        start[adoption_name(s)] = eff.adoption_stage.get(s, eff.unknown_adoption_multiplier)
    for t in range(1, 6):
        start[tier_name(t)] = eff.priority_tier.get(t, 1.0)
    return ModifierPrior(
        decile_intercept=eff.decile.intercept,
        decile_low=float(eff.decile.low),
        engagement_intercept=eff.engagement.intercept,
        propensity_intercept=eff.propensity.intercept,
        use_tier=eff.types[itype].use_priority_tier,
        start=start,
    )


def _free_parameters(
    inp: ModifierInputs, present: set[str], acting: np.ndarray, cfg: TwinkernelConfig, use_tier: bool
) -> tuple[list[str], list[str]]:
    """(free, held at prior): a modifier is learned when configured, present and varying among the rows
    that are treated and not gated; a category level needs ``min_level_treated`` such rows."""
    el = cfg.effect_learning
    free: list[str] = [BASE]
    fixed: list[str] = []
    for key, name, values in (
        ("decile", DECILE, inp.decile),
        ("engagement", ENGAGEMENT, inp.engagement),
        ("propensity", PROPENSITY, inp.propensity),
    ):
        ok = key in el.learn_modifiers and key in present and acting.any() and np.ptp(values[acting]) > 0
        (free if ok else fixed).append(name)
    for s_code, s in enumerate(ADOPTION_STAGES):
        if s == el.adoption_reference:
            continue
        n_level = int((acting & (inp.adoption == s_code)).sum())
        ok = (
            "adoption_stage" in el.learn_modifiers
            and "adoption_stage" in present
            and n_level >= el.min_level_treated
        )
        (free if ok else fixed).append(adoption_name(s))
    if use_tier:
        for t in range(1, 6):
            if t == el.tier_reference:
                continue
            n_level = int((acting & (inp.tier == t)).sum())
            ok = (
                "priority_tier" in el.learn_modifiers
                and "priority_tier" in present
                and n_level >= el.min_level_treated
            )
            (free if ok else fixed).append(tier_name(t))
    return free, fixed


def _modifier_refusal(base_only: FinalStageFit, el: EffectLearningConfig) -> str | None:
    """Why the modifiers cannot be learned (they are ratios to the base effect), or ``None``."""
    b, se = float(base_only.estimates[0]), float(base_only.std_errors[0])
    t = abs(b) / se if se > 0 else math.inf
    if t < el.min_t_for_modifiers:
        return f"the effect is too weak to learn its modifiers (|b|/SE = {t:.2f} < {el.min_t_for_modifiers})"
    return None


def _degenerate(
    stage: FinalStageFit,
    inp: ModifierInputs,
    prior: ModifierPrior,
    acting: np.ndarray,
    el: EffectLearningConfig,
) -> str | None:
    """A full fit that did not converge, or whose modifier product is, somewhere among the treated rows,
    more than ``max_modifier_ratio`` times its median size, or whose median size is that far from the
    prior modifiers' (b → 0 with slopes → ∞: a ridge, not an estimate). A product crossing 0 at extreme
    deciles is a noisy slope, not a degenerate fit, and is kept."""
    if not stage.converged:
        return f"the final stage did not converge in {stage.iterations} Gauss-Newton iterations"
    values = dict(zip(stage.names, (float(v) for v in stage.estimates), strict=True))
    treated = inp.take(np.flatnonzero(acting))
    size = np.abs(tau_and_jacobian(values, [BASE], treated, prior)[1][:, 0])
    typical = float(np.median(size))
    at_prior = float(np.median(np.abs(tau_and_jacobian({}, [BASE], treated, prior)[1][:, 0])))
    r = el.max_modifier_ratio
    if typical == 0.0 or float(size.max()) > r * typical or not at_prior / r <= typical <= r * at_prior:
        return (f"the learned modifiers are degenerate (their product: median {typical:.3g}, largest "
                f"{float(size.max()):.3g}, median with the prior modifiers {at_prior:.3g}, over the treated "
                f"rows; effect_learning.max_modifier_ratio {r})")  # fmt: skip
    return None


def learn_effect(
    frame: Any,
    *,
    intervention_type: str,
    treatment_col: str,
    outcome_col: str,
    feature_cols: Sequence[str] | None = None,
    time_col: str | None = None,
    cutoff: Any = None,
    entity_col: str | None = None,
    seed: int | None = None,
    type_col: str | None = "intervention_type",
    config: TwinkernelConfig | None = None,
) -> LearnedEffect:
    """Learn ``intervention_type``'s base effect and modifiers from history by double machine learning.

    See :meth:`twinkernel.EffectModel.learn_from_history` (the public entry) and ``docs/effects.md``.

    Raises
    ------
    EffectLearningError
        When the data cannot identify the effect (``cause`` says why): too few rows, no treatment variation,
        no overlap, a post-treatment feature or a target leak.
    """
    cfg = config if config is not None else get_config()
    el, eff = cfg.effect_learning, cfg.simulation.intervention_effects
    df = as_polars(frame)
    if intervention_type not in eff.types:
        raise EffectLearningError(
            "bad_input",
            f"`intervention_type` must be one of {sorted(eff.types)}; got {intervention_type!r}",
        )
    for name, col in (("treatment_col", treatment_col), ("outcome_col", outcome_col),
                      ("time_col", time_col), ("entity_col", entity_col)):  # fmt: skip
        _require(df, name, col)
    if cutoff is not None and time_col is None:
        raise EffectLearningError("bad_input", "`cutoff` needs `time_col` (each row's treatment time)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise EffectLearningError("bad_input", f"`seed` must be a non-negative integer or None; got {seed!r}")
    seed_used = el.random_state if seed is None else int(seed)
    what = f"{intervention_type!r}"
    warnings: list[str] = []

    if not (df[treatment_col].dtype.is_numeric() or df[treatment_col].dtype == pl.Boolean):
        raise EffectLearningError(
            "bad_input",
            f"`treatment_col` {treatment_col!r} must be numeric or boolean; got {df[treatment_col].dtype}",
        )
    keep = df[outcome_col].cast(pl.Float64, strict=False).is_finite().fill_null(False)
    keep &= df[treatment_col].is_not_null()
    n_missing = int(df.height - keep.sum())
    if n_missing:
        warnings.append(f"left out {n_missing} rows with a missing or non-finite outcome or treatment")
    if cutoff is not None and time_col is not None:
        keep &= (df[time_col] < coerce_cutoff(cutoff, df[time_col].dtype)).fill_null(False)
    t_all = df[treatment_col].cast(pl.Float64)
    binary = bool(t_all.filter(keep).is_in([0.0, 1.0]).all())
    if binary and type_col is not None and type_col in df.columns:
        other = (t_all == 1.0) & (df[type_col].cast(pl.String) != intervention_type).fill_null(True)
        n_other = int((other & keep).sum())
        if n_other:
            warnings.append(
                f"left out {n_other} rows treated with another intervention type (column {type_col!r})"
            )
        keep &= ~other
    data = df.filter(keep)
    t = data[treatment_col].cast(pl.Float64).to_numpy()
    y = data[outcome_col].cast(pl.Float64).to_numpy()
    check_treatment_rows(t, binary, el, what)

    try:
        features = select_features(
            data,
            outcome_col,
            feature_cols,
            time_col,
            None,
            entity_col,
            treatment_col,
            {},
            cfg.twin_generation,
        )
    except EffectLearningError:
        raise
    except ValueError as exc:
        raise EffectLearningError("bad_input", str(exc)) from exc
    if feature_cols is None and type_col is not None:
        features = [f for f in features if f != type_col]
    added = [
        c
        for k, c in MODIFIER_COLUMNS.items()
        if c in data.columns and c not in features and k != "propensity"
    ]
    if added:
        features = features + added
        warnings.append(
            f"added the effect-modifier columns {added} to the features (the effect varies with them)"
        )
    check_leakage(data, outcome_col, treatment_col, features, time_col, cfg.twin_generation)

    x, cat_mask = encode_features(data, features)
    fold = assign_folds(data, entity_col, el.folds, seed_used)
    fit = cross_fit(
        x, cat_mask, y, t, fold, binary, el.nuisance, seed_used, cfg.twin_generation.sklearn_threads
    )

    if binary:
        hint = no_support_hint(data, t, [MODIFIER_COLUMNS["decile"], MODIFIER_COLUMNS["adoption_stage"]])
        inside, share, scaled = check_overlap(fit.treatment_hat, float(t.mean()), el, what, hint)
    else:
        check_treatment_strength(fit.treatment_score, el, what)
        inside, share, scaled = np.ones(t.size, dtype=bool), 0.0, fit.treatment_hat
    rows = np.flatnonzero(inside)
    if binary:
        n_treated_kept = int(t[rows].sum())
        if n_treated_kept < el.min_treated:
            raise EffectLearningError(
                "no_overlap",
                f"no overlap for {what}: {n_treated_kept} treated rows have a propensity inside "
                f"[{el.propensity_low}, {el.propensity_high}] (effect_learning.min_treated {el.min_treated})",
            )
        if rows.size < t.size:
            warnings.append(
                f"trimmed {t.size - rows.size} of {t.size} rows ({share:.1%}) with a {el.overlap_scale} "
                "propensity outside "
                f"[{el.propensity_low}, {el.propensity_high}]"
            )

    inp_all, present = _modifier_inputs(data, eff, cfg, intervention_type, warnings)
    inp = inp_all.take(rows)
    t_res = t[rows] - fit.treatment_hat[rows]
    y_res = y[rows] - fit.outcome_hat[rows]
    acting = (t[rows] != 0.0) & (inp.gate > 0.0)
    if not acting.any():
        raise EffectLearningError(
            "no_treatment_variation",
            f"no treatment variation for {what}: no treated row passes the effect's peer-influence gate",
        )
    prior = _prior(eff, intervention_type)
    free, fixed = _free_parameters(inp, present, acting, cfg, prior.use_tier)
    clusters = None
    if entity_col is not None:
        clusters = data[entity_col].cast(pl.String).rank("dense").to_numpy()[rows].astype(np.int64)

    def final(names: Sequence[str]) -> FinalStageFit:
        return fit_final_stage(y_res, t_res, inp, prior, names, clusters=clusters,
                               max_iterations=el.max_iterations, tolerance=el.tolerance)  # fmt: skip

    stage = final([BASE])
    if len(free) > 1:
        reason = _modifier_refusal(stage, el)
        if reason is None:
            stage = final(free)
            reason = _degenerate(stage, inp, prior, acting, el)
        if reason is not None:
            stage = final([BASE])
            warnings.append(f"{reason}: the modifiers keep their prior values")
            fixed, free = fixed + free[1:], [BASE]

    if binary:
        y1, y0 = y[t == 1.0], y[t == 0.0]
        naive = float(y1.mean() - y0.mean())
        naive_se = math.sqrt(float(y1.var(ddof=1)) / y1.size + float(y0.var(ddof=1)) / y0.size)
    else:
        tc = t - t.mean()
        naive = float(tc @ (y - y.mean()) / (tc @ tc))
        resid = y - y.mean() - naive * tc
        naive_se = math.sqrt(float(resid @ resid) / (t.size - 2) / float(tc @ tc))
    first = last = None
    if time_col is not None:
        times = data[time_col].sort()
        first, last = _time_text(times.head(1)), _time_text(times.tail(1))
    diag = LearningDiagnostics(
        treatment_kind="binary" if binary else "continuous",
        n_rows=int(rows.size),
        n_treated=int((t[rows] != 0.0).sum()),
        n_rows_input=int(t.size),
        n_trimmed=int(t.size - rows.size),
        share_outside=share,
        propensity_bounds=(el.propensity_low, el.propensity_high),
        propensity_min=float(scaled.min()),
        propensity_max=float(scaled.max()),
        outcome_oof_r2=fit.outcome_r2,
        treatment_oof_score=fit.treatment_score,
        treatment_score_name=fit.treatment_score_name,
        folds=int(np.unique(fold).size),
        fold_scheme="group_kfold" if entity_col is not None else "kfold",
        nuisance_algorithm=el.nuisance.algorithm,
        iterations=stage.iterations,
        converged=stage.converged,
        n_clusters=stage.n_clusters,
        naive_difference=naive,
        naive_std_error=naive_se,
        features=tuple(features),
    )
    return LearnedEffect(
        intervention_type=intervention_type,
        names=stage.names,
        estimates=tuple(float(v) for v in stage.estimates),
        std_errors=tuple(float(s) for s in stage.std_errors),
        covariance=LearnedEffect.covariance_tuple(stage.covariance),
        fixed=tuple(fixed),
        n_rows=int(rows.size),
        first_time=first,
        last_time=last,
        seed=seed_used,
        diagnostics=diag,
        warnings=tuple(warnings),
    )
