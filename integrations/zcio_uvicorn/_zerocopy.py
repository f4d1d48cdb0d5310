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

import contextlib
import logging
import os
import socket
from collections.abc import Awaitable
from typing import Any, Protocol

import zcio
import zcio.asgi
from zcio.asgi import EXTENSIONS, PATHSEND, ZEROCOPYSEND

__all__ = ["EXTENSIONS", "advertise", "cycle_class"]

logger = logging.getLogger("zcio.uvicorn")


class Framing(Protocol):
    """How a protocol frames ``count`` body bytes: what to write before and after them."""

    def __call__(self, cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]: ...


def cycle_class(base: type[Any], framing: Framing) -> type[Any]:
    """A subclass of uvicorn's cycle class ``base`` whose ``send`` also takes the zero-copy
    messages. Instances of ``base`` are switched to it in place (``advertise``): uvicorn creates
    its own cycle objects, and a subclass keeps every request free of per-request closures
    (a closure stored on the cycle would make each cycle a reference cycle for the GC)."""

    def send(self: Any, message: Any) -> Awaitable[None]:
        # A plain function returning uvicorn's own coroutine: ordinary messages cost one call.
        kind = message["type"]
        if kind == ZEROCOPYSEND:
            return _zerocopysend(self, framing, message)
        if kind == PATHSEND:
            return _pathsend(self, framing, message)
        return base.send(self, message)  # type: ignore[no-any-return]

    return type(f"ZeroCopy{base.__name__}", (base,), {"send": send, "_zcio_base": base})


def advertise(protocol: Any, cycle: Any, zero_copy_class: type[Any]) -> None:
    """Teach a fresh uvicorn cycle the zero-copy messages, on plaintext connections only.

    Called right after uvicorn creates the cycle and before its ASGI task first runs: adds the
    extensions to the request's scope and switches the cycle to ``zero_copy_class``. TLS
    connections are left alone: their bytes must be encrypted in Python, so advertising would
    only mislead apps. The TLS check is made once per connection.
    """
    if type(cycle) is zero_copy_class:
        return  # already done (h11 calls handle_events again for the same cycle)
    plain = protocol.__dict__.get("_zcio_plain")
    if plain is None:
        plain = protocol._zcio_plain = protocol.transport.get_extra_info("sslcontext") is None
    if not plain or cycle.scope.get("scheme") in ("https", "wss"):
        return
    extensions = cycle.scope.get("extensions")
    if extensions is None:
        cycle.scope["extensions"] = {ZEROCOPYSEND: {}, PATHSEND: {}}
    else:
        extensions[ZEROCOPYSEND] = extensions[PATHSEND] = {}
    cycle.__class__ = zero_copy_class


def _complete(cycle: Any, more_body: bool) -> Awaitable[None]:
    """Completion, keep-alive and the next pipelined request: uvicorn's own code path."""
    base: Any = cycle._zcio_base
    return base.send(cycle, {"type": "http.response.body", "body": b"", "more_body": more_body})  # type: ignore[no-any-return]


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


async def _pathsend(cycle: Any, framing: Framing, message: Any) -> None:
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if not _check_state(cycle, PATHSEND):
        return
    # Opening can wait for the disk: on the event loop only when the kernel has the path cached.
    opened = zcio.open_cached_stat(message["path"])
    if opened is None:
        file, size = (await _open_in_thread(message["path"])).file, None
    else:
        file, size = opened[0], opened[1].st_size
    with file:
        # The fd, not the file object: the server owns the file, its position does not matter.
        await _body(cycle, framing, file.fileno(), 0, size, more_body=False)


async def _open_in_thread(path: Any) -> zcio.asgi.Opened:
    """Open ``path`` in a worker thread, letting zcio learn its filesystem. A cancellation
    meanwhile is raised at once (uvicorn cancels with ``Task.cancel()``); the file the thread
    still opens is then closed. Anything but a regular file is refused with
    :class:`zcio.asgi.NotARegularFileError` (the response then fails, before any byte of the
    body)."""
    return await zcio.asgi.open_in_thread(_open_learning, path, abandon_on_cancel=True)


#: What the worker thread runs (a name of this module's, so that a test can slow it down).
_open_learning = zcio.asgi.open_regular


async def _zerocopysend(cycle: Any, framing: Framing, message: Any) -> None:
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if not _check_state(cycle, ZEROCOPYSEND):
        return
    file = message["file"]
    offset = message.get("offset")
    if offset is None:  # the spec: from the file's current position, which moves on
        offset = file.tell() if hasattr(file, "tell") else os.lseek(file, 0, os.SEEK_CUR)
    elif not isinstance(file, int):
        # An explicit offset, as sendfile(2) takes one: the file's position is not used, and
        # zcio.send_file given the fd leaves it alone (no lseek to put it back).
        file = file.fileno()
    await _body(
        cycle,
        framing,
        file,
        offset,
        message.get("count"),
        more_body=message.get("more_body", False),
    )


async def _body(
    cycle: Any,
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
        cork = _corked(cycle.transport) if count >= CORK_FROM else None
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
        finally:
            if cork is not None:
                _uncork(cork)
        if after:
            cycle.transport.write(b"".join(after))
    await _complete(cycle, more_body)


#: Bodies from this size on are sent with TCP_CORK set, as nginx's ``tcp_nopush``: the kernel
#: then sends full segments, and the client is woken half as often (bench/http_files.py measured
#: the server's CPU per GiB at about 0.5 s without it).
CORK_FROM = 128 << 10


def _corked(transport: Any) -> Any:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    except (OSError, ValueError):
        return None
    return sock


def _uncork(sock: Any) -> None:
    # Uncorking pushes out what is left at once: no 200 ms wait for the last partial segment.
    # A transport closed meanwhile leaves a socket object without an fd (ValueError, uvloop).
    with contextlib.suppress(OSError, ValueError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
