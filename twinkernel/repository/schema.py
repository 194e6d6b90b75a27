"""Tables of the twinkernel store (SQLAlchemy Core) and their idempotent create / migrate.

Datetimes are stored as naive UTC on both dialects (one convention, comparable in SQL); the store
converts them back to timezone-aware UTC on read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "create_or_migrate",
    "experiments",
    "fidelity_records",
    "metadata",
    "retraining_jobs",
    "schema_version",
    "simulations",
    "twin_models",
]

SCHEMA_VERSION = 1
"""The version this code writes; a database at a higher version is refused."""

metadata = sa.MetaData()

ID = sa.String(64)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)

twin_models = sa.Table(
    "twin_models",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("twin_type", sa.String(32), nullable=False),
    sa.Column("brand", sa.String(200)),
    sa.Column("training_metrics", sa.JSON),
    sa.Column("generator_version", sa.String(100)),
    sa.Column("effect_model_version", sa.String(100)),
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("mlflow_model_version", sa.String(32)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("promoted_at", sa.DateTime),
)

simulations = sa.Table(
    "simulations",
    metadata,
    sa.Column("simulation_id", sa.String(36), primary_key=True),
    sa.Column("request_digest", sa.String(64)),
    sa.Column("model_id", ID),
    sa.Column("intervention_type", sa.String(100), nullable=False),
    sa.Column("ate", sa.Float, nullable=False),
    sa.Column("ci_lower", sa.Float, nullable=False),
    sa.Column("ci_upper", sa.Float, nullable=False),
    sa.Column("confidence_level", sa.Float, nullable=False),
    sa.Column("twin_count", sa.Integer, nullable=False),
    sa.Column("recommendation", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
    sa.Index("ix_simulations_model_created", "model_id", "created_at"),
    sa.Index("ix_simulations_request_digest", "request_digest"),
)

fidelity_records = sa.Table(
    "fidelity_records",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_id", ID),
    sa.Column("simulation_id", sa.String(36)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_fidelity_model_created", "model_id", "created_at"),
)

retraining_jobs = sa.Table(
    "retraining_jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_id", ID),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("fidelity_before", sa.Float),
    sa.Column("fidelity_after", sa.Float),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_jobs_model_state", "model_id", "state"),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("intervention_type", sa.String(100)),
    sa.Column("completed_date", sa.Date),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_experiments_type", "intervention_type"),
)


class SchemaVersionError(RuntimeError):
    """The database was written by a newer twinkernel (its schema version is above :data:`SCHEMA_VERSION`)."""


# version -> step that brings a database at version - 1 up to it (version 1 is the initial create_all).
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}


def create_or_migrate(conn: sa.Connection) -> int:
    """Create missing tables and apply pending migrations in one transaction; returns the version.

    Safe to call on every start and from several processes: tables are created only if absent and a
    version row is inserted only once.
    """
    metadata.create_all(conn, checkfirst=True)
    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    if current is not None and current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {current} is newer than this twinkernel's ({SCHEMA_VERSION}); upgrade"
        )
    start = 1 if current is None else current + 1
    for version in range(start, SCHEMA_VERSION + 1):
        step = MIGRATIONS.get(version)
        if step is not None:
            step(conn)
        exists = conn.execute(
            sa.select(schema_version.c.version).where(schema_version.c.version == version)
        ).first()
        if exists is None:
            conn.execute(
                schema_version.insert().values(
                    version=version, applied_at=datetime.now(UTC).replace(tzinfo=None)
                )
            )
    return SCHEMA_VERSION
