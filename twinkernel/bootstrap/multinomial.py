"""Exact multinomial resampling (draw ``n`` rows with replacement), stratified by group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twinkernel.kernels import bootstrap as _kb
from twinkernel.kernels._rng import STREAM_BOOTSTRAP, random_u64

from .poisson import rng_key

GROUP_KEY_INDEX = 0xFFFFFFFFFFFFFFFF
"""Counter reserved for the key of the stratified pass of dimension ``d``: ``random_u64(key, this - d)``
(part of the random stream's definition, not a tuning knob)."""


def multinomial_replicates(
    values: np.ndarray, codes: Sequence[np.ndarray], n_groups: Sequence[int], seed: int, n_resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Replicate means: the whole vector, then each dimension stratified by group (resampled within).

    The second array (the BCa reference) is NaN: the plain column mean is used.
    """
    key = rng_key(seed, STREAM_BOOTSTRAP)
    n = values.shape[0]
    rows = [_kb.multinomial_means(values, np.array([0, n], dtype=np.int64), key, n_resamples)]
    for d, (c, g) in enumerate(zip(codes, n_groups, strict=True)):
        order = np.argsort(c, kind="stable")
        starts = np.zeros(int(g) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(np.bincount(c, minlength=int(g)))
        gkey = np.uint64(random_u64(key, np.uint64(GROUP_KEY_INDEX - d)))
        rows.append(_kb.multinomial_means(np.ascontiguousarray(values[order]), starts, gkey, n_resamples))
    reps = np.concatenate(rows, axis=0)
    return reps, np.full(reps.shape[0], np.nan)
