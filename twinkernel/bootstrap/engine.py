"""The simulation engine's entry point :func:`engine_intervals`: the ATE and every segment in one pass."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from twinkernel.config import TwinkernelConfig

from .intervals import column_intervals
from .results import EngineIntervals
from .validation import check_confidence_level, check_method, check_n_resamples, check_seed, resolve_config


def engine_intervals(
    effects: np.ndarray,
    group_codes: Sequence[np.ndarray],
    n_groups: Sequence[int],
    *,
    method: str,
    n_resamples: int,
    confidence_level: float,
    seed: int,
    blb_min_n: int,
    dimension_names: Sequence[str] | None = None,
    dimension_labels: Sequence[Sequence[Any]] | None = None,
    report_empty: bool = True,
    config: TwinkernelConfig | None = None,
) -> EngineIntervals:
    """Bootstrap intervals for the mean effect and every segment of every dimension, in one pass.

    Every replicate gives each twin one Poisson(1) weight (a pure function of seed, replicate and the
    twin's row), and the same weight counts towards the overall mean and towards each of the twin's
    segments; so segment totals are random, as they are when twins are resampled from the population
    (no stratification). With ``len(effects) >= blb_min_n`` the Bag of Little Bootstraps is used instead
    (segments smaller than the config's ``bootstrap.blb.min_subset`` are kept whole, i.e. plain Poisson).

    Parameters
    ----------
    effects : numpy.ndarray
        float64, 1-D, finite simulated per-twin effects (may be read-only).
    group_codes : sequence of numpy.ndarray
        One integer array per segment dimension, codes ``0 .. n_groups[k] - 1``.
    n_groups : sequence of int
        Number of segments of each dimension.
    method : {"percentile", "basic", "bca"}
        Interval method.
    n_resamples : int
        Replicates ``B``, from 2 to the config's ``bootstrap.max_resamples``.
    confidence_level : float
        Nominal coverage in (0, 1).
    seed : int
        Seed of the counter-based generator.
    blb_min_n : int
        Use the Bag of Little Bootstraps when ``len(effects) >= blb_min_n``.
    dimension_names, dimension_labels : optional
        Names of the dimensions and labels of their segments, used in warnings.
    report_empty : bool
        Warn about segments with no values (the engine leaves those out anyway, so it passes False).
    config : TwinkernelConfig, optional
        Configuration to read limits and BLB settings from; ``None``: :func:`twinkernel.get_config`.

    Returns
    -------
    EngineIntervals
        Frozen: overall interval (``ci_lower``, ``ci_upper``) and standard error, per-dimension segment
        intervals (``group_ci_lower``, ``group_ci_upper``; NaN for empty segments), ``resampling`` and
        warnings for degenerate segments.
    """
    cfg = resolve_config(config)
    method = check_method(method)
    n_resamples = check_n_resamples(n_resamples, cfg.bootstrap.max_resamples)
    confidence_level = check_confidence_level(confidence_level)
    seed = check_seed(seed)
    arr = np.ascontiguousarray(effects, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"`effects` must be a non-empty 1-D array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        first = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"`effects` must be finite; found NaN or an infinite value at index {first}")
    if len(group_codes) != len(n_groups):
        raise ValueError(
            "`group_codes` and `n_groups` must have the same length; "
            f"got {len(group_codes)} and {len(n_groups)}"
        )
    codes = []
    for k, (c, g) in enumerate(zip(group_codes, n_groups, strict=True)):
        c = np.ascontiguousarray(c, dtype=np.int64)
        if c.shape != arr.shape:
            raise ValueError(f"`group_codes[{k}]` must have length {arr.shape[0]}; got shape {c.shape}")
        if c.shape[0] and (c.min() < 0 or c.max() >= int(g)):
            raise ValueError(f"`group_codes[{k}]` must lie in [0, {int(g)}); got [{c.min()}, {c.max()}]")
        codes.append(c)
    sizes = [int(g) for g in n_groups]
    resampling = "blb" if arr.shape[0] >= blb_min_n else "poisson"
    default_names = [f"dimension {k}" for k in range(len(sizes))]
    names = list(dimension_names) if dimension_names is not None else default_names
    labels = list(dimension_labels) if dimension_labels is not None else [None] * len(sizes)
    out = column_intervals(
        arr,
        codes,
        sizes,
        resampling=resampling,
        method=method,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
        dims=[(names[k], g, labels[k]) for k, g in enumerate(sizes)],
        settings=cfg.bootstrap,
        report_empty=report_empty,
    )
    bounds = list(itertools.pairwise(np.cumsum([1, *sizes])))
    return EngineIntervals(
        ci_lower=float(out.lower[0]),
        ci_upper=float(out.upper[0]),
        standard_error=float(out.standard_error[0]),
        estimate=float(out.estimate[0]),
        method=method,
        resampling=resampling,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
        group_ci_lower=tuple(out.lower[a:b] for a, b in bounds),
        group_ci_upper=tuple(out.upper[a:b] for a, b in bounds),
        group_standard_errors=tuple(out.standard_error[a:b] for a, b in bounds),
        warnings=out.warnings,
    )
