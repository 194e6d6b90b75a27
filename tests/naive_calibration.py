"""Slow, obviously-correct references for ``twinkernel.calibration`` (plain NumPy, matrices written out).

The restricted log-likelihood is written in its textbook matrix form (Harville 1977; the random-effects
meta-regression of Viechtbauer's metafor), sharing no code with the library:

    ℓ_R(τ) = −½ log|V| − ½ log|Xᵀ V⁻¹ X| − ½ yᵀ P y,   P = V⁻¹ − V⁻¹ X (Xᵀ V⁻¹ X)⁻¹ Xᵀ V⁻¹,

with X = μ (one column, no intercept) and V = diag((e_j² + τ²) / w_j). τ̂ is found by brute force: a dense
grid over [0, upper], then ever finer grids around the best point.
"""

from __future__ import annotations

import numpy as np


def restricted_loglik(tau: float, mu: np.ndarray, y: np.ndarray, se: np.ndarray, w: np.ndarray) -> float:
    """ℓ_R(τ) in matrix form (additive constants dropped)."""
    V = np.diag((se**2 + tau**2) / w)
    Vinv = np.linalg.inv(V)
    X = mu.reshape(-1, 1)
    XtVX = X.T @ Vinv @ X
    P = Vinv - Vinv @ X @ np.linalg.inv(XtVX) @ X.T @ Vinv
    _, logdet_v = np.linalg.slogdet(V)
    _, logdet_x = np.linalg.slogdet(XtVX)
    return float(-0.5 * logdet_v - 0.5 * logdet_x - 0.5 * (y @ P @ y))


def tau_by_grid(
    mu: np.ndarray,
    y: np.ndarray,
    se: np.ndarray,
    w: np.ndarray,
    upper: float,
    points: int = 2001,
    rounds: int = 4,
) -> tuple[float, float]:
    """τ̂ maximising :func:`restricted_loglik` on [0, upper] by nested dense grids; returns (τ̂, ℓ_R(τ̂))."""
    lo, hi = 0.0, upper
    best_tau, best_ll = 0.0, -np.inf
    for _ in range(rounds):
        grid = np.linspace(lo, hi, points)
        lls = np.array([restricted_loglik(t, mu, y, se, w) for t in grid])
        i = int(np.argmax(lls))
        if lls[i] > best_ll:
            best_tau, best_ll = float(grid[i]), float(lls[i])
        step = grid[1] - grid[0]
        lo, hi = max(0.0, best_tau - step), best_tau + step
    return best_tau, best_ll


def posterior_k(
    mu: np.ndarray, y: np.ndarray, se: np.ndarray, w: np.ndarray, tau: float, m0: float, r: float
) -> tuple[float, float]:
    """k's posterior by the conjugate-normal update written as a loop over experiments."""
    precision = 1.0 / r**2
    weighted = m0 / r**2
    for mj, yj, ej, wj in zip(mu, y, se, w, strict=True):
        precision += wj * mj * mj / (ej * ej + tau * tau)
        weighted += wj * mj * yj / (ej * ej + tau * tau)
    return weighted / precision, precision**-0.5


def predictive_cdf(x: float, sd: float, s_m: float, df: float) -> float:
    """P(sd·T + s_m·Z ≤ x), T ~ t(df), Z ~ N(0, 1): the convolution integral over T's density (written out),
    by adaptive quadrature over the real line; the library integrates over T's probability scale instead."""
    import math

    from scipy import integrate, special

    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def integrand(t: float) -> float:
        density = math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))
        return density * float(special.ndtr((x - sd * t) / s_m))

    return float(integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12, limit=200)[0])


def predictive_quantile(p: float, sd: float, s_m: float, df: float) -> float:
    """The p-quantile of sd·T + s_m·Z: the root of :func:`predictive_cdf` − p (SciPy's brentq)."""
    from scipy import optimize

    span = 50.0 * (sd + s_m)
    return float(optimize.brentq(lambda v: predictive_cdf(v, sd, s_m, df) - p, -span, span, xtol=1e-15))
