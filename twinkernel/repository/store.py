"""TwinRepository: results, models, fidelity records, jobs and experiments in SQLite or PostgreSQL.

Two kinds of write:

- ``save_*`` writes now, in one transaction, and raises if the database fails (nothing is left behind);
- ``record_*`` never raises for an unreachable database: the write goes to the durable outbox
  (:mod:`twinkernel.repository.outbox`) and is replayed, in order, when the database answers again.

Every write is idempotent by id (insert-ignore for immutable simulation results, upsert for the rest).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..config import TwinkernelConfig, get_config
from ..models import SimulationResult
from . import schema as S
from .outbox import Outbox, OutboxEntry
from .paths import database_url, resolve_data_dir
from .rows import TERMINAL_JOB_STATES, TwinModelRecord, from_db_time, payload_of, row_for, to_db_time

__all__ = ["RepositoryStats", "TwinRepository"]

logger = logging.getLogger("twinkernel.repository")

_TABLES: dict[str, tuple[sa.Table, bool]] = {  # kind -> (table, update on conflict)
    "simulation": (S.simulations, False),
    "model": (S.twin_models, True),
    "fidelity": (S.fidelity_records, True),
    "job": (S.retraining_jobs, True),
    "experiment": (S.experiments, True),
}


@dataclass(frozen=True)
class RepositoryStats:
    """Counters of one :class:`TwinRepository` (this process only).

    ``written``: rows committed by a direct write; ``queued``: rows put in the outbox; ``replayed``: outbox
    rows committed later; ``failed``: database attempts that failed; ``rejected``: rows the database
    refused for their content (not retried; kept in ``<outbox>.rejected``); ``dropped``: rows neither the
    database nor the outbox took (the disk failed too); ``pending``: rows waiting in the outbox.
    """

    written: int = 0
    queued: int = 0
    replayed: int = 0
    failed: int = 0
    rejected: int = 0
    dropped: int = 0
    pending: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dictionary."""
        return asdict(self)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached now" (worth queueing and retrying)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError
        | OSError,
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class TwinRepository:
    """The twinkernel store (SQLAlchemy 2 Core).

    Parameters
    ----------
    url
        Database URL. ``None``: ``$TWINKERNEL_DATABASE_URL``, else ``repository.url``, else the embedded
        SQLite file in the data directory. ``postgresql://`` URLs use the psycopg 3 driver.
    config
        Configuration (section ``repository``); the process default when ``None``.
    data_dir
        Directory of the embedded database and the outbox (default: see
        :func:`~twinkernel.repository.paths.resolve_data_dir`).
    outbox_path
        The outbox file (default ``<data_dir>/<repository.outbox_filename>``).
    schema
        PostgreSQL schema holding the tables (created if missing); ``None``: the connection's default.
    clock
        Monotonic seconds, for the retry back-off (tests).

    Examples
    --------
    >>> import tempfile
    >>> repo = TwinRepository(data_dir=tempfile.mkdtemp())
    >>> repo.save_experiment({"id": "exp-1", "intervention_type": "email_campaign"})
    >>> repo.get_experiment("exp-1")["intervention_type"]
    'email_campaign'
    >>> repo.close()
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        config: TwinkernelConfig | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        outbox_path: str | os.PathLike[str] | None = None,
        schema: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else get_config()
        rc = self.config.repository
        self.data_dir: Path = resolve_data_dir(self.config, data_dir)
        self.url = database_url(self.config, self.data_dir, url)
        self.schema = schema
        self.outbox = Outbox(outbox_path if outbox_path is not None else self.data_dir / rc.outbox_filename)
        self._clock = clock
        self._retry_interval = rc.retry_interval_seconds
        self._batch = rc.write_batch_size
        self._engine = self._make_engine()
        self._ready = False
        self._down = False
        self._retry_at: float | None = None
        self._io_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._counts = {
            name: 0 for name in ("written", "queued", "replayed", "failed", "rejected", "dropped")
        }

    # --- engine -----------------------------------------------------------------------------------------
    def _make_engine(self) -> sa.Engine:
        rc = self.config.repository
        if self.url.startswith("sqlite"):
            engine = sa.create_engine(self.url, connect_args={"timeout": rc.sqlite_busy_timeout_seconds})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()

            return engine
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.url.startswith("postgresql"):
            kwargs.update(
                pool_size=rc.pool_size,
                pool_timeout=rc.connect_timeout_seconds,
                connect_args={"connect_timeout": rc.connect_timeout_seconds},
            )
        engine = sa.create_engine(self.url, **kwargs)
        if self.schema is not None:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        return engine

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (tables may live in :attr:`schema`)."""
        return self._engine

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._engine.begin() as conn:
            if self.schema is not None:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            S.create_or_migrate(conn)
        self._ready = True

    def create_schema(self) -> int:
        """Create missing tables and apply migrations (idempotent); returns the schema version."""
        self._ready = False
        self._ensure_schema()
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar_one())

    # --- counters ---------------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        if n:
            with self._stats_lock:
                self._counts[name] += n

    def stats(self) -> RepositoryStats:
        """A snapshot of the counters (``pending`` reads the outbox)."""
        with self._stats_lock:
            counts = dict(self._counts)
        return RepositoryStats(**counts, pending=len(self.outbox))

    # --- writing ----------------------------------------------------------------------------------------
    def _execute(self, conn: sa.Connection, kind: str, rows: list[dict[str, Any]]) -> None:
        table, update = _TABLES[kind]
        pk = [c.name for c in table.primary_key]
        # One statement must not touch a row twice: keep the last write of an id (the first, for
        # insert-ignore), which is what writing them one after the other would leave.
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(row[k] for k in pk)
            if update or key not in unique:
                unique.pop(key, None)
                unique[key] = row
        dialect = conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        else:  # pragma: no cover - only the two supported dialects are tested
            raise NotImplementedError(f"the repository supports sqlite and postgresql; got {dialect!r}")
        stmt = insert(table)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=pk,
                set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=pk)
        conn.execute(stmt, list(unique.values()))

    def _commit(self, entries: Sequence[OutboxEntry]) -> None:
        """Write ``entries`` in order in one transaction (consecutive entries of a kind in batches)."""
        self._ensure_schema()
        with self._engine.begin() as conn:
            i = 0
            while i < len(entries):
                kind = entries[i].kind
                j = i
                while j < len(entries) and j - i < self._batch and entries[j].kind == kind:
                    j += 1
                rows = [row_for(e.kind, e.payload, e.recorded_at) for e in entries[i:j]]
                self._execute(conn, kind, rows)
                i = j

    def _entries(self, kind: str, objs: Iterable[Any]) -> list[OutboxEntry]:
        at = _now_iso()
        return [OutboxEntry(kind, payload_of(kind, obj), at) for obj in objs]

    def _save(self, kind: str, objs: Iterable[Any]) -> None:
        with self._io_lock:
            entries = self._entries(kind, objs)
            self._commit(entries)
            self._count("written", len(entries))

    def save_simulation(self, result: SimulationResult) -> None:
        """Store one result now (a second save of the same ``simulation_id`` changes nothing)."""
        self._save("simulation", [result])

    def save_simulations(self, results: Iterable[SimulationResult]) -> None:
        """Store several results in one transaction: all of them or, if anything fails, none."""
        self._save("simulation", results)

    def save_model(self, record: TwinModelRecord | dict[str, Any]) -> None:
        """Insert or update a twin model (:class:`TwinModelRecord` or a mapping of its fields)."""
        self._save("model", [record])

    def save_fidelity_records(self, records: Iterable[Any]) -> None:
        """Insert or update fidelity records (pydantic models or mappings with ``id``) in one transaction."""
        self._save("fidelity", records)

    def save_fidelity_record(self, record: Any) -> None:
        """Insert or update one fidelity record."""
        self._save("fidelity", [record])

    def save_job(self, job: Any) -> None:
        """Insert or update a retraining job (needs ``id`` and ``state``)."""
        self._save("job", [job])

    def claim_job(self, job: Any, expected_state: str, expected_attempts: int) -> bool:
        """Write a retraining job only if its stored ``state`` and ``attempts`` are still the expected ones.

        One conditional ``UPDATE``: when several workers claim the same job, exactly one gets ``True``
        (the others see that the row moved on and leave the job alone). Raises if the database fails.
        """
        row = row_for("job", payload_of("job", job), _now_iso())
        c = S.retraining_jobs.c
        stmt = (
            sa.update(S.retraining_jobs)
            .where(c.id == row["id"], c.state == str(expected_state), c.attempts == int(expected_attempts))
            .values({k: v for k, v in row.items() if k != "id"})
        )
        with self._io_lock:
            self._ensure_schema()
            with self._engine.begin() as conn:
                claimed = conn.execute(stmt).rowcount == 1
            self._count("written", int(claimed))
        return claimed

    def save_experiment(self, experiment: Any) -> None:
        """Insert or update an experiment (needs ``id``)."""
        self._save("experiment", [experiment])

    # --- resilient writing --------------------------------------------------------------------------------
    def record_simulation(self, result: SimulationResult) -> bool:
        """Store a result, or queue it in the outbox if the database is unreachable; never raises for that.

        Returns ``True`` when the row is in the database now, ``False`` when it waits in the outbox (or
        was refused: see :attr:`RepositoryStats.rejected`).
        """
        return self.record("simulation", [result])

    def record(self, kind: str, objs: Iterable[Any]) -> bool:
        """The resilient write for any kind (``simulation``, ``model``, ``fidelity``, ``job``,
        ``experiment``): queued entries are replayed first, so writes reach the database in order."""
        entries = self._entries(kind, objs)
        with self._io_lock:
            if self._retry_at is not None and self._clock() < self._retry_at:
                self._queue(entries)
                return False
            try:
                self._replay()
                self._commit(entries)
            except Exception as exc:  # classified below: a store never fails a caller
                self._count("failed")
                if is_unavailable(exc):
                    self._mark_down(exc)
                    self._queue(entries)
                else:
                    self._reject(entries, exc)
                return False
            self._mark_up()
            self._count("written", len(entries))
            return True

    def flush_outbox(self) -> int:
        """Replay the outbox now (ignoring the back-off); returns the rows replayed (0 if it failed)."""
        with self._io_lock:
            try:
                n = self._replay()
            except Exception as exc:  # classified below
                self._count("failed")
                if is_unavailable(exc):
                    self._mark_down(exc)
                return 0
            if n:  # an empty outbox never touched the database: that says nothing about an outage
                self._mark_up()
            return n

    def _replay(self) -> int:
        def commit(entries: list[OutboxEntry]) -> None:
            try:
                self._commit(entries)
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                # Some entry is refused for its content: commit the others one by one, keep the refused.
                for entry in entries:
                    try:
                        self._commit([entry])
                    except Exception as one:
                        if is_unavailable(one):
                            raise
                        self._reject([entry], one)
                        self._count("replayed", -1)

        n = self.outbox.drain(commit)
        self._count("replayed", n)
        if n:
            logger.info("replayed %d queued write(s) from %s", n, self.outbox.path)
        return n

    def _queue(self, entries: list[OutboxEntry]) -> None:
        try:
            self.outbox.append(entries)
        except OSError as exc:
            self._count("dropped", len(entries))
            logger.error("could not queue %d write(s) in %s: %s", len(entries), self.outbox.path, exc)
            return
        self._count("queued", len(entries))

    def _reject(self, entries: list[OutboxEntry], exc: BaseException) -> None:
        self._count("rejected", len(entries))
        logger.error("the database refused %d %s row(s): %s", len(entries), entries[0].kind, exc)
        try:
            Outbox(self.outbox.path.with_name(self.outbox.path.name + ".rejected")).append(entries)
        except OSError:  # pragma: no cover - logged above already
            pass

    def _mark_down(self, exc: BaseException) -> None:
        self._retry_at = self._clock() + self._retry_interval
        if not self._down:
            self._down = True
            logger.warning(
                "database %s unreachable (%s); writes go to the outbox %s and are retried every %.1f s",
                self._engine.url.render_as_string(hide_password=True),
                type(exc).__name__,
                self.outbox.path,
                self._retry_interval,
            )

    def _mark_up(self) -> None:
        self._retry_at = None
        if self._down:
            self._down = False
            logger.info("database reachable again")

    @property
    def degraded(self) -> bool:
        """True while the database is considered unreachable (writes go to the outbox)."""
        return self._down

    # --- reading ----------------------------------------------------------------------------------------
    def _rows(self, stmt: sa.Executable) -> list[sa.Row[Any]]:
        self._ensure_schema()
        with self._engine.connect() as conn:
            return list(conn.execute(stmt))

    def get_simulation(self, simulation_id: UUID | str) -> SimulationResult | None:
        """One stored result, parsed from its JSON; ``None`` if absent."""
        rows = self._rows(
            sa.select(S.simulations.c.result_json).where(S.simulations.c.simulation_id == str(simulation_id))
        )
        return SimulationResult.model_validate_json(rows[0][0]) if rows else None

    def simulations_for_model(
        self,
        model_id: str | None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[SimulationResult]:
        """A model's results created in ``[start, end)`` (either bound optional), oldest first."""
        if limit is not None and limit < 0:
            raise ValueError(f"`limit` must be None or a non-negative integer; got {limit}")
        c = S.simulations.c
        stmt = sa.select(c.result_json).where(
            c.model_id.is_(None) if model_id is None else c.model_id == str(model_id)
        )
        if start is not None:
            stmt = stmt.where(c.created_at >= to_db_time(start))
        if end is not None:
            stmt = stmt.where(c.created_at < to_db_time(end))
        stmt = stmt.order_by(c.created_at, c.simulation_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [SimulationResult.model_validate_json(r[0]) for r in self._rows(stmt)]

    def count_simulations(self, model_id: str | None = None) -> int:
        """Stored results (of one model, or all when ``model_id`` is ``None``)."""
        stmt = sa.select(sa.func.count()).select_from(S.simulations)
        if model_id is not None:
            stmt = stmt.where(S.simulations.c.model_id == str(model_id))
        return int(self._rows(stmt)[0][0])

    def simulation_ids(self) -> list[str]:
        """Every stored ``simulation_id`` (for audits and tests)."""
        return [r[0] for r in self._rows(sa.select(S.simulations.c.simulation_id))]

    def get_model(self, model_id: str) -> TwinModelRecord | None:
        """One twin model; ``None`` if absent."""
        rows = self._rows(sa.select(S.twin_models).where(S.twin_models.c.id == model_id))
        if not rows:
            return None
        d = dict(rows[0]._mapping)
        d["created_at"] = from_db_time(d["created_at"])
        d["promoted_at"] = from_db_time(d["promoted_at"])
        return TwinModelRecord.model_validate(d)

    def fidelity_records(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """A model's fidelity records (their payloads), oldest first, optionally in ``[start, end)``."""
        c = S.fidelity_records.c
        stmt = sa.select(c.payload).where(c.model_id == str(model_id))
        if start is not None:
            stmt = stmt.where(c.created_at >= to_db_time(start))
        if end is not None:
            stmt = stmt.where(c.created_at < to_db_time(end))
        return [r[0] for r in self._rows(stmt.order_by(c.created_at, c.id))]

    def get_fidelity_record(self, record_id: str) -> dict[str, Any] | None:
        """One fidelity record's payload; ``None`` if absent."""
        return self._payload(S.fidelity_records, record_id)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """One retraining job's payload; ``None`` if absent."""
        return self._payload(S.retraining_jobs, job_id)

    def open_jobs(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Retraining jobs not yet completed, failed or cancelled (of one model, or all), oldest first."""
        c = S.retraining_jobs.c
        stmt = sa.select(c.payload).where(c.state.not_in(sorted(TERMINAL_JOB_STATES)))
        if model_id is not None:
            stmt = stmt.where(c.model_id == str(model_id))
        return [r[0] for r in self._rows(stmt.order_by(c.created_at, c.id))]

    def jobs(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Retraining jobs in every state (of one model, or all), oldest first."""
        c = S.retraining_jobs.c
        stmt = sa.select(c.payload)
        if model_id is not None:
            stmt = stmt.where(c.model_id == str(model_id))
        return [r[0] for r in self._rows(stmt.order_by(c.created_at, c.id))]

    def get_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        """One experiment's payload; ``None`` if absent."""
        return self._payload(S.experiments, experiment_id)

    def experiments(self, intervention_type: str | None = None) -> list[dict[str, Any]]:
        """Experiments (of one intervention type, or all), by completion date."""
        c = S.experiments.c
        stmt = sa.select(c.payload)
        if intervention_type is not None:
            stmt = stmt.where(c.intervention_type == intervention_type)
        return [r[0] for r in self._rows(stmt.order_by(c.completed_date, c.id))]

    def _payload(self, table: sa.Table, ident: str) -> dict[str, Any] | None:
        rows = self._rows(sa.select(table.c.payload).where(table.c.id == str(ident)))
        return rows[0][0] if rows else None

    # --- lifetime ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections (the outbox needs no closing)."""
        self._engine.dispose()

    def __enter__(self) -> TwinRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TwinRepository({self._engine.url.render_as_string(hide_password=True)!r})"
