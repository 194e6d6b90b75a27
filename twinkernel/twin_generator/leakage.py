"""Leakage rules: which columns may be features, how rows are split, and what training may see.

* **Default features** never include the target, time, entity or treatment columns, ``*_as_of``
  timestamps, ``*_id`` columns, ``baseline_*`` or identifier-like text.
* **Target copies**: a feature that equals the target, is a deterministic function of it or determines it
  is refused (rows ordered by the target make such a feature smooth: von Neumann roughness, or level
  changes for labels, below ``leakage_tolerance``).
* **Near-copies of the target**: a feature whose out-of-fold association with the target (R² of a binned
  one-feature model, :func:`association_scores`) is near-deterministic compared with the other features'
  is refused unless named in ``allow_strong_features`` (a noisy copy of the target is not a feature).
* **Feature timestamps**: a feature whose ``<feature>_as_of`` column (or one named in
  ``feature_time_cols``) is later than the row's prediction time is refused; without ``time_col`` the
  target's own ``<target>_as_of`` is the reference, and with neither the timing cannot be checked, which is
  an error too. A missing timestamp is an error unless ``allow_missing_timestamps``.
* **Repeated ids**: an id column (``id``, ``*_id``) with repeated values and no ``entity_col`` is an error
  (rows of one unit would land on both sides of a random split).
* **Splits**: out of time (``time < cutoff`` trains, ``time >= cutoff`` validates; without a cutoff the
  latest ``test_size`` share of distinct times is held out), out of entity (no entity on both sides), both
  at once, or a seeded random split. Cross-validation folds follow the same rules (time-ordered, grouped);
  when the training rows have too few distinct times for time-ordered folds the fallback is named in the
  returned note (kept in the metrics' ``warnings``) and warned about, never silent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from ..config import TwinGenerationConfig
from ._common import require_columns
from .marginals import is_label_dtype

NEVER_FEATURES = ("twin_id", "baseline_outcome", "baseline_propensity")
"""Population columns that are outputs of generation, never model features."""


def select_features(
    frame: pl.DataFrame,
    target_col: str,
    feature_cols: Sequence[str] | None,
    time_col: str | None,
    cutoff: Any,
    entity_col: str | None,
    treatment_col: str | None,
    time_map: Mapping[str, str],
    tg: TwinGenerationConfig,
) -> list[str]:
    """Check the named columns exist and return the features (given, or :func:`default_features`)."""
    require_columns(frame, [target_col], "target_col")
    for pname, col in (("time_col", time_col), ("entity_col", entity_col), ("treatment_col", treatment_col)):
        if col is not None:
            require_columns(frame, [col], pname)
    if cutoff is not None and time_col is None:
        raise ValueError("`cutoff` needs `time_col` (the column holding each row's prediction time)")
    if not frame[target_col].dtype.is_numeric():
        raise ValueError(f"target column {target_col!r} must be numeric; got {frame[target_col].dtype}")
    if feature_cols is None:
        features = default_features(frame, target_col, time_col, entity_col, treatment_col, time_map, tg)
    else:
        features = list(dict.fromkeys(feature_cols))
        if not features:
            raise ValueError("`feature_cols` must name at least one column; got an empty list")
        require_columns(frame, features, "feature_cols")
    require_columns(frame, list(time_map.values()), "feature_time_cols")
    return features


def default_features(
    frame: pl.DataFrame,
    target_col: str,
    time_col: str | None,
    entity_col: str | None,
    treatment_col: str | None,
    time_map: Mapping[str, str],
    tg: TwinGenerationConfig,
) -> list[str]:
    """Every numeric, boolean or label column that is allowed to be a feature."""
    skip = {target_col, time_col, entity_col, treatment_col, *time_map.values(), *NEVER_FEATURES}
    id_levels = max(tg.identifier_min_levels, int(frame.height * tg.identifier_share))
    out = []
    for c in frame.columns:
        dt = frame[c].dtype
        if c in skip or c.endswith("_as_of") or c == "id" or c.endswith("_id") or c.startswith("baseline_"):
            continue
        if dt.is_temporal() or not (dt.is_numeric() or dt == pl.Boolean or is_label_dtype(dt)):
            continue
        if dt == pl.String and frame[c].n_unique() > id_levels:
            continue  # identifier-like text
        out.append(c)
    if not out:
        raise ValueError("no usable feature columns found; pass `feature_cols`")
    return out


def check_target_leakage(
    frame: pl.DataFrame,
    target_col: str,
    features: Sequence[str],
    treatment_col: str | None,
    usable: np.ndarray,
    tg: TwinGenerationConfig,
) -> None:
    """Refuse the target, the treatment, or any copy / deterministic function of the target as a feature."""
    for c in (target_col, treatment_col):
        if c is not None and c in features:
            what = "target" if c == target_col else "treatment"
            raise ValueError(
                f"the {what} column {c!r} cannot be a feature (it would leak the outcome); "
                f"remove it from `feature_cols`"
            )
    rows = np.flatnonzero(usable)
    cap = tg.leakage_check_max_rows
    if rows.size > cap:  # the roughness statistics are stable long before this
        rows = rows[:: rows.size // cap + 1]
    y = frame[target_col].cast(pl.Float64).to_numpy()[rows]
    order_y = np.argsort(y, kind="stable")
    tol = tg.leakage_tolerance
    for c in features:
        s = frame[c][rows]
        dt = s.dtype
        if dt.is_temporal():
            continue
        if is_label_dtype(dt) or dt == pl.Boolean:
            _check_label_feature(c, s, order_y, target_col, tol)
            continue
        x = s.cast(pl.Float64, strict=False).to_numpy()
        ok = np.isfinite(x)
        if ok.sum() < 3 or np.nanstd(x) == 0.0:
            continue
        if np.array_equal(x[ok], y[ok]):
            raise ValueError(
                f"feature {c!r} is a copy of the target {target_col!r}; remove it from `feature_cols`"
            )
        for ordered_by, values, what in ((y, x, "is a deterministic function of"), (x, y, "determines")):
            okk = ok & np.isfinite(ordered_by)
            o = np.argsort(ordered_by[okk], kind="stable")
            v = values[okk][o]
            var = float(((v - v.mean()) ** 2).sum())
            if var == 0.0:
                continue
            ratio = float((np.diff(v) ** 2).sum()) / (2.0 * var)
            if ratio < tol:
                raise ValueError(
                    f"feature {c!r} {what} the target {target_col!r} (von Neumann roughness {ratio:.2e} < "
                    f"{tol}: it is the target in disguise); remove it from `feature_cols`"
                )


def _check_label_feature(c: str, s: pl.Series, order_y: np.ndarray, target_col: str, tol: float) -> None:
    codes = s.cast(pl.String).fill_null("\x00").cast(pl.Categorical).to_physical().to_numpy()
    changes = float(np.count_nonzero(np.diff(codes[order_y])))
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    expected = (codes.size - 1) * (1.0 - float((p * p).sum()))
    if expected > 0 and changes / expected < tol:
        raise ValueError(
            f"feature {c!r} is a deterministic function of the target {target_col!r} "
            f"(ordered by the target its value changes {int(changes)} times, {changes / expected:.4f} of "
            f"what an unrelated column would); remove it from `feature_cols`"
        )


def check_feature_timestamps(
    frame: pl.DataFrame,
    features: Sequence[str],
    time_col: str | None,
    time_map: Mapping[str, str],
    target_col: str,
    usable: np.ndarray,
    allow_missing: bool,
) -> None:
    """Refuse a feature timestamped (``<feature>_as_of`` or ``time_map``) after the row's prediction time.

    The prediction time is ``time_col``; without it, the target's own ``<target>_as_of`` column. With
    neither, stamped features cannot be checked and are refused. A missing timestamp (null) on a usable row
    is refused unless ``allow_missing``.
    """
    stamped = {}
    for f in features:
        col = time_map.get(f, f"{f}_as_of")
        if col in frame.columns:
            stamped[f] = col
    if not stamped:
        return
    ref_col = time_col
    if ref_col is None and f"{target_col}_as_of" in frame.columns:
        ref_col = f"{target_col}_as_of"
    if ref_col is None:
        raise ValueError(
            f"features {sorted(stamped)} carry timestamps ({sorted(stamped.values())}) but no `time_col` was "
            f"given (nor a {target_col + '_as_of'!r} column): their timing cannot be checked; pass "
            "`time_col` (each row's prediction time) or drop the features"
        )
    pred_time = frame[ref_col].filter(pl.Series(usable))
    for f, col in stamped.items():
        stamp = frame[col].filter(pl.Series(usable))
        n_null = int(stamp.is_null().sum())
        if n_null and not allow_missing:
            raise ValueError(
                f"timestamp column {col!r} of feature {f!r} is missing in {n_null} rows: a missing "
                f"timestamp cannot be checked against {ref_col!r}; fill it, drop the feature, or pass "
                "`allow_missing_timestamps=True`"
            )
        if stamp.dtype != pred_time.dtype:
            try:
                stamp = stamp.cast(pred_time.dtype)
            except Exception as exc:  # report the column, not polars internals
                raise ValueError(
                    f"timestamp column {col!r} ({stamp.dtype}) cannot be compared with {ref_col!r} "
                    f"({pred_time.dtype})"
                ) from exc
        late = (stamp > pred_time).fill_null(False)
        n_late = int(late.sum())
        if n_late:
            i = int(np.flatnonzero(late.to_numpy())[0])
            raise ValueError(
                f"feature {f!r} is measured after the prediction time in {n_late} rows: its timestamp "
                f"{col!r} is later than {ref_col!r} (first at usable row {i}: {stamp[i]} > {pred_time[i]}); "
                f"use a value known at prediction time (e.g. a lagged feature)"
            )


def check_repeated_ids(frame: pl.DataFrame, entity_col: str | None, time_col: str | None) -> None:
    """Refuse repeated ids without ``entity_col``: rows of one unit would be on both sides of a split.

    Id columns are ``id`` and ``*_id`` (``twin_id`` included). With ``time_col``, an id that repeats across
    times is panel data and the time split keeps the future out; an id repeated within one time is still
    refused.
    """
    if entity_col is not None:
        return
    for c in frame.columns:
        if not (c == "id" or c.endswith("_id")) or c == time_col:
            continue
        keys = [c] if time_col is None else [c, time_col]
        dup = frame.select(keys).is_duplicated()
        n_dup = int(dup.sum())
        if n_dup:
            n_ids = int(frame[c].filter(dup).n_unique())
            within = "" if time_col is None else f" within one {time_col!r}"
            raise ValueError(
                f"id column {c!r} repeats{within}: {n_ids} of {frame[c].n_unique()} ids appear in more than "
                f"one row ({n_dup} rows); without `entity_col` their rows would be on both sides of the "
                f"split; pass `entity_col={c!r}` (or drop the column if it is not a unit id)"
            )


def association_scores(
    frame: pl.DataFrame,
    target_col: str,
    features: Sequence[str],
    usable: np.ndarray,
    tg: TwinGenerationConfig,
) -> dict[str, float]:
    """Out-of-fold R² of a one-feature model (mean target per quantile bin or level) for each feature.

    Folds are seeded (``random_state``) and rows subsampled evenly above ``leakage_check_max_rows``; bins
    are ``leakage_association.bins`` quantile bins of numeric features (missing values one more bin).
    """
    la = tg.leakage_association
    rows = np.flatnonzero(usable)
    cap = tg.leakage_check_max_rows
    if rows.size > cap:
        rows = rows[:: rows.size // cap + 1]
    y = frame[target_col].cast(pl.Float64).to_numpy()[rows]
    n = y.size
    fold = np.random.default_rng(tg.random_state + 2).permutation(n) % tg.cv_folds
    sst = float(((y - y.mean()) ** 2).sum())
    out: dict[str, float] = {}
    for c in features:
        s = frame[c][rows]
        if s.dtype.is_temporal():
            continue
        if is_label_dtype(s.dtype) or s.dtype == pl.Boolean:
            codes = s.cast(pl.String).fill_null("\x00").cast(pl.Categorical).to_physical().to_numpy()
            codes = np.unique(codes, return_inverse=True)[1]
        else:
            x = s.cast(pl.Float64, strict=False).to_numpy()
            ok = np.isfinite(x)
            edges = (
                np.unique(np.quantile(x[ok], np.linspace(0, 1, la.bins + 1)[1:-1]))
                if ok.any()
                else np.empty(0)
            )
            codes = np.where(ok, np.searchsorted(edges, np.where(ok, x, 0.0), side="right"), len(edges) + 1)
        k = int(codes.max()) + 1
        pred = np.empty(n)
        for j in range(tg.cv_folds):
            tr = fold != j
            sums = np.bincount(codes[tr], weights=y[tr], minlength=k)
            cnt = np.bincount(codes[tr], minlength=k)
            means = np.where(cnt > 0, sums / np.maximum(cnt, 1), y[tr].mean())
            pred[~tr] = means[codes[~tr]]
        out[c] = 1.0 - float(((y - pred) ** 2).sum()) / sst if sst > 0 else 0.0
    return out


def check_strong_features(
    scores: Mapping[str, float], allowed: Sequence[str], tg: TwinGenerationConfig
) -> None:
    """Refuse a feature whose out-of-fold R² is near-deterministic compared with the rest.

    A feature is refused when its R² is at least ``leakage_association.min_r2`` and its unexplained share
    ``1 - R²`` is at most ``leakage_association.ratio`` times the median unexplained share of the other
    features (1 when it is the only one). Named in ``allowed``: accepted (the rule is a heuristic).
    """
    la = tg.leakage_association
    for c, r2 in scores.items():
        if c in allowed or r2 < la.min_r2:
            continue
        others = [1.0 - v for k, v in scores.items() if k != c]
        rest = float(np.median(others)) if others else 1.0
        if 1.0 - r2 <= la.ratio * rest:
            raise ValueError(
                f"feature {c!r} predicts the target out of fold with R² {r2:.3f} on its own (the other "
                f"features' median {1.0 - rest:.3f}): near-deterministic, a noisy copy of the target is "
                f"likely (twin_generation.leakage_association: min_r2 {la.min_r2}, ratio {la.ratio}); "
                f"drop it, or pass `allow_strong_features=[{c!r}]` if it is known before the outcome"
            )


def coerce_cutoff(cutoff: Any, dtype: pl.DataType) -> Any:
    """A cutoff given as text, parsed to the time column's Date/Datetime type."""
    if isinstance(cutoff, str) and dtype == pl.Date:
        return pl.Series([cutoff]).str.to_date()[0]
    if isinstance(cutoff, str) and dtype == pl.Datetime:
        return pl.Series([cutoff]).str.to_datetime()[0]
    return cutoff


def split_rows(
    frame: pl.DataFrame,
    usable: np.ndarray,
    time_col: str | None,
    cutoff: Any,
    entity_col: str | None,
    tg: TwinGenerationConfig,
) -> tuple[np.ndarray, np.ndarray, str, str | None, str | None]:
    """(training rows, validation rows, split name, cutoff text, note) under the leakage rules; the note
    (else ``None``) says when a time column was given but the rows could not be split by time."""
    rng = np.random.default_rng(tg.random_state)
    test_size = tg.test_size
    in_valid_entity: np.ndarray | None = None
    if entity_col is not None:
        ent = frame[entity_col]
        uniq = ent.unique().sort()
        n_valid = max(1, math.ceil(test_size * uniq.len()))
        chosen = uniq[rng.permutation(uniq.len())[:n_valid]]
        in_valid_entity = ent.is_in(chosen.implode()).to_numpy()

    cutoff_text = None
    note: str | None = None
    after: np.ndarray | None = None
    if time_col is not None:
        t = frame[time_col]
        if cutoff is None:
            times = t.filter(pl.Series(usable)).unique().sort()
            if times.len() >= 2:
                k = min(times.len() - 1, max(1, math.floor((1.0 - test_size) * times.len())))
                cut = times[k]
                after = (t >= cut).to_numpy()
                cutoff_text = str(cut)
            else:
                note = (
                    f"not split by time: {time_col!r} has {times.len()} distinct value(s) in the usable "
                    "rows; the validation rows are a seeded random (or entity) hold-out"
                )
        else:
            cut = coerce_cutoff(cutoff, t.dtype)
            after = (t >= cut).fill_null(False).to_numpy()
            cutoff_text = str(cut)

    if after is not None and in_valid_entity is not None:
        train = usable & ~after & ~in_valid_entity
        valid = usable & after & in_valid_entity
        split = "temporal+entity"
    elif after is not None:
        train, valid, split = usable & ~after, usable & after, "temporal"
    elif in_valid_entity is not None:
        train, valid, split = usable & ~in_valid_entity, usable & in_valid_entity, "entity"
    else:
        holdout = np.zeros(frame.height, dtype=bool)
        idx = np.flatnonzero(usable)
        holdout[idx[rng.permutation(idx.size)[: math.ceil(test_size * idx.size)]]] = True
        train, valid, split = usable & ~holdout, usable & holdout, "random"
    return np.flatnonzero(train), np.flatnonzero(valid), split, cutoff_text, note


def cv_folds(
    train_frame: pl.DataFrame, time_col: str | None, entity_col: str | None, tg: TwinGenerationConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str, str | None]:
    """Cross-validation folds of the training rows: time-ordered (expanding window) with a time column,
    grouped by entity with an entity column, both, or seeded k-fold; the scheme's name; and a note (else
    ``None``) when a time column was given but the folds could not follow time.

    With fewer than ``cv_folds + 1`` distinct training times, ``times - 1`` time-ordered folds are used
    (at least 2); with fewer than 3 times the folds fall back to (grouped) k-fold and the note says so.
    """
    k = tg.cv_folds
    rng = np.random.default_rng(tg.random_state + 1)
    n = train_frame.height
    group = None
    if entity_col is not None:
        ent = train_frame[entity_col]
        uniq = ent.unique().sort()
        fold_of = pl.Series(rng.permutation(uniq.len()) % k)
        group = ent.replace_strict(uniq, fold_of, return_dtype=pl.Int64).to_numpy()
    folds: list[tuple[np.ndarray, np.ndarray]] = []
    scheme = ""
    note: str | None = None
    if time_col is not None:
        t = train_frame[time_col].to_physical().cast(pl.Float64).to_numpy()
        times = np.unique(t)
        kt = min(k, times.size - 1)
        if kt >= 2:
            if kt < k:
                note = (
                    f"cross-validation by time: {times.size} distinct training times of {time_col!r} allow "
                    f"{kt} time-ordered folds, not the configured {k} (twin_generation.cv_folds)"
                )
            edges = times[np.linspace(0, times.size, kt + 2).astype(int)[1:-1]]
            for j in range(kt):
                tr = t < edges[j]
                va = (t >= edges[j]) & (t < edges[j + 1]) if j + 1 < kt else t >= edges[j]
                if group is not None:
                    tr, va = tr & (group != j % k), va & (group == j % k)
                folds.append((np.flatnonzero(tr), np.flatnonzero(va)))
            scheme = "time_ordered" + ("+entity" if group is not None else "")
    if not folds:
        assign = group if group is not None else rng.permutation(n) % k
        folds = [(np.flatnonzero(assign != j), np.flatnonzero(assign == j)) for j in range(k)]
        scheme = "group_kfold" if group is not None else "kfold"
        if time_col is not None:
            n_times = int(train_frame[time_col].n_unique())
            note = (
                f"not cross-validated by time: the training rows have {n_times} distinct "
                f"{time_col!r} value(s), time-ordered folds need at least 3; used {scheme} over rows instead "
                "(scores may be optimistic if the outcome drifts over time)"
            )
    return folds, scheme, note
