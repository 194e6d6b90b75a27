"""Column checks for :class:`~twinkernel.population.TwinPopulation`: what a frame may hold, and twin keys.

Each function takes one column of the user's frame and returns it normalised (the dtype the kernels read)
plus what was found, or raises ``ValueError`` naming the column, the rule and an example row. The rules:

- numeric columns must be numeric (Boolean is rejected; strings must parse as numbers);
- ``Float32`` columns are widened through their shortest decimal representation, so a stored ``0.7f``
  becomes the float64 ``0.7`` the user wrote (a plain cast would give 0.699999988 and fall below an
  inclusive 0.7 threshold compared in float64);
- integer features (``decile``, ``priority_tier``) must hold whole numbers: 3.7 is rejected, never
  rounded; values beyond the storage type (Int16 / Int8) are clamped to it before the cast (the kernels
  then clamp them to the valid range and count them), never turned into missing values;
- ``baseline_outcome``, which no kernel clamps, treats NaN, ±inf and values beyond
  ``simulation.population_checks.max_abs_value`` as missing (counted and defaulted); the features the
  kernels clamp to 0..1 keep ±inf (clamped and counted there) and treat NaN as missing;
- ``twin_id`` must be unique and not null; its stable 64-bit key is computed here (see ``kernels._rng``)
  and checked for duplicates first (the ids themselves are compared only when two keys are equal).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from .population_encode import keys_are_unique, string_codes, string_view_keys

if TYPE_CHECKING:
    from .config_frame import FrameEncodingConfig
    from .models import InterventionConfig, PopulationFilter
    from .population import KernelColumns

__all__ = [
    "FloatColumn",
    "check_float_column",
    "check_integer_column",
    "check_twin_ids",
    "near_miss",
    "twin_keys",
]

_STORAGE_RANGE = {pl.Int16: (-(1 << 15), (1 << 15) - 1), pl.Int8: (-(1 << 7), (1 << 7) - 1)}
_NUMPY_STORAGE = {pl.Int16: np.int16, pl.Int8: np.int8}


@dataclass(frozen=True)
class FloatColumn:
    """A checked numeric column: values (nulls where missing) and how many were out of range."""

    series: pl.Series
    out_of_range: int  # non-finite or too large values treated as missing
    example_row: int | None  # first such row


def _as_numpy(s: pl.Series) -> np.ndarray:
    return s.rechunk().to_numpy()


def _enum_labels(s: pl.Series) -> tuple[str, ...]:
    """The labels of an Enum column, in code order."""
    return tuple(s.dtype.categories.to_list())  # type: ignore[attr-defined]


def _encode_category(
    s: pl.Series,
    default: str,
    forced: Sequence[str] | None = None,
    normalise: bool = False,
    encoding: FrameEncodingConfig | None = None,
) -> pl.Series:
    """Encode a column as a polars Enum without materialising per-row strings; nulls take ``default``.

    :func:`category_codes` then :func:`category_enum` (``from_frame`` runs the second step of several
    columns on threads).
    """
    return category_enum(category_codes(s, default, forced, normalise, encoding))


def category_enum(parts: pl.Series | tuple[str, np.ndarray, list[str]]) -> pl.Series:
    """The Enum column of :func:`category_codes`'s result: ``(name, codes, categories)`` or a ready
    column. Polars validates the codes here (about 15 ms per 10 M rows; it releases the GIL)."""
    if isinstance(parts, pl.Series):
        return parts
    name, codes, target = parts
    return pl.Series(name, codes).cat.to(pl.Enum(target))


def category_codes(
    s: pl.Series,
    default: str,
    forced: Sequence[str] | None = None,
    normalise: bool = False,
    encoding: FrameEncodingConfig | None = None,
    complete: bool = False,
) -> pl.Series | tuple[str, np.ndarray, list[str]]:
    """The codes and categories of :func:`_encode_category`'s Enum (or the column itself when it already
    is that Enum); nulls take ``default``. ``complete`` says that ``s`` is an Enum whose every label is
    present (as :func:`~twinkernel.population_encode.frame_from_pandas` builds them): they are not counted.

    Only the distinct labels are handled in Python: rows are mapped through a small code lookup. With
    ``forced`` the categories are fixed (stable codes across frames) and any label outside them becomes
    ``"other"``; ``normalise`` strips and lower-cases labels before matching. Otherwise the categories are
    the sorted distinct labels (plus ``default`` when there are nulls). With ``encoding``, a string column
    is coded in one kernel pass (:func:`~twinkernel.population_encode.string_codes`) when it has few
    distinct values; the codes are the same as Polars' path gives.
    """
    has_nulls = s.null_count() > 0
    fast = None
    raw: np.ndarray | None = None
    if s.dtype == pl.Enum:
        # an Enum's labels are known: map its codes through a lookup (no per-row strings; 10 M rows of
        # strings cost ~500 MB). Only the labels present count, so the result equals the string path's.
        from .kernels.frame import code_counts

        all_labels = s.dtype.categories.to_list()  # type: ignore[attr-defined]
        physical = s.to_physical()
        raw = _as_numpy(physical.cast(pl.UInt32).fill_null(len(all_labels)) if has_nulls else physical)
        if complete:
            present = np.arange(len(all_labels))
        else:
            present = np.flatnonzero(code_counts(raw, len(all_labels) + 1)[: len(all_labels)])
        if (
            forced is None
            and not has_nulls
            and present.size == len(all_labels)
            and all_labels == sorted(all_labels)
        ):
            return s  # already what this function would build: sorted labels, every one present
        labels = sorted(all_labels[i] for i in present)
        rank = {lab: i for i, lab in enumerate(labels)}
        to_rank = np.asarray([rank.get(lab, 0) for lab in all_labels] + [len(labels)], dtype=np.uint32)
        # nulls carry the sentinel len(all_labels) -> len(labels): the default below
    else:
        # Every other flavour (String, Categorical, pandas category or object) goes through its string
        # labels, so equal values give equal codes and labels whatever the input type.
        strings = s if s.dtype == pl.String else s.cast(pl.String)
        if encoding is not None and s.len():

            def table_for(labels: list[str]) -> np.ndarray:
                return _targets(labels, default, has_nulls, forced, normalise)[1]

            fast = string_codes(strings, encoding, table_for)
        if fast is not None:
            labels = fast[0]
        else:
            labels = strings.drop_nulls().unique().sort().to_list()
            physical = strings.replace_strict(labels, list(range(len(labels))), return_dtype=pl.UInt32)
    target, table = _targets(labels, default, has_nulls, forced, normalise)
    if fast is not None:
        codes = fast[1]
    elif raw is not None:
        codes = table[to_rank][raw]
    else:
        codes = table[_as_numpy(physical.fill_null(len(labels)).cast(pl.UInt32))]
    return s.name, codes, target


def _targets(
    labels: list[str], default: str, has_nulls: bool, forced: Sequence[str] | None, normalise: bool
) -> tuple[list[str], np.ndarray]:
    """The Enum categories of a column whose sorted distinct labels are ``labels``, and the code of each
    label (then, last, the code of a missing value)."""
    if forced is not None:
        target = list(forced)
        index = {t: i for i, t in enumerate(target)}
        other = index["other"]
        lut = [index.get(lab.strip().lower() if normalise else lab, other) for lab in labels]
    else:
        target = sorted(set(labels) | ({default} if has_nulls else set()))
        index = {t: i for i, t in enumerate(target)}
        lut = [index[lab] for lab in labels]
    dtype = np.uint8 if len(target) <= 256 else np.uint32
    return target, np.asarray([*lut, target.index(default) if has_nulls else 0], dtype=dtype)


def _row_label(ids: pl.Series | None, row: int) -> str:
    if ids is None:
        return f"row {row}"
    return f"row {row} (twin_id {ids[row]!r})"


def _to_float64(s: pl.Series, name: str, ids: pl.Series | None) -> pl.Series:
    """Numeric, string or Float32 input as Float64 with nulls where missing; booleans and junk rejected."""
    if s.dtype == pl.Boolean:
        raise ValueError(f"`{name}` must be a numeric column; got Boolean (True/False is not a {name})")
    if s.dtype == pl.Float64:
        return s
    if s.dtype == pl.Float32:
        # Shortest decimal repr of each float32, read as float64: recovers the value the user wrote.
        return s.cast(pl.String).cast(pl.Float64)
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    if s.dtype == pl.Null:
        return s.cast(pl.Float64)
    strings = s.cast(pl.String)
    parsed = strings.str.strip_chars().cast(pl.Float64, strict=False)
    bad = parsed.is_null() & strings.is_not_null()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"`{name}` must hold numbers; {_row_label(ids, row)} has {strings[row]!r} "
            f"({int(bad.sum())} such values)"
        )
    return parsed


def check_float_column(s: pl.Series, name: str, ids: pl.Series | None, max_abs: float | None) -> FloatColumn:
    """A float feature as Float64, NaN as missing; with ``max_abs``, also ±inf and ``|x| > max_abs``."""
    if s.dtype == pl.Float64 and s.null_count() == 0 and s.n_chunks() == 1 and s.len() > 0:
        # fast path without copies (10 M rows: every copy is 80 MB): min/max propagate NaN, so a clean
        # column passes both comparisons only when every value is finite and within the bound
        arr = s.to_numpy()
        lo, hi = float(arr.min()), float(arr.max())
        if max_abs is None and not (math.isnan(lo) or math.isnan(hi)):
            return FloatColumn(s.alias(name), 0, None)
        if max_abs is not None and -max_abs <= lo and hi <= max_abs:
            return FloatColumn(s.alias(name), 0, None)
    out = _to_float64(s, name, ids).fill_nan(None)
    if max_abs is None:
        return FloatColumn(out.alias(name), 0, None)
    bad = out.is_not_null() & ~(out.abs() <= max_abs)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return FloatColumn(out.alias(name), 0, None)
    row = int(np.flatnonzero(bad.to_numpy())[0])
    cleaned = pl.select(pl.when(bad).then(None).otherwise(out)).to_series()
    return FloatColumn(cleaned.alias(name), n_bad, row)


def check_integer_column(
    s: pl.Series, name: str, dtype: type[pl.DataType], ids: pl.Series | None
) -> pl.Series:
    """A whole-number feature in ``dtype`` (nulls where missing), clamped to the storage range first."""
    lo, hi = _STORAGE_RANGE[dtype]  # type: ignore[index]
    if s.dtype.is_integer() and s.len() > 0 and s.null_count() < s.len():
        s_min, s_max = s.min(), s.max()
        if lo <= s_min and s_max <= hi:  # type: ignore[operator]
            # fits the storage type: a direct cast (no copy at all when it is already that type; NumPy's
            # cast of a column without nulls is several times faster than Polars')
            if s.dtype == dtype:
                return s.alias(name)
            if s.null_count() == 0 and s.n_chunks() == 1:
                return pl.Series(name, s.to_numpy().astype(_NUMPY_STORAGE[dtype]))  # type: ignore[index]
            return s.cast(dtype).alias(name)
    if s.dtype.is_integer():
        out = s.clip(upper_bound=hi) if s.dtype == pl.UInt64 else s
        return out.cast(pl.Int64).clip(lo, hi).cast(dtype).alias(name)
    values = _to_float64(s, name, ids).fill_nan(None)
    finite = values.is_finite().fill_null(False)
    fractional = finite & (values != values.round(0))
    if fractional.any():
        row = int(np.flatnonzero(fractional.to_numpy())[0])
        raise ValueError(
            f"`{name}` must hold whole numbers; {_row_label(ids, row)} has {values[row]!r} "
            f"({int(fractional.sum())} non-integer values; round them yourself if that is what you mean)"
        )
    return values.clip(float(lo), float(hi)).cast(dtype).alias(name)


def check_twin_ids(
    ids: pl.Series,
    encoding: FrameEncodingConfig | None = None,
    known: tuple[np.ndarray, bool] | None = None,
) -> np.ndarray:
    """Reject null or duplicate ``twin_id`` values, naming an example; return the ids' keys (read-only).

    ``known`` is the ids' keys and whether they strictly increase, when already computed (read-only).

    Strictly increasing ids are unique. Otherwise, with ``encoding``, uniqueness is checked on the 64-bit
    keys first (:func:`keys_are_unique`): distinct keys mean distinct ids. Only when two keys are equal (a
    duplicate id, or a hash collision of two different string ids) are the ids themselves compared.
    """
    if ids.null_count():
        row = int(np.flatnonzero(ids.is_null().to_numpy())[0])
        raise ValueError(f"`twin_id` must not be null; row {row} is null ({ids.null_count()} null ids)")
    n_blocks = 64 if encoding is None else encoding.key_blocks
    keys, increasing = _keys_and_order(ids, n_blocks) if known is None else known
    keys.setflags(write=False)
    if increasing or (encoding is not None and keys_are_unique(keys, encoding)):
        return keys
    if ids.n_unique() == ids.len():
        return keys
    rows = np.flatnonzero(ids.is_duplicated().to_numpy())
    first = ids[int(rows[0])]
    same = np.flatnonzero((ids == first).to_numpy())[:3].tolist()
    raise ValueError(
        f"`twin_id` must be unique; {first!r} appears at rows {same} "
        f"({rows.size} rows share an id with another row)"
    )


def twin_keys(ids: pl.Series) -> np.ndarray:
    """The stable 64-bit key of every twin id (uint64; definition in :mod:`twinkernel.kernels._rng`)."""
    return _keys_and_order(ids, 64)[0]


def _keys_and_order(ids: pl.Series, n_blocks: int) -> tuple[np.ndarray, bool]:
    """Twin keys, and whether the ids strictly increase (integers by value, strings byte-wise)."""
    from .kernels._rng import twin_keys_from_ints, twin_keys_from_strings

    n = ids.len()
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out, True
    if ids.dtype.is_integer():
        wide = ids.cast(pl.UInt64) if ids.dtype == pl.UInt64 else ids.cast(pl.Int64)
        arr = wide.rechunk().to_numpy()
        twin_keys_from_ints(np.ascontiguousarray(arr).view(np.uint64), out)
        return out, bool(np.all(arr[1:] > arr[:-1]))
    strings = ids if ids.dtype == pl.String else ids.cast(pl.String)
    if strings.null_count() == 0:
        fast = string_view_keys(strings, n_blocks)
        if fast is not None:
            return fast
    # no pyarrow (or nulls, which only the error path meets): one Python string of every id
    data = np.frombuffer(strings.str.join("").item().encode("utf-8"), dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(strings.str.len_bytes().fill_null(0).to_numpy(), out=offsets[1:])
    twin_keys_from_strings(data, offsets, out)
    return out, False


def near_miss(name: str, candidates: Iterable[str], cutoff: float) -> str | None:
    """The candidate that looks like a typo or case variant of ``name``, or ``None``."""
    pool = [c for c in candidates if c != name]
    for c in pool:
        if c.strip().lower() == name.lower():
            return c
    lowered = {c.lower(): c for c in pool}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def suggest_values(missing: Sequence[object], present: Sequence[str], cutoff: float) -> dict[str, str]:
    """For each unmatched string value, the present value it most likely meant (case or typo)."""
    out: dict[str, str] = {}
    for value in missing:
        if isinstance(value, str):
            hit = near_miss(value, present, cutoff)
            if hit is not None:
                out[value] = hit
    return out


def find_unmatched(
    c: KernelColumns,
    adoption_labels: Sequence[str],
    decile_low: int,
    f: PopulationFilter,
    intervention_config: InterventionConfig | None,
) -> dict[str, list[Any]]:
    """See :meth:`TwinPopulation.unmatched_values`."""

    def present(codes: np.ndarray, labels: Sequence[str]) -> set[str]:
        counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(labels))
        return {lab for lab, k in zip(labels, counts, strict=False) if k}

    specialties = present(c.specialty, c.specialty_labels)
    regions = present(c.region, c.region_labels)
    stages = present(c.adoption, adoption_labels)
    decile_counts = np.bincount(c.segment_codes[1].astype(np.int64), minlength=len(c.segment_labels[1]))
    deciles = {int(k) + decile_low for k in np.flatnonzero(decile_counts)}
    wanted: list[tuple[str, Sequence[Any], Any]] = [
        ("specialties", f.specialties, lambda v: v in specialties),
        ("deciles", f.deciles, lambda v: v in deciles),
        ("regions", f.regions, lambda v: v in regions),
        ("adoption_stages", f.adoption_stages, lambda v: str(v).lower() in stages),
    ]
    if intervention_config is not None:
        ic = intervention_config
        wanted += [
            ("target_deciles", ic.target_deciles, lambda v: v in deciles),
            ("target_specialties", ic.target_specialties, lambda v: v in specialties),
            ("target_regions", ic.target_regions, lambda v: v in regions),
        ]
    out: dict[str, list[Any]] = {}
    for field, values, matches in wanted:
        bad = [v for v in values if not matches(v)]
        if bad:
            out[field] = bad
    return out


def suggest_for_unmatched(
    c: KernelColumns,
    adoption_labels: Sequence[str],
    unmatched: Mapping[str, Sequence[Any]],
    cutoff: float,
) -> dict[str, str]:
    """See :meth:`TwinPopulation.suggestions`."""
    pools = {
        "specialties": c.specialty_labels,
        "target_specialties": c.specialty_labels,
        "regions": c.region_labels,
        "target_regions": c.region_labels,
        "adoption_stages": adoption_labels,
    }
    out: dict[str, str] = {}
    for field, values in unmatched.items():
        if field in pools:
            out.update(suggest_values(list(values), pools[field], cutoff))
    return out
