"""The adapter for plain objects: fds, paths, sockets and file objects.

Nothing here buffers bytes or guards writers, so the sink and tap are the plain ones
(``_sinks.Sink``, ``_taps.Tap``); a socket or pipe must be non-blocking. The errors these
raise are ``OSError``, which ``_errors`` knows already.
"""

from __future__ import annotations

import io
import os
import socket

from .._endpoint import describe, require_nonblocking
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno

__all__ = ["BROKEN_ERRORS", "CLOSED_ERRORS", "open_sink", "open_tap", "unwrap", "unwrap_file"]

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
