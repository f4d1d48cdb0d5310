"""trio's ``SocketStream`` and ``SSLStream``. The only module of zcio that imports trio."""

from __future__ import annotations

from contextlib import ExitStack

import trio

from .._objects import Owner, Target, _fileno
from .._sinks import Sink

__all__ = ["TrioSink", "unwrap_trio"]


def unwrap_trio(obj: object) -> Target | None:
    if isinstance(obj, trio.SocketStream):
        fd = _fileno(obj.socket)
        return Target(obj, Owner.TRIO, fd=fd, closed=fd < 0)
    if isinstance(obj, trio.SSLStream):
        inner = obj.transport_stream
        if isinstance(inner, trio.SocketStream):
            fd = _fileno(inner.socket)
            return Target(obj, Owner.TRIO, fd=fd, tls=True, closed=fd < 0)
        return Target(obj, Owner.TRIO, tls=True)
    return None


class TrioSink(Sink):
    """A trio stream. Holds the stream's send conflict detector while zcio writes, so a
    concurrent ``send_all`` on the same stream raises ``trio.BusyResourceError``."""

    def _fence(self, stack: ExitStack) -> None:
        detector = getattr(self.target.obj, "_send_conflict_detector", None)
        if detector is not None and hasattr(detector, "__enter__"):
            stack.enter_context(detector)

    async def write_stream(self, data: bytes) -> None:
        stream = self.target.obj
        assert isinstance(stream, trio.abc.SendStream)
        await stream.send_all(data)
