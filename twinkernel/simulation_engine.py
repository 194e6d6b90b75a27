"""SimulationEngine: the thin orchestration layer over the effect and statistics kernels."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import polars as pl
from scipy import stats as sps

from .config import TwinkernelConfig, get_config
from .effect_model import EffectModel, EffectParameters
from .kernels import KERNEL_VERSION
from .kernels import effects as K
from .kernels.stats import combine_columns, combine_grouped, shifted_variance
from .models import (
    EffectHeterogeneity,
    InterventionConfig,
    PopulationFilter,
    SimulationRecommendation,
    SimulationRequest,
    SimulationResult,
    SimulationStatus,
)
from .population import DEFAULTED_BITS, TwinPopulation

__all__ = ["CI_METHODS", "ResultCache", "SimulationEngine"]

logger = logging.getLogger("twinkernel")
trace_logger = logging.getLogger("twinkernel.trace")

CI_METHODS = ("analytic", "percentile", "basic", "bca")
_SEGMENT_FIELDS = ("by_specialty", "by_decile", "by_region", "by_adoption_stage")
_EMPTY_INDEX = np.empty(0, dtype=np.int64)


@functools.lru_cache(maxsize=64)
def _normal_quantile(q: float) -> float:
    return float(sps.norm.ppf(q))


class ResultCache(Protocol):
    """What the engine needs from a cache (see :mod:`twinkernel.simulation_cache`)."""

    def get_or_compute(
        self, request: SimulationRequest, compute: Callable[[], SimulationResult]
    ) -> SimulationResult: ...


@dataclass(frozen=True)
class _Selection:
    index: np.ndarray | None  # population rows, or None for "every row in order"
    n: int
    population_size: int
    targeted: int


class SimulationEngine:
    """Simulate interventions on a twin population.

    Parameters
    ----------
    population
        The twins.
    min_effect_threshold
        ATE at or above which an intervention may be deployed (default: the config's deploy threshold).
    confidence_threshold
        Simulation confidence below which the result carries a warning (default from config).
    model_fidelity_score
        The twin model's fidelity score, if known; below the configured threshold it sets
        ``fidelity_warning``.
    cache
        A result cache; ``None`` uses the embedded in-process cache when ``simulation_cache.enabled``.
    effect_model
        Effect priors or a calibrated model (default: priors from the config).
    config
        Configuration (default: :func:`twinkernel.config.get_config`).

    Examples
    --------
    >>> import numpy as np
    >>> from twinkernel import TwinPopulation, InterventionConfig
    >>> rng = np.random.default_rng(0)
    >>> pop = TwinPopulation.from_numpy({"decile": rng.integers(1, 11, 1000),
    ...                                  "digital_engagement_score": rng.random(1000)})
    >>> engine = SimulationEngine(pop)
    >>> result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    >>> result.status.value, result.twin_count
    ('completed', 1000)
    """

    def __init__(
        self,
        population: TwinPopulation,
        min_effect_threshold: float | None = None,
        confidence_threshold: float | None = None,
        model_fidelity_score: float | None = None,
        cache: ResultCache | None = None,
        effect_model: EffectModel | None = None,
        config: TwinkernelConfig | None = None,
    ) -> None:
        if not isinstance(population, TwinPopulation):
            raise TypeError(f"`population` must be a TwinPopulation; got {type(population).__name__}")
        self.config = config or get_config()
        sim = self.config.simulation
        self.population = population
        self.min_effect_threshold = (
            sim.recommendations.deploy_threshold
            if min_effect_threshold is None
            else float(min_effect_threshold)
        )
        self.confidence_threshold = (
            sim.confidence_threshold if confidence_threshold is None else float(confidence_threshold)
        )
        for name, value in (
            ("min_effect_threshold", self.min_effect_threshold),
            ("confidence_threshold", self.confidence_threshold),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be between 0 and 1; got {value}")
        if model_fidelity_score is not None and not 0.0 <= model_fidelity_score <= 1.0:
            raise ValueError(f"`model_fidelity_score` must be between 0 and 1; got {model_fidelity_score}")
        self.model_fidelity_score = model_fidelity_score
        self.effect_model = effect_model or EffectModel.from_config(self.config)
        self.cache = cache if cache is not None else self._default_cache()

    def _default_cache(self) -> ResultCache | None:
        if not self.config.simulation_cache.enabled:
            return None
        try:
            from .simulation_cache import SimulationCache
        except ImportError:  # pragma: no cover - the module ships with the package
            return None
        return SimulationCache.from_config(self.config)

    # --- public API --------------------------------------------------------------------------------------
    def simulate(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None = None,
        confidence_level: float = 0.95,
        calculate_heterogeneity: bool = True,
        use_cache: bool = True,
        cache: ResultCache | None = None,
        seed: int | None = None,
        ci_method: str | None = None,
        n_resamples: int | None = None,
        debug_trace: bool = False,
    ) -> SimulationResult:
        """Simulate ``intervention_config`` on the (filtered, targeted) population.

        Parameters
        ----------
        intervention_config
            What to simulate.
        population_filter
            Which twins to simulate (``None``: all).
        confidence_level
            Of the interval, strictly between 0 and 1.
        calculate_heterogeneity
            Compute effects by specialty, decile, region and adoption stage.
        use_cache, cache
            Use the engine's cache (or the one given) for this call. Calls without ``seed`` are not cached
            unless ``simulation_cache.cache_unseeded`` is set: their results are not reproducible.
        seed
            Seed of the counter-based random numbers; ``None`` draws one and records it in the result.
        ci_method
            ``"analytic"`` (z, or t below ``t_distribution_below_n`` twins), or a bootstrap method
            ``"percentile"``, ``"basic"``, ``"bca"``. Default from the config.
        n_resamples
            Bootstrap replicates (default from the config); ignored for ``"analytic"``.
        debug_trace
            Log every twin's modifiers (first ``trace_limit`` twins) at DEBUG even when the ``twinkernel``
            logger is not at DEBUG.

        Returns
        -------
        SimulationResult
            Status FAILED (never an exception) when fewer than ``min_twins`` twins remain.
        """
        if not isinstance(intervention_config, InterventionConfig):
            raise TypeError(
                "`intervention_config` must be an InterventionConfig; "
                f"got {type(intervention_config).__name__}"
            )
        if population_filter is not None and not isinstance(population_filter, PopulationFilter):
            raise TypeError(
                "`population_filter` must be a PopulationFilter or None; "
                f"got {type(population_filter).__name__}"
            )
        if isinstance(confidence_level, bool) or not (0.0 < float(confidence_level) < 1.0):
            raise ValueError(f"`confidence_level` must be strictly between 0 and 1; got {confidence_level}")
        method = (ci_method or self.config.simulation.ci_method).strip().lower()
        if method not in CI_METHODS:
            raise ValueError(f"`ci_method` must be one of {', '.join(CI_METHODS)}; got {ci_method!r}")
        if method == "analytic":
            resamples = None
        else:
            resamples = self.config.simulation.n_resamples if n_resamples is None else n_resamples
            if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 10:
                raise ValueError(f"`n_resamples` must be an integer of at least 10; got {n_resamples!r}")
            resamples = int(resamples)
        seed_given = seed is not None
        if seed is None:
            seed = secrets.randbits(63)
        elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
            raise ValueError(f"`seed` must be an integer in [0, 2**64); got {seed!r}")
        seed = int(seed)
        pf = population_filter or PopulationFilter()
        # Parameter validation (e.g. additional_calls) happens before any cache lookup.
        effect_params = self.effect_model.parameters(intervention_config)

        request = SimulationRequest(
            model_id=self.population.model_id,
            population_fingerprint=self.population.fingerprint(),
            intervention_config=intervention_config,
            population_filter=pf,
            confidence_level=float(confidence_level),
            ci_method=method,
            n_resamples=resamples,
            seed=seed,
            seed_was_given=seed_given,
            calculate_heterogeneity=calculate_heterogeneity,
            kernel_version=KERNEL_VERSION,
            effect_model_id=self.effect_model.model_id,
        )
        digest = request.digest()

        def compute() -> SimulationResult:
            return self._run(
                digest,
                intervention_config,
                pf,
                float(confidence_level),
                calculate_heterogeneity,
                seed,
                method,
                resamples,
                effect_params,
                debug_trace,
            )

        active_cache = cache if cache is not None else self.cache
        cacheable = seed_given or self.config.simulation_cache.cache_unseeded
        if use_cache and active_cache is not None and cacheable and not debug_trace:
            return active_cache.get_or_compute(request, compute)
        return compute()

    def modifier_table(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None = None,
        seed: int = 0,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Every selected twin's effect modifiers as a Polars frame (``twin_id`` then MODIFIER_NAMES).

        The effects equal those :meth:`simulate` computes with the same seed.
        """
        params = self.effect_model.parameters(intervention_config)
        sel = self._select(intervention_config, population_filter or PopulationFilter())
        index = sel.index if sel.index is not None else np.arange(sel.n, dtype=np.int64)
        if limit is not None:
            index = index[: max(0, int(limit))]
        trace, _ = self._trace(index, params, seed)
        cols: dict[str, Any] = {"twin_id": self.population.twin_ids.gather(index)}
        for k, name in enumerate(K.MODIFIER_NAMES):
            cols[name] = trace[:, k]
        return pl.DataFrame(cols)

    # --- the computation ---------------------------------------------------------------------------------
    def _select(self, ic: InterventionConfig, pf: PopulationFilter) -> _Selection:
        pop = self.population
        m_filter = pop.mask(pf)
        m_target = pop.mask(
            None,
            target_deciles=ic.target_deciles,
            target_specialties=ic.target_specialties,
            target_regions=ic.target_regions,
        )
        if m_filter is None and m_target is None:
            return _Selection(None, pop.n, pop.n, pop.n)
        m = m_filter if m_target is None else (m_target if m_filter is None else m_filter & m_target)
        index = np.flatnonzero(m).astype(np.int64, copy=False)
        index.setflags(write=False)
        filtered = pop.n if m_filter is None else int(np.count_nonzero(m_filter))
        return _Selection(index, int(index.shape[0]), filtered, int(index.shape[0]))

    def _trace(self, index: np.ndarray, p: EffectParameters, seed: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.population.kernel_columns
        out = np.empty(index.shape[0], dtype=np.float64)
        trace = np.empty((index.shape[0], K.N_MODIFIERS), dtype=np.float64)
        K.individual_effects_traced(
            c.decile,
            c.engagement,
            c.adoption,
            c.tier,
            c.peer,
            c.propensity,
            c.twin_key,
            index,
            True,
            p.params,
            p.adoption_multipliers,
            p.tier_multipliers,
            np.uint64(seed),
            self.config.simulation.kernel_chunk_size,
            out,
            trace,
        )
        return trace, out

    def _emit_trace(self, sel: _Selection, p: EffectParameters, seed: int, force: bool) -> None:
        limit = self.config.simulation.trace_limit
        if sel.index is not None:
            index = sel.index[:limit]
        else:
            index = np.arange(min(limit, sel.n), dtype=np.int64)
        trace, _ = self._trace(index, p, seed)
        ids = self.population.twin_ids.gather(index).to_list()
        names = K.MODIFIER_NAMES
        fmt = "effect modifiers for twin %s: " + ", ".join(f"{name}=%.6g" for name in names)
        for row, twin_id in enumerate(ids):
            args = (twin_id, *trace[row].tolist())
            if force:
                record = trace_logger.makeRecord(
                    trace_logger.name, logging.DEBUG, __file__, 0, fmt, args, None, func="simulate"
                )
                trace_logger.handle(record)
            else:
                trace_logger.debug(fmt, *args)

    def _run(
        self,
        request_digest: str,
        ic: InterventionConfig,
        pf: PopulationFilter,
        confidence_level: float,
        calculate_heterogeneity: bool,
        seed: int,
        method: str,
        n_resamples: int | None,
        p: EffectParameters,
        debug_trace: bool,
    ) -> SimulationResult:
        t_start = time.perf_counter()
        created = datetime.now(UTC)
        sim = self.config.simulation
        timings: dict[str, float] = {}
        warnings = list(p.warnings)

        sel = self._select(ic, pf)
        timings["select_ms"] = (time.perf_counter() - t_start) * 1e3
        common = dict(
            model_id=self.population.model_id,
            intervention_config=ic,
            population_filter=pf,
            twin_type=self.population.twin_type.value,
            brand=self.population.brand,
            population_size=sel.population_size,
            targeted_count=sel.targeted,
            confidence_level=confidence_level,
            created_at=created,
            ci_method=method,
            n_resamples=n_resamples,
            effect_provenance=self.effect_model.provenance,
            seed=seed,
            model_fidelity_score=self.model_fidelity_score,
            kernel_version=KERNEL_VERSION,
            request_digest=request_digest,
        )
        if sel.n < sim.min_twins:
            message = (
                f"Insufficient twins: {sel.n} after filtering and targeting "
                f"(population {self.population.n}, minimum {sim.min_twins})"
            )
            logger.warning("simulation of %s failed: %s", ic.intervention_type, message)
            elapsed = (time.perf_counter() - t_start) * 1e3
            return SimulationResult(
                **common,
                twin_count=0,
                simulated_ate=0.0,
                simulated_ci_lower=0.0,
                simulated_ci_upper=0.0,
                simulated_std_error=0.0,
                recommendation=SimulationRecommendation.SKIP,
                recommendation_rationale=message,
                simulation_confidence=0.0,
                status=SimulationStatus.FAILED,
                error_message=message,
                execution_time_ms=elapsed,
                timings_ms={**timings, "total_ms": elapsed},
                completed_at=datetime.now(UTC),
                warnings=warnings,
            )

        if debug_trace or trace_logger.isEnabledFor(logging.DEBUG):
            self._emit_trace(sel, p, seed, force=debug_trace)

        # One fused pass: effects, their moments, the baseline's moments and the per-segment sums.
        t = time.perf_counter()
        c = self.population.kernel_columns
        effects = np.empty(sel.n, dtype=np.float64)
        use_index = sel.index is not None
        offsets = self.population.segment_offsets
        cap = p.value(K.P_CAP)
        # Sums are taken about a shift near the mean so the variance does not lose precision.
        effect_shift = min(
            cap,
            max(
                -cap,
                p.value(K.P_BASE) * p.value(K.P_INTENSITY) * p.value(K.P_DURATION) * p.value(K.P_CHANNEL),
            ),
        )
        baseline_shift = self.population.baseline_mean
        counts, sums, groups = K.simulate_pass(
            c.decile,
            c.engagement,
            c.adoption,
            c.tier,
            c.peer,
            c.propensity,
            c.baseline,
            c.twin_key,
            sel.index if use_index else _EMPTY_INDEX,
            use_index,
            p.params,
            p.adoption_multipliers,
            p.tier_multipliers,
            np.uint64(seed),
            sim.kernel_chunk_size,
            c.segment_codes,
            offsets,
            int(offsets[-1]),
            calculate_heterogeneity,
            effect_shift,
            baseline_shift,
            effects,
        )
        timings["kernel_ms"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        counts = counts.sum(axis=0)
        totals = combine_columns(sums)
        n = sel.n
        if totals[K.S_EFFECT_MIN] == totals[K.S_EFFECT_MAX]:
            ate, var = float(totals[K.S_EFFECT_MIN]), 0.0  # constant effects: exactly zero spread
        else:
            ate = effect_shift + totals[K.S_EFFECT_SUM] / n
            var = shifted_variance(totals[K.S_EFFECT_SUM], totals[K.S_EFFECT_SQ], n)
        baseline_var = shifted_variance(totals[K.S_BASELINE_SUM], totals[K.S_BASELINE_SQ], n)
        se = math.sqrt(var) / math.sqrt(n)
        boot = None
        if method == "analytic":
            crit = self._critical_value(n, confidence_level)
            ci_low, ci_high = ate - crit * se, ate + crit * se
        else:
            boot = self._bootstrap(
                effects, sel, method, n_resamples, confidence_level, seed, calculate_heterogeneity
            )
            ci_low, ci_high, se = boot.ci_low, boot.ci_high, boot.standard_error
            warnings.extend(boot.warnings)
        timings["interval_ms"] = (time.perf_counter() - t) * 1e3

        # Heterogeneity.
        heterogeneity = EffectHeterogeneity()
        if calculate_heterogeneity:
            t = time.perf_counter()
            gn, gmean, gvar = combine_grouped(groups, effect_shift)
            dims = [(gn[a:b], gmean[a:b], gvar[a:b]) for a, b in itertools.pairwise(offsets)]
            heterogeneity = self._heterogeneity(dims, confidence_level, boot)
            timings["heterogeneity_ms"] = (time.perf_counter() - t) * 1e3

        # Decision quantities.
        residual_sd = (
            self.population.outcome_residual_sd
            if self.population.outcome_residual_sd is not None
            else sim.outcome_residual_sd
        )
        outcome_var = baseline_var + var + residual_sd**2
        outcome_sd = math.sqrt(outcome_var)
        sample_size, power, cohens_d = self._sample_size(ate, outcome_sd)
        recommendation, rationale = self._recommend(ate, ci_low, ci_high, confidence_level)
        conf_cfg = sim.confidence_score
        fidelity = (
            self.model_fidelity_score if self.model_fidelity_score is not None else sim.default_fidelity
        )
        confidence = (
            conf_cfg.weight_n * min(1.0, n / conf_cfg.n_reference)
            + conf_cfg.weight_se * max(0.0, 1.0 - se / (abs(ate) + conf_cfg.ate_epsilon))
            + conf_cfg.weight_fidelity * fidelity
        )
        confidence = min(1.0, max(0.0, confidence))
        fidelity_warning = (
            self.model_fidelity_score is not None
            and self.model_fidelity_score < sim.fidelity_warning_threshold
        )
        fidelity_reason = None
        if fidelity_warning:
            fidelity_reason = (
                f"model fidelity score {self.model_fidelity_score:.3f} is below "
                f"{sim.fidelity_warning_threshold:.2f}: validate it against a real experiment before relying "
                "on it"
            )
            warnings.append(fidelity_reason)
        if confidence < self.confidence_threshold:
            warnings.append(
                f"simulation confidence {confidence:.3f} is below the threshold "
                f"{self.confidence_threshold:.2f}"
            )
        data_quality = self._data_quality(counts, sel)
        if "effect" in data_quality:
            warnings.append(
                f"{data_quality['effect']['capped']} individual effects reached the cap "
                f"±{p.value(K.P_CAP)} and were clamped"
            )

        nbytes = effects.nbytes + (sel.index.nbytes + self.population.n if sel.index is not None else 0)
        elapsed = (time.perf_counter() - t_start) * 1e3
        timings["total_ms"] = elapsed
        result = SimulationResult(
            **common,
            twin_count=n,
            simulated_ate=ate,
            simulated_ci_lower=ci_low,
            simulated_ci_upper=ci_high,
            simulated_std_error=se,
            effect_heterogeneity=heterogeneity,
            recommendation=recommendation,
            recommendation_rationale=rationale,
            recommended_sample_size=sample_size,
            recommended_duration_weeks=ic.duration_weeks,
            simulation_confidence=confidence,
            fidelity_warning=fidelity_warning,
            fidelity_warning_reason=fidelity_reason,
            status=SimulationStatus.COMPLETED,
            execution_time_ms=elapsed,
            timings_ms=timings,
            completed_at=datetime.now(UTC),
            warnings=warnings,
            data_quality=data_quality,
            effect_size_cohens_d=cohens_d,
            statistical_power=power,
            outcome_std=outcome_sd,
            memory_usage_mb=nbytes / 2**20,
        )
        logger.info(
            "simulated %s on %d twins: ATE %.5f, %.0f%% CI [%.5f, %.5f] (%s) -> %s in %.1f ms",
            ic.intervention_type,
            n,
            ate,
            confidence_level * 100,
            ci_low,
            ci_high,
            method,
            recommendation.value.upper(),
            elapsed,
        )
        return result

    # --- pieces ------------------------------------------------------------------------------------------
    def _critical_value(self, n: int, confidence_level: float) -> float:
        return float(self._critical_values(np.array([n]), confidence_level)[0])

    def _critical_values(self, n: np.ndarray, confidence_level: float) -> np.ndarray:
        """Two-sided critical values: Student t with n - 1 df below ``t_distribution_below_n``, else z."""
        q = 0.5 + confidence_level / 2.0
        crit = np.full(n.shape, _normal_quantile(q), dtype=np.float64)
        small = (n < self.config.simulation.t_distribution_below_n) & (n > 1)
        if small.any():
            crit[small] = sps.t.ppf(q, df=n[small] - 1)
        return crit

    def _bootstrap(
        self,
        effects: np.ndarray,
        sel: _Selection,
        method: str,
        n_resamples: int | None,
        confidence_level: float,
        seed: int,
        with_groups: bool,
    ) -> Any:
        from .bootstrap import engine_intervals

        c = self.population.kernel_columns
        if with_groups:
            codes = [a if sel.index is None else a[sel.index] for a in c.segment_codes]
            n_groups = [len(labels) for labels in c.segment_labels]
        else:
            codes, n_groups = [], []
        return engine_intervals(
            effects,
            codes,
            n_groups,
            method=method,
            n_resamples=int(n_resamples or 0),
            confidence_level=confidence_level,
            seed=seed,
            blb_min_n=self.config.simulation.blb_min_n,
            dimension_names=[f.removeprefix("by_") for f in _SEGMENT_FIELDS],
            dimension_labels=c.segment_labels if with_groups else None,
            report_empty=False,
        )

    def _heterogeneity(
        self, dims: list[tuple[np.ndarray, np.ndarray, np.ndarray]], confidence_level: float, boot: Any
    ) -> EffectHeterogeneity:
        c = self.population.kernel_columns
        sim = self.config.simulation
        out: dict[str, dict[str, dict[str, float | int]]] = {}
        for k, (field, labels, (gn, gmean, gvar)) in enumerate(
            zip(_SEGMENT_FIELDS, c.segment_labels, dims, strict=True)
        ):
            keep = gn >= sim.min_segment_size
            gsd = np.sqrt(gvar)
            if boot is not None:
                lows, highs = boot.group_ci_low[k], boot.group_ci_high[k]
            else:
                half = np.zeros(gn.shape)
                half[keep] = self._critical_values(gn[keep], confidence_level) * gsd[keep] / np.sqrt(gn[keep])
                lows, highs = gmean - half, gmean + half
            out[field] = {
                labels[g]: {
                    "ate": float(gmean[g]),
                    "std": float(gsd[g]),
                    "n": int(gn[g]),
                    "ci_lower": float(lows[g]),
                    "ci_upper": float(highs[g]),
                }
                for g in np.flatnonzero(keep)
            }
        return EffectHeterogeneity(**out)

    def _sample_size(self, ate: float, outcome_sd: float) -> tuple[int, float | None, float | None]:
        rec = self.config.simulation.recommendations
        z_alpha = float(sps.norm.ppf(1.0 - rec.alpha / 2.0))
        z_power = float(sps.norm.ppf(rec.power))
        if ate == 0.0 or outcome_sd == 0.0:
            size = rec.max_sample_size if ate == 0.0 else rec.min_sample_size
        else:
            raw = 2.0 * (z_alpha + z_power) ** 2 * outcome_sd**2 / ate**2
            size = int(min(rec.max_sample_size, max(rec.min_sample_size, math.ceil(raw))))
        if outcome_sd == 0.0:
            return size, (1.0 if ate != 0.0 else rec.alpha), None
        cohens_d = ate / outcome_sd
        power = float(sps.norm.cdf(abs(ate) / (outcome_sd * math.sqrt(2.0 / size)) - z_alpha))
        return size, power, cohens_d

    def _recommend(self, ate: float, lo: float, hi: float, cl: float) -> tuple[SimulationRecommendation, str]:
        refine = self.config.simulation.recommendations.refine_threshold
        deploy = self.min_effect_threshold
        ci = f"{cl:.0%} CI [{lo:.4f}, {hi:.4f}]"
        if hi < 0.0:
            return SimulationRecommendation.SKIP, (
                f"harmful: ATE {ate:.4f} with the whole {ci} below 0; do not test this intervention"
            )
        if ate < refine:
            return SimulationRecommendation.SKIP, (
                f"ATE {ate:.4f} is below the refine threshold {refine:.4f} ({ci}); not worth a real test"
            )
        if lo <= 0.0 <= hi:
            return SimulationRecommendation.REFINE, (
                f"{ci} contains 0 (ATE {ate:.4f}); refine the intervention or its targeting"
            )
        if ate < deploy:
            return SimulationRecommendation.REFINE, (
                f"ATE {ate:.4f} is between the refine threshold {refine:.4f} and the deploy threshold "
                f"{deploy:.4f} ({ci}); refine before testing"
            )
        if hi - lo > abs(ate):
            return SimulationRecommendation.REFINE, (
                f"{ci} is wider ({hi - lo:.4f}) than |ATE| {abs(ate):.4f}; the effect is too uncertain"
            )
        return SimulationRecommendation.DEPLOY, (
            f"ATE {ate:.4f} is at or above the deploy threshold {deploy:.4f} and the {ci} excludes 0; "
            f"run the real test"
        )

    def _data_quality(self, counts: np.ndarray, sel: _Selection) -> dict[str, dict[str, int]]:
        dq: dict[str, dict[str, int]] = {}

        def add(column: str, kind: str, value: int) -> None:
            if value:
                dq.setdefault(column, {})[kind] = int(value)

        add("decile", "clamped", counts[K.C_DECILE_CLAMPED])
        add("digital_engagement_score", "clamped", counts[K.C_ENGAGEMENT_CLAMPED])
        add("adoption_stage", "unrecognised", counts[K.C_ADOPTION_UNRECOGNISED])
        add("priority_tier", "clamped", counts[K.C_TIER_CLAMPED])
        add("peer_influence_score", "clamped", counts[K.C_PEER_CLAMPED])
        add("baseline_propensity", "clamped", counts[K.C_PROPENSITY_CLAMPED])
        add("effect", "capped", counts[K.C_EFFECT_CAPPED])
        mask = self.population.kernel_columns.defaulted
        if self.population.has_defaults:
            selected = mask if sel.index is None else mask[sel.index]
            for column, bit in DEFAULTED_BITS.items():
                add(column, "defaulted", int(np.count_nonzero(selected & bit)))
        return dq
