"""What zcio_uvicorn tells uvicorn's log: what it offers when a server starts taking
connections, and the bytes each method moved when the server is gone.

uvicorn gives a protocol class no startup or shutdown hook, so "start" is the server's first
connection (before its first request is served), and "end" is when uvicorn's ``ServerState``
is freed or, at the latest, when the process exits (``weakref.finalize``). The lines are the
ones ``zcio serve`` prints (``zcio: ...`` and ``bytes moved: ...``).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import weakref
from typing import Any

import zcio

__all__ = ["announce", "moved", "sendfile_verdict"]

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


def moved(delta: zcio.Stats) -> str:
    """Bytes moved by each method in ``delta``, and the fallbacks with their reasons (the
    format of ``zcio serve``'s closing line)."""
    parts = [f"{name} {m.bytes:,} B" for name, m in sorted(delta.methods.items()) if m.bytes]
    text = "bytes moved: " + (", ".join(parts) if parts else "none")
    if delta.fallbacks:
        text += "; fallbacks: " + ", ".join(f"{k} x{v}" for k, v in sorted(delta.fallbacks.items()))
    return text


def announce(protocol: Any, extensions: tuple[str, ...], limits: str) -> None:
    """Log what this server offers, and arrange for what it moved to be logged at its end.
    Called once per server, by its first connection."""
    why_not = sendfile_verdict()
    methods = "sendfile" if why_not is None else f"none, every byte is copied (sendfile: {why_not})"
    logger.info(
        "zcio_uvicorn: %s advertises %s on plaintext connections; zero-copy: %s",
        type(protocol).__name__,
        ", ".join(extensions),
        methods,
    )
    logger.info("zcio_uvicorn: limits: %s", limits)
    weakref.finalize(protocol.server_state, _farewell, os.getpid(), zcio.stats())


def _farewell(pid: int, start: zcio.Stats) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the finalizer
        logger.info("zcio_uvicorn: pid %d, %s", pid, moved(zcio.stats() - start))
