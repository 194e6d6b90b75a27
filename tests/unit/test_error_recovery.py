"""Plan 4.2 error recovery: bad input is refused with the field named; a failing service never fails a
simulation and loses nothing.

Services are cut with a TCP proxy the test owns (``tests/tcp_proxy.py``); the machine's Redis and
PostgreSQL keep running.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from tests.conftest import make_population_frame
from tests.persistence_helpers import (
    config_with,
    fresh_results,
    pg_host_port,
    postgres_repository,
    postgres_url,
    trained_generator,
    with_port,
)
from tests.tcp_proxy import TcpProxy
from twinkernel import (
    ConfigError,
    InterventionConfig,
    PopulationFilter,
    SimulationCache,
    SimulationEngine,
    SimulationResult,
    SimulationStatus,
    TwinPopulation,
    get_config,
)
from twinkernel.config import config_from_mapping


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


# --- bad input ---------------------------------------------------------------------------------------------
def test_malformed_intervention_config():
    text = json.dumps(
        {
            "intervention_type": 5,
            "duration_weeks": "soon",
            "intensity_multiplier": 50.0,
            "target_deciles": [0, 3],
            "channel": ["email"],
        }
    )
    with pytest.raises(ValidationError) as info:
        InterventionConfig.model_validate_json(text)
    assert error_fields(info.value) == {
        "intervention_type",
        "duration_weeks",
        "intensity_multiplier",
        "target_deciles",
        "channel",
    }
    message = str(info.value)
    assert "less than or equal to 10" in message  # the allowed range is named
    assert "`target_deciles` must be between 1 and 10; got [0]" in message

    with pytest.raises(ValidationError) as info:
        PopulationFilter.model_validate_json(
            '{"deciles": ["x"], "min_baseline_outcome": "low", "regions": "west", "unknown": 1}'
        )
    assert error_fields(info.value) == {"deciles.0", "min_baseline_outcome", "regions", "unknown"}


def test_missing_required_fields():
    with pytest.raises(ValidationError) as info:
        InterventionConfig.model_validate_json("{}")
    assert error_fields(info.value) == {"intervention_type"}
    assert info.value.errors()[0]["type"] == "missing"

    partial = json.loads(fresh_results(1)[0].model_dump_json())
    for name in ("simulated_ate", "recommendation", "status"):
        del partial[name]
    with pytest.raises(ValidationError) as info:
        SimulationResult.model_validate(partial)
    assert error_fields(info.value) == {"simulated_ate", "recommendation", "status"}

    data = get_config().model_dump(mode="json")
    del data["repository"]["lineage"]["champion_alias"]
    del data["fidelity"]
    with pytest.raises(ConfigError) as cfg_info:
        config_from_mapping(data, source="<test>")
    assert "repository.lineage.champion_alias: Field required" in str(cfg_info.value)
    assert "fidelity: Field required" in str(cfg_info.value)


def test_partial_twin_data():
    """Missing twin features get the documented defaults, counted per column in ``data_quality``."""
    full = make_population_frame(600, seed=5)
    rng = np.random.default_rng(5)
    null_decile = np.sort(rng.choice(600, 50, replace=False))
    nan_engagement = np.sort(rng.choice(600, 30, replace=False))
    decile = full["decile"].to_numpy().astype(float)
    decile[null_decile] = np.nan
    engagement = full["digital_engagement_score"].to_numpy().copy()
    engagement[nan_engagement] = np.nan
    partial = full.with_columns(
        pl.Series("decile", decile).fill_nan(None).cast(pl.Int64),
        pl.Series("digital_engagement_score", engagement),
    ).drop("adoption_stage")

    defaults = get_config().simulation.missing_value_defaults
    pop = TwinPopulation.from_frame(partial, model_id="partial")
    assert pop.frame["decile"].to_numpy()[null_decile].tolist() == [defaults.decile] * 50
    assert np.all(
        pop.frame["digital_engagement_score"].to_numpy()[nan_engagement] == defaults.digital_engagement_score
    )

    engine = SimulationEngine(pop)
    engine.cache = None
    ic = InterventionConfig(intervention_type="email_campaign", channel="email")
    result = engine.simulate(ic, seed=9)
    assert result.status == SimulationStatus.COMPLETED
    assert result.twin_count == 600
    assert result.data_quality["decile"]["defaulted"] == 50
    assert result.data_quality["digital_engagement_score"]["defaulted"] == 30
    assert result.data_quality["adoption_stage"]["defaulted"] == 600

    # The defaults are exactly what a complete frame holding those values would simulate.
    filled = partial.with_columns(
        pl.col("decile").fill_null(defaults.decile),
        pl.col("digital_engagement_score").fill_nan(defaults.digital_engagement_score),
        pl.lit(defaults.adoption_stage).alias("adoption_stage"),
    )
    explicit = SimulationEngine(TwinPopulation.from_frame(filled, model_id="partial"))
    explicit.cache = None
    reference = explicit.simulate(ic, seed=9)
    assert result.simulated_ate == reference.simulated_ate
    assert "decile" not in reference.data_quality


# --- PostgreSQL cut off ------------------------------------------------------------------------------------
@pytest.mark.requires_postgres
def test_database_connection_failure(tmp_path: Path):
    url = postgres_url()
    with TcpProxy(*pg_host_port(url)) as proxy:
        cfg = config_with(retry_interval_seconds=3600.0)
        with postgres_repository(with_port(url, proxy.port), data_dir=tmp_path, config=cfg) as repo:
            first, during, after = fresh_results(5), fresh_results(5), fresh_results(2)
            assert all(repo.record_simulation(r) for r in first)

            proxy.drop()
            assert [repo.record_simulation(r) for r in during] == [False] * 5
            s = repo.stats()
            assert (s.written, s.queued, s.failed, s.pending) == (5, 5, 1, 5)  # one attempt, then back-off
            assert [e.payload["simulation_id"] for e in repo.outbox.entries()] == [
                str(r.simulation_id) for r in during
            ]

            proxy.restore()
            assert repo.flush_outbox() == 5
            assert repo.flush_outbox() == 0
            assert all(repo.record_simulation(r) for r in after)
            expected = sorted(str(r.simulation_id) for r in first + during + after)
            assert sorted(repo.simulation_ids()) == expected
            assert repo.count_simulations() == 12
            assert repo.stats().to_dict() == {
                "written": 7,
                "queued": 5,
                "replayed": 5,
                "failed": 1,
                "rejected": 0,
                "dropped": 0,
                "pending": 0,
            }


@pytest.mark.requires_postgres
def test_killing_the_postgres_connection_while_recording_1000_results(tmp_path: Path):
    """Done-when: the proxied connection dies mid-run; after reconnect no row is lost or duplicated."""
    url = postgres_url()
    results = fresh_results(1000)
    with TcpProxy(*pg_host_port(url)) as proxy:
        cfg = config_with(retry_interval_seconds=0.05)
        with postgres_repository(with_port(url, proxy.port), data_dir=tmp_path, config=cfg) as repo:
            repo.create_schema()
            reached = threading.Event()
            outage_over = threading.Event()

            def killer() -> None:
                reached.wait(60)
                proxy.drop()  # kills the pooled connection, possibly mid-transaction
                time.sleep(0.3)
                proxy.restore()
                outage_over.set()

            thread = threading.Thread(target=killer)
            thread.start()
            returned = []
            for i, r in enumerate(results):
                if i == 300:
                    reached.set()
                if i == 700:
                    outage_over.wait(60)
                returned.append(repo.record_simulation(r))
            thread.join()
            for _ in range(50):  # the last writes may still sit in the back-off window
                if repo.flush_outbox() == 0 and len(repo.outbox) == 0:
                    break
                time.sleep(0.05)

            stats = repo.stats()
            assert stats.pending == 0
            assert stats.queued >= 1 and stats.failed >= 1  # the outage was real
            assert returned.count(False) == stats.queued
            assert stats.written + stats.replayed == 1000
            assert repo.count_simulations() == 1000
            ids = repo.simulation_ids()
            assert len(ids) == len(set(ids)) == 1000
            assert set(ids) == {str(r.simulation_id) for r in results}


# --- MLflow unreachable ------------------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_unavailable(tmp_path: Path, caplog: pytest.LogCaptureFixture, make_population):
    from twinkernel.lineage import LineageTracker

    gen, metrics, fingerprint = trained_generator()
    engine = SimulationEngine(make_population(500))
    engine.cache = None
    ic = InterventionConfig(intervention_type="email_campaign")

    def work(tracker: LineageTracker | None) -> tuple[float, SimulationResult, object, object]:
        start = time.perf_counter()
        lineage = (
            None if tracker is None else tracker.log_training(gen, metrics, data_fingerprint=fingerprint)
        )
        result = engine.simulate(ic, seed=4)
        run = None if tracker is None else tracker.log_simulation(result)
        return time.perf_counter() - start, result, lineage, run

    normal_time, normal, _, _ = work(None)
    tracker = LineageTracker(f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path, log_simulations=True)
    with caplog.at_level(logging.WARNING, logger="twinkernel.lineage"):
        down_time, result, lineage, run = work(tracker)
        _, again, lineage2, _ = work(tracker)
    assert lineage is None and run is None and lineage2 is None
    assert result.status == SimulationStatus.COMPLETED
    assert result.simulated_ate == normal.simulated_ate == again.simulated_ate
    assert down_time - normal_time < 10.0  # "within 10 s of normal"
    stats = tracker.stats()
    assert (stats.unavailable, stats.runs, stats.registered) == (4, 0, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") is None  # our bounds do not leak


# --- Redis stalled -----------------------------------------------------------------------------------------
def redis_url_or_skip() -> str:
    url = os.environ.get("TWINKERNEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.2) as s:
            s.settimeout(0.2)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            if not s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                raise OSError("no PONG")
    except OSError as exc:
        pytest.skip(f"requires_redis: no redis-server answering PING within 0.2 s at {url}: {exc}")
    return url


@pytest.mark.requires_redis
def test_redis_connection_timeout(make_population):
    url = redis_url_or_skip()
    parts = urlsplit(url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        proxied = f"redis://127.0.0.1:{proxy.port}{parts.path or '/15'}"
        cache = SimulationCache.from_config(backend="redis", redis_url=proxied)
        pop = make_population(500)
        model_id = f"recovery-{uuid.uuid4().hex[:8]}"
        pop = TwinPopulation.from_frame(pop.frame, model_id=model_id)
        engine = SimulationEngine(pop, cache=cache)
        try:
            ic = InterventionConfig(intervention_type="email_campaign")
            first = engine.simulate(ic, seed=1)
            assert engine.simulate(ic, seed=1).from_cache is True
            assert cache.stats().errors == 0

            proxy.stall()
            stalled = engine.simulate(InterventionConfig(intervention_type="digital_engagement"), seed=1)
            same = engine.simulate(ic, seed=1)
            assert stalled.status == SimulationStatus.COMPLETED
            assert same.from_cache is False  # the cache was skipped, the result computed again
            assert same.simulated_ate == first.simulated_ate
            stats = cache.stats()
            assert stats.errors >= 1
            assert stats.bypassed >= 2
        finally:
            proxy.restore()
            cache.close()
            SimulationCache.from_config(backend="redis", redis_url=url).invalidate_model_cache_sync(model_id)
