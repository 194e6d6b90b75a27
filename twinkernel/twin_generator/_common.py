"""Small helpers shared by the generator modules: input frames, column checks, frozen JSON-safe results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl


def as_polars(data: Any) -> pl.DataFrame:
    """A Polars frame from Polars or pandas input.

    pandas ``category`` columns with string categories become ``pl.Enum`` with the declared categories in
    their declared order, so level codes match what the same column gives as a Polars Enum (a plain
    conversion yields a Categorical whose declared order is lost).
    """
    if isinstance(data, pl.DataFrame):
        return data
    if type(data).__module__.startswith("pandas"):
        frame = pl.from_pandas(data)
        casts = []
        for name in data.columns:
            dtype = data[name].dtype
            if getattr(dtype, "name", None) != "category":
                continue
            cats = list(dtype.categories)
            if cats and all(isinstance(c, str) for c in cats):
                casts.append(pl.col(str(name)).cast(pl.String).cast(pl.Enum(cats)))
        return frame.with_columns(casts) if casts else frame
    raise TypeError(f"`data` must be a polars or pandas DataFrame; got {type(data).__name__}")


def require_columns(frame: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    """Raise naming the parameter and the missing columns."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"`{what}`: column(s) {missing} not in the data; available: {frame.columns}")


def binary(s: pl.Series, name: str) -> np.ndarray:
    """A 0/1 treatment column as float64 (no missing values)."""
    x = s.cast(pl.Float64, strict=False).to_numpy()
    if np.isnan(x).any() or not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"treatment column {name!r} must hold only 0/1 (or booleans) without missing values")
    return x


def readonly(values: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``values`` (results never share writable memory with the caller)."""
    out = np.array(values, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


def json_safe(value: Any) -> Any:
    """Plain JSON data: NumPy scalars and arrays unwrapped, tuples and mappings converted, and non-finite
    floats (NaN, inf) as ``None``."""
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class FrozenResult:
    """Value semantics for frozen result dataclasses: ``==`` and ``hash`` compare ``to_dict()``.

    Subclasses are ``@dataclass(frozen=True, eq=False)`` and implement ``to_dict``; comparing through the
    JSON form never raises on array fields and treats two NaNs as equal.
    """

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self._canonical() == other._canonical())

    def __hash__(self) -> int:
        return hash(self._canonical())
