"""TwinGenerator: leakage-safe training of the outcome model and the copula, and batched generation.

``train`` fits an outcome model (scikit-learn) and a Gaussian copula of the feature columns on training
rows only (:mod:`.leakage` decides what training may see); ``generate`` draws twins from the copula
(:mod:`.constraints`), predicts every twin's baseline outcome in one batched call (:mod:`.trees`) and
returns a :class:`~twinkernel.population.TwinPopulation`.

Randomness: twins are a pure function of ``seed`` through the counter RNG: twin ``i`` is the same
whatever the chunk size or thread count, and ``generate(n)`` is a prefix of ``generate(m)`` for ``m > n``
with the same seed and constraints. Training uses ``numpy.random.default_rng(random_state)`` and
scikit-learn's ``random_state``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from ..config import TwinGenerationConfig, TwinkernelConfig, get_config
from ..models import TwinType
from ..population import TWIN_FEATURE_COLUMNS, TwinPopulation
from . import effects, leakage, outcome, persistence, quality
from ._common import as_polars, require_columns
from ._settings import with_overrides as _with_overrides
from .constraints import column_from_latent, draw_latent, plan_constraints
from .copula import fit_latent_correlation, pearson
from .fidelity import FidelityReport, fidelity_report
from .marginals import ColumnMarginal, decode_column, encoded_matrix, feature_matrix, fit_marginal
from .mixture import MixtureComponent, condition_components, draw_chunk, fit_mixture
from .outcome import ALGORITHMS, TwinModelMetrics
from .propensity import PropensityModel, fit_propensity, heuristic_propensity
from .trees import CompiledTrees, compile_trees, predict_with

POPULATION_COLUMNS: tuple[str, ...] = TWIN_FEATURE_COLUMNS
"""Recognised twin columns that are synthesised whenever the training data has them, features or not."""

SETTINGS: tuple[str, ...] = (
    "quantile_points",
    "max_discrete_levels",
    "correlation",
    "gibbs_sweeps",
    "test_size",
    "permutation_repeats",
    "chunk_size",
    "leakage_tolerance",
    "sklearn_threads",
)
"""``twin_generation`` keys a :class:`TwinGenerator` may override per instance (keyword arguments)."""


class TwinGenerator:
    """Learn twins from history and generate populations of them.

    Parameters
    ----------
    twin_type
        :class:`~twinkernel.models.TwinType` (or its value) of the twins generated.
    brand
        Free text carried onto populations.
    config
        Configuration (section ``twin_generation``); the process default when ``None``.
    quantile_points, max_discrete_levels, correlation, gibbs_sweeps, test_size, permutation_repeats, \
chunk_size, leakage_tolerance, sklearn_threads
        Per-instance overrides of the ``twin_generation`` keys of the same name, validated by the same
        rules (``None``: the configured value; for ``sklearn_threads`` ``"config"`` is the configured value
        and ``None`` means no cap). ``self.config`` holds the effective values.

    Examples
    --------
    >>> from twinkernel import synthetic
    >>> world = synthetic.hcp_world(3000, months=4, seed=0)
    >>> gen = TwinGenerator("hcp", "Kisqali")
    >>> metrics = gen.train(synthetic.hcp_training_frame(world), "brand_share", time_col="month")
    >>> pop = gen.generate(1000, constraints={"decile": 3}, seed=1)
    >>> pop.n, set(pop.frame["decile"].to_list())
    (1000, {3})
    """

    def __init__(
        self,
        twin_type: TwinType | str = TwinType.HCP,
        brand: str | None = None,
        config: TwinkernelConfig | None = None,
        *,
        quantile_points: int | None = None,
        max_discrete_levels: int | None = None,
        correlation: Literal["norta", "normal_scores"] | None = None,
        gibbs_sweeps: int | None = None,
        test_size: float | None = None,
        permutation_repeats: int | None = None,
        chunk_size: int | None = None,
        leakage_tolerance: float | None = None,
        sklearn_threads: int | Literal["config"] | None = "config",
    ) -> None:
        self.twin_type = TwinType(twin_type)
        self.brand = brand
        base = get_config() if config is None else config
        given = {
            "quantile_points": quantile_points,
            "max_discrete_levels": max_discrete_levels,
            "correlation": correlation,
            "gibbs_sweeps": gibbs_sweeps,
            "test_size": test_size,
            "permutation_repeats": permutation_repeats,
            "chunk_size": chunk_size,
            "leakage_tolerance": leakage_tolerance,
        }
        overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        for name, value in overrides.items():
            if isinstance(value, bool):  # pydantic would read True as 1
                raise ValueError(f"`{name}` must be a number; got {value!r}")
        if sklearn_threads != "config":
            overrides["sklearn_threads"] = sklearn_threads
        tg = _with_overrides(base.twin_generation, overrides)
        self.config: TwinkernelConfig = base.model_copy(update={"twin_generation": tg})
        self._reset()

    @property
    def tg(self) -> TwinGenerationConfig:
        """The effective ``twin_generation`` settings of this generator."""
        return self.config.twin_generation

    @property
    def settings(self) -> dict[str, Any]:
        """The per-instance settings (:data:`SETTINGS`) as a plain dict (a copy)."""
        return {k: getattr(self.tg, k) for k in SETTINGS}

    def _reset(self) -> None:
        self.model_id: str | None = None
        self.metrics: TwinModelMetrics | None = None
        self.target_col: str | None = None
        self.feature_cols: tuple[str, ...] = ()
        self.treatment_col: str | None = None
        self.algorithm: str | None = None
        self.outcome_model: Any = None
        self.marginals: tuple[ColumnMarginal, ...] = ()
        self.latent_correlation: np.ndarray | None = None
        self.data_correlation: np.ndarray | None = None
        self.residual_sd: float | None = None
        self.n_training_rows = 0
        self.lineage: Any = None  # ModelLineage of the last tracked training run (see train(track=...))
        self.training_rows_: np.ndarray | None = None
        self.validation_rows_: np.ndarray | None = None
        self.propensity: PropensityModel | None = None
        self.chol: np.ndarray | None = None
        self.trees: CompiledTrees | None = None
        self.components: tuple[MixtureComponent, ...] = ()
        self.effect_model: Any = None  # an EffectModel when train(effect_types=...) learned effects

    @property
    def is_trained(self) -> bool:
        return self.outcome_model is not None

    @property
    def columns(self) -> tuple[str, ...]:
        """The synthesised columns, in copula order."""
        return tuple(m.name for m in self.marginals)

    # -----------------------------------------------------------------------------------------------------
    def train(
        self,
        data: Any,
        target_col: str,
        feature_cols: Sequence[str] | None = None,
        algorithm: str | None = None,
        time_col: str | None = None,
        cutoff: Any = None,
        entity_col: str | None = None,
        treatment_col: str | None = None,
        *,
        feature_time_cols: Mapping[str, str] | None = None,
        allow_strong_features: Sequence[str] = (),
        allow_missing_timestamps: bool = False,
        track: Any = None,
        effect_types: Sequence[str] | str = (),
    ) -> TwinModelMetrics:
        """Fit the outcome model and the copula on training rows only.

        Parameters
        ----------
        data
            Polars or pandas DataFrame, one row per unit (and time). Label columns may be String,
            Categorical, Enum or pandas ``category``.
        target_col
            The outcome to predict (numeric).
        feature_cols
            Model features. ``None`` uses every numeric, boolean or label column except the target, time,
            entity and treatment columns, ``*_as_of`` timestamps, ``*_id`` columns and ``baseline_*``.
        algorithm
            One of :data:`ALGORITHMS` (default ``twin_generation.default_algorithm``); hyper-parameters
            from ``twin_generation.outcome_models``.
        time_col, cutoff
            Prediction time of each row and the split point: training uses rows with ``time < cutoff``,
            validation rows with ``time >= cutoff``. Without ``cutoff`` the latest ``test_size`` share of
            distinct times is held out. Cross-validation folds are time-ordered. When the rows cannot be
            split or cross-validated by time (too few distinct times) the fallback is warned about and named
            in the metrics' ``warnings``.
        entity_col
            Unit id: no entity appears on both sides of any split (held-out entities are validation only).
            An id column (``id``, ``*_id``) with repeated values (within one time, with ``time_col``) and no
            ``entity_col`` is an error.
        treatment_col
            0/1 past treatment. The outcome model gets it as a feature (twins are predicted untreated, so
            ``baseline_outcome`` is the untreated outcome) and ``baseline_propensity`` comes from a
            logistic model of it on the features.
        feature_time_cols
            ``{feature: timestamp column}`` when a feature's as-of column is not named ``<feature>_as_of``.
            A timestamp later than the prediction time (``time_col``, else ``<target>_as_of``) is an error,
            and so is a stamped feature with neither to check it against.
        allow_strong_features
            Features accepted although their out-of-fold association with the target is near-deterministic
            compared with the rest (``twin_generation.leakage_association``), e.g. a lagged outcome known
            at prediction time. Other such features are refused as noisy copies of the target.
        allow_missing_timestamps
            Accept missing (null) feature timestamps; by default they are an error.
        track
            MLflow lineage (:mod:`twinkernel.lineage`). ``None``: as the config says
            (``repository.lineage.enabled``, off by default). ``True``: a tracker built from the config.
            ``False``: no tracking. A :class:`~twinkernel.lineage.LineageTracker`: that tracker. The run, the
            registered model version and the ``champion`` alias are kept in :attr:`lineage`; an
            unreachable tracking server is warned about once and never fails training.
        effect_types
            Types whose effects are learned from this history too (:attr:`effect_model`, docs/effects.md).

        Returns
        -------
        TwinModelMetrics

        Raises
        ------
        ValueError
            Too few training rows, a missing target or feature column, or a leakage risk (see
            :mod:`twinkernel.twin_generator.leakage`).

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> world = synthetic.hcp_world(2000, months=4, seed=0)
        >>> m = TwinGenerator().train(synthetic.hcp_training_frame(world), "brand_share", time_col="month")
        >>> m.training_rows + m.validation_rows, m.r2 > 0.5
        (2000, True)
        """
        started = time.perf_counter()
        frame = as_polars(data)
        tg = self.tg
        algorithm = (algorithm or tg.default_algorithm).lower()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"`algorithm` must be one of {list(ALGORITHMS)}; got {algorithm!r}")
        time_map = dict(feature_time_cols or {})
        features = leakage.select_features(
            frame, target_col, feature_cols, time_col, cutoff, entity_col, treatment_col, time_map, tg
        )

        # rows without a target cannot be used; they are counted, not silently dropped
        target = frame[target_col].cast(pl.Float64)
        usable = (target.is_not_null() & target.is_not_nan()).to_numpy()
        excluded = int((~usable).sum())
        leakage.check_target_leakage(frame, target_col, features, treatment_col, usable, tg)
        allowed = list(allow_strong_features)
        require_columns(frame, allowed, "allow_strong_features")
        associations = leakage.association_scores(frame, target_col, features, usable, tg)
        leakage.check_strong_features(associations, allowed, tg)
        leakage.check_feature_timestamps(
            frame, features, time_col, time_map, target_col, usable, allow_missing_timestamps
        )
        leakage.check_repeated_ids(frame, entity_col, time_col)

        train_idx, valid_idx, split, cutoff_text, split_note = leakage.split_rows(
            frame, usable, time_col, cutoff, entity_col, tg
        )
        if train_idx.size < tg.min_training_rows:
            raise ValueError(
                f"training needs at least {tg.min_training_rows} rows (twin_generation.min_training_rows); "
                f"got {train_idx.size} training rows of {frame.height} ({excluded} without a target, "
                f"{valid_idx.size} for validation)"
            )
        if valid_idx.size == 0:
            raise ValueError(f"no validation rows after the split ({split}); move the cutoff or add data")

        self._reset()
        train_frame = frame[train_idx]
        valid_frame = frame[valid_idx]
        # every fitted statistic below comes from train_frame only
        copula_cols = features + [
            c for c in POPULATION_COLUMNS if c in frame.columns and c not in features and c != treatment_col
        ]
        self.marginals = tuple(
            fit_marginal(c, train_frame[c], tg.quantile_points, tg.max_discrete_levels)
            for c in copula_cols
            if c not in (target_col, time_col, entity_col)
        )
        self.feature_cols = tuple(features)
        self.target_col = target_col
        self.treatment_col = treatment_col
        self.algorithm = algorithm

        X_train = self.feature_matrix(train_frame)
        X_valid = self.feature_matrix(valid_frame)
        y_train = target.to_numpy()[train_idx]
        y_valid = target.to_numpy()[valid_idx]
        self.outcome_model = outcome.fit_model(algorithm, X_train, y_train, tg, tg.sklearn_threads)
        self.trees = compile_trees(self.outcome_model) if algorithm == "hist_gradient_boosting" else None
        pred = self.predict(X_valid)
        resid = y_valid - pred
        r2 = outcome.r2_score(y_valid, pred)
        self.residual_sd = float(resid.std(ddof=1)) if resid.size > 1 else 0.0

        folds, cv_scheme, cv_note = leakage.cv_folds(train_frame, time_col, entity_col, tg)
        notes = tuple(x for x in (split_note, cv_note) if x is not None)
        for text in notes:
            warnings.warn(text, stacklevel=2)
        cv_scores = outcome.cross_validate(algorithm, X_train, y_train, folds, tg, tg.sklearn_threads)
        names = list(self.feature_cols) + ([treatment_col] if treatment_col else [])
        imp_mean, imp_std = outcome.permutation_importance(
            self.predict, X_valid, y_valid, names, tg, tg.permutation_repeats
        )

        encoded_train = encoded_matrix(self.marginals, train_frame, impute=True)
        self.data_correlation = pearson(encoded_train)
        self.latent_correlation = fit_latent_correlation(
            self.marginals, encoded_train, tg.correlation, tg.copula
        )
        self.chol = np.linalg.cholesky(self.latent_correlation)
        if tg.synthesis.method == "mixture":
            self.components = fit_mixture(self.marginals, encoded_train, tg)

        auc = None
        if treatment_col is not None:
            self.propensity, auc = fit_propensity(
                self._marginal_map(),
                self.feature_cols,
                train_frame,
                valid_frame,
                treatment_col,
                tg.propensity_max_iter,
            )

        self.n_training_rows = int(train_idx.size)
        self.training_rows_ = train_idx
        self.validation_rows_ = valid_idx
        self.effect_model = effects.learn_effects(self, frame, effect_types, time_col, cutoff, entity_col)
        self.model_id = persistence.model_id(self, frame, train_idx)
        self.metrics = TwinModelMetrics(
            model_id=self.model_id,
            algorithm=algorithm,
            target_col=target_col,
            feature_cols=self.feature_cols,
            r2=r2,
            rmse=float(np.sqrt(np.mean(resid**2))),
            mae=float(np.mean(np.abs(resid))),
            cv_scores=tuple(cv_scores),
            cv_mean=float(np.mean(cv_scores)) if cv_scores else float("nan"),
            cv_std=float(np.std(cv_scores)) if cv_scores else float("nan"),
            cv_scheme=cv_scheme,
            feature_importances=imp_mean,
            feature_importance_std=imp_std,
            training_rows=int(train_idx.size),
            validation_rows=int(valid_idx.size),
            excluded_rows=excluded + int(frame.height - excluded - train_idx.size - valid_idx.size),
            training_duration_seconds=time.perf_counter() - started,
            residual_sd=self.residual_sd,
            split=split,
            cutoff=cutoff_text,
            propensity_auc=auc,
            warnings=notes,
            feature_association=associations,
        )
        self._track(track, frame)
        return self.metrics

    def _track(self, track: Any, frame: pl.DataFrame) -> None:
        """Log the training run to MLflow when asked to (see ``train(track=...)``)."""
        if track is False or (track is None and not self.config.repository.lineage.enabled):
            return  # MLflow is imported only when lineage is asked for
        from .. import lineage as L

        if track is None:
            tracker = L.lineage_from_config(self.config)
        elif track is True:
            tracker = L.LineageTracker(config=self.config)
        else:
            tracker = track
        if tracker is not None:
            self.lineage = tracker.log_training(
                self, self.metrics, data_fingerprint=L.data_fingerprint(frame)
            )

    # -----------------------------------------------------------------------------------------------------
    def generate(
        self, n: int, constraints: Mapping[str, Any] | None = None, seed: int | None = None
    ) -> TwinPopulation:
        """Draw ``n`` twins from the copula and predict their baseline outcome in one batch.

        Parameters
        ----------
        n
            Number of twins (``twin_id`` is ``0 .. n - 1``).
        constraints
            ``{column: spec}``: a scalar fixes the column, a set/list restricts it to those values, a
            ``(low, high)`` tuple bounds it (inclusive, ``None`` = open); see
            :class:`~twinkernel.twin_generator.Constraint`. Other columns are drawn conditionally on the
            constrained ones. A constraint with zero probability under the fitted marginals raises
            ``ValueError``.
        seed
            Counter-RNG seed; ``None`` uses ``twin_generation.random_state``. Same seed, same twins.

        Returns
        -------
        TwinPopulation
            Synthesised columns, ``twin_id``, ``baseline_outcome`` and ``baseline_propensity``; carries
            the model id and the outcome model's residual standard deviation.

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> gen = TwinGenerator()
        >>> frame = synthetic.hcp_training_frame(synthetic.hcp_world(2000, months=3))
        >>> _ = gen.train(frame, "brand_share", time_col="month")
        >>> pop = gen.generate(500, constraints={"region": {"west", "midwest"}}, seed=3)
        >>> sorted(set(pop.frame["region"].to_list()))
        ['midwest', 'west']
        """
        self._require_trained()
        assert self.chol is not None and self.latent_correlation is not None
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"`n` must be a positive integer; got {n!r}")
        tg = self.tg
        if seed is None:
            seed = tg.random_state
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"`seed` must be an integer in [0, 2**63); got {seed!r}")
        n = int(n)
        plan = plan_constraints(self.marginals, constraints or {}, tg.copula.equality_quantile_clip)
        outputs = [np.empty(n, dtype=np.int64 if mg.is_discrete else np.float64) for mg in self.marginals]
        baseline = np.empty(n, dtype=np.float64)
        feat_pos = {self.columns.index(c): k for k, c in enumerate(self.feature_cols)}
        n_model_cols = len(feat_pos) + (1 if self.treatment_col else 0)
        if self.components:
            plans, cum = condition_components(self.components, constraints or {}, tg, int(seed))
        for start in range(0, n, tg.chunk_size):
            m = min(tg.chunk_size, n - start)
            if self.components:
                stored_cols, value_cols = draw_chunk(
                    self.components, plans, cum, start, m, int(seed), tg.gibbs_sweeps
                )
            else:
                z = draw_latent(
                    start, m, plan, int(seed), self.latent_correlation, self.chol, tg.gibbs_sweeps
                )
                pairs = [column_from_latent(mg, j, z[:, j], plan) for j, mg in enumerate(self.marginals)]
                stored_cols, value_cols = [p[0] for p in pairs], [p[1] for p in pairs]
            enc = np.empty((m, n_model_cols), dtype=np.float64)
            for j in range(len(self.marginals)):
                outputs[j][start : start + m] = stored_cols[j]
                if j in feat_pos:
                    enc[:, feat_pos[j]] = value_cols[j]
            if self.treatment_col:
                enc[:, -1] = 0.0  # twins are predicted untreated: the baseline outcome
            baseline[start : start + m] = self.predict(enc)
        return TwinPopulation(
            self._population_frame(outputs, baseline, n),
            twin_type=self.twin_type,
            brand=self.brand,
            model_id=self.model_id,
            outcome_residual_sd=self.residual_sd,
            config=self.config,
        )

    def _population_frame(self, outputs: list[np.ndarray], baseline: np.ndarray, n: int) -> pl.DataFrame:
        series = [pl.Series("twin_id", np.arange(n, dtype=np.int64))]
        series += [decode_column(mg, out) for mg, out in zip(self.marginals, outputs, strict=True)]
        series.append(pl.Series("baseline_outcome", baseline))
        if self.propensity is None:
            propensity = heuristic_propensity({s.name: s for s in series}, n, self.config)
        else:
            encoded = {
                mg.name: mg.encoded_levels[out] if mg.is_discrete else out
                for mg, out in zip(self.marginals, outputs, strict=True)
                if mg.name in self.feature_cols
            }
            propensity = self.propensity.predict_chunked(self._marginal_map(), encoded, n, self.tg.chunk_size)
        series.append(pl.Series("baseline_propensity", propensity))
        return pl.DataFrame(series)

    # -----------------------------------------------------------------------------------------------------
    def quality_report(
        self, population: TwinPopulation | pl.DataFrame, reference: Any = None
    ) -> quality.QualityReport:
        """Compare twins with the training data: marginal distances and the largest correlation difference.

        Parameters
        ----------
        population
            Twins (a :class:`TwinPopulation` or its frame) holding the synthesised columns.
        reference
            Optional frame to compare against instead of the training rows (exact two-sample KS). Without
            it, continuous columns are compared with the fitted quantile function (resolution
            ``1 / (quantile_points - 1)``) and correlations with those of the training rows.

        Examples
        --------
        >>> from twinkernel import synthetic
        >>> gen = TwinGenerator()
        >>> frame = synthetic.hcp_training_frame(synthetic.hcp_world(3000, months=3))
        >>> _ = gen.train(frame, "brand_share", time_col="month")
        >>> rep = gen.quality_report(gen.generate(20_000, seed=0))
        >>> rep.max_correlation_difference < 0.1
        True
        """
        self._require_trained()
        assert self.data_correlation is not None
        frame = population.frame if isinstance(population, TwinPopulation) else as_polars(population)
        require_columns(frame, list(self.columns), "population")
        twins = self.encoded_matrix(frame, impute=False)
        ref = None if reference is None else self.encoded_matrix(as_polars(reference), impute=False)
        return quality.compare(self.marginals, twins, ref, self.data_correlation, self.n_training_rows)

    def fidelity_report(
        self, population: TwinPopulation | pl.DataFrame, data: Any, seed: int | None = None
    ) -> FidelityReport:
        """Twins against the training rows of ``data`` (the frame given to ``train``): column shapes, every
        pair, a detection classifier, and privacy beside the held-out rows (:mod:`.fidelity`).

        ``seed`` (``None``: ``random_state``) seeds the subsamples and the classifier.
        """
        self._require_trained()
        assert self.training_rows_ is not None and self.validation_rows_ is not None
        frame = as_polars(data)
        twins = population.frame if isinstance(population, TwinPopulation) else as_polars(population)
        require_columns(frame, list(self.columns), "data")
        require_columns(twins, list(self.columns), "population")
        if frame.height <= int(max(self.training_rows_.max(), self.validation_rows_.max())):
            raise ValueError(f"`data` must be the frame given to `train`; got {frame.height} rows")
        return fidelity_report(
            frame[self.training_rows_],
            twins,
            self.columns,
            self.tg.fidelity,
            self.tg.random_state if seed is None else int(seed),
            holdout=frame[self.validation_rows_],
            threads=self.tg.sklearn_threads,
        )

    # -----------------------------------------------------------------------------------------------------
    def to_artifacts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fitted state as (JSON-ready metadata, estimators): what ``save`` writes and MLflow can log."""
        self._require_trained()
        return persistence.to_artifacts(self)

    def save(self, path: str | Path) -> Path:
        """Write the generator to a directory (``generator.json`` + ``models.joblib``); returns the path.

        ``models.joblib`` is a pickle of the scikit-learn estimator: load only files you trust.
        """
        self._require_trained()
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TwinGenerator:
        """Read a generator written by :meth:`save` (same model id, config and fitted state)."""
        return persistence.load(cls, path)

    # -----------------------------------------------------------------------------------------------------
    def marginal(self, name: str) -> ColumnMarginal:
        """The fitted marginal of one synthesised column."""
        for m in self.marginals:
            if m.name == name:
                return m
        raise KeyError(name)

    def _marginal_map(self) -> dict[str, ColumnMarginal]:
        return {m.name: m for m in self.marginals}

    def feature_matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The outcome model's input for ``frame``: encoded features (+ treatment), missing values filled."""
        return feature_matrix(self._marginal_map(), self.feature_cols, self.treatment_col, frame)

    def encoded_matrix(self, frame: pl.DataFrame, impute: bool) -> np.ndarray:
        """Encoded synthesised columns of ``frame`` in copula order (``impute`` fills missing values)."""
        return encoded_matrix(self.marginals, frame, impute)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outcome-model predictions for an encoded feature matrix (the batched tree kernel when possible)."""
        return predict_with(self.outcome_model, self.trees, X)

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the generator is not trained; call `train` first (or `TwinGenerator.load`)")

    def __repr__(self) -> str:
        return (
            f"TwinGenerator(twin_type={self.twin_type.value!r}, brand={self.brand!r}, "
            f"model_id={self.model_id!r}, columns={len(self.marginals)})"
        )
