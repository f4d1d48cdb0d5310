"""``loop.sock_sendfile`` and ``loop.sendfile`` with their exact contracts, on any loop.

uvloop's loop raises ``NotImplementedError`` for both; the default loop has them but cannot
say how many bytes went out when a call is cancelled. These run zcio's ``send_file``
underneath, so they work on every loop, keep asyncio's argument checks, return values, file
positions and exceptions, and accept a :class:`zcio.Progress` for the exact count.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, BinaryIO

import zcio

__all__ = ["sendfile", "sock_sendfile"]


def _check_params(file: BinaryIO, offset: object, count: object) -> None:
    # The same checks, messages and exception types as asyncio's _check_sendfile_params.
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


async def _send(
    dst: object,
    file: BinaryIO,
    offset: int,
    count: int | None,
    fallback: bool,
    progress: zcio.Progress | None,
) -> int:
    try:
        return await zcio.send_file(
            dst, file, offset=offset, count=count, fallback=fallback, progress=progress
        )
    except zcio.IncompleteTransfer as exc:
        return exc.sent  # asyncio returns what it sent when the file is shorter than count


async def sock_sendfile(
    sock: socket.socket,
    file: BinaryIO,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
    progress: zcio.Progress | None = None,
) -> int:
    """``loop.sock_sendfile(sock, file, offset, count, fallback=...)`` on any loop.

    Sends ``file`` from ``offset`` (``count`` bytes, or to the end) to the non-blocking stream
    socket ``sock`` with ``sendfile(2)``, and returns how many bytes were sent; the file's
    position ends at ``offset`` plus that. Raises ``TypeError`` for an ``ssl.SSLSocket``,
    ``ValueError`` for a blocking or non-stream socket, a text-mode file and bad offsets or
    counts, as asyncio does. When zero-copy is impossible the file is copied through user space;
    with ``fallback=False``, ``asyncio.SendfileNotAvailableError`` instead.

    Cancellation: the file position still ends at ``offset`` plus what was sent; pass a
    :class:`zcio.Progress` to read the count directly.
    """
    if isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    _check_params(file, offset, count)
    try:
        return await _send(sock, file, offset, count, fallback, progress)
    except zcio.ZeroCopyUnavailable as exc:
        raise asyncio.SendfileNotAvailableError(str(exc)) from exc


async def sendfile(
    transport: asyncio.WriteTransport | Any,
    file: BinaryIO,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
    progress: zcio.Progress | None = None,
) -> int:
    """``loop.sendfile(transport, file, offset, count, fallback=...)`` on any loop, uvloop's too.

    Waits until the transport's write buffer is empty, sends ``file`` with ``sendfile(2)``
    directly to its socket (``transport.write`` raises ``RuntimeError`` meanwhile, where the
    transport lets zcio fence it), and returns how many bytes were sent; the file's position
    ends at ``offset`` plus that. TLS transports get the user-space copy; with
    ``fallback=False`` they raise ``RuntimeError`` as asyncio's does. ``RuntimeError`` for a
    closing transport; ``ValueError``/``TypeError`` for a text-mode file and bad offsets or
    counts.

    Cancellation: the file position still ends at ``offset`` plus what was sent; pass a
    :class:`zcio.Progress` to read the count directly.
    """
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    _check_params(file, offset, count)
    try:
        return await _send(transport, file, offset, count, fallback, progress)
    except zcio.ZeroCopyUnavailable as exc:
        raise RuntimeError(
            f"fallback is disabled and native sendfile is not supported for transport {transport!r}"
        ) from exc
