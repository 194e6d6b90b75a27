"""Where twinkernel keeps local state: the per-user data directory and the database URL."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import TwinkernelConfig

__all__ = ["ENV_DATABASE_URL", "ENV_HOME", "database_url", "normalise_url", "resolve_data_dir"]

ENV_HOME = "TWINKERNEL_HOME"
ENV_DATABASE_URL = "TWINKERNEL_DATABASE_URL"


def resolve_data_dir(config: TwinkernelConfig, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir``, else ``$TWINKERNEL_HOME``, else ``repository.data_dir``, else the
    platform's per-user data directory (``platformdirs.user_data_dir("twinkernel")``). Created if missing.

    Examples
    --------
    >>> import tempfile
    >>> from twinkernel import get_config
    >>> d = tempfile.mkdtemp()
    >>> resolve_data_dir(get_config(), d) == Path(d)
    True
    """
    if data_dir is not None:
        path = Path(data_dir)
    elif os.environ.get(ENV_HOME):
        path = Path(os.environ[ENV_HOME])
    elif config.repository.data_dir is not None:
        path = Path(config.repository.data_dir)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("twinkernel"))
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def normalise_url(url: str) -> str:
    """Select the psycopg 3 driver for a plain PostgreSQL URL; other URLs are returned unchanged.

    Examples
    --------
    >>> normalise_url("postgresql://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    >>> normalise_url("sqlite:////tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(config: TwinkernelConfig, data_dir: Path, url: str | None = None) -> str:
    """The store's URL: ``url``, else ``$TWINKERNEL_DATABASE_URL``, else ``repository.url``, else the
    embedded SQLite file ``<data_dir>/<repository.sqlite_filename>``."""
    chosen = url
    if chosen is None:
        chosen = os.environ.get(ENV_DATABASE_URL) or None
    if chosen is None:
        chosen = config.repository.url
    if chosen is None:
        chosen = f"sqlite:///{data_dir / config.repository.sqlite_filename}"
    return normalise_url(chosen)
