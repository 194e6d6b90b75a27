"""A loopback TCP proxy a test owns, to cut or stall its own connections to a shared service.

The machine's Redis and PostgreSQL keep running; only the traffic through this proxy is affected.

>>> import socket
>>> srv = socket.create_server(("127.0.0.1", 0))
>>> with TcpProxy("127.0.0.1", srv.getsockname()[1]) as proxy:
...     proxy.port > 0
True
>>> srv.close()
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Literal

__all__ = ["TcpProxy"]

Mode = Literal["forward", "drop", "stall"]


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``.

    Modes: ``forward`` (normal), ``drop`` (existing connections are closed and new ones closed on accept:
    the service looks down), ``stall`` (connections stay open but no byte moves either way: the service
    looks hung).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self.mode: Mode = "forward"
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # --- control ----------------------------------------------------------------------------------------
    def drop(self) -> None:
        """Close every connection now and refuse new ones (closed right after accept)."""
        self.mode = "drop"
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            _close(a)
            _close(b)

    def stall(self) -> None:
        """Stop moving bytes (connections stay open; new ones are accepted and never answered)."""
        self.mode = "stall"

    def restore(self) -> None:
        """Forward again (new connections; stalled ones resume)."""
        self.mode = "forward"

    def close(self) -> None:
        self._stop.set()
        self.drop()
        self._thread.join(timeout=2)
        _close(self._server)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if self.mode == "drop":
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set() and self.mode != "drop":
                if self.mode == "stall":
                    self._stop.wait(0.02)
                    continue
                for key, _ in sel.select(timeout=0.05):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            _close(a)
            _close(b)
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass
