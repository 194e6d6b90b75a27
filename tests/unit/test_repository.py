"""TwinRepository on the embedded SQLite store: idempotent writes, atomic batches, reads, the outbox.

The same contract on a real PostgreSQL is in ``tests/integration/test_repository_postgres.py``.
"""

from __future__ import annotations

import inspect
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.persistence_helpers import MODEL_ID, config_with, fresh_results, result_template
from twinkernel import ConfigError, InterventionConfig, SimulationEngine, get_config
from twinkernel.models import SimulationStatus
from twinkernel.repository import (
    SCHEMA_VERSION,
    Outbox,
    RepositoryStats,
    SchemaVersionError,
    TwinModelRecord,
    TwinRepository,
    normalise_url,
    repository_from_config,
)
from twinkernel.repository import schema as S
from twinkernel.repository import store as store_module

engine_supports_repository = "repository" in inspect.signature(SimulationEngine).parameters


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> TwinRepository:
    r = TwinRepository(data_dir=tmp_path)
    yield r
    r.close()


def add_failing_trigger(repo: TwinRepository, simulation_id: str) -> None:
    """Make the database itself refuse one row (a real error half-way through a transaction)."""
    repo.create_schema()
    with repo.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON simulations "
                f"WHEN NEW.simulation_id = '{simulation_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )


# --- layout and configuration ------------------------------------------------------------------------------
def test_embedded_store_is_sqlite_in_wal_mode_under_the_data_dir(repo: TwinRepository, tmp_path: Path):
    assert repo.url == f"sqlite:///{tmp_path / 'twinkernel.db'}"
    assert repo.create_schema() == SCHEMA_VERSION
    with repo.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        tables = set(sa.inspect(conn).get_table_names())
    assert tables == {
        "schema_version",
        "twin_models",
        "simulations",
        "fidelity_records",
        "retraining_jobs",
        "experiments",
    }
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(repo.engine).get_indexes("simulations")}
    assert indexes["ix_simulations_model_created"] == ["model_id", "created_at"]


def test_schema_create_is_idempotent_and_versioned(repo: TwinRepository):
    assert repo.create_schema() == SCHEMA_VERSION
    assert repo.create_schema() == SCHEMA_VERSION
    with repo.engine.connect() as conn:
        assert conn.execute(sa.select(S.schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]


def test_newer_schema_version_is_refused(repo: TwinRepository, tmp_path: Path):
    repo.create_schema()
    with repo.engine.begin() as conn:
        conn.execute(
            S.schema_version.insert().values(version=SCHEMA_VERSION + 1, applied_at=datetime(2030, 1, 1))
        )
    with pytest.raises(SchemaVersionError, match=rf"version {SCHEMA_VERSION + 1} is newer"):
        TwinRepository(data_dir=tmp_path).create_schema()


def test_data_dir_from_twinkernel_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("TWINKERNEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TWINKERNEL_DATABASE_URL", raising=False)
    r = TwinRepository()
    assert r.data_dir == tmp_path / "home"
    assert r.outbox.path == tmp_path / "home" / "outbox.jsonl"
    assert r.url.endswith(str(tmp_path / "home" / "twinkernel.db"))


def test_database_url_env_and_postgres_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("TWINKERNEL_DATABASE_URL", "postgresql://u@127.0.0.1:1/x")
    r = TwinRepository(data_dir=tmp_path)
    assert r.url == "postgresql+psycopg://u@127.0.0.1:1/x"
    assert r.engine.dialect.driver == "psycopg"
    assert normalise_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"


def test_bad_repository_setting_names_its_key():
    with pytest.raises(ConfigError, match=r"repository\.retry_interval_seconds: .*got -1\.0.*allowed range"):
        config_with(retry_interval_seconds=-1.0)
    with pytest.raises(ConfigError, match=r"repository\.lineage\.http_max_retries: .*got 'many'"):
        config_with(lineage={**get_config().repository.lineage.model_dump(), "http_max_retries": "many"})


def test_repository_from_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("TWINKERNEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("TWINKERNEL_HOME", raising=False)
    assert repository_from_config(config_with(enabled=False)) is None
    repo = repository_from_config(config_with(enabled=True, data_dir=str(tmp_path)))
    assert isinstance(repo, TwinRepository)
    assert repo.url == f"sqlite:///{tmp_path / 'twinkernel.db'}"


# --- writes ------------------------------------------------------------------------------------------------
def test_result_round_trips_with_indexed_columns(repo: TwinRepository):
    result = result_template()
    repo.save_simulation(result)
    assert repo.get_simulation(result.simulation_id) == result
    assert repo.get_simulation(str(result.simulation_id)) == result
    with repo.engine.connect() as conn:
        row = conn.execute(sa.select(S.simulations)).one()._mapping
    assert row["request_digest"] == result.request_digest is not None
    assert row["model_id"] == MODEL_ID
    assert row["intervention_type"] == "email_campaign"
    assert row["ate"] == result.simulated_ate
    assert (row["ci_lower"], row["ci_upper"]) == (result.simulated_ci_lower, result.simulated_ci_upper)
    assert row["recommendation"] == result.recommendation.value
    assert row["status"] == "completed"
    assert row["created_at"] == result.created_at.astimezone(UTC).replace(tzinfo=None)
    assert json.loads(row["result_json"]) == json.loads(result.model_dump_json())


def test_resaving_is_idempotent(repo: TwinRepository):
    results = fresh_results(5)
    repo.save_simulations(results)
    repo.save_simulations(results)  # a cached result saved again
    repo.save_simulation(results[0].model_copy(update={"from_cache": True}))
    repo.save_simulations([results[1], results[1], results[2]])  # duplicates inside one batch
    assert repo.count_simulations() == 5
    assert sorted(repo.simulation_ids()) == sorted(str(r.simulation_id) for r in results)
    assert repo.get_simulation(results[0].simulation_id).from_cache is False  # the first record stays


def test_transaction_rollback(tmp_path: Path):
    """Plan 4.1: an error half-way through a multi-row write leaves nothing behind."""
    repo = TwinRepository(data_dir=tmp_path, config=config_with(write_batch_size=2))
    results = fresh_results(7)
    add_failing_trigger(repo, str(results[5].simulation_id))  # batches [0,1] [2,3] commit-ready, [4,5] fails
    with pytest.raises(sa.exc.IntegrityError, match="refused"):
        repo.save_simulations(results)
    assert repo.count_simulations() == 0
    with pytest.raises(TypeError, match="`result` must be a SimulationResult; got str"):
        repo.save_simulations([*results[:3], "not a result"])  # type: ignore[list-item]
    assert repo.count_simulations() == 0
    assert repo.stats().written == 0
    repo.save_simulations(results[:5])
    assert repo.count_simulations() == 5


def test_simulations_in_a_time_window(repo: TwinRepository):
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    by_hour = [fresh_results(1, created_at=t0 + timedelta(hours=h))[0] for h in range(5)]
    other = fresh_results(2, model_id="other-model", created_at=t0 + timedelta(hours=2))
    repo.save_simulations([*reversed(by_hour), *other])
    window = repo.simulations_for_model(MODEL_ID, t0 + timedelta(hours=1), t0 + timedelta(hours=4))
    assert [r.simulation_id for r in window] == [r.simulation_id for r in by_hour[1:4]]
    # A bound in another time zone means the same instant.
    cet = datetime(2026, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=1)))  # 15:00 UTC = t0 + 3 h
    assert [r.simulation_id for r in repo.simulations_for_model(MODEL_ID, start=cet)] == [
        r.simulation_id for r in by_hour[3:]
    ]
    assert len(repo.simulations_for_model(MODEL_ID)) == 5
    assert len(repo.simulations_for_model(MODEL_ID, limit=2)) == 2
    assert repo.count_simulations("other-model") == 2
    with pytest.raises(ValueError, match="`limit` must be None or a non-negative integer; got -1"):
        repo.simulations_for_model(MODEL_ID, limit=-1)


def test_models_jobs_fidelity_and_experiments(repo: TwinRepository):
    repo.save_model(
        TwinModelRecord(
            id="m-1", twin_type="hcp", brand="Kisqali", training_metrics={"r2": 0.61}, status="trained"
        )
    )
    repo.save_model({"id": "m-1", "twin_type": "hcp", "status": "champion", "mlflow_model_version": "3"})
    model = repo.get_model("m-1")
    assert (model.status, model.mlflow_model_version, model.brand) == ("champion", "3", None)
    assert model.created_at.tzinfo is not None
    assert repo.get_model("absent") is None

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    repo.save_fidelity_records(
        [
            {"id": "f2", "model_id": "m-1", "prediction_error": 0.2, "created_at": t0 + timedelta(days=2)},
            {"id": "f1", "model_id": "m-1", "prediction_error": 0.1, "created_at": t0 + timedelta(days=1)},
            {"id": "f3", "model_id": "m-2", "prediction_error": 0.3, "created_at": t0},
        ]
    )
    assert [f["id"] for f in repo.fidelity_records("m-1")] == ["f1", "f2"]
    assert [f["id"] for f in repo.fidelity_records("m-1", start=t0 + timedelta(days=2))] == ["f2"]
    assert repo.get_fidelity_record("f3")["prediction_error"] == 0.3

    repo.save_job({"id": "j1", "model_id": "m-1", "state": "pending", "attempts": 0, "created_at": t0})
    repo.save_job({"id": "j2", "model_id": "m-1", "state": "training", "attempts": 1, "created_at": t0})
    repo.save_job({"id": "j3", "model_id": "m-2", "state": "approved", "created_at": t0})
    repo.save_job({"id": "j2", "model_id": "m-1", "state": "completed", "attempts": 1, "fidelity_after": 0.8})
    assert [j["id"] for j in repo.open_jobs("m-1")] == ["j1"]
    assert sorted(j["id"] for j in repo.open_jobs()) == ["j1", "j3"]
    assert repo.get_job("j2")["fidelity_after"] == 0.8
    with pytest.raises(ValueError, match="must have a `state`"):
        repo.save_job({"id": "j4"})
    with pytest.raises(ValueError, match="must have a non-empty `id`; got None"):
        repo.save_experiment({"intervention_type": "email_campaign"})

    repo.save_experiment(
        {
            "id": "e1",
            "intervention_config": InterventionConfig(intervention_type="email_campaign").model_dump(),
            "observed_ate": 0.04,
            "completed_date": "2026-02-01",
        }
    )
    repo.save_experiment(
        {"id": "e2", "intervention_type": "sample_distribution", "completed_date": "2026-01-01"}
    )
    assert [e["id"] for e in repo.experiments()] == ["e2", "e1"]
    assert [e["id"] for e in repo.experiments("email_campaign")] == ["e1"]
    assert repo.get_experiment("e1")["observed_ate"] == 0.04


# --- outbox ------------------------------------------------------------------------------------------------
def unreachable_repo(tmp_path: Path, clock: FakeClock, **repository) -> TwinRepository:
    """A repository whose SQLite file lives in a directory that does not exist yet (the DB is "down")."""
    return TwinRepository(
        f"sqlite:///{tmp_path / 'later' / 'db.sqlite'}",
        data_dir=tmp_path,
        config=config_with(**repository),
        clock=clock,
    )


def test_unreachable_database_queues_then_replays_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    clock = FakeClock()
    repo = unreachable_repo(tmp_path, clock, retry_interval_seconds=5.0)
    results = fresh_results(6)
    with caplog.at_level(logging.WARNING, logger="twinkernel.repository"):
        assert [repo.record_simulation(r) for r in results[:4]] == [False] * 4
    assert repo.stats() == RepositoryStats(queued=4, failed=1, pending=4)  # back-off: one attempt only
    assert [e.payload["simulation_id"] for e in repo.outbox.entries()] == [
        str(r.simulation_id) for r in results[:4]
    ]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert repo.degraded

    (tmp_path / "later").mkdir()  # the database answers again, but the back-off still holds
    assert repo.record_simulation(results[4]) is False
    clock.now += 5.0
    assert repo.record_simulation(results[5]) is True  # replays the outbox first, then writes
    assert repo.stats() == RepositoryStats(written=1, queued=5, replayed=5, failed=1, pending=0)
    assert not repo.degraded
    assert repo.count_simulations() == 6
    assert sorted(repo.simulation_ids()) == sorted(str(r.simulation_id) for r in results)


def test_one_warning_per_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    clock = FakeClock()
    repo = unreachable_repo(tmp_path, clock, retry_interval_seconds=1.0)
    results = fresh_results(6)
    with caplog.at_level(logging.INFO, logger="twinkernel.repository"):
        for r in results[:3]:
            repo.record_simulation(r)
            clock.now += 1.0  # every write tries the database again
        assert repo.stats().failed == 3
        (tmp_path / "later").mkdir()
        assert repo.record_simulation(results[3]) is True
        (tmp_path / "later" / "db.sqlite").unlink()
        for suffix in ("-wal", "-shm"):
            (tmp_path / "later" / f"db.sqlite{suffix}").unlink(missing_ok=True)
        (tmp_path / "later").rmdir()
        repo.close()  # drop pooled connections to the deleted file
        clock.now += 1.0
        repo.record_simulation(results[4])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # two outages
    assert "unreachable" in warnings[0].getMessage()
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_flush_outbox_ignores_the_back_off(tmp_path: Path):
    clock = FakeClock()
    repo = unreachable_repo(tmp_path, clock, retry_interval_seconds=3600.0)
    results = fresh_results(3)
    for r in results:
        repo.record_simulation(r)
    assert repo.flush_outbox() == 0  # still down
    (tmp_path / "later").mkdir()
    assert repo.flush_outbox() == 3
    assert repo.flush_outbox() == 0
    assert repo.count_simulations() == 3
    assert repo.stats().to_dict() == {
        "written": 0,
        "queued": 3,
        "replayed": 3,
        "failed": 2,
        "rejected": 0,
        "dropped": 0,
        "pending": 0,
    }


def test_crash_between_outbox_and_database_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    clock = FakeClock()
    repo = unreachable_repo(tmp_path, clock)
    results = fresh_results(10)
    for r in results:
        repo.record_simulation(r)
    assert len(repo.outbox) == 10
    (tmp_path / "later").mkdir()

    class Crash(BaseException):
        pass

    def crash(self: Outbox) -> None:
        raise Crash  # the process dies after the commit, before the outbox is truncated

    monkeypatch.setattr(Outbox, "_truncate", crash)
    with pytest.raises(Crash):
        repo.flush_outbox()
    monkeypatch.undo()
    assert repo.count_simulations() == 10  # committed ...
    assert len(repo.outbox) == 10  # ... and still queued

    restarted = unreachable_repo(tmp_path, FakeClock())
    assert restarted.flush_outbox() == 10
    assert restarted.count_simulations() == 10
    assert sorted(restarted.simulation_ids()) == sorted(str(r.simulation_id) for r in results)
    assert len(restarted.outbox) == 0


def test_torn_outbox_line_is_skipped_and_the_rest_replayed(tmp_path: Path):
    clock = FakeClock()
    repo = unreachable_repo(tmp_path, clock)
    results = fresh_results(2)
    repo.record_simulation(results[0])
    with open(repo.outbox.path, "a") as f:
        f.write('{"kind":"simulation","payl')  # a crash in the middle of an append
    clock.now += 10.0
    repo.record_simulation(results[1])  # starts on a fresh line
    (tmp_path / "later").mkdir()
    assert repo.flush_outbox() == 2
    assert repo.outbox.skipped_lines == 1
    assert sorted(repo.simulation_ids()) == sorted(str(r.simulation_id) for r in results)


def test_refused_rows_are_rejected_not_retried(tmp_path: Path):
    repo = TwinRepository(data_dir=tmp_path)
    good, bad = fresh_results(2)
    add_failing_trigger(repo, str(bad.simulation_id))
    assert repo.record_simulation(bad) is False
    assert repo.record_simulation(good) is True
    s = repo.stats()
    assert (s.written, s.rejected, s.queued, s.pending) == (1, 1, 0, 0)
    rejected = Outbox(repo.outbox.path.with_name("outbox.jsonl.rejected")).entries()
    assert [e.payload["simulation_id"] for e in rejected] == [str(bad.simulation_id)]


def test_unavailable_errors_are_classified():
    assert store_module.is_unavailable(sa.exc.OperationalError("x", {}, Exception("refused")))
    assert store_module.is_unavailable(ConnectionRefusedError())
    assert not store_module.is_unavailable(sa.exc.IntegrityError("x", {}, Exception("dup")))
    assert not store_module.is_unavailable(ValueError("bad"))


# --- engine integration (runs once the engine takes a repository) ------------------------------------------
@pytest.mark.skipif(
    not engine_supports_repository, reason="SimulationEngine has no `repository` parameter yet"
)
def test_engine_records_each_completed_simulation_once(tmp_path: Path, make_population):
    repo = TwinRepository(data_dir=tmp_path)
    engine = SimulationEngine(make_population(500), repository=repo)
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=3)
    assert result.status == SimulationStatus.COMPLETED
    assert repo.count_simulations() == 1
    assert repo.get_simulation(result.simulation_id) == result


@pytest.mark.skipif(
    not engine_supports_repository, reason="SimulationEngine has no `repository` parameter yet"
)
def test_failing_store_never_fails_a_simulation(tmp_path: Path, make_population):
    repo = unreachable_repo(tmp_path, FakeClock())
    engine = SimulationEngine(make_population(500), repository=repo)
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=3)
    assert result.status == SimulationStatus.COMPLETED
    assert repo.stats().queued == 1
    assert [e.payload["simulation_id"] for e in repo.outbox.entries()] == [str(result.simulation_id)]
