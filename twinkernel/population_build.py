"""Building a population's frame and kernel columns from a user's frame (used by ``TwinPopulation``).

The column constants and :class:`KernelColumns` live here with the build so that
:mod:`twinkernel.population` holds only the population's behaviour; both are re-exported there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .config import TwinkernelConfig
from .models import ADOPTION_STAGES
from .population_checks import (
    FloatColumn,
    _as_numpy,
    _enum_labels,
    category_codes,
    category_enum,
    check_float_column,
    check_integer_column,
    check_twin_ids,
    twin_keys,
)
from .population_encode import PandasFrame, column_threads, in_column_order

__all__ = [
    "ADOPTION_CATEGORIES",
    "DEFAULTED_BITS",
    "EFFECT_MODEL_COLUMNS",
    "RECOGNISED_COLUMNS",
    "TWIN_FEATURE_COLUMNS",
    "KernelColumns",
    "build_columns",
]

TWIN_FEATURE_COLUMNS: tuple[str, ...] = (
    "specialty",
    "decile",
    "region",
    "digital_engagement_score",
    "adoption_stage",
    "priority_tier",
    "peer_influence_score",
    "preferred_channel",
)
"""The twin features the effect model reads, in frame order (after ``twin_id``)."""
ADOPTION_CATEGORIES: tuple[str, ...] = (*ADOPTION_STAGES, "other")
"""Adoption stage codes: the five known stages, then ``other`` for any unrecognised value."""
ADOPTION_OTHER_CODE = len(ADOPTION_STAGES)

_FLOAT_COLUMNS = (
    "digital_engagement_score",
    "peer_influence_score",
    "baseline_propensity",
    "baseline_outcome",
)
_INT_COLUMNS = {"decile": pl.Int16, "priority_tier": pl.Int8}
_CATEGORY_COLUMNS = ("specialty", "region", "preferred_channel")
DEFAULTED_BITS: dict[str, int] = {
    name: 1 << i
    for i, name in enumerate(
        (
            "decile",
            "digital_engagement_score",
            "adoption_stage",
            "priority_tier",
            "peer_influence_score",
            "baseline_propensity",
            "baseline_outcome",
            "specialty",
            "region",
            "preferred_channel",
        )
    )
}
"""Bit set in the per-twin mask when that column's value was missing and took its default."""
EFFECT_MODEL_COLUMNS: tuple[str, ...] = (
    "decile",
    "digital_engagement_score",
    "adoption_stage",
    "priority_tier",
    "peer_influence_score",
    "baseline_propensity",
    "baseline_outcome",
)
"""Columns the effect model and the power analysis read: absent or mostly missing ones are warned about."""
RECOGNISED_COLUMNS: tuple[str, ...] = (
    "twin_id",
    *TWIN_FEATURE_COLUMNS,
    "baseline_outcome",
    "baseline_propensity",
)


@dataclass(frozen=True)
class KernelColumns:
    """Contiguous arrays handed to the kernels (read-only views where Polars allows)."""

    decile: np.ndarray  # int16, raw (kernels clamp)
    engagement: np.ndarray  # float64, raw
    adoption: np.ndarray  # uint8 codes into ADOPTION_CATEGORIES
    tier: np.ndarray  # int8, raw
    peer: np.ndarray  # float64, raw
    propensity: np.ndarray  # float64, raw
    baseline: np.ndarray  # float64
    specialty: np.ndarray  # integer codes into specialty_labels
    region: np.ndarray  # integer codes into region_labels
    channel: np.ndarray  # integer codes into channel_labels
    specialty_labels: tuple[str, ...]
    region_labels: tuple[str, ...]
    channel_labels: tuple[str, ...]
    defaulted: np.ndarray  # uint16 bit mask per twin, see DEFAULTED_BITS
    segment_codes: tuple[np.ndarray, ...]  # uint8 codes for (specialty, decile, region, adoption_stage)
    segment_labels: tuple[tuple[str, ...], ...]
    twin_key: np.ndarray  # uint64 stable key of each twin_id (indexes the twin's random noise)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (self.decile, self.engagement, self.adoption, self.tier, self.peer, self.propensity)
        )


def build_columns(
    frame: pl.DataFrame,
    config: TwinkernelConfig,
    inherited: np.ndarray | None,
    warnings: list[str],
    read: PandasFrame | None = None,
) -> tuple[pl.DataFrame, KernelColumns, tuple[str, ...] | None]:
    """Normalise a user's frame into the population frame and its kernel columns.

    ``read`` is what :func:`~twinkernel.population_encode.frame_from_pandas` learned building ``frame``
    (twin keys, complete Enum columns): those steps are not repeated.

    Appends what it finds (out-of-range values) to ``warnings``. Returns the frame, the columns and, for a
    new population (``inherited`` is None), the recognised columns the frame lacks (None otherwise: a
    filtered population keeps its parent's).
    """
    defaults = config.simulation.missing_value_defaults
    checks = config.simulation.population_checks
    encoding = config.simulation.frame_encoding
    n = frame.height
    defaulted = np.zeros(n, dtype=np.uint16) if inherited is None else inherited.copy()
    cols: dict[str, pl.Series] = {}
    missing = None
    if inherited is None:
        missing = tuple(c for c in RECOGNISED_COLUMNS[1:] if c not in frame.columns)

    if "twin_id" in frame.columns:
        ids = frame["twin_id"]
        keys = check_twin_ids(ids, encoding, None if read is None else read.keys.get("twin_id"))
    else:
        ids = pl.Series("twin_id", np.arange(n, dtype=np.int64))
        keys = twin_keys(ids)
        keys.setflags(write=False)
    cols["twin_id"] = ids
    row_ids = ids if "twin_id" in frame.columns else None

    def mark_nulls(name: str, s: pl.Series) -> None:
        if s.null_count():
            defaulted[_as_numpy(s.is_null())] |= DEFAULTED_BITS[name]

    # The NumPy and Polars steps below release the GIL: on a big frame they run on the library's threads
    # (the kernels in between already use them). Results and warnings come back in column order.
    threads = column_threads(n, encoding)

    def check_float(name: str) -> FloatColumn:
        bound = checks.max_abs_value if name == "baseline_outcome" else None
        return check_float_column(frame[name], name, row_ids, bound)

    def check_integer(name: str) -> pl.Series:
        return check_integer_column(frame[name], name, _INT_COLUMNS[name], row_ids)

    floats = in_column_order(check_float, [c for c in _FLOAT_COLUMNS if c in frame.columns], threads)
    integers = in_column_order(check_integer, [c for c in _INT_COLUMNS if c in frame.columns], threads)

    for name in _FLOAT_COLUMNS:
        if name in floats:
            checked = floats[name]
            s = checked.series
            if checked.out_of_range:
                example = checked.example_row
                assert example is not None
                warnings.append(
                    f"column '{name}': {checked.out_of_range} of {n} values are NaN, infinite or beyond "
                    f"±{checks.max_abs_value:g} (first at row {example}: {frame[name][example]!r}); "
                    f"they were treated as missing and took the default {getattr(defaults, name)}"
                )
        else:
            s = pl.Series(name, [None] * n, dtype=pl.Float64)
        mark_nulls(name, s)
        if s.null_count():
            s = s.fill_null(float(getattr(defaults, name)))
        cols[name] = s.alias(name)

    for name, dtype in _INT_COLUMNS.items():
        s = integers[name] if name in integers else pl.Series(name, [None] * n, dtype=dtype)
        mark_nulls(name, s)
        if s.null_count():
            s = s.fill_null(int(getattr(defaults, name)))
        cols[name] = s.alias(name)

    codes: dict[str, pl.Series | tuple[str, np.ndarray, list[str]]] = {}

    def complete(name: str) -> bool:
        return read is not None and name in read.complete

    for name in (*_CATEGORY_COLUMNS, "adoption_stage"):
        s = frame[name] if name in frame.columns else pl.Series(name, [None] * n, dtype=pl.String)
        mark_nulls(name, s)
        if name == "adoption_stage":
            codes[name] = category_codes(
                s,
                defaults.adoption_stage,
                forced=ADOPTION_CATEGORIES,
                normalise=True,
                encoding=encoding,
                complete=complete(name),
            )
        else:
            default = getattr(defaults, name)
            codes[name] = category_codes(s, default, encoding=encoding, complete=complete(name))
    enums = in_column_order(lambda name: category_enum(codes[name]), list(codes), threads)
    for name, enum in enums.items():
        cols[name] = enum.alias(name)

    ordered = ["twin_id", *TWIN_FEATURE_COLUMNS, "baseline_outcome", "baseline_propensity"]
    extra = [c for c in frame.columns if c not in cols]
    out = pl.DataFrame([cols[c] for c in ordered] + [frame[c] for c in extra])

    decile = _as_numpy(out["decile"])
    eff = config.simulation.intervention_effects
    # Segment code = clipped decile - low, written straight into uint8 (low <= high <= 100, so every code
    # fits): no int64 temporaries, which on 10 M rows were 160 MB of fresh pages a build.
    decile_seg = np.empty(n, dtype=np.uint8)
    np.clip(decile, eff.decile.low, eff.decile.high, out=decile_seg, casting="unsafe")
    decile_seg -= np.uint8(eff.decile.low)
    spec = out["specialty"]
    reg = out["region"]
    chan = out["preferred_channel"]
    adoption = _as_numpy(out["adoption_stage"].to_physical())
    specialty_codes = _as_numpy(spec.to_physical())
    region_codes = _as_numpy(reg.to_physical())
    spec_labels = _enum_labels(spec)
    reg_labels = _enum_labels(reg)
    segment_codes = (
        tuple(
            c if c.dtype == np.uint8 else c.astype(np.uint8)
            for c in (specialty_codes, decile_seg, region_codes, adoption)
        )
        if max(len(spec_labels), len(reg_labels)) <= 255
        else tuple(c.astype(np.uint32) for c in (specialty_codes, decile_seg, region_codes, adoption))
    )
    for arr in segment_codes:
        arr.setflags(write=False)  # one numba specialisation (read-only) for every code tuple
    defaulted.setflags(write=False)
    columns = KernelColumns(
        decile=decile,
        engagement=_as_numpy(out["digital_engagement_score"]),
        adoption=adoption,
        tier=_as_numpy(out["priority_tier"]),
        peer=_as_numpy(out["peer_influence_score"]),
        propensity=_as_numpy(out["baseline_propensity"]),
        baseline=_as_numpy(out["baseline_outcome"]),
        specialty=specialty_codes,
        region=region_codes,
        channel=_as_numpy(chan.to_physical()),
        specialty_labels=spec_labels,
        region_labels=reg_labels,
        channel_labels=_enum_labels(chan),
        defaulted=defaulted,
        segment_codes=segment_codes,
        segment_labels=(
            spec_labels,
            tuple(str(d) for d in range(eff.decile.low, eff.decile.high + 1)),
            reg_labels,
            ADOPTION_CATEGORIES,
        ),
        twin_key=keys,
    )
    return out, columns, missing
