"""hypercorn's trio TCP server (the trio worker), sending file bodies with
:func:`zcio.send_file`."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import trio
from hypercorn.events import Closed, Event
from hypercorn.trio import tcp_server

import zcio

from ._events import FileData
from ._h11 import FileSender
from ._socket import cork, reset_on_close, uncork

__all__ = ["TCPServer"]

_Base = tcp_server.TCPServer


class TCPServer(FileSender, _Base):
    """hypercorn's trio ``TCPServer``, which also sends the file bodies of zcio_hypercorn's h11
    protocol with :func:`zcio.send_file`, under hypercorn's send lock.

    hypercorn shields each write from cancellation; a file body is not shielded (a 1 GiB file
    would hold up a shutdown's grace period): a cancellation during it aborts the connection.
    So do a file that ends before the promised count (``RuntimeError`` to the app) and any
    other error during the body; a client that goes away closes the stream, as hypercorn does.
    """

    def zcio_sends_files(self) -> bool:
        return isinstance(self.stream, trio.SocketStream)

    def protocol_send(self, event: Event) -> Coroutine[Any, Any, None]:
        if type(event) is FileData:
            return self._send_file(event)
        return _Base.protocol_send(self, event)

    async def _send_file(self, event: FileData) -> None:
        async with self.send_lock:
            stream: Any = self.stream
            sock = cork(stream.socket, event.count)
            try:
                if event.before:
                    with trio.CancelScope(shield=True):
                        await stream.send_all(event.before)
                await zcio.send_file(stream, event.file, offset=event.offset, count=event.count)
                if event.after:
                    with trio.CancelScope(shield=True):
                        await stream.send_all(event.after)
            except zcio.IncompleteTransfer as exc:
                await self._abort()
                await self.protocol.handle(Closed())
                raise RuntimeError(
                    f"file ended after {exc.sent} of {event.count} promised bytes; "
                    "connection aborted"
                ) from exc
            except (
                zcio.BrokenDestination,
                zcio.ClosedDestination,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                await self._abort()
                await self.protocol.handle(Closed())
            except BaseException:
                await self._abort()
                raise
            finally:
                uncork(sock)

    async def _abort(self) -> None:
        reset_on_close(getattr(self.stream, "socket", None))
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
