"""Boundary validation of the bootstrap: every argument checked and normalised before any kernel runs.

Messages name the parameter, the rule and the value ("`n_resamples` must be an integer >= 2; got -5").
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from twinkernel.config import TwinkernelConfig, get_config

METHODS = ("percentile", "basic", "bca")
"""Interval methods accepted by :func:`bootstrap_ci` and :func:`engine_intervals`."""

RESAMPLING = ("multinomial", "poisson", "blb")
"""Resampling schemes accepted by :func:`bootstrap_ci`."""


def resolve_config(config: Any) -> TwinkernelConfig:
    """``config`` itself, or the process-wide configuration when it is ``None``."""
    if config is None:
        return get_config()
    if not isinstance(config, TwinkernelConfig):
        raise TypeError(f"`config` must be None or a TwinkernelConfig; got {type(config).__name__}")
    return config


def as_values(values: Any) -> np.ndarray:
    """``values`` as a contiguous, finite, non-empty 1-D float64 array."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`values` must be numeric; could not convert to float64 ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"`values` must be 1-D; got an array with shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("`values` must not be empty; got 0 values")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(arr[first]) else "an infinite value"
        raise ValueError(
            f"`values` must be finite; found {int(bad.sum())} NaN or infinite value(s), "
            f"{kind} at index {first}"
        )
    return np.ascontiguousarray(arr)


def as_groups(groups: Any, n: int) -> tuple[np.ndarray, int, tuple[Any, ...]]:
    """Integer codes ``0..G-1``, ``G`` and the labels of a groups argument (codes, strings, categoricals)."""
    labels: tuple[Any, ...] | None = None
    codes: np.ndarray
    if hasattr(groups, "cat") and hasattr(groups.cat, "codes"):  # pandas categorical
        codes = np.asarray(groups.cat.codes, dtype=np.int64)
        labels = tuple(groups.cat.categories)
        if (codes < 0).any():
            raise ValueError("`groups` must not contain missing values; found a null in a pandas categorical")
    else:
        if hasattr(groups, "null_count") and groups.null_count() > 0:  # polars Series
            raise ValueError(f"`groups` must not contain nulls; found {groups.null_count()}")
        if hasattr(groups, "to_numpy") and not isinstance(groups, np.ndarray):
            if hasattr(groups, "dtype") and str(groups.dtype).startswith(("Categorical", "Enum")):
                groups = groups.cast(str)
            groups = groups.to_numpy()
        arr = np.asarray(groups)
        if arr.ndim != 1:
            raise ValueError(f"`groups` must be 1-D; got an array with shape {arr.shape}")
        if arr.dtype.kind in "iub":
            codes = arr.astype(np.int64)
            if codes.shape[0] and codes.min() < 0:
                raise ValueError(
                    f"`groups` integer codes must be >= 0; got {int(codes.min())} at index "
                    f"{int(np.argmin(codes))}"
                )
        else:
            if arr.dtype.kind == "f" and np.isnan(arr).any():
                raise ValueError("`groups` must not contain NaN")
            if arr.dtype.kind == "O" and any(v is None for v in arr):
                raise ValueError("`groups` must not contain None")
            uniq, codes = np.unique(arr, return_inverse=True)
            codes = codes.astype(np.int64).reshape(-1)
            labels = tuple(uniq.tolist())
    if codes.shape[0] != n:
        raise ValueError(f"`groups` must have the same length as `values` ({n}); got {codes.shape[0]}")
    n_groups = len(labels) if labels is not None else (int(codes.max()) + 1 if n else 0)
    if labels is None:
        labels = tuple(range(n_groups))
    return np.ascontiguousarray(codes), n_groups, labels


def check_method(method: Any) -> str:
    """The lower-cased interval method, one of :data:`METHODS`."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}")
    return method.lower()


def check_resampling(resampling: Any) -> str:
    """The lower-cased resampling scheme, one of :data:`RESAMPLING`."""
    if not isinstance(resampling, str) or resampling.lower() not in RESAMPLING:
        raise ValueError(f"`resampling` must be one of {', '.join(RESAMPLING)}; got {resampling!r}")
    return resampling.lower()


def check_n_resamples(n_resamples: Any, max_resamples: int) -> int:
    """``n_resamples`` as an int in ``[2, max_resamples]`` (the bound is ``bootstrap.max_resamples``)."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 2:
        raise ValueError(f"`n_resamples` must be an integer >= 2; got {n_resamples!r}")
    if n_resamples > max_resamples:
        raise ValueError(
            f"`n_resamples` must be at most {max_resamples} (bootstrap.max_resamples in the config); "
            f"got {int(n_resamples)}"
        )
    return int(n_resamples)


def check_confidence_level(confidence_level: Any) -> float:
    """``confidence_level`` as a float strictly between 0 and 1 (a bool or a string is rejected)."""
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, int | float | np.floating | np.integer)
        or not 0.0 < float(confidence_level) < 1.0
    ):
        raise ValueError(
            f"`confidence_level` must be a number strictly between 0 and 1; got {confidence_level!r}"
        )
    return float(confidence_level)


def check_seed(seed: Any) -> int:
    """``seed`` as an int in ``[0, 2**64)``; ``None`` draws one with :func:`secrets.randbits`."""
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"`seed` must be None or an integer in [0, 2**64); got {seed!r}")
    return int(seed)
