"""hypercorn's asyncio TCP server (the asyncio and uvloop workers), sending file bodies with
:func:`zcio.send_file`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from hypercorn.asyncio import tcp_server
from hypercorn.events import Closed, Event

import zcio

from ._events import FileData
from ._h11 import FileSender
from ._socket import cork, reset_on_close, uncork

__all__ = ["TCPServer"]

_Base = tcp_server.TCPServer


class TCPServer(FileSender, _Base):
    """hypercorn's asyncio ``TCPServer``, which also sends the file bodies of zcio_hypercorn's
    h11 protocol: under hypercorn's send lock, after the bytes already written (the response
    head, which zcio flushes from the transport's buffer first), with ``sendfile(2)``
    (a user-space copy where the kernel refuses it: zcio decides, and its counters say which).

    A client that goes away closes the stream, as hypercorn does for a failed write. A file that
    ends before the bytes the framing promised, a cancellation or any other error during a
    file body aborts the connection with a reset: the client must not take a short body for a
    whole one, or read the next response as the rest of it.
    """

    def zcio_sends_files(self) -> bool:
        writer = self.writer
        return (
            isinstance(writer, asyncio.StreamWriter)
            and writer.get_extra_info("sslcontext") is None
            and writer.get_extra_info("socket") is not None
        )

    def protocol_send(self, event: Event) -> Coroutine[Any, Any, None]:
        if type(event) is FileData:
            return self._send_file(event)
        return _Base.protocol_send(self, event)

    async def _send_file(self, event: FileData) -> None:
        async with self.send_lock:
            writer = self.writer
            if writer.is_closing():
                await self.protocol.handle(Closed())
                return
            sock = cork(writer.get_extra_info("socket"), event.count)
            try:
                if event.before:
                    writer.write(event.before)
                await zcio.send_file(writer, event.file, offset=event.offset, count=event.count)
                if event.after:
                    writer.write(event.after)
                    await writer.drain()
            except zcio.IncompleteTransfer as exc:
                self._abort()
                await self.protocol.handle(Closed())
                raise RuntimeError(
                    f"file ended after {exc.sent} of {event.count} promised bytes; "
                    "connection aborted"
                ) from exc
            except (zcio.BrokenDestination, zcio.ClosedDestination, ConnectionError):
                self._abort()
                await self.protocol.handle(Closed())
            except BaseException:
                self._abort()
                raise
            finally:
                uncork(sock)

    def _abort(self) -> None:
        reset_on_close(self.writer.get_extra_info("socket"))
        self.writer.transport.abort()
