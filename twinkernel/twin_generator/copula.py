"""The Gaussian copula: latent correlations (NORTA or normal scores), positive-definite repair and
truncated normals.

Latent correlations are calibrated pair by pair so that the Pearson correlation of the encoded columns
(values for numeric columns, level codes for categorical ones) implied by the copula equals the one in the
training rows ("NORTA": the latent correlation is solved from bivariate-normal orthant probabilities for
two discrete columns and from Gauss-Hermite quadrature otherwise). ``normal_scores`` uses the plain
correlation of van der Waerden normal scores instead. The matrix is repaired to be positive definite.
Numerical settings come from ``twin_generation.copula`` in the configuration.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from ..config import CopulaNumerics
from .marginals import ColumnMarginal, continuous_values

# Owen's T formula below divides by x and y; an exact 0 is nudged off the singularity (not a setting).
_AXIS_NUDGE = 1e-13
# Conditional variances are floored so a (numerically) deterministic column keeps a valid sd.
_VARIANCE_FLOOR = 1e-12


@functools.lru_cache(maxsize=8)
def gauss_hermite(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``n_nodes``-point quadrature against the standard normal density."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    weights = weights / math.sqrt(2.0 * math.pi)
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def phi2(x: np.ndarray, y: np.ndarray, rho: float) -> np.ndarray:
    """Bivariate standard normal CDF P(Z1 <= x, Z2 <= y) via Owen's T (vectorised, finite x, y)."""
    s = math.sqrt(1.0 - rho * rho)
    x = np.where(x == 0.0, _AXIS_NUDGE, x)
    y = np.where(y == 0.0, _AXIS_NUDGE, y)
    ax = (y - rho * x) / (x * s)
    ay = (x - rho * y) / (y * s)
    beta = np.where(x * y > 0.0, 0.0, 0.5)
    return (
        0.5 * special.ndtr(x) + 0.5 * special.ndtr(y) - special.owens_t(x, ax) - special.owens_t(y, ay) - beta
    )


def _jumps(mg: ColumnMarginal) -> tuple[np.ndarray, np.ndarray]:
    """Finite thresholds and the jump of the encoded value at each: g(z) = v0 + sum_k jump_k 1{z > tau_k}."""
    jumps = np.diff(mg.encoded_levels)
    keep = np.isfinite(mg.thresholds) & (jumps != 0)
    return mg.thresholds[keep], jumps[keep]


def marginal_moments(mg: ColumnMarginal, n_nodes: int) -> tuple[float, float]:
    """Mean and standard deviation of the encoded column under its marginal."""
    if mg.is_discrete:
        enc = mg.encoded_levels
        mean = float(np.dot(mg.probs, enc))
        var = float(np.dot(mg.probs, (enc - mean) ** 2))
    else:
        nodes, weights = gauss_hermite(n_nodes)
        g = continuous_values(mg, nodes)
        mean = float(np.dot(weights, g))
        var = float(np.dot(weights, (g - mean) ** 2))
    return mean, math.sqrt(max(var, 0.0))


def model_covariance(
    a: ColumnMarginal, b: ColumnMarginal, rho: float, mean_a: float, mean_b: float, n_nodes: int
) -> float:
    """Covariance of the encoded columns implied by a latent correlation ``rho``."""
    nodes, weights = gauss_hermite(n_nodes)
    s = math.sqrt(1.0 - rho * rho)
    if a.is_discrete and b.is_discrete:
        ta, ja = _jumps(a)
        tb, jb = _jumps(b)
        if ta.size == 0 or tb.size == 0:
            return 0.0
        # P(Z1 > t, Z2 > u) = Phi2(-t, -u; rho)
        joint = phi2(-ta[:, None], -tb[None, :], rho)
        indep = special.ndtr(-ta)[:, None] * special.ndtr(-tb)[None, :]
        return float(ja @ (joint - indep) @ jb)
    if b.is_discrete and not a.is_discrete:
        a, b, mean_a, mean_b = b, a, mean_b, mean_a
    if a.is_discrete:  # a discrete, b continuous: integrate over Z_b
        ta, ja = _jumps(a)
        if ta.size == 0:
            return 0.0
        gb = continuous_values(b, nodes) - mean_b
        cond = special.ndtr((rho * nodes[None, :] - ta[:, None]) / s)  # P(Z_a > t | Z_b = node)
        return float(ja @ (cond @ (weights * gb)))
    ga = continuous_values(a, nodes) - mean_a
    zb = rho * nodes[:, None] + s * nodes[None, :]
    gb = continuous_values(b, zb) - mean_b
    return float(weights @ (ga * (gb @ weights)))


def calibrate_rho(
    a: ColumnMarginal,
    b: ColumnMarginal,
    target: float,
    moments: dict[str, tuple[float, float]],
    numerics: CopulaNumerics,
) -> float:
    """Latent correlation whose implied Pearson correlation of the encoded columns equals ``target``."""
    (ma, sa), (mb, sb) = moments[a.name], moments[b.name]
    if sa == 0.0 or sb == 0.0 or not np.isfinite(target):
        return 0.0
    limit, n_nodes = numerics.rho_limit, numerics.quadrature_nodes

    def implied(rho: float) -> float:
        return model_covariance(a, b, rho, ma, mb, n_nodes) / (sa * sb) - target

    lo, hi = implied(-limit), implied(limit)
    if lo >= 0.0:
        return -limit
    if hi <= 0.0:
        return limit
    return float(optimize.brentq(implied, -limit, limit, xtol=numerics.rho_tolerance))


def nearest_correlation(r: np.ndarray, floor: float) -> np.ndarray:
    """Clip eigenvalues to ``floor`` and rescale to a unit diagonal (positive definite correlations)."""
    r = 0.5 * (r + r.T)
    w, v = np.linalg.eigh(r)
    if w.min() >= floor:
        return r
    r = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(r))
    r = r / d[:, None] / d[None, :]
    np.fill_diagonal(r, 1.0)
    return r


def pearson(encoded: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of an (n, d) matrix; constant columns correlate 0."""
    x = encoded - encoded.mean(axis=0)
    sd = np.sqrt((x * x).mean(axis=0))
    safe = np.where(sd > 0, sd, 1.0)
    c = (x.T @ x) / x.shape[0] / safe[:, None] / safe[None, :]
    c[sd == 0, :] = 0.0
    c[:, sd == 0] = 0.0
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def fit_latent_correlation(
    marginals: Sequence[ColumnMarginal], encoded: np.ndarray, method: str, numerics: CopulaNumerics
) -> np.ndarray:
    """The copula's latent correlation matrix from the encoded training rows (``norta`` or
    ``normal_scores``), repaired to be positive definite."""
    d = len(marginals)
    if method == "normal_scores":
        from scipy.stats import rankdata

        scores = special.ndtri(rankdata(encoded, axis=0) / (encoded.shape[0] + 1.0))
        r = pearson(scores)
    else:
        target = pearson(encoded)
        moments = {m.name: marginal_moments(m, numerics.quadrature_nodes) for m in marginals}
        r = np.eye(d)
        for i in range(d):
            for j in range(i + 1, d):
                r[i, j] = r[j, i] = calibrate_rho(marginals[i], marginals[j], target[i, j], moments, numerics)
    return nearest_correlation(r, numerics.min_eigenvalue)


def latent_scores_correlation(
    marginals: Sequence[ColumnMarginal], encoded: np.ndarray, numerics: CopulaNumerics
) -> np.ndarray:
    """Latent correlations that undo the attenuation of discrete columns, from normal scores.

    Continuous pairs: the Pearson correlation of their normal scores. A discrete column ``Y = g(Z1)`` (level
    thresholds on a latent normal) against the normal score ``S`` of a continuous one (the polyserial
    correlation): Stein's identity gives ``Cov(Y, S) = rho * sum_k jump_k phi(tau_k)``, solved for ``rho``.
    Two discrete columns (the polychoric correlation): ``rho`` whose implied Pearson correlation of the
    encoded values equals the data's (bivariate-normal orthant probabilities, solved by brentq).
    Without this a near-deterministic step (a tier from a decile) is blurred: the plain correlation of
    tied normal scores is smaller than the latent one. Repaired to be positive definite.
    """
    from scipy.stats import rankdata

    d = len(marginals)
    n = encoded.shape[0]
    scores = special.ndtri(rankdata(encoded, axis=0) / (n + 1.0))
    r = pearson(scores)
    values = pearson(encoded)
    sd = encoded.std(axis=0)
    discrete = [j for j, m in enumerate(marginals) if m.is_discrete and sd[j] > 0.0]
    steps = {j: _jumps(marginals[j]) for j in discrete}
    for j in discrete:
        tau, jump = steps[j]
        slope = float(np.dot(jump, np.exp(-0.5 * tau * tau))) / math.sqrt(2.0 * math.pi)
        for i in range(d):
            if i == j or sd[i] == 0.0 or (i in steps and i < j):
                continue
            if i in steps:
                rho = _polychoric(steps[j], steps[i], values[j, i] * sd[j] * sd[i], numerics)
            else:
                s_score = scores[:, i] - scores[:, i].mean()
                # Cov(Y, S) per unit sd of S, over the slope
                cov = float(np.dot(encoded[:, j] - encoded[:, j].mean(), s_score)) / n / float(s_score.std())
                rho = float(np.clip(cov / slope, -numerics.rho_limit, numerics.rho_limit))
            r[i, j] = r[j, i] = rho
    return nearest_correlation(r, numerics.min_eigenvalue)


def _polychoric(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], cov: float, numerics: CopulaNumerics
) -> float:
    """Latent correlation of two discrete columns (thresholds and jumps of each) whose implied covariance
    of the encoded values is ``cov`` (the discrete-discrete case of :func:`model_covariance`)."""
    (ta, ja), (tb, jb) = a, b
    indep = special.ndtr(-ta)[:, None] * special.ndtr(-tb)[None, :]

    def implied(rho: float) -> float:
        return float(ja @ (phi2(-ta[:, None], -tb[None, :], rho) - indep) @ jb) - cov

    limit = numerics.rho_limit
    lo, hi = implied(-limit), implied(limit)
    if lo >= 0.0:
        return -limit
    if hi <= 0.0:
        return limit
    return float(optimize.brentq(implied, -limit, limit, xtol=numerics.rho_tolerance))


def conditional(r: np.ndarray, j: int, known: Sequence[int], z: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean (per row) and sd of latent column ``j`` given the columns ``known`` (the rest marginalised)."""
    if not known:
        return np.zeros(z.shape[0]), 1.0
    k = list(known)
    w = np.linalg.solve(r[np.ix_(k, k)], r[k, j])
    var = float(r[j, j] - r[j, k] @ w)
    return z[:, k] @ w, math.sqrt(max(var, _VARIANCE_FLOOR))


# --- truncated normals ----------------------------------------------------------------------------------
def _log_interval_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a <= b, stable in both tails."""
    flip = a > 0.0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    la = special.log_ndtr(lo)
    lb = special.log_ndtr(hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return lb + np.log1p(-np.exp(la - lb))


def truncated_standard_normal(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from a standard normal restricted to [a, b], in log space (stable in both tails)."""
    flip = a > 0.0  # work in the lower tail, where Phi does not round to 1
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    la = special.log_ndtr(lo)
    lb = special.log_ndtr(hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lp = lb + np.log(u + (1.0 - u) * np.exp(la - lb))
        x = special.ndtri_exp(np.minimum(lp, 0.0))
    x = np.where(np.isfinite(x), x, np.where(np.isfinite(lo), lo, hi))
    x = np.clip(x, lo, hi)
    return np.where(flip, -x, x)


def truncated_normal_union(
    mu: np.ndarray, sigma: float, lows: np.ndarray, highs: np.ndarray, u_pick: np.ndarray, u_draw: np.ndarray
) -> np.ndarray:
    """One draw per row from Normal(mu, sigma) restricted to the union of intervals [lows[k], highs[k]].

    Inverse-CDF sampling in log space: pick an interval in proportion to its mass, then invert the CDF
    inside it. Terminates always; rows whose every interval has vanishing mass get the nearest endpoint.
    """
    a = (lows[None, :] - mu[:, None]) / sigma
    b = (highs[None, :] - mu[:, None]) / sigma
    if lows.size == 1:
        return mu + sigma * truncated_standard_normal(a[:, 0], b[:, 0], u_draw)
    lm = _log_interval_mass(a, b)
    top = lm.max(axis=1)
    dead = ~np.isfinite(top)
    w = np.exp(lm - np.where(dead, 0.0, top)[:, None])
    w[dead] = 0.0
    cum = np.cumsum(w, axis=1)
    total = cum[:, -1]
    k = (u_pick[:, None] * total[:, None] > cum).sum(axis=1)
    k = np.minimum(k, lows.size - 1)
    if dead.any():
        dist = np.minimum(np.abs(a[dead]), np.abs(b[dead]))
        k[dead] = np.argmin(dist, axis=1)
    rows = np.arange(mu.size)
    ak, bk = a[rows, k], b[rows, k]
    x = truncated_standard_normal(ak, bk, u_draw)
    if dead.any():
        x[dead] = np.where(np.abs(ak[dead]) < np.abs(bk[dead]), ak[dead], bk[dead])
    return mu + sigma * x
