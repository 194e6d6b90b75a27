"""The fidelity report: twins judged against real rows on every column, every pair, a classifier and privacy.

* **Column shapes**: ``1 - KS`` for numeric columns, ``1 - total variation`` for categorical ones.
* **Pairs, all of them**: numeric-numeric ``1 - |r_real - r_twins| / 2`` (Pearson); categorical and mixed
  pairs ``1 - total variation`` of the joint table (numerics cut at the real rows' quantiles). Categorical
  pairs also carry Cramér's V of both sides, and every numeric-by-category pair the largest difference of
  the numeric's mean within one level (levels with at least ``min_level_rows`` real rows), absolute and in
  real standard deviations.
* **Detection**: a seeded gradient-boosting classifier tells real rows from twins; the cross-validated ROC
  AUC (0.5: indistinguishable).
* **Privacy**: the share of rows that exactly copy a training row and the median distance to the closest
  training record (numerics standardised by the training rows, one-hot categories), for twins and, beside
  them, for held-out real rows (what fresh data from the same source gives).

A column is categorical when it holds labels or booleans or has at most ``categorical_max_levels``
distinct numeric values in the real rows (a decile is a category here). Settings:
``twin_generation.fidelity``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from ..config import GeneratorFidelityConfig
from ._common import FrozenResult, json_safe
from .marginals import is_label_dtype


@dataclass(frozen=True, eq=False)
class FidelityReport(FrozenResult):
    """Twins against real rows (see the module docstring for each score). Frozen; ``to_dict`` is JSON-safe.

    Pair keys are ``"a ~ b"`` in column order; conditional-mean keys ``"numeric | category"``.
    ``worst_pairs`` lists the lowest pair scores (and the conditional means furthest apart, in SDs).
    Privacy fields are ``None`` without held-out rows.
    """

    n_real: int
    n_twins: int
    n_holdout: int
    columns: tuple[str, ...]
    categorical: tuple[str, ...]
    column_shapes: Mapping[str, float]
    pair_scores: Mapping[str, float]
    pair_metrics: Mapping[str, str]
    cramers_v_real: Mapping[str, float]
    cramers_v_twins: Mapping[str, float]
    conditional_mean_difference: Mapping[str, float]
    conditional_mean_difference_sd: Mapping[str, float]
    worst_pairs: tuple[tuple[str, float], ...]
    worst_conditional_means: tuple[tuple[str, float], ...]
    detection_auc: float
    detection_auc_folds: tuple[float, ...]
    exact_copy_rate: float
    median_dcr: float
    holdout_exact_copy_rate: float | None
    holdout_median_dcr: float | None

    def __post_init__(self) -> None:
        for name in ("columns", "categorical", "detection_auc_folds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("worst_pairs", "worst_conditional_means"):
            object.__setattr__(self, name, tuple((str(k), float(v)) for k, v in getattr(self, name)))
        for name in (
            "column_shapes",
            "pair_scores",
            "pair_metrics",
            "cramers_v_real",
            "cramers_v_twins",
            "conditional_mean_difference",
            "conditional_mean_difference_sd",
        ):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def shape_score(self) -> float:
        """Mean column-shape score."""
        return float(np.mean(list(self.column_shapes.values())))

    @property
    def pair_score(self) -> float:
        """Mean pair score over every pair."""
        return float(np.mean(list(self.pair_scores.values()))) if self.pair_scores else float("nan")

    @property
    def max_cramers_v_difference(self) -> float:
        """Largest |V_twins - V_real| over categorical pairs (0 without any)."""
        d = [abs(self.cramers_v_twins[k] - v) for k, v in self.cramers_v_real.items()]
        return float(max(d)) if d else 0.0

    @property
    def dcr_ratio(self) -> float | None:
        """Median DCR of twins over that of held-out rows (``None`` without held-out rows)."""
        if self.holdout_median_dcr is None or self.holdout_median_dcr == 0.0:
            return None
        return self.median_dcr / self.holdout_median_dcr

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary of every field and the summary properties."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(
            shape_score=self.shape_score,
            pair_score=self.pair_score,
            max_cramers_v_difference=self.max_cramers_v_difference,
            dcr_ratio=self.dcr_ratio,
        )
        return json_safe(out)


# ---------------------------------------------------------------------------------------------------------
def _is_categorical(s: pl.Series, max_levels: int) -> bool:
    if is_label_dtype(s.dtype) or s.dtype == pl.Boolean:
        return True
    return s.dtype.is_numeric() and s.drop_nulls().n_unique() <= max_levels


def _codes(real: pl.Series, *others: pl.Series) -> list[np.ndarray]:
    """Integer codes over the real levels (sorted) then any new ones; nulls are a level of their own."""
    as_text = [s.cast(pl.String).fill_null("\x00") for s in (real, *others)]
    levels = sorted(set(as_text[0].unique().to_list()))
    for s in as_text[1:]:
        levels += sorted(set(s.unique().to_list()) - set(levels))
    lookup = pl.Series(levels)
    return [
        s.replace_strict(lookup, pl.Series(np.arange(len(levels))), return_dtype=pl.Int64).to_numpy()
        for s in as_text
    ]


def _floats(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64, strict=False).to_numpy().astype(np.float64, copy=True)


def _bins(x_real: np.ndarray, others: Sequence[np.ndarray], n_bins: int) -> list[np.ndarray]:
    """Quantile bins of the real values (shared by both sides); NaN is one more bin."""
    ok = np.isfinite(x_real)
    edges = (
        np.unique(np.quantile(x_real[ok], np.linspace(0, 1, n_bins + 1)[1:-1])) if ok.any() else np.empty(0)
    )
    out = []
    for x in (x_real, *others):
        good = np.isfinite(x)
        out.append(
            np.where(good, np.searchsorted(edges, np.where(good, x, 0.0), side="right"), len(edges) + 1)
        )
    return out


def _joint_tv(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> float:
    ka = int(max(a1.max(), a2.max())) + 1
    kb = int(max(b1.max(), b2.max())) + 1
    p = np.bincount(a1 * kb + b1, minlength=ka * kb) / a1.size
    q = np.bincount(a2 * kb + b2, minlength=ka * kb) / a2.size
    return 0.5 * float(np.abs(p - q).sum())


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two code arrays (no bias correction; 0 when either side has one level)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    r, c = int(ai.max()) + 1, int(bi.max()) + 1
    if min(r, c) < 2:
        return 0.0
    table = np.bincount(ai * c + bi, minlength=r * c).reshape(r, c).astype(np.float64)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float((((table - expected) ** 2) / np.where(expected > 0, expected, 1.0)).sum())
    return float(np.sqrt(chi2 / (table.sum() * (min(r, c) - 1))))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0.0 or np.std(y[ok]) == 0.0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


# ---------------------------------------------------------------------------------------------------------
def fidelity_report(
    real: pl.DataFrame,
    twins: pl.DataFrame,
    columns: Sequence[str],
    fc: GeneratorFidelityConfig,
    seed: int,
    holdout: pl.DataFrame | None = None,
    threads: int | None = None,
) -> FidelityReport:
    """Score ``twins`` against ``real`` (the training rows) on ``columns``; see the module docstring.

    Parameters
    ----------
    real, twins
        Frames holding ``columns``.
    columns
        The columns judged (the synthesised ones).
    fc
        ``twin_generation.fidelity`` settings.
    seed
        Seed of the subsamples and of the detection classifier's folds and fits.
    holdout
        Held-out real rows for the privacy comparison (``None``: privacy beside held-out is not reported).
    threads
        OpenMP threads of the classifier (``None``: no cap; ``twin_generation.sklearn_threads`` from the
        generator).
    """
    cols = list(columns)
    cat = [c for c in cols if _is_categorical(real[c], fc.categorical_max_levels)]
    num = [c for c in cols if c not in cat]
    enc_r: dict[str, np.ndarray] = {}
    enc_t: dict[str, np.ndarray] = {}
    for c in cat:
        enc_r[c], enc_t[c] = _codes(real[c], twins[c])
    for c in num:
        enc_r[c], enc_t[c] = _floats(real[c]), _floats(twins[c])

    shapes: dict[str, float] = {}
    for c in cols:
        if c in cat:
            k = int(max(enc_r[c].max(), enc_t[c].max())) + 1
            p = np.bincount(enc_r[c], minlength=k) / enc_r[c].size
            q = np.bincount(enc_t[c], minlength=k) / enc_t[c].size
            shapes[c] = 1.0 - 0.5 * float(np.abs(p - q).sum())
        else:
            from scipy.stats import ks_2samp

            xr_, xt_ = enc_r[c], enc_t[c]
            shapes[c] = 1.0 - float(ks_2samp(xr_[np.isfinite(xr_)], xt_[np.isfinite(xt_)]).statistic)

    binned_r: dict[str, np.ndarray] = {}
    binned_t: dict[str, np.ndarray] = {}
    for c in num:
        binned_r[c], binned_t[c] = _bins(enc_r[c], [enc_t[c]], fc.contingency_bins)
    for c in cat:
        binned_r[c], binned_t[c] = enc_r[c], enc_t[c]

    pairs: dict[str, float] = {}
    metric: dict[str, str] = {}
    v_real: dict[str, float] = {}
    v_twin: dict[str, float] = {}
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            key = f"{a} ~ {b}"
            if a in num and b in num:
                pairs[key] = 1.0 - abs(_pearson(enc_r[a], enc_r[b]) - _pearson(enc_t[a], enc_t[b])) / 2.0
                metric[key] = "correlation"
                continue
            pairs[key] = 1.0 - _joint_tv(binned_r[a], binned_r[b], binned_t[a], binned_t[b])
            metric[key] = "contingency"
            if a in cat and b in cat:
                v_real[key] = cramers_v(enc_r[a], enc_r[b])
                v_twin[key] = cramers_v(enc_t[a], enc_t[b])

    cm_abs: dict[str, float] = {}
    cm_sd: dict[str, float] = {}
    for x in num:
        xr, xt = enc_r[x], enc_t[x]
        sd = float(np.nanstd(xr))
        for g in cat:
            gr, gt = enc_r[g], enc_t[g]
            worst = 0.0
            for level in np.unique(gr):
                in_r, in_t = (gr == level) & np.isfinite(xr), (gt == level) & np.isfinite(xt)
                if in_r.sum() < fc.min_level_rows or in_t.sum() == 0:
                    continue
                worst = max(worst, abs(float(xr[in_r].mean()) - float(xt[in_t].mean())))
            cm_abs[f"{x} | {g}"] = worst
            cm_sd[f"{x} | {g}"] = worst / sd if sd > 0 else 0.0

    import sklearn.ensemble  # noqa: F401  (load its OpenMP runtime so that the cap below applies to it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        auc, auc_folds = _detection_auc(cols, cat, enc_r, enc_t, fc, seed)
    copy_rate, dcr, h_copy, h_dcr = _privacy(real, twins, holdout, cols, cat, fc, seed)
    worst_pairs = sorted(pairs.items(), key=lambda kv: kv[1])[: fc.worst_pairs]
    worst_cm = sorted(cm_sd.items(), key=lambda kv: -kv[1])[: fc.worst_pairs]
    return FidelityReport(
        n_real=real.height,
        n_twins=twins.height,
        n_holdout=0 if holdout is None else holdout.height,
        columns=tuple(cols),
        categorical=tuple(cat),
        column_shapes=shapes,
        pair_scores=pairs,
        pair_metrics=metric,
        cramers_v_real=v_real,
        cramers_v_twins=v_twin,
        conditional_mean_difference=cm_abs,
        conditional_mean_difference_sd=cm_sd,
        worst_pairs=tuple(worst_pairs),
        worst_conditional_means=tuple(worst_cm),
        detection_auc=auc,
        detection_auc_folds=auc_folds,
        exact_copy_rate=copy_rate,
        median_dcr=dcr,
        holdout_exact_copy_rate=h_copy,
        holdout_median_dcr=h_dcr,
    )


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


def _detection_auc(
    cols: Sequence[str],
    cat: Sequence[str],
    enc_r: Mapping[str, np.ndarray],
    enc_t: Mapping[str, np.ndarray],
    fc: GeneratorFidelityConfig,
    seed: int,
) -> tuple[float, tuple[float, ...]]:
    """Cross-validated ROC AUC of a gradient-boosting classifier, real (1) vs twins (0), equal counts."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    n_r = next(iter(enc_r.values())).size
    n_t = next(iter(enc_t.values())).size
    m = min(n_r, n_t, fc.detection.max_rows)
    ir, it = _subsample(n_r, m, rng), _subsample(n_t, m, rng)
    X = np.vstack(
        [
            np.column_stack([enc_r[c][ir].astype(np.float64) for c in cols]),
            np.column_stack([enc_t[c][it].astype(np.float64) for c in cols]),
        ]
    )
    y = np.concatenate([np.ones(ir.size), np.zeros(it.size)])
    is_cat = np.array([c in cat for c in cols])
    # categorical codes beyond the classifier's category limit are used as ordered numbers
    for j in range(len(cols)):
        if is_cat[j] and X[:, j].max() >= 250:
            is_cat[j] = False
    d = fc.detection
    folds = StratifiedKFold(n_splits=d.folds, shuffle=True, random_state=seed)
    scores = []
    for tr, va in folds.split(X, y):
        clf = HistGradientBoostingClassifier(
            max_iter=d.max_iter,
            learning_rate=d.learning_rate,
            max_leaf_nodes=d.max_leaf_nodes,
            categorical_features=is_cat if is_cat.any() else None,
            early_stopping=False,
            random_state=seed,
        )
        clf.fit(X[tr], y[tr])
        scores.append(float(roc_auc_score(y[va], clf.predict_proba(X[va])[:, 1])))
    return float(np.mean(scores)), tuple(scores)


def _privacy_matrix(
    frame: pl.DataFrame, ref: pl.DataFrame, cols: Sequence[str], cat: Sequence[str]
) -> np.ndarray:
    """Numerics standardised by ``ref`` (NaN at the mean), label columns one-hot over ``ref``'s levels."""
    parts = []
    for c in cols:
        if c in cat and (is_label_dtype(ref[c].dtype) or ref[c].dtype == pl.Boolean):
            r_codes, f_codes = _codes(ref[c], frame[c])
            k = int(r_codes.max()) + 1
            onehot = np.zeros((frame.height, k))
            inside = f_codes < k
            onehot[np.flatnonzero(inside), f_codes[inside]] = 1.0
            parts.append(onehot)
            continue
        r = _floats(ref[c])
        mu, sd = float(np.nanmean(r)), float(np.nanstd(r))
        x = _floats(frame[c])
        x = np.where(np.isfinite(x), x, mu)
        parts.append(((x - mu) / (sd if sd > 0 else 1.0))[:, None])
    return np.hstack(parts)


def _privacy(
    real: pl.DataFrame,
    twins: pl.DataFrame,
    holdout: pl.DataFrame | None,
    cols: Sequence[str],
    cat: Sequence[str],
    fc: GeneratorFidelityConfig,
    seed: int,
) -> tuple[float, float, float | None, float | None]:
    """(exact-copy rate, median DCR) of twins and of held-out rows, against the training rows."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed + 1)
    p = fc.privacy
    ref = real[_subsample(real.height, p.reference_max_rows, rng)]
    n_q = p.max_rows if holdout is None else min(p.max_rows, holdout.height)
    keys = real.select(cols).with_columns(pl.all().cast(pl.String)).unique()

    def one(frame: pl.DataFrame) -> tuple[float, float]:
        q = frame[_subsample(frame.height, n_q, rng)].select(cols)
        joined = q.with_columns(pl.all().cast(pl.String)).join(keys, on=cols, how="semi", nulls_equal=True)
        copies = joined.height / q.height
        nn = NearestNeighbors(n_neighbors=1).fit(_privacy_matrix(ref, ref, cols, cat))
        dist = nn.kneighbors(_privacy_matrix(q, ref, cols, cat))[0][:, 0]
        return float(copies), float(np.median(dist))

    copy_rate, dcr = one(twins)
    if holdout is None:
        return copy_rate, dcr, None, None
    h_copy, h_dcr = one(holdout)
    return copy_rate, dcr, h_copy, h_dcr
