"""What zcio_hypercorn tells hypercorn's error log (``hypercorn.error``, info): what a worker
offers when it starts serving, and the bytes each method moved when it stops (the closing line
has the form of ``zcio serve``'s and zcio_uvicorn's: ``pid N, bytes moved: sendfile 1,234 B``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import zcio
from zcio.asgi import EXTENSIONS

__all__ = ["REPORT_ENV", "reporting", "zero_copy_verdict"]

#: ``ZCIO_HYPERCORN_REPORT=0`` turns both lines off.
REPORT_ENV = "ZCIO_HYPERCORN_REPORT"


def zero_copy_verdict() -> str:
    """``sendfile`` when zcio's plan for a file to a TCP socket is ``sendfile(2)``; otherwise
    ``none, every byte is copied (why)``. Asks the plan only (``ZCIO_DISABLE``, refusals the
    kernel gave earlier in this process); nothing is sent."""
    with tempfile.TemporaryFile() as file, socket.socket() as sock:
        plan = zcio.plan(file, sock)
    if plan.method is zcio.Method.SENDFILE:
        return "sendfile"
    skipped = plan.reason_against(zcio.Method.SENDFILE)
    return f"none, every byte is copied ({skipped.why if skipped is not None else 'not planned'})"


def _worker_kind(backend: str) -> str:
    if backend == "trio":
        return "trio"
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _enabled() -> bool:
    return os.environ.get(REPORT_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


@asynccontextmanager
async def reporting(config: Any, backend: str) -> AsyncIterator[None]:
    """Around one worker's serving: the startup line, then the closing line (also after an
    error or a cancellation). Logged through hypercorn's own logger, ``config.log``."""
    if not _enabled():
        yield
        return
    start = zcio.stats()
    await config.log.info(
        f"zcio_hypercorn: the {_worker_kind(backend)} worker offers {', '.join(EXTENSIONS)} "
        f"on plaintext HTTP/1.x connections; zero-copy: {zero_copy_verdict()}"
    )
    try:
        yield
    finally:
        moved = (zcio.stats() - start).summary()
        await config.log.info(f"zcio_hypercorn: pid {os.getpid()}, {moved}")
