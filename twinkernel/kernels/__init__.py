"""Numba kernels: pure functions of arrays and scalars (no Python objects, logging, config or I/O).

Threading layer
---------------
Only code that runs kernels imports this package (``twinkernel.models`` and ``twinkernel.config`` never
do), so importing it is the kernels' first use: at that point :func:`pin_threading_layer` pins numba's
threading layer to ``threadsafe`` (numba then picks ``tbb`` or ``omp``), because numba's ``workqueue``
layer aborts the process when several Python threads call a parallel kernel at once.

The pin is overridable: when the environment variable ``NUMBA_THREADING_LAYER`` is set to anything but
``default``, twinkernel leaves numba's choice alone (and warns if that choice is ``workqueue``). The same
warning is given when numba's layer was already initialised as ``workqueue`` by other code before
twinkernel's kernels were first imported (numba cannot change a layer once it is running).
"""

from __future__ import annotations

import os
import warnings

import numba

KERNEL_VERSION = "4"
"""Bumped whenever a kernel's numerical output changes (part of every cache key; tests/unit/test_golden.py
fails when outputs change without a bump)."""

SAFE_THREADING_LAYERS = ("threadsafe", "omp", "tbb", "safe")
"""Layers (or numba's layer groups) that tolerate concurrent callers."""

_WORKQUEUE_WARNING = (
    "numba's threading layer is 'workqueue'{why}; calling simulate() from several Python threads at once can "
    "abort the process. Set NUMBA_THREADING_LAYER=omp (or tbb, or leave it unset so twinkernel pins a safe "
    "layer), and import twinkernel's kernels before running other numba parallel code."
)


def pin_threading_layer() -> str | None:
    """Pin numba's threading layer to a concurrency-safe one unless the user chose one.

    Returns
    -------
    str or None
        The layer numba is already running (``None`` while no parallel code has run yet; the setting then
        applies at the first parallel call).
    """
    requested = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower()
    if requested in ("", "default"):
        numba.config.THREADING_LAYER = "threadsafe"
    elif requested == "workqueue":
        warnings.warn(
            _WORKQUEUE_WARNING.format(why=" (set by NUMBA_THREADING_LAYER)"), RuntimeWarning, stacklevel=3
        )
    try:
        active: str | None = numba.threading_layer()
    except ValueError:  # no parallel code has run yet
        active = None
    if active == "workqueue" and requested != "workqueue":
        warnings.warn(
            _WORKQUEUE_WARNING.format(why=" (initialised before twinkernel's kernels were imported)"),
            RuntimeWarning,
            stacklevel=3,
        )
    return active


pin_threading_layer()

__all__ = ["KERNEL_VERSION", "SAFE_THREADING_LAYERS", "pin_threading_layer"]
