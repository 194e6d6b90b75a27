"""A durable, append-only outbox of writes the database did not take.

One JSON line per write, appended and fsynced before :meth:`Outbox.append` returns. Entries are read back
in the order they were written and removed only after the database committed them (:meth:`Outbox.drain`),
so a crash at any point loses nothing; replaying an entry twice is harmless because every store write is
an upsert or insert-ignore by id.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Outbox", "OutboxEntry"]


@dataclass(frozen=True)
class OutboxEntry:
    """One queued write: its table ``kind`` (``simulation``, ``model``, ``fidelity``, ``job``,
    ``experiment``) and the row's ``payload`` (JSON-ready)."""

    kind: str
    payload: dict[str, Any]
    recorded_at: str
    """ISO-8601 UTC time of the write (the row's creation time when the payload carries none)."""


class Outbox:
    """A JSON-lines file guarded by a thread lock and an advisory file lock (several processes may share it).

    Parameters
    ----------
    path
        The outbox file (created on first append).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> box = Outbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.jsonl")
    >>> box.append([OutboxEntry("simulation", {"id": "a"}, "2026-01-01T00:00:00+00:00")])
    >>> box.drain(lambda entries: None)
    1
    >>> len(box)
    0
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.skipped_lines = 0
        """Lines that could not be parsed (a write torn by a crash before it was acknowledged)."""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def append(self, entries: list[OutboxEntry]) -> None:
        """Append entries as one fsynced write (they are durable when this returns)."""
        if not entries:
            return
        text = "".join(
            json.dumps({"kind": e.kind, "payload": e.payload, "at": e.recorded_at}, separators=(",", ":"))
            + "\n"
            for e in entries
        )
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # A torn line from a crash mid-write would glue onto this one: start on a fresh line.
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    text = "\n" + text
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _read(self) -> list[OutboxEntry]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries: list[OutboxEntry] = []
        skipped = 0
        for line in raw.decode(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                entries.append(OutboxEntry(str(obj["kind"]), dict(obj["payload"]), str(obj["at"])))
            except (ValueError, KeyError, TypeError):
                skipped += 1
        self.skipped_lines = skipped
        return entries

    def entries(self) -> list[OutboxEntry]:
        """The queued entries, oldest first."""
        with self._locked():
            return self._read()

    def __len__(self) -> int:
        return len(self.entries())

    def drain(self, commit: Callable[[list[OutboxEntry]], None]) -> int:
        """Pass every queued entry, oldest first, to ``commit``; truncate the file only if it returns.

        If ``commit`` raises, the file is left as it was and the exception propagates. Returns the number
        of entries committed.
        """
        with self._locked():
            entries = self._read()
            if not entries:
                if self.path.exists() and self.path.stat().st_size:
                    self._truncate()  # only torn lines were left
                return 0
            commit(entries)
            self._truncate()
            return len(entries)

    def _truncate(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
