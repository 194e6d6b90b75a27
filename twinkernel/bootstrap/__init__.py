"""Bootstrap confidence intervals for a mean and for the mean of every segment.

:func:`bootstrap_ci` is the public entry point; :func:`engine_intervals` the simulation engine's (the ATE
and all segment dimensions in one pass). Both return frozen values (:class:`BootstrapResult`,
:class:`EngineIntervals`) whose intervals are named ``ci_lower`` / ``ci_upper``. See ``docs/bootstrap.md``.

Modules: ``api`` (:func:`bootstrap_ci`), ``engine`` (:func:`engine_intervals`), ``results`` (the result
objects), ``validation`` (the boundary), ``intervals`` (percentile, basic, BCa and the shared pipeline),
``multinomial``, ``poisson`` and ``blb`` (the resampling schemes around the kernels of
:mod:`twinkernel.kernels.bootstrap`), ``columns`` (overall/segment bookkeeping and the power-of-two
rescaling). Importing this package alone does not import numba; the first use of :func:`bootstrap_ci` or
:func:`engine_intervals` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .results import BootstrapResult, BootstrapWarning, EngineIntervals
from .validation import METHODS, RESAMPLING

if TYPE_CHECKING:
    from .api import bootstrap_ci
    from .engine import engine_intervals

__all__ = [
    "METHODS",
    "RESAMPLING",
    "BootstrapResult",
    "BootstrapWarning",
    "EngineIntervals",
    "bootstrap_ci",
    "engine_intervals",
]


def __getattr__(name: str) -> Any:
    # The entry points import the numba kernels; load them on first use, not when results are imported.
    if name == "bootstrap_ci":
        from .api import bootstrap_ci

        return bootstrap_ci
    if name == "engine_intervals":
        from .engine import engine_intervals

        return engine_intervals
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
