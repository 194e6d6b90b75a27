"""Frozen result objects of the bootstrap: :class:`BootstrapResult` and :class:`EngineIntervals`.

Both are values: assignment raises, their arrays are read-only copies owned by the result, ``==`` compares
arrays element by element (NaN equals NaN, so a result equals its copy), they hash, and ``to_dict()`` returns
JSON-safe data (non-finite numbers become ``None``). Intervals are named ``ci_lower`` / ``ci_upper`` (and
``group_ci_lower`` / ``group_ci_upper``) as everywhere in twinkernel; ``resampling`` says which scheme
produced them. Fields are only ever added at the end. This module does not import numba.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

__all__ = ["BootstrapResult", "BootstrapWarning", "EngineIntervals"]


class BootstrapWarning(UserWarning):
    """A bootstrap interval was degenerate (zero width) or needed a correction; details in the message."""


def _readonly(values: Any, dtype: type) -> np.ndarray:
    """A read-only copy of ``values`` with ``dtype`` (the result owns it; the caller's array stays as is)."""
    arr: np.ndarray = np.array(values, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: lists for arrays and tuples, ``None`` for NaN and infinities."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    return str(value)  # a group label of another type (e.g. a date): its text


def _same(a: Any, b: Any) -> bool:
    """Value equality of two field values: arrays element-wise (NaN equals NaN), tuples item by item."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f"))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


class _Value:
    """Equality, hashing and ``to_dict`` over the dataclass fields (arrays compared by value)."""

    def _field_values(self) -> tuple[tuple[str, Any], ...]:
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(cast(Any, self)))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        theirs = other._field_values()
        return all(_same(a, b) for (_, a), (_, b) in zip(self._field_values(), theirs, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(_hashable(v) for _, v in self._field_values()))

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-safe data (``json.dumps(result.to_dict())`` works; NaN becomes ``None``)."""
        return {name: _json_safe(v) for name, v in self._field_values()}


@dataclass(frozen=True, eq=False)
class BootstrapResult(_Value):
    """Result of :func:`twinkernel.bootstrap_ci` (frozen, arrays read-only; fields only added at the end).

    Attributes
    ----------
    ci_lower, ci_upper : float
        Interval for the mean of all values (also available as the tuple :attr:`confidence_interval`).
    standard_error : float
        Standard deviation (``ddof=1``) of the bootstrap replicates of the mean.
    estimate : float
        The sample mean.
    method : str
        Interval method: ``"percentile"``, ``"basic"`` or ``"bca"``.
    resampling : str
        Resampling scheme that produced the replicates: ``"multinomial"``, ``"poisson"`` or ``"blb"``.
    n_resamples : int
        Replicates requested (BLB uses ``ceil(n_resamples / s) * s``).
    seed : int
        The seed used (drawn with :func:`secrets.randbits` when none was given).
    confidence_level : float
        Nominal coverage.
    n : int
        Number of values.
    group_labels : tuple or None
        Group label of each position of the per-group arrays (``None`` without ``groups``).
    group_estimates, group_ci_lower, group_ci_upper, group_standard_errors : numpy.ndarray or None
        Per-group mean, interval and standard error (float64, read-only; NaN only for a group with no values).
    group_sizes : numpy.ndarray or None
        Number of values in each group (int64, read-only).
    warnings : tuple[str, ...]
        Degenerate or corrected intervals, in words.
    """

    ci_lower: float
    ci_upper: float
    standard_error: float
    estimate: float
    method: str
    resampling: str
    n_resamples: int
    seed: int
    confidence_level: float
    n: int
    group_labels: tuple[Any, ...] | None = None
    group_estimates: np.ndarray | None = None
    group_ci_lower: np.ndarray | None = None
    group_ci_upper: np.ndarray | None = None
    group_standard_errors: np.ndarray | None = None
    group_sizes: np.ndarray | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("group_estimates", "group_ci_lower", "group_ci_upper", "group_standard_errors"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _readonly(value, np.float64))
        if self.group_sizes is not None:
            object.__setattr__(self, "group_sizes", _readonly(self.group_sizes, np.int64))
        if self.group_labels is not None:
            object.__setattr__(self, "group_labels", tuple(self.group_labels))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def confidence_interval(self) -> tuple[float, float]:
        """``(ci_lower, ci_upper)``."""
        return (self.ci_lower, self.ci_upper)


@dataclass(frozen=True, eq=False)
class EngineIntervals(_Value):
    """Bootstrap intervals for the ATE and every segment of every dimension (see :func:`engine_intervals`).

    Frozen, arrays read-only, fields only added at the end.

    Attributes
    ----------
    ci_lower, ci_upper : float
        Interval of the overall mean.
    standard_error : float
        Bootstrap standard error of the overall mean.
    estimate : float
        The overall mean.
    method : str
        Interval method: ``"percentile"``, ``"basic"`` or ``"bca"``.
    resampling : str
        ``"poisson"`` or ``"blb"``.
    n_resamples : int
        Replicates requested.
    seed : int
        Seed of the counter-based generator.
    confidence_level : float
        Nominal coverage.
    group_ci_lower, group_ci_upper : tuple[numpy.ndarray, ...]
        One read-only float64 array per dimension, of length ``n_groups[k]`` (NaN only for an empty group).
    group_standard_errors : tuple[numpy.ndarray, ...]
        Bootstrap standard error of each segment mean, laid out like ``group_ci_lower``.
    warnings : tuple[str, ...]
        Degenerate or corrected intervals, in words.
    """

    ci_lower: float
    ci_upper: float
    standard_error: float
    estimate: float
    method: str
    resampling: str
    n_resamples: int
    seed: int
    confidence_level: float
    group_ci_lower: tuple[np.ndarray, ...] = ()
    group_ci_upper: tuple[np.ndarray, ...] = ()
    group_standard_errors: tuple[np.ndarray, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("group_ci_lower", "group_ci_upper", "group_standard_errors"):
            object.__setattr__(self, name, tuple(_readonly(a, np.float64) for a in getattr(self, name)))
        object.__setattr__(self, "warnings", tuple(self.warnings))
