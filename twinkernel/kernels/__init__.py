"""Numba kernels: pure functions of arrays and scalars (no Python objects, logging, config or I/O).

Importing this package pins numba's threading layer to one that is safe for concurrent calls from several
Python threads (``omp`` or ``tbb``); numba's ``workqueue`` layer aborts the process in that case.
"""

from __future__ import annotations

import os
import warnings

import numba

_SAFE_LAYERS = ("threadsafe", "omp", "tbb", "safe")
_requested = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower()
if _requested not in _SAFE_LAYERS:
    # "default" or "workqueue" (or nothing): choose a layer that tolerates concurrent callers.
    numba.config.THREADING_LAYER = "threadsafe"
try:
    _active = numba.threading_layer()
except ValueError:  # no parallel code has run yet: the setting above applies at the first parallel call
    _active = None
if _active == "workqueue":
    warnings.warn(
        "numba's threading layer was initialised as 'workqueue' before twinkernel was imported; "
        "calling simulate() from several Python threads at once can abort the process. Import twinkernel "
        "before running other numba parallel code, or set NUMBA_THREADING_LAYER=omp (or tbb).",
        RuntimeWarning,
        stacklevel=2,
    )

KERNEL_VERSION = "2"
"""Bumped whenever a kernel's numerical output changes (part of every cache key)."""

__all__ = ["KERNEL_VERSION"]
