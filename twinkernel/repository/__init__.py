"""The twinkernel store: SQLite by default, PostgreSQL by URL, with a durable outbox (extra ``sql``).

See ``docs/persistence.md``.
"""

from __future__ import annotations

from ..config import TwinkernelConfig, get_config
from .outbox import Outbox, OutboxEntry
from .paths import database_url, normalise_url, resolve_data_dir
from .rows import TERMINAL_JOB_STATES, TwinModelRecord
from .schema import SCHEMA_VERSION, SchemaVersionError
from .store import RepositoryStats, TwinRepository, is_unavailable

__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_JOB_STATES",
    "Outbox",
    "OutboxEntry",
    "RepositoryStats",
    "SchemaVersionError",
    "TwinModelRecord",
    "TwinRepository",
    "database_url",
    "is_unavailable",
    "normalise_url",
    "repository_from_config",
    "resolve_data_dir",
]


def repository_from_config(config: TwinkernelConfig | None = None) -> TwinRepository | None:
    """The repository the configuration asks for: ``None`` unless ``repository.enabled``.

    Examples
    --------
    >>> repository_from_config() is None   # the shipped configuration leaves it off
    True
    """
    cfg = config if config is not None else get_config()
    if not cfg.repository.enabled:
        return None
    return TwinRepository(config=cfg)
