"""The adapter for plain objects: fds, paths, sockets and file objects.

Nothing here buffers bytes or guards writers, so the sink and tap are the plain ones
(``_sinks.Sink``, ``_taps.Tap``); a socket or pipe must be non-blocking. The errors these
raise are ``OSError``, which ``_errors`` knows already.
"""

from __future__ import annotations

import io
import os
import socket
import ssl

from .._endpoint import describe, require_nonblocking
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno
from ._small import SmallDestination, nonblocking, remembered, stream_socket

__all__ = [
    "BROKEN_ERRORS",
    "CLOSED_ERRORS",
    "open_sink",
    "open_tap",
    "small_send_destination",
    "unwrap",
    "unwrap_file",
]

CLOSED_ERRORS: tuple[type[BaseException], ...] = ()
BROKEN_ERRORS: tuple[type[BaseException], ...] = ()


def unwrap(obj: object) -> Target | None:
    """An fd, a path or a socket (not an ``ssl.SSLSocket``: see ``_ssl``); None otherwise."""
    if isinstance(obj, bool):
        raise TypeError("expected a file descriptor, file, socket, stream or path, got a bool")
    if isinstance(obj, int):
        if obj < 0:
            raise ValueError(f"file descriptor must be >= 0, got {obj}")
        return Target(obj, Owner.FD, fd=obj)
    if isinstance(obj, str | bytes | os.PathLike):
        return Target(obj, Owner.PATH, path=obj)
    if isinstance(obj, socket.socket):
        fd = fileno(obj)
        return Target(obj, Owner.SOCKET, fd=fd, closed=fd < 0)
    return None


def unwrap_file(obj: object) -> Target | None:
    """Anything else with ``fileno()``: a file object. Tried last, after the stream adapters.
    Raises ``TypeError`` for a text file and for one without an fd under it."""
    if not hasattr(obj, "fileno"):
        return None
    if isinstance(obj, io.TextIOBase):
        raise TypeError("file must be opened in binary mode, not text mode")
    if getattr(obj, "closed", False) is True:
        return Target(obj, Owner.FILE, closed=True)
    fd = fileno(obj)
    if fd < 0:  # open, but nothing under it: io.BytesIO, a wrapper of a stream, ...
        raise TypeError(
            f"{type(obj).__qualname__} has no file descriptor (its fileno() fails): zcio "
            "moves bytes between file descriptors; pass a real file, socket or stream"
        )
    return Target(obj, Owner.FILE, fd=fd)


def open_sink(target: Target) -> Sink:
    """The plain sink; ``ValueError`` for a blocking socket or pipe."""
    sink = Sink(target, describe(target))
    require_nonblocking(sink.info, target)
    return sink


def open_tap(target: Target) -> Tap:
    """The plain tap; ``ValueError`` for a blocking socket or pipe."""
    info = describe(target)
    tap = Tap(target, info)
    require_nonblocking(info, target)
    return tap


def small_send_destination(obj: object) -> SmallDestination | None:
    """The fd and description of ``obj`` if it is a ``socket.socket`` (never an
    ``ssl.SSLSocket``) or an fd of a plaintext TCP or Unix stream socket, open and non-blocking
    now: what the plain sink would write to with nothing to flush and no guard to take (another
    zcio transfer's claim is checked by the caller). None for everything else.

    A socket object's description is remembered while it lives, its fd and ``O_NONBLOCK``
    checked on every call; a bare fd is probed every time (its number may be reused).
    """
    if isinstance(obj, int) and not isinstance(obj, bool):
        entry = stream_socket(obj, Owner.FD.value)
        return entry if entry is not None and entry[1].nonblocking else None
    if not isinstance(obj, socket.socket) or isinstance(obj, ssl.SSLSocket):
        return None
    entry = remembered(obj, _socket_entry)
    if entry is None or fileno(obj) != entry[0] or not nonblocking(entry[0]):
        return None
    return entry


def _socket_entry(obj: object) -> SmallDestination | None:
    return stream_socket(fileno(obj), Owner.SOCKET.value)
