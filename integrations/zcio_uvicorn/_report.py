"""What zcio_uvicorn tells uvicorn's log (``uvicorn.error``, info): what a server offers, at
its first connection, and the bytes each method moved, when it has shut down. The closing line
has the form of ``zcio serve``'s (``pid N, bytes moved: sendfile 1,234 B``)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
from typing import Any

import zcio

__all__ = ["Reporter", "sendfile_verdict"]

logger = logging.getLogger("uvicorn.error")


def sendfile_verdict() -> str | None:
    """None when ``sendfile(2)`` will carry the bodies here; otherwise why not. Asks zcio's
    plan for a file to a TCP socket (``ZCIO_DISABLE``, refusals seen earlier), then moves one
    byte for real, as ``zcio probe`` does: a syscall can exist and still be refused (seccomp)."""
    try:
        with tempfile.TemporaryFile() as f, socket.socket() as sock:
            f.write(b"z")
            f.flush()
            plan = zcio.plan(f, sock)
            if plan.method is not zcio.Method.SENDFILE:
                skipped = plan.reason_against(zcio.Method.SENDFILE)
                return skipped.why if skipped is not None else "not planned"
            r, w = os.pipe()
            try:
                sent = os.sendfile(w, f.fileno(), 0, 1)
            finally:
                os.close(r)
                os.close(w)
    except OSError as exc:
        return f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}"
    return None if sent == 1 else f"moved {sent} bytes of 1"


class Reporter:
    """Logs what one server offers (made by its first connection), and what it moved once it
    has shut down.

    uvicorn gives a protocol class no startup or shutdown hook, but its shutdown calls
    ``shutdown()`` on every entry of its set of open connections: the reporter sits in that set
    as a hidden entry (``len()`` leaves it out, so ``--limit-concurrency`` and the connection
    cap count as before). When the server shuts down, the reporter leaves the set, and logs the
    bytes moved once the last connection is gone (uvicorn waits for that before it exits).
    """

    def __init__(self, protocol: Any, extensions: tuple[str, ...], limits: str) -> None:
        why_not = sendfile_verdict()
        methods = "sendfile" if why_not is None else f"none, every byte is copied ({why_not})"
        logger.info(
            "zcio_uvicorn: %s advertises %s on plaintext connections; zero-copy: %s",
            type(protocol).__name__,
            ", ".join(extensions),
            methods,
        )
        logger.info("zcio_uvicorn: limits: %s", limits)
        self.start = zcio.stats()
        self.shutting_down = False
        self.done = False
        state = protocol.server_state
        connections = _Connections(state.connections)
        connections.hidden = self
        connections.add(self)
        state.connections = protocol.connections = connections
        self.connections = connections

    def shutdown(self) -> None:
        """Called by uvicorn's ``Server.shutdown``, as for a connection."""
        self.shutting_down = True
        self.connections.discard(self)
        self.lost()

    def lost(self) -> None:
        """A connection is gone: after the shutdown, the last one ends the server's count."""
        if self.shutting_down and not self.done and not self.connections:
            self.done = True
            moved = (zcio.stats() - self.start).summary()
            logger.info("zcio_uvicorn: pid %d, %s", os.getpid(), moved)


class _Connections(set[Any]):
    """uvicorn's set of open connections, with the reporter in it but not counted."""

    hidden: Any = None

    def __len__(self) -> int:
        return set.__len__(self) - (self.hidden is not None and self.hidden in self)
