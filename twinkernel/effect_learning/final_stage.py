"""The orthogonal final stage: the effect model's own parameters from residuals, with robust SEs.

With cross-fitted residuals Ỹ = Y − ŷ(X) and T̃ = T − t̂(X), the partially linear model
Y = g(X) + T·τ(X) + ε gives Ỹ ≈ T̃·τ(X). Here τ is the effect model's own function (SPEC "Effect model"):

    τ(x) = b · (I_d − s_d (d − low)) · (I_e + s_e e) · A[adoption] · T[tier] · (I_p + s_p p) · gate

with the intercepts I_* fixed at the configuration's, the reference adoption stage and tier at 1 and the
peer gate at the prior threshold. The free parameters θ (b, the slopes s_*, the other levels' multipliers)
are those the data can speak to; τ is a product, so θ is found by Gauss-Newton on Σ (Ỹ − T̃ τ(X; θ))² from
the prior values. Standard errors are the sandwich (HC1, or clustered by entity) at the solution: the
nuisance estimates do not enter to first order (Neyman orthogonality of the residual-on-residual score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import ADOPTION_STAGES
from .moments import sandwich_covariance, weighted_moments

__all__ = ["FinalStageFit", "ModifierInputs", "ModifierPrior", "fit_final_stage", "tau_and_jacobian"]

BASE = "base_effect"
DECILE = "decile_slope"
ENGAGEMENT = "engagement_slope"
PROPENSITY = "propensity_slope"


def adoption_name(stage: str) -> str:
    return f"adoption:{stage}"


def tier_name(tier: int) -> str:
    return f"tier:{tier}"


@dataclass(frozen=True)
class ModifierPrior:
    """The configuration's modifier shape for one intervention type (what is held fixed or starts)."""

    decile_intercept: float
    decile_low: float
    engagement_intercept: float
    propensity_intercept: float
    use_tier: bool
    start: Mapping[str, float]
    """Starting (prior) value of every parameter, free or fixed, by name."""


@dataclass(frozen=True)
class ModifierInputs:
    """Per-row modifier columns, clamped like the kernel does, and the prior peer gate (0 or 1)."""

    decile: np.ndarray
    engagement: np.ndarray
    adoption: np.ndarray  # int64 codes into ADOPTION_STAGES, len(ADOPTION_STAGES) = unrecognised
    tier: np.ndarray  # int64 1..5
    propensity: np.ndarray
    gate: np.ndarray

    def take(self, rows: np.ndarray) -> ModifierInputs:
        return ModifierInputs(*(a[rows] for a in (self.decile, self.engagement, self.adoption, self.tier,
                                                   self.propensity, self.gate)))  # fmt: skip


def tau_and_jacobian(
    values: Mapping[str, float], free: Sequence[str], inp: ModifierInputs, prior: ModifierPrior
) -> tuple[np.ndarray, np.ndarray]:
    """τ(x; θ) per row and its derivatives with respect to the ``free`` parameters (n × len(free))."""
    v = {**prior.start, **values}
    b = v[BASE]
    f_d = prior.decile_intercept - v[DECILE] * (inp.decile - prior.decile_low)
    f_e = prior.engagement_intercept + v[ENGAGEMENT] * inp.engagement
    adoption_mult = np.array([v[adoption_name(s)] for s in ADOPTION_STAGES] + [v["adoption:unrecognised"]])
    f_a = adoption_mult[inp.adoption]
    if prior.use_tier:
        tier_mult = np.array([1.0] + [v[tier_name(t)] for t in range(1, 6)])
        f_t = tier_mult[inp.tier]
    else:
        f_t = np.ones_like(f_d)
    f_p = prior.propensity_intercept + v[PROPENSITY] * inp.propensity
    factors = {"d": f_d, "e": f_e, "a": f_a, "t": f_t, "p": f_p}

    def without(skip: str) -> np.ndarray:
        out = b * inp.gate
        for name, f in factors.items():
            if name != skip:
                out = out * f
        return out

    m = inp.gate * f_d * f_e * f_a * f_t * f_p
    jac = np.empty((m.shape[0], len(free)))
    for j, name in enumerate(free):
        if name == BASE:
            jac[:, j] = m
        elif name == DECILE:
            jac[:, j] = -without("d") * (inp.decile - prior.decile_low)
        elif name == ENGAGEMENT:
            jac[:, j] = without("e") * inp.engagement
        elif name == PROPENSITY:
            jac[:, j] = without("p") * inp.propensity
        elif name.startswith("adoption:"):
            code = ADOPTION_STAGES.index(name.split(":", 1)[1])
            jac[:, j] = without("a") * (inp.adoption == code)
        elif name.startswith("tier:"):
            jac[:, j] = without("t") * (inp.tier == int(name.split(":", 1)[1]))
        else:  # pragma: no cover - names come from this module
            raise KeyError(name)
    return b * m, jac


@dataclass(frozen=True)
class FinalStageFit:
    names: tuple[str, ...]
    estimates: np.ndarray
    covariance: np.ndarray
    iterations: int
    converged: bool
    n_clusters: int

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.covariance), 0.0))


def _ssr(y_res: np.ndarray, t_res: np.ndarray, tau: np.ndarray) -> float:
    r = y_res - t_res * tau
    return float(r @ r)


def fit_final_stage(
    y_res: np.ndarray,
    t_res: np.ndarray,
    inp: ModifierInputs,
    prior: ModifierPrior,
    free: Sequence[str],
    *,
    clusters: np.ndarray | None,
    max_iterations: int,
    tolerance: float,
) -> FinalStageFit:
    """Gauss-Newton for θ (``free``, base effect first) from the prior values, then sandwich SEs.

    The base effect starts at its least-squares value given the prior modifiers (τ is linear in it); a step
    that does not lower the residual sum of squares is halved until it does.
    """
    names = tuple(free)
    n = y_res.shape[0]
    ones = np.ones(n)
    theta = np.array([prior.start[k] for k in names], dtype=np.float64)
    _, jac0 = tau_and_jacobian({BASE: 1.0}, [BASE], inp, prior)
    zb = t_res * jac0[:, 0]
    denom = float(zb @ zb)
    if denom > 0.0:
        theta[names.index(BASE)] = float(zb @ y_res) / denom
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        values = dict(zip(names, theta, strict=True))
        tau, jac = tau_and_jacobian(values, names, inp, prior)
        design = t_res[:, None] * jac
        r = y_res - t_res * tau
        jj, jr = weighted_moments(design, ones, r)
        step = np.linalg.lstsq(jj, jr, rcond=None)[0]
        ssr = float(r @ r)
        lam = 1.0
        while lam > 1e-6:
            trial = theta + lam * step
            tau_t, _ = tau_and_jacobian(dict(zip(names, trial, strict=True)), (), inp, prior)
            if _ssr(y_res, t_res, tau_t) <= ssr:
                break
            lam *= 0.5
        else:
            lam = 0.0
        delta = lam * step
        theta = theta + delta
        if float(np.max(np.abs(delta), initial=0.0)) <= tolerance * (1.0 + float(np.max(np.abs(theta)))):
            converged = True
            break
    values = dict(zip(names, theta, strict=True))
    tau, jac = tau_and_jacobian(values, names, inp, prior)
    design = t_res[:, None] * jac
    resid = y_res - t_res * tau
    cov, n_clusters = sandwich_covariance(design, resid, clusters)
    if not np.all(np.isfinite(cov)):
        cov = np.full_like(cov, math.inf)
    return FinalStageFit(names, theta, cov, iterations, converged, n_clusters)
