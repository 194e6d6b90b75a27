"""Statistical checks of the bootstrap intervals: agreement with ``scipy.stats.bootstrap`` and coverage.

Tolerances are derived from Monte-Carlo error. For ``B`` replicates the sample 2.5 % quantile of a roughly
normal replicate distribution has standard deviation ``sqrt(0.025 * 0.975 / B) / phi(1.96) = 2.67 / sqrt(B)``
standard errors (SE); the BCa endpoint adds the error of the bias correction ``z0`` (``1.25 / sqrt(B)``,
moving the endpoint by about twice that), about ``3.7 / sqrt(B)`` SE in all. Two independent runs differ by
``sqrt(2)`` times that, and we allow five of those standard deviations: with ``B = 20 000`` that is 0.13 SE
for percentile and basic and 0.19 SE for BCa (we use 0.15 and 0.2). The Bag of Little Bootstraps adds the
error of estimating the replicate distribution from subsets of ``n**0.7`` units; its tolerance, 0.3 SE,
comes from the measurements in ``docs/bootstrap.md``.

Coverage uses 1 000 seeded datasets; the binomial standard error of a coverage near 0.94 is 0.0075, and two
methods on the same datasets are compared with a band of three times ``sqrt(2)`` of it (0.032).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from twinkernel.bootstrap import bootstrap_ci

pytestmark = pytest.mark.slow

B_AGREE = 20_000
N_DATASETS = 1000
N_COVERAGE = 200
B_COVERAGE = 2000
TOL_SE = {"percentile": 0.15, "basic": 0.15, "BCa": 0.2}
SCIPY_NAME = {"percentile": "percentile", "basic": "basic", "bca": "BCa"}


def _scipy_interval(x: np.ndarray, method: str, n_resamples: int, seed: int) -> tuple[float, float]:
    res = stats.bootstrap(
        (x,), np.mean, n_resamples=n_resamples, method=method, batch=2000, rng=np.random.default_rng(seed)
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


class TestAgreementWithScipy:
    @pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
    @pytest.mark.parametrize(("resampling", "n"), [("multinomial", 500), ("poisson", 2000), ("blb", 20_000)])
    def test_endpoints_within_monte_carlo_error(self, method, resampling, n):
        x = np.random.default_rng(31).gamma(2.0, size=n)
        ours = bootstrap_ci(x, n_resamples=B_AGREE, method=method, resampling=resampling, seed=7)
        lo, hi = _scipy_interval(x, SCIPY_NAME[method], B_AGREE, seed=8)
        se = x.std(ddof=1) / np.sqrt(n)
        tol = (0.3 if resampling == "blb" else TOL_SE[SCIPY_NAME[method]]) * se
        assert abs(ours.confidence_interval[0] - lo) < tol
        assert abs(ours.confidence_interval[1] - hi) < tol
        assert abs(ours.standard_error / se - 1.0) < (0.1 if resampling == "blb" else 0.03)

    def test_grouped_intervals_match_scipy_per_group(self):
        rng = np.random.default_rng(32)
        g = rng.integers(0, 3, 900)
        x = rng.lognormal(0.0, 0.5, 900) + g
        ours = bootstrap_ci(x, g, n_resamples=B_AGREE, method="bca", seed=3)
        for k in range(3):
            xs = x[g == k]
            lo, hi = _scipy_interval(xs, "BCa", B_AGREE, seed=10 + k)
            se = xs.std(ddof=1) / np.sqrt(xs.shape[0])
            assert abs(ours.group_ci_lower[k] - lo) < 0.2 * se
            assert abs(ours.group_ci_upper[k] - hi) < 0.2 * se


def _coverage(data: np.ndarray, truth: float, method: str, resampling: str) -> float:
    hits = 0
    for i in range(data.shape[0]):
        lo, hi = bootstrap_ci(
            data[i], n_resamples=B_COVERAGE, method=method, resampling=resampling, seed=1000 + i
        ).confidence_interval
        hits += lo <= truth <= hi
    return hits / data.shape[0]


def _scipy_bca_coverage(data: np.ndarray, truth: float) -> float:
    res = stats.bootstrap(
        (data,),
        np.mean,
        axis=-1,
        vectorized=True,
        n_resamples=B_COVERAGE,
        batch=100,
        method="BCa",
        rng=np.random.default_rng(99),
    )
    lo, hi = res.confidence_interval
    return float(np.mean((lo <= truth) & (truth <= hi)))


class TestCoverage:
    band = 3.0 * np.sqrt(2.0 * 0.94 * 0.06 / N_DATASETS)

    def test_gamma_shape_2(self, record_property):
        data = np.random.default_rng(2024).gamma(2.0, size=(N_DATASETS, N_COVERAGE))
        truth = 2.0
        scipy_bca = _scipy_bca_coverage(data, truth)
        bca = _coverage(data, truth, "bca", "multinomial")
        bca_poisson = _coverage(data, truth, "bca", "poisson")
        percentile = _coverage(data, truth, "percentile", "multinomial")
        basic = _coverage(data, truth, "basic", "multinomial")
        for name, value in [
            ("scipy_bca", scipy_bca),
            ("bca", bca),
            ("bca_poisson", bca_poisson),
            ("percentile", percentile),
            ("basic", basic),
        ]:
            record_property(f"gamma2_coverage_{name}", value)
        assert 0.92 <= bca <= 0.97
        assert abs(bca - scipy_bca) <= self.band
        assert 0.92 <= bca_poisson <= 0.97
        assert abs(bca_poisson - scipy_bca) <= self.band
        assert 0.90 <= percentile <= 0.97
        assert 0.90 <= basic <= 0.97

    def test_lognormal_is_harder(self, record_property):
        data = np.random.default_rng(2025).lognormal(0.0, 1.0, size=(N_DATASETS, N_COVERAGE))
        truth = float(np.exp(0.5))
        scipy_bca = _scipy_bca_coverage(data, truth)
        bca = _coverage(data, truth, "bca", "multinomial")
        percentile = _coverage(data, truth, "percentile", "multinomial")
        basic = _coverage(data, truth, "basic", "multinomial")
        for name, value in [
            ("scipy_bca", scipy_bca),
            ("bca", bca),
            ("percentile", percentile),
            ("basic", basic),
        ]:
            record_property(f"lognormal_coverage_{name}", value)
        assert abs(bca - scipy_bca) <= self.band
        assert 0.89 <= bca <= 0.96
        # Skewness hurts the basic interval most: it reflects the replicate distribution the wrong way.
        assert basic <= bca + self.band
