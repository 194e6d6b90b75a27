"""SimulationEngine: the thin orchestration layer over the effect and statistics kernels.

The decision rules live in :mod:`.decisions` (pure functions), the debug trace in :mod:`.trace`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from ..config import TwinkernelConfig, get_config
from ..effect_model import EffectModel, EffectParameters
from ..kernels import KERNEL_VERSION
from ..kernels import effects as K
from ..models import (
    FrozenMapping,
    InterventionConfig,
    PopulationFilter,
    SimulationRequest,
    SimulationResult,
    SimulationStatus,
)
from ..population import TwinPopulation
from . import decisions as D
from . import partial as P
from .assemble import completed_result
from .boundary import baseline_missing, population_warnings, unmatched_values
from .fused import SelectionInvariants, fused_pass, needs_effects, pass_bytes
from .intervals import FusedPass, Interval, nominal_modifier
from .options import CI_METHODS, Call, as_number, resolve_call
from .options import Selection as _Selection
from .protocols import ResultCache, SimulationRecorder
from .trace import emit_trace, log_result, modifier_trace, trace_logger

__all__ = ["CI_METHODS", "ResultCache", "SimulationEngine", "SimulationRecorder"]

logger = logging.getLogger("twinkernel")
_RECORDED = (SimulationStatus.COMPLETED, SimulationStatus.PARTIAL)


class SimulationEngine:
    """Simulate interventions on a twin population.

    Parameters
    ----------
    population
        The twins.
    min_effect_threshold
        ATE at or above which an intervention may be deployed (default: the config's deploy threshold).
        Must lie in 0..1 and not below ``simulation.recommendations.refine_threshold``.
    confidence_threshold
        Simulation confidence below which the result carries a warning (default from config).
    model_fidelity_score
        The twin model's fidelity score, if known; below the configured threshold it sets
        ``fidelity_warning``.
    cache
        ``None`` (default): the embedded cache built from the config when ``simulation_cache.enabled``.
        ``False``: no cache at all (every call computes). A cache instance: that cache; pass the same
        :class:`~twinkernel.SimulationCache` to several engines to share it.
    effect_model
        Effect priors or a calibrated model (default: priors from the config).
    config
        Configuration (default: :func:`twinkernel.config.get_config`).
    repository
        Where completed (and PARTIAL) simulations are recorded. ``None``: the store the config asks for
        (:func:`twinkernel.repository.repository_from_config`: the embedded SQLite store when
        ``repository.enabled``, else nothing). ``False``: record nothing. A store (e.g.
        :class:`~twinkernel.repository.TwinRepository`): that store. A failing store never fails a
        simulation: the repository queues the write in its outbox.

    Examples
    --------
    >>> import numpy as np
    >>> from twinkernel import TwinPopulation, InterventionConfig
    >>> rng = np.random.default_rng(0)
    >>> pop = TwinPopulation.from_numpy({"decile": rng.integers(1, 11, 1000),
    ...                                  "digital_engagement_score": rng.random(1000)})
    >>> engine = SimulationEngine(pop, cache=False)
    >>> result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    >>> result.status.value, result.twin_count, engine.cache is None
    ('completed', 1000, True)
    """

    def __init__(
        self,
        population: TwinPopulation,
        min_effect_threshold: float | None = None,
        confidence_threshold: float | None = None,
        model_fidelity_score: float | None = None,
        cache: ResultCache | Literal[False] | None = None,
        effect_model: EffectModel | None = None,
        config: TwinkernelConfig | None = None,
        repository: SimulationRecorder | Literal[False] | None = None,
    ) -> None:
        if not isinstance(population, TwinPopulation):
            raise TypeError(f"`population` must be a TwinPopulation; got {type(population).__name__}")
        self.config = config if config is not None else get_config()
        sim = self.config.simulation
        self.population = population
        self.min_effect_threshold = (
            sim.recommendations.deploy_threshold
            if min_effect_threshold is None
            else as_number("min_effect_threshold", min_effect_threshold)
        )
        self.confidence_threshold = (
            sim.confidence_threshold
            if confidence_threshold is None
            else as_number("confidence_threshold", confidence_threshold)
        )
        D.check_thresholds(self.min_effect_threshold, sim.recommendations.refine_threshold)
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(
                f"`confidence_threshold` must be between 0 and 1; got {self.confidence_threshold}"
            )
        if model_fidelity_score is not None and not (
            0.0 <= as_number("model_fidelity_score", model_fidelity_score) <= 1.0
        ):
            raise ValueError(f"`model_fidelity_score` must be between 0 and 1; got {model_fidelity_score}")
        self.model_fidelity_score = model_fidelity_score
        self.clock: Callable[[], float] = time.perf_counter  # simulate(timeout_s=...) reads it; tests inject
        self._invariants: dict[tuple[bool, float, float, int], SelectionInvariants] = {}  # see .fused
        self.effect_model = effect_model if effect_model is not None else EffectModel.from_config(self.config)
        self.cache: ResultCache | None
        if cache is False:
            self.cache = None
        elif cache is None:
            self.cache = self._default_cache()
        else:
            self.cache = cache
        self.repository: SimulationRecorder | None
        if repository is False:
            self.repository = None
        elif repository is None:
            self.repository = self._default_repository()
        else:
            self.repository = repository

    def _default_repository(self) -> SimulationRecorder | None:
        if not self.config.repository.enabled:
            return None
        from ..repository import repository_from_config

        return repository_from_config(self.config)

    def _record(self, result: SimulationResult) -> None:
        """Record a computed COMPLETED or PARTIAL result (with its status); a failing store is logged."""
        if self.repository is None or result.status not in _RECORDED:
            return
        try:
            self.repository.record_simulation(result)
        except Exception as exc:  # a store must never fail a simulation
            logger.warning("could not record simulation %s: %s", result.simulation_id, exc)

    def _default_cache(self) -> ResultCache | None:
        if not self.config.simulation_cache.enabled:
            return None
        from ..simulation_cache import SimulationCache

        return SimulationCache.from_config(self.config)

    # --- public API --------------------------------------------------------------------------------------
    def simulate(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None = None,
        confidence_level: float | None = None,
        calculate_heterogeneity: bool = True,
        use_cache: bool = True,
        cache: ResultCache | None = None,
        seed: int | None = None,
        ci_method: str | None = None,
        n_resamples: int | None = None,
        debug_trace: bool = False,
        timeout_s: float | None = None,
    ) -> SimulationResult:
        """Simulate ``intervention_config`` on the (filtered, targeted) population.

        Parameters
        ----------
        intervention_config
            What to simulate.
        population_filter
            Which twins to simulate (``None``: all).
        confidence_level
            Of the interval, strictly between 0 and 1 (``None``: ``simulation.default_confidence_level``).
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
        timeout_s
            Time budget of the effect pass in seconds (``None``: none). Out of time: a PARTIAL result with an
            unbiased estimate from seeded random blocks of twins (:mod:`.partial`); in time: the full result.

        Returns
        -------
        SimulationResult
            Status FAILED (never an exception, ``recommendation=None``) when fewer than ``min_twins``
            twins remain; its message names filter values that matched no twin.
        """
        timeout = P.check_timeout(timeout_s)
        call = resolve_call(
            self.config,
            self.effect_model,
            intervention_config,
            population_filter,
            confidence_level,
            calculate_heterogeneity,
            seed,
            ci_method,
            n_resamples,
        )
        request = self._request(call)
        digest = request.digest()

        def compute() -> SimulationResult:
            result = self._run(digest, call, debug_trace, timeout)
            self._record(result)
            return result

        active_cache = cache if cache is not None else self.cache
        cacheable = call.seed_given or self.config.simulation_cache.cache_unseeded
        if use_cache and active_cache is not None and cacheable and not debug_trace:
            return active_cache.get_or_compute(request, compute)
        return compute()

    def _request(self, call: Call) -> SimulationRequest:
        """The identity of a resolved call: the cache key's input (``sweep`` rows carry the same digest)."""
        return SimulationRequest(
            model_id=self.population.model_id,
            population_fingerprint=self.population.fingerprint(),
            intervention_config=call.ic,
            population_filter=call.pf,
            confidence_level=call.confidence_level,
            ci_method=call.method,
            n_resamples=call.n_resamples,
            seed=call.seed,
            seed_was_given=call.seed_given,
            calculate_heterogeneity=call.heterogeneity,
            kernel_version=KERNEL_VERSION,
            effect_model_id=self.effect_model.model_id,
        )

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

    def sweep(
        self,
        configs: Sequence[InterventionConfig],
        population_filter: PopulationFilter | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> pl.DataFrame:
        """One row per config, each equal to ``simulate``'s, in one pass: see :mod:`.sweep` (docs/sweep.md).

        ``options``: ``confidence_level``, ``calculate_heterogeneity``, ``ci_method``, ``n_resamples``.
        """
        from .sweep import sweep

        return sweep(self, configs, population_filter, seed, **options)

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
        if m_filter is not None and m_target is not None:
            m = m_filter & m_target
        elif m_filter is not None:
            m = m_filter
        elif m_target is not None:
            m = m_target
        else:
            return _Selection(None, pop.n, pop.n, pop.n)
        index = np.flatnonzero(m).astype(np.int64, copy=False)
        index.setflags(write=False)
        filtered = pop.n if m_filter is None else int(np.count_nonzero(m_filter))
        return _Selection(index, int(index.shape[0]), filtered, int(index.shape[0]))

    def _trace(self, index: np.ndarray, p: EffectParameters, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return modifier_trace(self.population, index, p, seed, self.config.simulation.kernel_chunk_size)

    def _emit_trace(self, sel: _Selection, p: EffectParameters, seed: int, force: bool) -> None:
        limit = self.config.simulation.trace_limit
        if sel.index is not None:
            index = sel.index[:limit]
        else:
            index = np.arange(min(limit, sel.n), dtype=np.int64)
        trace, _ = self._trace(index, p, seed)
        emit_trace(self.population.twin_ids.gather(index).to_list(), trace, force)

    def _run(
        self, request_digest: str, call: Call, debug_trace: bool, timeout: float | None = None
    ) -> SimulationResult:
        """Select, run the fused pass, take the interval and segments, decide, and build the result."""
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        warnings = [*population_warnings(self.population), *call.params.warnings]
        sel = self._select(call.ic, call.pf)
        timings["select_ms"] = (time.perf_counter() - t_start) * 1e3
        common = self._common_fields(request_digest, call, sel)
        if sel.n < self.config.simulation.min_twins:
            return self._failed(common, call, sel, warnings, timings, t_start)
        if debug_trace or trace_logger.isEnabledFor(logging.DEBUG):
            self._emit_trace(sel, call.params, call.seed, force=debug_trace)

        t = time.perf_counter()
        if timeout is None:
            fused = self._fused_pass(sel, call, keep_effects=needs_effects(call))
        else:
            budget = self.config.simulation.timeout
            run = P.run_blocks(self._fused_pass, sel, call, budget, timeout, self.clock)
            timings["kernel_ms"] = (time.perf_counter() - t) * 1e3
            if run.fused is None:
                result = P.partial_result(self, run, common, call, sel, warnings, timings, t_start)
                log_result(logger, result)
                return result
            fused = run.fused
        timings["kernel_ms"] = (time.perf_counter() - t) * 1e3
        nbytes = pass_bytes(fused) + (sel.index.nbytes + self.population.n if sel.index is not None else 0)
        result = completed_result(self, call, sel, fused, common, warnings, timings, t_start, nbytes)
        log_result(logger, result)
        return result

    def _common_fields(self, request_digest: str, call: Call, sel: _Selection) -> dict[str, Any]:
        return dict(
            model_id=self.population.model_id,
            intervention_config=call.ic,
            population_filter=call.pf,
            twin_type=self.population.twin_type.value,
            brand=self.population.brand,
            population_size=sel.population_size,
            targeted_count=sel.targeted,
            confidence_level=call.confidence_level,
            created_at=datetime.now(UTC),
            ci_method=call.method,
            n_resamples=call.n_resamples,
            effect_provenance=self.effect_model.provenance,
            seed=call.seed,
            model_fidelity_score=self.model_fidelity_score,
            kernel_version=KERNEL_VERSION,
            request_digest=request_digest,
        )

    def _failed(
        self,
        common: dict[str, Any],
        call: Call,
        sel: _Selection,
        warnings: list[str],
        timings: dict[str, float],
        t_start: float,
    ) -> SimulationResult:
        """The FAILED result for too few twins: no recommendation, a message naming unmatched values."""
        message = (
            f"Insufficient twins: {sel.n} after filtering and targeting "
            f"(population {self.population.n}, minimum {self.config.simulation.min_twins})"
        )
        unmatched = unmatched_values(self.population, call.pf, call.ic)
        if unmatched:
            listed = "; ".join(f"{name}={values!r}" for name, values in sorted(unmatched.items()))
            message += f"; these filter/target values match no twin: {listed}"
        logger.warning("simulation of %s failed: %s", call.ic.intervention_type, message)
        elapsed = (time.perf_counter() - t_start) * 1e3
        return SimulationResult(
            **common,
            twin_count=0,
            simulated_ate=0.0,
            simulated_ci_lower=0.0,
            simulated_ci_upper=0.0,
            simulated_std_error=0.0,
            recommendation=None,
            recommendation_rationale=f"no recommendation: the simulation failed ({message})",
            simulation_confidence=0.0,
            status=SimulationStatus.FAILED,
            error_message=message,
            execution_time_ms=elapsed,
            timings_ms=FrozenMapping({**timings, "total_ms": elapsed}),
            completed_at=datetime.now(UTC),
            warnings=tuple(warnings),
        )

    def _fused_pass(self, sel: _Selection, call: Call, keep_effects: bool = True) -> FusedPass:
        """One kernel pass: effects (unless ``keep_effects`` is False), their moments, the baseline's moments
        and the per-segment sums (:func:`.fused.fused_pass`)."""
        chunk = self.config.simulation.kernel_chunk_size
        return fused_pass(self.population, sel.index, sel.n, call, chunk, keep_effects, self._invariants)

    def _outcome_sd(self, interval: Interval, sel: _Selection, warnings: list[str]) -> float:
        """Outcome sd a real test would measure: baseline spread + effect spread + residual.

        Without a ``baseline_outcome`` column the baseline spread is unknown:
        ``simulation.default_outcome_sd`` stands in for it and the result says so (the effect spread
        alone would promise absurd power).
        """
        sim = self.config.simulation
        residual_sd = (
            self.population.outcome_residual_sd
            if self.population.outcome_residual_sd is not None
            else sim.outcome_residual_sd
        )
        baseline_var = interval.baseline_var
        if baseline_missing(self.population, sel.index):
            baseline_var = sim.default_outcome_sd**2
            warnings.append(
                "the population has no baseline_outcome values: the sample size assumes an outcome sd of "
                f"{sim.default_outcome_sd} (simulation.default_outcome_sd) for the baseline spread"
            )
        return math.sqrt(baseline_var + interval.var + residual_sd**2)

    def _decide(
        self,
        interval: Interval,
        sel: _Selection,
        call: Call,
        data_quality: Mapping[str, Mapping[str, int]],
        warnings: list[str],
    ) -> dict[str, Any]:
        """Sample size, power, recommendation, confidence and their warnings (appended to ``warnings``)."""
        sim = self.config.simulation
        rec = sim.recommendations
        outcome_sd = self._outcome_sd(interval, sel, warnings)
        size = D.sample_size(
            interval.ate,
            outcome_sd,
            alpha=rec.alpha,
            power=rec.power,
            min_size=rec.min_sample_size,
            max_size=rec.max_sample_size,
        )
        if not math.isfinite(outcome_sd):
            warnings.append("the outcome variance is not finite: power and Cohen's d are not reported")
        p = call.params
        pred = self._predict(interval.ate, p)
        assurance = D.assurance(interval.ate, pred.sigma_delta, outcome_sd, size.per_arm, rec.alpha, p.df)
        confidence, fidelity_reason = self._confidence(interval, sel.n, warnings)
        if "effect" in data_quality:
            warnings.append(
                f"{data_quality['effect']['capped']} individual effects reached the cap "
                f"±{call.params.value(K.P_CAP)} and were clamped"
            )
        return dict(
            recommendation=pred.recommendation,
            recommendation_rationale=pred.rationale,
            recommended_sample_size=size.per_arm,
            simulation_confidence=confidence,
            fidelity_warning=fidelity_reason is not None,
            fidelity_warning_reason=fidelity_reason,
            effect_size_cohens_d=size.cohens_d,
            statistical_power=size.power,
            outcome_std=outcome_sd if math.isfinite(outcome_sd) else None,
            effect_uncertainty_sd=pred.sigma_delta,
            between_experiment_sd=p.tau,
            prediction_df=p.df,
            prob_harmful=pred.prob_harmful,
            prob_above_deploy=pred.prob_above_deploy,
            prob_above_refine=pred.prob_above_refine,
            assurance=assurance,
        )

    def _predict(self, ate: float, p: EffectParameters) -> D.Prediction:
        """The prediction model for an effect ``ate`` simulated with parameters ``p`` (whole or segment)."""
        rec = self.config.simulation.recommendations
        return D.predict(
            ate,
            D.mean_modifier(ate, p.value(K.P_BASE), nominal_modifier(p)),
            p.base_sd,
            p.tau,
            p.df,
            deploy_threshold=self.min_effect_threshold,
            refine_threshold=rec.refine_threshold,
            min_probability=rec.min_probability,
        )

    def _confidence(self, interval: Interval, n: int, warnings: list[str]) -> tuple[float, str | None]:
        """Simulation confidence, and the fidelity warning's reason (both warnings appended)."""
        sim = self.config.simulation
        score = sim.confidence_score
        known_fidelity = self.model_fidelity_score
        fidelity = known_fidelity if known_fidelity is not None else sim.default_fidelity
        confidence = D.simulation_confidence(
            n,
            interval.se,
            interval.ate,
            fidelity,
            weight_n=score.weight_n,
            weight_se=score.weight_se,
            weight_fidelity=score.weight_fidelity,
            n_reference=score.n_reference,
            ate_epsilon=score.ate_epsilon,
        )
        fidelity_reason = None
        if known_fidelity is not None and known_fidelity < sim.fidelity_warning_threshold:
            fidelity_reason = (
                f"model fidelity score {known_fidelity:.3f} is below "
                f"{sim.fidelity_warning_threshold:.2f}: validate it against a real experiment before relying "
                "on it"
            )
            warnings.append(fidelity_reason)
        if confidence < self.confidence_threshold:
            warnings.append(
                f"simulation confidence {confidence:.3f} is below the threshold "
                f"{self.confidence_threshold:.2f}"
            )
        return confidence, fidelity_reason
