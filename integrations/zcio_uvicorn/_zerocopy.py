"""The ASGI zero-copy extensions, served by one request-response cycle of uvicorn.

``http.response.zerocopysend`` (a file object or fd, an optional offset and count, more_body)
and ``http.response.pathsend`` (an absolute path, the whole body) are written with
``zcio.send_file``: ``sendfile(2)`` straight from the page cache to the socket, after the
status line and headers that uvicorn already queued in the transport. Every other message
goes through uvicorn's own ``send``, unchanged, so ordinary responses keep uvicorn's write
path and speed.

Framing is the protocol's: h11 frames through ``send_with_data_passthrough`` (it counts the
bytes against Content-Length, or writes the chunk header and trailer, without touching them);
httptools' cycle keeps its own Content-Length count and chunked flag, updated here the same way
its ``send`` would.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import zcio

__all__ = ["EXTENSIONS", "advertise"]

ZEROCOPYSEND = "http.response.zerocopysend"
PATHSEND = "http.response.pathsend"
EXTENSIONS = (ZEROCOPYSEND, PATHSEND)

logger = logging.getLogger("zcio.uvicorn")

Send = Callable[[Any], Awaitable[None]]


class Framing(Protocol):
    """How a protocol frames ``count`` body bytes: what to write before and after them."""

    def __call__(self, cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]: ...


def advertise(protocol: Any, cycle: Any, framing: Framing) -> None:
    """Teach a fresh uvicorn cycle the zero-copy messages, on plaintext connections only.

    Called right after uvicorn creates the cycle and before its ASGI task first runs: adds the
    extensions to the request's scope and wraps the cycle's ``send``. TLS connections are left
    alone: their bytes must be encrypted in Python, so advertising would only mislead apps.
    """
    if getattr(cycle, "_zcio", False):
        return
    cycle._zcio = True
    if cycle.scope.get("scheme") in ("https", "wss"):
        return
    if protocol.transport.get_extra_info("sslcontext") is not None:
        return
    extensions = cycle.scope.setdefault("extensions", {})
    for name in EXTENSIONS:
        extensions[name] = {}
    original: Send = cycle.send

    async def send(message: Any) -> None:
        kind = message["type"]
        if kind == ZEROCOPYSEND:
            await _zerocopysend(cycle, original, framing, message)
        elif kind == PATHSEND:
            await _pathsend(cycle, original, framing, message)
        else:
            await original(message)

    cycle.send = send


def _check_state(cycle: Any, kind: str) -> bool:
    """uvicorn's rules for a body message; False when the client is gone (ignore the message)."""
    if cycle.disconnected:
        return False
    if not cycle.response_started:
        raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
    if cycle.response_complete:
        raise RuntimeError(
            f"Unexpected ASGI message '{kind}' sent, after response already completed."
        )
    return True


async def _pathsend(cycle: Any, original: Send, framing: Framing, message: Any) -> None:
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if not _check_state(cycle, PATHSEND):
        return
    loop = asyncio.get_running_loop()
    # Opening can wait for the disk: not on the event loop.
    fd = await loop.run_in_executor(None, os.open, message["path"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        await _body(cycle, original, framing, fd, 0, None, more_body=False)
    finally:
        os.close(fd)


async def _zerocopysend(cycle: Any, original: Send, framing: Framing, message: Any) -> None:
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if not _check_state(cycle, ZEROCOPYSEND):
        return
    file = message["file"]
    offset = message.get("offset")
    if offset is None:  # the spec: from the file's current position
        offset = file.tell() if hasattr(file, "tell") else os.lseek(file, 0, os.SEEK_CUR)
    await _body(
        cycle,
        original,
        framing,
        file,
        offset,
        message.get("count"),
        more_body=message.get("more_body", False),
    )


async def _body(
    cycle: Any,
    original: Send,
    framing: Framing,
    file: Any,
    offset: int,
    count: int | None,
    *,
    more_body: bool,
) -> None:
    if count is None:
        fd = file if isinstance(file, int) else file.fileno()
        count = max(os.fstat(fd).st_size - offset, 0)
    if cycle.scope["method"] != "HEAD" and count > 0:
        before, after = framing(cycle, count)
        if before:
            cycle.transport.write(b"".join(before))
        try:
            await zcio.send_file(cycle.transport, file, offset=offset, count=count)
        except zcio.IncompleteTransfer as exc:
            # The file shrank under us: the framing promised bytes that do not exist. The only
            # honest answer is to drop the connection (nginx does the same), never a short body
            # followed by the next response.
            cycle.keep_alive = False
            cycle.transport.close()
            raise RuntimeError(
                f"file ended after {exc.sent} of {count} promised bytes; connection aborted"
            ) from exc
        except (zcio.BrokenDestination, zcio.ClosedDestination):
            cycle.disconnected = True  # the client went away: later messages are ignored
            return
        if after:
            cycle.transport.write(b"".join(after))
    # Completion, keep-alive and the next pipelined request: uvicorn's own code path.
    await original({"type": "http.response.body", "body": b"", "more_body": more_body})
