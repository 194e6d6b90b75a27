"""Shared builders for the persistence, lineage and error-recovery tests (results, PostgreSQL, generators)."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import make_population_frame
from twinkernel import InterventionConfig, SimulationEngine, TwinPopulation, get_config
from twinkernel.config import TwinkernelConfig, config_from_mapping
from twinkernel.models import SimulationResult
from twinkernel.repository import TwinRepository

POSTGRES_ENV = "TWINKERNEL_TEST_POSTGRES_URL"
MODEL_ID = "test-model"
ONE_MONTH = "not (split|cross-validated) by time"  # what training on a one-month frame warns


@functools.lru_cache(maxsize=1)
def result_template() -> SimulationResult:
    """One real, seeded simulation result (built once; tests re-id copies of it)."""
    pop = TwinPopulation.from_frame(make_population_frame(400, seed=3), brand="Kisqali", model_id=MODEL_ID)
    engine = SimulationEngine(pop)
    engine.cache = None
    return engine.simulate(InterventionConfig(intervention_type="email_campaign", channel="email"), seed=11)


def fresh_results(
    n: int, model_id: str = MODEL_ID, created_at: datetime | None = None
) -> list[SimulationResult]:
    """``n`` copies of the template with new ``simulation_id`` (and optionally model and creation time)."""
    base = result_template()
    update: dict[str, Any] = {"model_id": model_id}
    if created_at is not None:
        update["created_at"] = created_at
    return [base.model_copy(update={**update, "simulation_id": uuid.uuid4()}) for _ in range(n)]


def config_with(**repository: Any) -> TwinkernelConfig:
    """The default configuration with some ``repository`` keys replaced."""
    data = get_config().model_dump(mode="json")
    data["repository"].update(repository)
    return config_from_mapping(data, source="<test>")


def postgres_url() -> str:
    """The test database URL, or skip the test (with the reason) when it is unset or not answering."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"requires_postgres: {POSTGRES_ENV} is not set")
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            pass
    except psycopg.Error as exc:
        pytest.skip(f"requires_postgres: no PostgreSQL answering at {url}: {exc}")
    return url


@contextlib.contextmanager
def postgres_repository(url: str | None = None, **kwargs: Any) -> Iterator[TwinRepository]:
    """A repository in a fresh schema of the shared test database, dropped afterwards."""
    admin_url = postgres_url()
    schema = f"tk_test_{uuid.uuid4().hex[:12]}"
    repo = TwinRepository(url or admin_url, schema=schema, **kwargs)
    try:
        yield repo
    finally:
        repo.close()
        admin = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def pg_host_port(url: str) -> tuple[str, int]:
    u = sa.engine.make_url(url)
    return u.host or "127.0.0.1", u.port or 5432


def with_port(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port`` (a proxy)."""
    u = sa.engine.make_url(url).set(host="127.0.0.1", port=port)
    return u.render_as_string(hide_password=False)


@functools.lru_cache(maxsize=1)
def trained_generator() -> tuple[Any, Any, str]:
    """A small generator trained on the synthetic HCP world: ``(generator, metrics, data_fingerprint)``."""
    from twinkernel import TwinGenerator, synthetic
    from twinkernel.lineage import data_fingerprint

    frame = synthetic.hcp_training_frame(synthetic.hcp_world(1300, months=3, seed=0))
    gen = TwinGenerator("hcp", "Kisqali", permutation_repeats=1)
    with pytest.warns(UserWarning, match=ONE_MONTH):  # one target month: random split and kfold CV
        metrics = gen.train(frame, "brand_share", time_col="month", algorithm="gradient_boosting")
    return gen, metrics, data_fingerprint(frame)
