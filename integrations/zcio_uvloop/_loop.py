"""``Loop``: uvloop's loop plus ``loop.sendfile`` and ``loop.sock_sendfile``.

uvloop's own loop raises ``NotImplementedError`` for both (uvloop issue 228), so aiohttp's
``FileResponse`` and everything else that calls them reads the file in a worker thread on
uvloop. This subclass keeps every uvloop method as it is and adds the two, shaped like
``asyncio.BaseEventLoop``'s: ``sendfile`` tries ``_sendfile_native`` and, where that raises
``SendfileNotAvailableError``, ``_sendfile_fallback``. Both run ``zcio_asyncio.sendfile``
(zcio's ``send_file`` underneath), so no second sendfile lives here; what this module adds is
the loop's side of asyncio's contract: which transports take the native path, paused reading,
asyncio's exception types, and a transport aborted when its file shrinks under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from asyncio import constants
from typing import IO, Any, BinaryIO, cast

import uvloop
import uvloop.loop

import zcio
import zcio_asyncio

__all__ = ["Loop"]

_Mode = constants._SendfileMode

#: uvloop's transports carry no ``_sendfile_compatible``; this is what asyncio's own transports
#: of the same kind declare, except the write end of a pipe, which zcio can send into natively.
_uv: Any = uvloop.loop  # the transport classes are not in uvloop's type stubs
_UV_MODES: tuple[tuple[type[Any], _Mode], ...] = (
    (_uv.TCPTransport, _Mode.TRY_NATIVE),
    (_uv.UnixTransport, _Mode.TRY_NATIVE),
    (_uv.WriteUnixTransport, _Mode.TRY_NATIVE),
    (_uv._SSLProtocolTransport, _Mode.FALLBACK),
)


def _sendfile_mode(transport: Any) -> _Mode:
    mode = getattr(transport, "_sendfile_compatible", None)
    if isinstance(mode, _Mode):
        return mode
    for kind, kind_mode in _UV_MODES:
        if isinstance(transport, kind):
            return kind_mode
    return _Mode.UNSUPPORTED


def _as_connection_error(exc: zcio.TransferError) -> OSError:
    """asyncio reports a peer that went away as ``ConnectionError`` (``ConnectionResetError``,
    ``BrokenPipeError``); zcio as ``BrokenDestination``/``ClosedDestination``, with the
    ``OSError`` as the cause. A new exception of the cause's kind, so the chain has no loop."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno is not None:
        kind = type(cause) if isinstance(cause, ConnectionError) else ConnectionResetError
        return kind(cause.errno, cause.strerror)
    return ConnectionResetError(str(exc))


def _pause_reading(transport: Any) -> bool:
    """Pause a transport that is reading; whether it was (and so must be resumed)."""
    try:
        if not transport.is_reading():
            return False
        transport.pause_reading()
    except (AttributeError, NotImplementedError):  # write-only: a pipe's end says "reading"
        return False
    return True


def _size(file: BinaryIO) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


class Loop(uvloop.Loop):
    """``uvloop.Loop`` with ``sendfile`` and ``sock_sendfile``; everything else is uvloop's.

    Create it with :func:`zcio_uvloop.new_event_loop` (or let :func:`zcio_uvloop.run`,
    :class:`zcio_uvloop.EventLoopPolicy` or uvicorn's ``--loop zcio_uvloop:new_event_loop``
    do it).
    """

    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool | None = True,
    ) -> int:
        """``asyncio.AbstractEventLoop.sock_sendfile``: send ``file`` to the non-blocking stream
        socket ``sock`` with ``sendfile(2)``; return the bytes sent.

        ``count`` bytes from ``offset`` (``None``: to the end); fewer when the file ends first.
        The file's position ends at ``offset`` plus the bytes sent, also after an error or a
        cancellation. ``TypeError`` for an ``ssl.SSLSocket``; ``ValueError`` for a blocking or
        non-stream socket, a text-mode file, a negative or non-int offset, a count that is not
        a positive int, with asyncio's messages. Where ``sendfile(2)`` cannot be used the file
        is copied through user space, or with ``fallback=False``
        ``asyncio.SendfileNotAvailableError`` is raised before any byte moves. A cancelled call
        may have sent some, all or none of the bytes; the file's position says how many.
        """
        return await zcio_asyncio.sock_sendfile(
            sock, cast(BinaryIO, file), offset, count, fallback=fallback is not False
        )

    async def sendfile(
        self,
        transport: asyncio.BaseTransport,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        """``asyncio.AbstractEventLoop.sendfile``: send ``file`` to ``transport``; return the
        bytes sent.

        The bytes already written to the transport go out first; the transport stops reading
        until the call ends (and then resumes if it was reading). TCP and UNIX stream
        transports and pipes take ``sendfile(2)`` (``_sendfile_native``); TLS transports, and
        plain ones where ``sendfile(2)`` is refused, a user-space copy (``_sendfile_fallback``).
        Counted in ``zcio.stats()`` either way.

        Errors, as asyncio's: ``RuntimeError`` for a closing transport, for a transport that
        cannot send files at all (datagram), and with ``fallback=False`` for a TLS transport;
        ``asyncio.SendfileNotAvailableError`` with ``fallback=False`` where ``sendfile(2)`` is
        refused for a plain one, before any byte moves; ``TypeError``/``ValueError`` for bad
        arguments; ``ConnectionError`` when the peer goes away, after the bytes it took.

        One part of asyncio's contract cannot hold on uvloop: its transports are immutable
        types, so a ``transport.write()`` made while this runs is not refused (asyncio raises
        ``RuntimeError``); its bytes may land in the middle of the file's.

        When ``count`` bytes were there at the start and the file shrinks under the call, the
        transport is aborted (as nginx does) before the short count is returned: a peer that
        was promised a length must not wait for bytes that will never come, nor read the next
        response as the rest of this one.

        Cancellation: may have sent some, all or none of the bytes; the file's position ends at
        ``offset`` plus what was sent. Reading is restored as after any other end.
        """
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        file = cast(BinaryIO, file)
        mode = _sendfile_mode(transport)
        if mode is _Mode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is _Mode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except asyncio.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not supported for transport "
                f"{transport!r}"
            )
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(
        self, transp: Any, file: BinaryIO, offset: int, count: int | None
    ) -> int:
        """``sendfile(2)`` or ``SendfileNotAvailableError``, raised before any byte moves."""
        return await self._send(transp, file, offset, count, fallback=False)

    async def _sendfile_fallback(
        self, transp: Any, file: BinaryIO, offset: int, count: int | None
    ) -> int:
        """zcio with its fallback allowed: the user-space copy where ``sendfile(2)`` cannot run
        (TLS, a refusal), ``sendfile(2)`` where it can."""
        return await self._send(transp, file, offset, count, fallback=True)

    async def _send(
        self, transp: Any, file: BinaryIO, offset: int, count: int | None, *, fallback: bool
    ) -> int:
        size = _size(file) if count is not None else None
        resume_reading = _pause_reading(transp)
        try:
            sent = await zcio_asyncio.sendfile(transp, file, offset, count, fallback=fallback)
        except RuntimeError as exc:
            if isinstance(exc.__cause__, zcio.ZeroCopyUnavailable):
                raise asyncio.SendfileNotAvailableError(str(exc.__cause__)) from exc.__cause__
            raise
        except (zcio.BrokenDestination, zcio.ClosedDestination) as exc:
            raise _as_connection_error(exc) from exc
        finally:
            if resume_reading and not transp.is_closing():
                transp.resume_reading()
        if count is not None and sent < count and size is not None and offset + count <= size:
            # The file shrank while it was sent: the peer cannot get what it was promised.
            with contextlib.suppress(Exception):
                transp.abort()
        return sent
