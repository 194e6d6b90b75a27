"""TwinRepository on a real PostgreSQL (``TWINKERNEL_TEST_POSTGRES_URL``): the SQLite contract, same values.

Each test works in its own schema of the shared ``test`` database and drops it afterwards.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.persistence_helpers import (
    MODEL_ID,
    config_with,
    fresh_results,
    postgres_repository,
    result_template,
)
from twinkernel.repository import SCHEMA_VERSION
from twinkernel.repository import schema as S

pytestmark = pytest.mark.requires_postgres


def add_failing_trigger(repo, simulation_id: str) -> None:
    repo.create_schema()
    with repo.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"""
                CREATE FUNCTION "{repo.schema}".refuse_one() RETURNS trigger AS $$
                BEGIN
                    IF NEW.simulation_id = '{simulation_id}' THEN RAISE EXCEPTION 'refused'; END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER refuse_one BEFORE INSERT ON "{repo.schema}".simulations
                FOR EACH ROW EXECUTE FUNCTION "{repo.schema}".refuse_one();
                """
            )
        )


def test_schema_and_round_trip(tmp_path):
    with postgres_repository(data_dir=tmp_path) as repo:
        assert repo.engine.dialect.name == "postgresql"
        assert repo.engine.dialect.driver == "psycopg"
        assert repo.create_schema() == SCHEMA_VERSION
        assert repo.create_schema() == SCHEMA_VERSION
        result = result_template()
        repo.save_simulation(result)
        assert repo.get_simulation(result.simulation_id) == result
        with repo.engine.connect() as conn:
            row = conn.execute(sa.select(S.simulations)).one()._mapping
            versions = conn.execute(sa.select(S.schema_version.c.version)).scalars().all()
        assert versions == [SCHEMA_VERSION]
        assert row["ate"] == result.simulated_ate
        assert row["request_digest"] == result.request_digest
        assert json.loads(row["result_json"]) == json.loads(result.model_dump_json())


def test_resaving_is_idempotent(tmp_path):
    with postgres_repository(data_dir=tmp_path) as repo:
        results = fresh_results(5)
        repo.save_simulations(results)
        repo.save_simulations([*results, results[0], results[0]])
        assert repo.count_simulations() == 5
        assert sorted(repo.simulation_ids()) == sorted(str(r.simulation_id) for r in results)


def test_transaction_rollback(tmp_path):
    """Plan 4.1 on PostgreSQL: the database refuses a row half-way; nothing of the batch remains."""
    with postgres_repository(data_dir=tmp_path, config=config_with(write_batch_size=2)) as repo:
        results = fresh_results(7)
        add_failing_trigger(repo, str(results[5].simulation_id))
        with pytest.raises(sa.exc.DBAPIError, match="refused"):
            repo.save_simulations(results)
        assert repo.count_simulations() == 0
        repo.save_simulations(results[:5])
        assert repo.count_simulations() == 5


def test_window_jobs_and_fidelity(tmp_path):
    with postgres_repository(data_dir=tmp_path) as repo:
        t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        by_hour = [fresh_results(1, created_at=t0 + timedelta(hours=h))[0] for h in range(5)]
        repo.save_simulations([*reversed(by_hour), *fresh_results(2, model_id="other")])
        window = repo.simulations_for_model(MODEL_ID, t0 + timedelta(hours=1), t0 + timedelta(hours=4))
        assert [r.simulation_id for r in window] == [r.simulation_id for r in by_hour[1:4]]

        repo.save_job({"id": "j1", "model_id": "m", "state": "pending", "created_at": t0})
        repo.save_job({"id": "j2", "model_id": "m", "state": "pending", "created_at": t0})
        repo.save_job({"id": "j2", "model_id": "m", "state": "cancelled"})
        assert [j["id"] for j in repo.open_jobs("m")] == ["j1"]
        repo.save_fidelity_record({"id": "f1", "model_id": "m", "prediction_error": 0.12})
        assert repo.fidelity_records("m") == [{"id": "f1", "model_id": "m", "prediction_error": 0.12}]


def test_concurrent_writers_store_each_row_once(tmp_path):
    with postgres_repository(data_dir=tmp_path) as repo:
        results = fresh_results(200)
        repo.create_schema()
        chunks = [results[i::4] + results[:20] for i in range(4)]  # overlapping ids across writers

        def write(chunk):
            for r in chunk:
                repo.record_simulation(r)

        threads = [threading.Thread(target=write, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert repo.count_simulations() == 200
        assert repo.stats().failed == 0
