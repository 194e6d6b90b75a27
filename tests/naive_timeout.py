"""Plain-Python reference of ``simulate(timeout_s=...)``'s block order and block-sample estimate."""

from __future__ import annotations

import math

from scipy import stats

from tests.naive import key_for, uniform

STREAM_BLOCK_ORDER = 3  # twinkernel.kernels._rng.STREAM_BLOCK_ORDER, restated from its documented table


def block_order(seed: int, n_blocks: int) -> list[int]:
    """Blocks sorted by their uniform draw ``uniform(key_for(seed, 3), block)`` (ties by block number)."""
    key = key_for(seed, STREAM_BLOCK_ORDER)
    return sorted(range(n_blocks), key=lambda b: (uniform(key, b), b))


def block_sample_estimate(
    effects: list[float], block_size: int, blocks: list[int], confidence_level: float
) -> tuple[float, float, float, float]:
    """``(ate, se, low, high)`` from the full blocks ``blocks`` plus the remainder block, by loops.

    ``effects`` are every selected twin's effects in selection order (what a full run computes).
    """
    n = len(effects)
    n_full = n // block_size
    remainder = sum(effects[n_full * block_size :])
    means = [sum(effects[b * block_size : (b + 1) * block_size]) / block_size for b in blocks]
    m = len(means)
    mean = sum(means) / m
    s2 = sum((x - mean) ** 2 for x in means) / (m - 1)
    weight = n_full * block_size / n
    ate = remainder / n + weight * mean
    se = weight * math.sqrt((1.0 - m / n_full) * s2 / m)
    crit = float(stats.t.ppf(0.5 + confidence_level / 2.0, m - 1))
    return ate, se, ate - crit * se, ate + crit * se
