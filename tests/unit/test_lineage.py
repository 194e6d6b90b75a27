"""MLflow lineage on the embedded SQLite tracking store: runs, the registry alias, reproducible loading."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.persistence_helpers import ONE_MONTH, trained_generator
from twinkernel import InterventionConfig, SimulationEngine, get_config
from twinkernel.config import config_from_mapping

mlflow = pytest.importorskip("mlflow")

from twinkernel.lineage import LineageTracker, data_fingerprint, lineage_from_config, load_generator  # noqa: E402

SETTINGS = get_config().repository.lineage


def lineage_config(**lineage):
    data = get_config().model_dump(mode="json")
    data["repository"]["lineage"].update(lineage)
    return config_from_mapping(data, source="<test>")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def logged(store: Path):
    gen, metrics, fingerprint = trained_generator()
    tracker = LineageTracker(data_dir=store, log_simulations=True)
    report = gen.quality_report(gen.generate(2000, seed=0))
    lineage = tracker.log_training(gen, metrics, data_fingerprint=fingerprint, quality_report=report)
    return tracker, lineage, report


def test_default_tracking_store_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TWINKERNEL_HOME", str(tmp_path))
    assert LineageTracker(data_dir=tmp_path).tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert LineageTracker(data_dir=tmp_path).tracking_uri == "http://mlflow.example:5000"
    assert lineage_from_config() is None
    assert isinstance(lineage_from_config(lineage_config(enabled=True)), LineageTracker)


def test_training_run_is_registered_with_alias_champion(logged, store: Path):
    tracker, lineage, report = logged
    gen, metrics, fingerprint = trained_generator()
    assert lineage is not None
    assert (lineage.model_name, lineage.model_version, lineage.alias) == (
        SETTINGS.registered_model_name,
        "1",
        SETTINGS.champion_alias,
    )
    assert lineage.data_fingerprint == fingerprint
    assert tracker.stats().to_dict() == {"runs": 1, "registered": 1, "unavailable": 0, "errors": 0}

    client = mlflow.MlflowClient(tracking_uri=tracker.tracking_uri, registry_uri=tracker.tracking_uri)
    run = client.get_run(lineage.run_id)
    assert run.data.params["data_fingerprint"] == fingerprint
    assert run.data.params["model_id"] == gen.model_id
    assert run.data.params["setting.permutation_repeats"] == "1"
    assert run.data.tags["twinkernel.data_fingerprint"] == fingerprint
    assert run.data.metrics["r2"] == pytest.approx(metrics.r2, rel=1e-12)
    assert run.data.metrics["cv_mean"] == pytest.approx(metrics.cv_mean, rel=1e-12)
    assert run.data.metrics["quality.max_correlation_difference"] == pytest.approx(
        report.max_correlation_difference, rel=1e-12
    )
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=lineage.run_id, artifact_path="metrics.json", tracking_uri=tracker.tracking_uri
        )
    )
    assert json.loads(local.read_text())["rmse"] == metrics.rmse

    version = client.get_model_version_by_alias(SETTINGS.registered_model_name, SETTINGS.champion_alias)
    assert str(version.version) == "1"
    assert version.run_id == lineage.run_id
    assert not mlflow.is_tracking_uri_set()  # the process-wide URI is left as it was


def test_load_generator_from_registry_reproduces_generate(logged):
    tracker, _, _ = logged
    gen, _, _ = trained_generator()
    loaded = load_generator(
        f"models:/{SETTINGS.registered_model_name}@{SETTINGS.champion_alias}",
        tracking_uri=tracker.tracking_uri,
    )
    assert loaded.model_id == gen.model_id
    assert loaded.generate(700, seed=5).frame.equals(gen.generate(700, seed=5).frame)
    assert loaded.generate(50, seed=6).frame.equals(gen.generate(50, seed=6).frame)


def test_unpromoted_version_keeps_the_champion_until_promoted(logged):
    tracker, _, _ = logged
    gen, metrics, fingerprint = trained_generator()
    second = tracker.log_training(gen, metrics, data_fingerprint=fingerprint, promote=False)
    assert (second.model_version, second.alias) == ("2", None)
    client = mlflow.MlflowClient(tracking_uri=tracker.tracking_uri, registry_uri=tracker.tracking_uri)
    name, alias = SETTINGS.registered_model_name, SETTINGS.champion_alias
    assert str(client.get_model_version_by_alias(name, alias).version) == "1"
    assert tracker.promote(2) is True
    assert str(client.get_model_version_by_alias(name, alias).version) == "2"
    unregistered = tracker.log_training(gen, metrics, data_fingerprint=fingerprint, register=False)
    assert unregistered.model_version is None and unregistered.model_uri.startswith("models:/")


def test_log_simulation_records_config_and_numbers(logged, make_population):
    tracker, _, _ = logged
    engine = SimulationEngine(make_population(400))
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign", channel="email"), seed=2)
    run_id = tracker.log_simulation(result)
    run = mlflow.MlflowClient(tracking_uri=tracker.tracking_uri).get_run(run_id)
    assert run.data.params["intervention.intervention_type"] == "email_campaign"
    assert run.data.params["intervention.channel"] == "email"
    assert run.data.metrics["ate"] == result.simulated_ate
    assert run.data.metrics["ci_lower"] == result.simulated_ci_lower
    assert run.data.metrics["twin_count"] == result.twin_count
    assert run.data.tags["twinkernel.simulation_id"] == str(result.simulation_id)
    quiet = LineageTracker(tracker.tracking_uri, log_simulations=False)
    assert quiet.log_simulation(result) is None
    assert quiet.stats().runs == 0


def test_input_checks():
    gen, metrics, _ = trained_generator()
    tracker = LineageTracker("sqlite:////nonexistent/never-used.db")
    with pytest.raises(ValueError, match="`data_fingerprint` must be a non-empty string; got ''"):
        tracker.log_training(gen, metrics, data_fingerprint="")
    with pytest.raises(TypeError, match="`result` must be a SimulationResult; got dict"):
        tracker.log_simulation({})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`frame` must be a polars DataFrame; got list"):
        data_fingerprint([1, 2])  # type: ignore[arg-type]


def test_hung_tracking_server_costs_at_most_the_http_timeout(tmp_path: Path, make_population):
    """A server that accepts connections and never answers: bounded by our HTTP timeout and retries."""
    cfg = lineage_config(http_timeout_seconds=1, http_max_retries=0)
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        engine = SimulationEngine(make_population(400))
        engine.cache = None
        result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=2)
        tracker = LineageTracker(
            f"http://127.0.0.1:{server.getsockname()[1]}", config=cfg, data_dir=tmp_path, log_simulations=True
        )
        start = time.perf_counter()
        assert tracker.log_simulation(result) is None
        first = time.perf_counter() - start
        start = time.perf_counter()
        assert tracker.log_simulation(result) is None  # not retried inside the retry interval
        second = time.perf_counter() - start
        assert tracker.stats().unavailable == 2
        assert second < first  # the second call does not wait on the server at all
        assert first < 10.0 * cfg.repository.lineage.http_timeout_seconds
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


def test_train_with_tracking_registers_the_champion_in_one_call(tmp_path: Path):
    """`TwinGenerator.train(track=...)` logs the run, registers the model and promotes it (issue 9)."""
    from twinkernel import TwinGenerator, synthetic

    frame = synthetic.hcp_training_frame(synthetic.hcp_world(1300, months=3, seed=0))
    tracker = LineageTracker(data_dir=tmp_path)
    gen = TwinGenerator("hcp", "Kisqali", permutation_repeats=1)
    with pytest.warns(UserWarning, match=ONE_MONTH):
        metrics = gen.train(
            frame, "brand_share", time_col="month", algorithm="gradient_boosting", track=tracker
        )
    assert gen.lineage is not None
    assert gen.lineage.alias == SETTINGS.champion_alias
    assert gen.lineage.data_fingerprint == data_fingerprint(frame)
    run = mlflow.MlflowClient(tracking_uri=tracker.tracking_uri).get_run(gen.lineage.run_id)
    assert run.data.metrics["r2"] == pytest.approx(metrics.r2)
    loaded = load_generator(
        f"models:/{SETTINGS.registered_model_name}@{SETTINGS.champion_alias}",
        tracking_uri=tracker.tracking_uri,
    )
    assert loaded.generate(300, seed=2).frame.equals(gen.generate(300, seed=2).frame)
    untracked = TwinGenerator("hcp", "Kisqali", permutation_repeats=1)
    with pytest.warns(UserWarning, match=ONE_MONTH):
        untracked.train(frame, "brand_share", time_col="month", algorithm="gradient_boosting", track=False)
    assert untracked.lineage is None


TYPE_HINT_WARNING = re.compile(r"type hint", re.IGNORECASE)  # MLflow's warnings about predict's hints


def test_generator_model_defines_logs_and_predicts_without_type_hint_warnings(tmp_path: Path):
    """MLflow accepts ``_GeneratorModel.predict``'s hints: no warning when the class is defined (import),
    when the model is logged or loaded, and the logged pyfunc still generates the twins."""
    import pandas as pd

    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import twinkernel.lineage\n"
        "print(repr([str(w.message) for w in caught if 'type hint' in str(w.message).lower()]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

    gen, metrics, fingerprint = trained_generator()
    tracker = LineageTracker(data_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lineage = tracker.log_training(gen, metrics, data_fingerprint=fingerprint)
        loaded = load_generator(lineage.model_uri, tracking_uri=tracker.tracking_uri)
        with tracker._session():
            model = mlflow.pyfunc.load_model(lineage.model_uri)
            twins = model.predict(pd.DataFrame({"n": [40], "seed": [3]}))
    assert [str(w.message) for w in caught if TYPE_HINT_WARNING.search(str(w.message))] == []
    assert loaded.model_id == gen.model_id
    assert isinstance(twins, pd.DataFrame) and twins.shape == (40, gen.generate(1, seed=3).frame.width)
    pd.testing.assert_frame_equal(twins, gen.generate(40, seed=3).frame.to_pandas())
