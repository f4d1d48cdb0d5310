"""The adapter for trio's ``SocketStream`` and ``SSLStream``: the only module of zcio that
imports trio, loaded by the registry only when trio is imported already (a trio object
cannot exist otherwise).

The private state read here, each read guarded: ``_send_conflict_detector`` and
``_receive_conflict_detector``, held while zcio writes or reads, so a concurrent
``send_all``/``receive_some`` on the same stream raises ``trio.BusyResourceError``; and the
send detector's ``_held`` flag, read by the small-send path (another task is mid-``send_all``
while it is set).
"""

from __future__ import annotations

from contextlib import ExitStack

import trio

from .._endpoint import describe
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno
from ._small import SmallDestination, remembered, stream_socket

__all__ = [
    "BROKEN_ERRORS",
    "CLOSED_ERRORS",
    "TrioSink",
    "TrioTap",
    "in_trio_run",
    "open_sink",
    "open_tap",
    "small_send_destination",
    "unwrap",
]

CLOSED_ERRORS: tuple[type[BaseException], ...] = (trio.ClosedResourceError,)
BROKEN_ERRORS: tuple[type[BaseException], ...] = (trio.BrokenResourceError,)


def unwrap(obj: object) -> Target | None:
    if isinstance(obj, trio.SocketStream):
        fd = fileno(obj.socket)
        return Target(obj, Owner.TRIO, fd=fd, closed=fd < 0)
    if isinstance(obj, trio.SSLStream):
        inner = obj.transport_stream
        if isinstance(inner, trio.SocketStream):
            fd = fileno(inner.socket)
            return Target(obj, Owner.TRIO, fd=fd, tls=True, closed=fd < 0)
        return Target(obj, Owner.TRIO, tls=True)
    return None


def _hold(obj: object, name: str, stack: ExitStack) -> None:
    detector = getattr(obj, name, None)
    if detector is not None and hasattr(detector, "__enter__"):
        stack.enter_context(detector)


class TrioSink(Sink):
    """A trio stream. Holds the stream's send conflict detector while zcio writes, so a
    concurrent ``send_all`` on the same stream raises ``trio.BusyResourceError``."""

    def _fence(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_send_conflict_detector", stack)

    async def write_stream(self, data: bytes) -> None:
        stream = self.target.obj
        assert isinstance(stream, trio.abc.SendStream)
        await stream.send_all(data)


class TrioTap(Tap):
    """A trio stream. Holds its receive conflict detector; TLS through ``receive_some``."""

    def _take(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_receive_conflict_detector", stack)

    async def read_stream(self, limit: int) -> bytes:
        stream = self.target.obj
        assert isinstance(stream, trio.abc.ReceiveStream)
        return bytes(await stream.receive_some(limit))


def open_sink(target: Target) -> Sink:
    return TrioSink(target, describe(target))


def open_tap(target: Target) -> Tap:
    return TrioTap(target, describe(target))


def small_send_destination(obj: object) -> SmallDestination | None:
    """The fd and description of ``obj`` if it is a trio ``SocketStream`` over an open
    plaintext TCP or Unix stream socket that no task is sending to: its send conflict detector
    is provably not held (so no ``send_all`` is between two of its awaits, with bytes still to
    send). None otherwise, and for every other object. The socket's description is remembered
    while the stream lives; the detector and the fd are checked on every call."""
    if not isinstance(obj, trio.SocketStream):
        return None
    detector = getattr(obj, "_send_conflict_detector", None)
    if getattr(detector, "_held", None) is not False:
        return None  # busy, or a trio that keeps it otherwise: cannot tell, so decline
    entry = remembered(obj, _small_send_entry)
    if entry is None or fileno(obj.socket) != entry[0]:
        return None
    return entry


def _small_send_entry(obj: object) -> SmallDestination | None:
    assert isinstance(obj, trio.SocketStream)
    return stream_socket(fileno(obj.socket), Owner.TRIO.value)


def in_trio_run() -> bool:
    """Whether the calling code runs inside ``trio.run``."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True
