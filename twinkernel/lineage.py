"""MLflow lineage: training runs, the twin-model registry (alias ``champion``) and simulation runs.

Default tracking is a SQLite store in the data directory (``sqlite:///<data_dir>/mlflow.db``): no server.
An http(s) tracking server that cannot be reached costs one bounded TCP check (and MLflow's HTTP retries
and timeouts are bounded for our calls), warns once per process, is counted in :class:`LineageStats`, and
is not tried again for ``repository.lineage.retry_interval_seconds``: training and simulation never wait
on it. Needs the extra ``mlflow`` (``mlflow-skinny`` plus ``sqlalchemy`` and ``alembic``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import mlflow.pyfunc
import pandas as pd  # mlflow.pyfunc needs pandas, so it is installed wherever this module imports
import polars as pl

from .config import TwinkernelConfig, get_config
from .models import SimulationResult
from .repository.paths import resolve_data_dir
from .twin_generator import QualityReport, TwinGenerator, TwinModelMetrics

__all__ = [
    "LineageStats",
    "LineageTracker",
    "ModelLineage",
    "data_fingerprint",
    "lineage_from_config",
    "load_generator",
]

logger = logging.getLogger("twinkernel.lineage")

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_REGISTRY_URI = "MLFLOW_REGISTRY_URI"
_ARTIFACT_NAME = "generator"
# mlflow's tracking and registry URIs and the HTTP settings are process-global: one session at a time.
_SESSION_LOCK = threading.RLock()
_WARNED: set[str] = set()  # tracking URIs already warned about in this process


@dataclass(frozen=True)
class ModelLineage:
    """Where a training run and its registered model live."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str
    """``models:/<name>/<version>`` when registered, else the logged model's URI."""
    model_name: str | None
    model_version: str | None
    alias: str | None
    data_fingerprint: str


@dataclass(frozen=True)
class LineageStats:
    """Counters of one :class:`LineageTracker`: runs logged, models registered, calls skipped or failed
    because the tracking server was unreachable (``unavailable``), and other logging errors."""

    runs: int = 0
    registered: int = 0
    unavailable: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dictionary."""
        return asdict(self)


def data_fingerprint(frame: pl.DataFrame) -> str:
    """SHA-256 of a frame's schema and row hashes (stable within one Polars version).

    Examples
    --------
    >>> a = pl.DataFrame({"x": [1, 2]})
    >>> data_fingerprint(a) == data_fingerprint(pl.DataFrame({"x": [1, 2]}))
    True
    >>> data_fingerprint(a) == data_fingerprint(pl.DataFrame({"x": [2, 1]}))
    False
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"`frame` must be a polars DataFrame; got {type(frame).__name__}")
    h = hashlib.sha256(repr(list(frame.schema.items())).encode())
    h.update(str(frame.height).encode())
    if frame.height and frame.width:
        h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()


def _set_alias(name: str, alias: str, version: int | str) -> bool:
    mlflow.MlflowClient().set_registered_model_alias(name, alias, str(version))
    return True


class _GeneratorModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """A saved :class:`TwinGenerator` as a pyfunc model: ``predict`` generates twins.

    The input is a frame with columns ``n`` and ``seed`` (first row used); the output is the twins' frame.
    ``model_input: pd.DataFrame`` is one of the hints MLflow accepts without inferring a schema from it (no
    ``Any`` / unwrapped-hint warning when the class is defined or the model logged; no hint warns too).
    """

    def load_context(self, context: Any) -> None:
        self.generator = TwinGenerator.load(context.artifacts[_ARTIFACT_NAME])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        row = model_input.iloc[0] if hasattr(model_input, "iloc") else model_input[0]
        return self.generator.generate(int(row["n"]), seed=int(row["seed"])).frame.to_pandas()


def _numeric_metrics(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(float(value)):
            out[f"{prefix}{key}"] = float(value)
    return out


class LineageTracker:
    """Log twinkernel lineage to MLflow.

    Parameters
    ----------
    tracking_uri
        ``None``: ``$MLFLOW_TRACKING_URI``, else ``repository.mlflow_tracking_uri``, else
        ``sqlite:///<data_dir>/mlflow.db``. The model registry uses the same URI.
    config
        Configuration (``repository`` and ``repository.lineage``); the process default when ``None``.
    data_dir
        Data directory for the default SQLite store.
    log_simulations
        Log a run per :meth:`log_simulation` call (default ``repository.lineage.log_simulations``).
    clock
        Monotonic seconds, for the retry back-off (tests).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        config: TwinkernelConfig | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        log_simulations: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else get_config()
        self.settings = self.config.repository.lineage
        if tracking_uri is None:
            tracking_uri = os.environ.get(ENV_TRACKING_URI) or self.config.repository.mlflow_tracking_uri
        if tracking_uri is None:
            tracking_uri = f"sqlite:///{resolve_data_dir(self.config, data_dir) / 'mlflow.db'}"
        self.tracking_uri = tracking_uri
        self.log_simulations = self.settings.log_simulations if log_simulations is None else log_simulations
        self._clock = clock
        self._retry_at: float | None = None
        self._lock = threading.Lock()
        self._counts = {"runs": 0, "registered": 0, "unavailable": 0, "errors": 0}

    # --- counters and availability --------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def stats(self) -> LineageStats:
        """A snapshot of the counters."""
        with self._lock:
            return LineageStats(**self._counts)

    def _remote(self) -> tuple[str, int] | None:
        parts = urlsplit(self.tracking_uri)
        if parts.scheme not in ("http", "https"):
            return None
        return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80)

    def available(self) -> bool:
        """False while an http(s) tracking server is known to be unreachable (checked at most once per
        retry interval, with a bounded TCP connect); always True for local stores."""
        remote = self._remote()
        if remote is None:
            return True
        if self._retry_at is not None and self._clock() < self._retry_at:
            return False
        try:
            with socket.create_connection(remote, timeout=self.settings.reachability_timeout_seconds):
                pass
        except OSError as exc:
            self._unreachable(exc)
            return False
        self._retry_at = None
        return True

    def _unreachable(self, exc: BaseException) -> None:
        self._retry_at = self._clock() + self.settings.retry_interval_seconds
        if self.tracking_uri not in _WARNED:
            _WARNED.add(self.tracking_uri)
            logger.warning(
                "MLflow tracking server %s unreachable (%s); lineage is not logged (retried every %.0f s)",
                self.tracking_uri,
                exc,
                self.settings.retry_interval_seconds,
            )

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Point mlflow at our store with bounded HTTP retries and timeouts; restore everything after."""
        env = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.settings.http_max_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.settings.http_timeout_seconds),
        }
        # mlflow keeps both URIs in module globals and mirrors them into the environment; save and
        # restore all of it exactly (None = "not set").
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        keys = [*env, ENV_TRACKING_URI, ENV_REGISTRY_URI]
        with _SESSION_LOCK:
            saved_env = {k: os.environ.get(k) for k in keys}
            saved_uri = tracking_utils._tracking_uri
            saved_registry = registry_utils._registry_uri
            os.environ.update(env)
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            try:
                yield
            finally:
                tracking_utils.set_tracking_uri(saved_uri)  # type: ignore[arg-type]  # None unsets
                registry_utils._registry_uri = saved_registry
                for k, v in saved_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def _guarded(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.available():
            self._count("unavailable")
            return None
        try:
            with self._session():
                return fn()
        except Exception as exc:  # lineage never fails training or simulation
            if self._remote() is not None and _looks_unreachable(exc):
                self._count("unavailable")
                self._unreachable(exc)
            else:
                self._count("errors")
                logger.warning("could not log %s to MLflow at %s: %s", what, self.tracking_uri, exc)
            return None

    # --- training ---------------------------------------------------------------------------------------
    def log_training(
        self,
        generator: TwinGenerator,
        metrics: TwinModelMetrics | Mapping[str, Any] | None = None,
        *,
        data_fingerprint: str,
        quality_report: QualityReport | Mapping[str, Any] | None = None,
        register: bool = True,
        promote: bool = True,
    ) -> ModelLineage | None:
        """Log a training run and (optionally) register the generator and give it the champion alias.

        The run holds the generator's settings as parameters, the validation metrics (and the quality
        report's numbers) as metrics, the data fingerprint as a parameter and tag, and the saved generator
        (:meth:`TwinGenerator.save`) as a pyfunc model. Returns ``None`` (counted) when tracking is
        unavailable.
        """
        if not generator.is_trained:
            raise ValueError("`generator` must be trained before its lineage is logged")
        if not isinstance(data_fingerprint, str) or not data_fingerprint:
            raise ValueError(f"`data_fingerprint` must be a non-empty string; got {data_fingerprint!r}")
        if metrics is None:
            metrics = generator.metrics
        metric_dict = metrics.to_dict() if isinstance(metrics, TwinModelMetrics) else dict(metrics or {})
        quality = quality_report.to_dict() if isinstance(quality_report, QualityReport) else quality_report
        return self._guarded(
            "a training run",
            lambda: self._log_training(generator, metric_dict, data_fingerprint, quality, register, promote),
        )

    def _log_training(
        self,
        generator: TwinGenerator,
        metrics: dict[str, Any],
        fingerprint: str,
        quality: Mapping[str, Any] | None,
        register: bool,
        promote: bool,
    ) -> ModelLineage:
        s = self.settings
        experiment = mlflow.set_experiment(s.experiment_name)
        effect_model = generator.effect_model  # learned with train(effect_types=...); also in the artifact
        params = {
            "model_id": generator.model_id,
            "twin_type": generator.twin_type.value,
            "brand": generator.brand,
            "algorithm": generator.algorithm,
            "target_col": generator.target_col,
            "feature_cols": ",".join(generator.feature_cols),
            "treatment_col": generator.treatment_col,
            "n_training_rows": generator.n_training_rows,
            "data_fingerprint": fingerprint,
            "effect_model_id": None if effect_model is None else effect_model.model_id,
            **{f"setting.{k}": v for k, v in generator.settings.items()},
        }
        tags = {
            "twinkernel.kind": "training",
            "twinkernel.model_id": str(generator.model_id),
            "twinkernel.data_fingerprint": fingerprint,
        }
        with mlflow.start_run(experiment_id=experiment.experiment_id, tags=tags) as run:
            mlflow.log_params({k: "" if v is None else v for k, v in params.items()})
            values = _numeric_metrics(metrics)
            values.update(_numeric_metrics(dict(metrics.get("feature_importances") or {}), "importance."))
            if quality is not None:
                values.update(_numeric_metrics(quality, "quality."))
                values.update(_numeric_metrics(dict(quality.get("marginal_distance") or {}), "marginal."))
                mlflow.log_dict(dict(quality), "quality_report.json")
            mlflow.log_metrics(values)
            mlflow.log_dict(metrics, "metrics.json")
            if effect_model is not None:
                mlflow.log_dict(effect_model.to_dict(), "effect_model.json")
            with tempfile.TemporaryDirectory() as tmp:
                saved = generator.save(Path(tmp) / _ARTIFACT_NAME)
                info = mlflow.pyfunc.log_model(
                    name=_ARTIFACT_NAME,
                    python_model=_GeneratorModel(),
                    artifacts={_ARTIFACT_NAME: str(saved)},
                    pip_requirements=["twinkernel", "mlflow-skinny"],
                )
        self._count("runs")
        model_uri, name, version, alias = info.model_uri, None, None, None
        if register:
            name = s.registered_model_name
            mv = mlflow.register_model(info.model_uri, name, tags=tags)
            version = str(mv.version)
            model_uri = f"models:/{name}/{version}"
            self._count("registered")
            if promote:
                alias = s.champion_alias
                mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
        return ModelLineage(
            run_id=run.info.run_id,
            experiment_id=experiment.experiment_id,
            tracking_uri=self.tracking_uri,
            model_uri=model_uri,
            model_name=name,
            model_version=version,
            alias=alias,
            data_fingerprint=fingerprint,
        )

    def promote(self, version: str | int) -> bool:
        """Give ``version`` of the registered twin model the champion alias; False if tracking is down."""
        name, alias = self.settings.registered_model_name, self.settings.champion_alias
        done = self._guarded(
            "a promotion",
            lambda: _set_alias(name, alias, version),
        )
        return bool(done)

    def load_generator(self, model_uri: str | None = None) -> TwinGenerator:
        """The generator registered at ``model_uri`` (default ``models:/<name>@<champion alias>``).

        Raises whatever MLflow raises when the model cannot be fetched (loading is not optional).
        """
        if model_uri is None:
            model_uri = f"models:/{self.settings.registered_model_name}@{self.settings.champion_alias}"
        with self._session(), tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
            return TwinGenerator.load(local / "artifacts" / _ARTIFACT_NAME)

    # --- simulations ------------------------------------------------------------------------------------
    def log_simulation(self, result: SimulationResult) -> str | None:
        """Log a simulation as a run (config as parameters; ATE, interval, n and time as metrics) when
        ``log_simulations`` is on; returns the run id, or ``None`` when off or tracking is unavailable."""
        if not isinstance(result, SimulationResult):
            raise TypeError(f"`result` must be a SimulationResult; got {type(result).__name__}")
        if not self.log_simulations:
            return None
        return self._guarded("a simulation run", lambda: self._log_simulation(result))

    def _log_simulation(self, result: SimulationResult) -> str:
        experiment = mlflow.set_experiment(self.settings.experiment_name)
        ic = result.intervention_config.model_dump(mode="json")
        params = {f"intervention.{k}": v for k, v in ic.items() if v not in (None, [], {})}
        params.update(
            {
                "model_id": result.model_id or "",
                "confidence_level": result.confidence_level,
                "ci_method": result.ci_method,
                "seed": "" if result.seed is None else result.seed,
                "population_filter": result.population_filter.canonical_json(),
                "request_digest": result.request_digest or "",
            }
        )
        metrics = {
            "ate": result.simulated_ate,
            "ci_lower": result.simulated_ci_lower,
            "ci_upper": result.simulated_ci_upper,
            "std_error": result.simulated_std_error,
            "twin_count": result.twin_count,
            "execution_time_ms": result.execution_time_ms,
            "simulation_confidence": result.simulation_confidence,
        }
        rec = result.recommendation
        tags = {
            "twinkernel.kind": "simulation",
            "twinkernel.simulation_id": str(result.simulation_id),
            "twinkernel.recommendation": "none" if rec is None else rec.value,
        }
        with mlflow.start_run(experiment_id=experiment.experiment_id, tags=tags) as run:
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics(_numeric_metrics(metrics))
        self._count("runs")
        return str(run.info.run_id)


def _looks_unreachable(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, ConnectionError | TimeoutError | OSError):
            return True
        name = type(chain).__name__
        if "Connection" in name or "Timeout" in name or "MaxRetry" in name:
            return True
        text = str(chain)
        if "Max retries exceeded" in text or "Connection refused" in text:
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def lineage_from_config(config: TwinkernelConfig | None = None) -> LineageTracker | None:
    """The tracker the configuration asks for: ``None`` unless ``repository.lineage.enabled``.

    Examples
    --------
    >>> lineage_from_config() is None   # the shipped configuration leaves it off
    True
    """
    cfg = config if config is not None else get_config()
    if not cfg.repository.lineage.enabled:
        return None
    return LineageTracker(config=cfg)


def load_generator(
    model_uri: str, *, tracking_uri: str | None = None, config: TwinkernelConfig | None = None
) -> TwinGenerator:
    """Load a registered generator, e.g. ``load_generator("models:/twinkernel-twin-generator@champion")``."""
    return LineageTracker(tracking_uri, config=config).load_generator(model_uri)
