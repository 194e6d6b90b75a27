"""Wrappers of the final-stage kernels: X'WX, X'Wy and the sandwich covariance."""

from __future__ import annotations

import numpy as np

from ..kernels.learning import MOMENT_BLOCK, blocked_moments, cluster_scores

__all__ = ["sandwich_covariance", "weighted_moments"]


def weighted_moments(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X'WX, X'Wy)`` from the blocked kernel, blocks combined in order (thread-count independent).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> xx, xy = weighted_moments(x, np.ones(2), np.array([1.0, 1.0]))
    >>> xx.tolist(), xy.tolist()
    ([[10.0, 14.0], [14.0, 20.0]], [4.0, 6.0])
    """
    xc = np.ascontiguousarray(x, dtype=np.float64)
    blocks_xx, blocks_xy = blocked_moments(
        xc, np.ascontiguousarray(w, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64), MOMENT_BLOCK
    )
    xx = np.zeros(blocks_xx.shape[1:])
    xy = np.zeros(blocks_xy.shape[1:])
    for b in range(blocks_xx.shape[0]):  # fixed order: bit-identical whatever the threads
        xx += blocks_xx[b]
        xy += blocks_xy[b]
    lower = np.tril(xx)
    return lower + np.tril(xx, -1).T, xy


def sandwich_covariance(x: np.ndarray, r: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Heteroskedasticity- (or cluster-) robust covariance of least-squares coefficients on ``x``.

    ``(X'X)⁻¹ M (X'X)⁻¹`` with M = Σ_i r_i² x_i x_iᵀ and the HC1 factor n/(n − k), or, with integer
    ``clusters``, M = Σ_g s_g s_gᵀ (s_g the score sum of cluster g) and the factor
    G/(G − 1)·(n − 1)/(n − k). Returns the covariance and the number of clusters (n without clusters).
    """
    n, k = x.shape
    xx, _ = weighted_moments(x, np.ones(n), np.zeros(n))
    bread = np.linalg.pinv(xx)
    if clusters is None:
        meat, _ = weighted_moments(x, np.asarray(r, dtype=np.float64) ** 2, np.zeros(n))
        g = n
        factor = n / max(n - k, 1)
    else:
        order = np.argsort(clusters, kind="stable").astype(np.int64)
        sorted_c = clusters[order]
        bounds = np.flatnonzero(np.diff(sorted_c)) + 1
        starts = np.concatenate(([0], bounds, [n])).astype(np.int64)
        scores = cluster_scores(
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(r, dtype=np.float64),
            order,
            starts,
        )
        g = scores.shape[0]
        meat, _ = weighted_moments(scores, np.ones(g), np.zeros(g))
        factor = g / max(g - 1, 1) * (n - 1) / max(n - k, 1)
    return factor * bread @ meat @ bread, g
