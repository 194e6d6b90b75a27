"""The public entry point :func:`bootstrap_ci`: validate, resample, return a frozen result."""

from __future__ import annotations

import warnings as _warnings
from typing import Any

import numpy as np

from twinkernel.config import TwinkernelConfig

from .intervals import column_intervals
from .results import BootstrapResult, BootstrapWarning
from .validation import (
    as_groups,
    as_values,
    check_confidence_level,
    check_method,
    check_n_resamples,
    check_resampling,
    check_seed,
    resolve_config,
)


def bootstrap_ci(
    values: Any,
    groups: Any = None,
    *,
    n_resamples: int | None = None,
    confidence_level: float | None = None,
    method: str = "bca",
    resampling: str = "multinomial",
    seed: int | None = None,
    config: TwinkernelConfig | None = None,
) -> BootstrapResult:
    """Bootstrap confidence interval for the mean of ``values`` and, optionally, of every group.

    Parameters
    ----------
    values : array_like
        Finite numbers, 1-D (NumPy array, list, Polars or pandas Series). Any scale works (1e-300 or
        1e300): values are rescaled by an exact power of two before resampling and the interval scaled back.
    groups : array_like, optional
        Group of each value: integer codes ``0 .. G-1`` (any integer dtype), or labels (strings, Polars
        Enum/Categorical, pandas categorical) that are factorised. Each group gets its own interval.
    n_resamples : int, optional
        Bootstrap replicates ``B``, from 2 to the config's ``bootstrap.max_resamples``. ``None``: the
        config's ``simulation.n_resamples``.
    confidence_level : float, optional
        Nominal coverage, strictly between 0 and 1. ``None``: the config's
        ``simulation.default_confidence_level``.
    method : {"bca", "percentile", "basic"}
        Interval method.
    resampling : {"multinomial", "poisson", "blb"}
        ``"multinomial"``: exact resampling with replacement (groups resampled within themselves);
        ``"poisson"``: Poisson(1) weights, a pure function of (seed, replicate, row) (groups get the same
        weights as the overall mean, one pass); ``"blb"``: Bag of Little Bootstraps, for very large ``n``
        (settings in the config's ``bootstrap.blb``).
    seed : int, optional
        Seed of the counter-based generator; ``None`` draws one with :func:`secrets.randbits` and records it
        in the result.
    config : TwinkernelConfig, optional
        Configuration to read defaults and limits from; ``None``: :func:`twinkernel.get_config`.

    Returns
    -------
    BootstrapResult
        Frozen: interval (``ci_lower``, ``ci_upper``), standard error, estimate, the resampling used, and
        per-group read-only arrays with ``groups``.

    Raises
    ------
    ValueError
        Empty, non-1-D, NaN or infinite ``values``; bad ``groups``, ``method``, ``resampling``,
        ``n_resamples`` (also above ``bootstrap.max_resamples``), ``confidence_level`` or ``seed``.
    TypeError
        ``config`` is not a :class:`~twinkernel.TwinkernelConfig`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).gamma(2.0, size=500)
    >>> res = bootstrap_ci(x, n_resamples=1000, seed=1)
    >>> res.method, res.resampling, res.n_resamples
    ('bca', 'multinomial', 1000)
    >>> bool(res.ci_lower < x.mean() < res.ci_upper)
    True
    """
    cfg = resolve_config(config)
    arr = as_values(values)
    method = check_method(method)
    resampling = check_resampling(resampling)
    n_resamples = check_n_resamples(
        cfg.simulation.n_resamples if n_resamples is None else n_resamples, cfg.bootstrap.max_resamples
    )
    confidence_level = check_confidence_level(
        cfg.simulation.default_confidence_level if confidence_level is None else confidence_level
    )
    seed = check_seed(seed)
    codes: list[np.ndarray] = []
    n_groups: list[int] = []
    labels: tuple[Any, ...] | None = None
    if groups is not None:
        c, g, labels = as_groups(groups, arr.shape[0])
        codes, n_groups = [c], [g]

    out = column_intervals(
        arr,
        codes,
        n_groups,
        resampling=resampling,
        method=method,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
        dims=[("groups", n_groups[0], labels)] if codes else [],
        settings=cfg.bootstrap,
    )
    for m in out.warnings:
        _warnings.warn(m, BootstrapWarning, stacklevel=2)
    extra: dict[str, Any] = {}
    if codes:
        extra = {
            "group_labels": labels,
            "group_estimates": out.estimate[1:],
            "group_ci_lower": out.lower[1:],
            "group_ci_upper": out.upper[1:],
            "group_standard_errors": out.standard_error[1:],
            "group_sizes": out.count[1:],
        }
    return BootstrapResult(
        ci_lower=float(out.lower[0]),
        ci_upper=float(out.upper[0]),
        standard_error=float(out.standard_error[0]),
        estimate=float(out.estimate[0]),
        method=method,
        resampling=resampling,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
        n=int(arr.shape[0]),
        warnings=out.warnings,
        **extra,
    )
