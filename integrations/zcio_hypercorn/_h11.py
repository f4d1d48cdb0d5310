"""hypercorn's h11 protocol, framing file bodies with h11 without handing it their bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import h11
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Event as StreamEvent

from ._events import FileBody, FileData, Placeholder, as_data
from ._stream import Advertising

__all__ = ["H11Protocol", "FileSender"]

_Base = hypercorn_h11.H11Protocol


class FileSender:
    """What a TCP server that can send :class:`~zcio_hypercorn._events.FileData` is: it says,
    per connection, whether it can (plaintext, a socket zcio can write to)."""

    def zcio_sends_files(self) -> bool:
        raise NotImplementedError


class H11Protocol(_Base):
    """hypercorn's ``H11Protocol``; on a plaintext connection of a TCP server that can send
    files (zcio_hypercorn's), its HTTP/1.x requests are offered ``http.response.zerocopysend``
    and ``http.response.pathsend``. Anywhere else (TLS, another server, hypercorn's own tests'
    fake ones) it is hypercorn's protocol exactly.

    A file body is framed by h11 (``send_with_data_passthrough`` with a placeholder that has
    the body's length: h11 counts it against Content-Length, or writes the chunk's size line
    and CRLF around it) and goes to the TCP server as one event.
    """

    def __init__(
        self,
        app: Any,
        config: Any,
        context: Any,
        task_group: Any,
        connection_state: Any,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        owner = getattr(send, "__self__", None)
        if not ssl and isinstance(owner, FileSender) and owner.zcio_sends_files():
            task_group = Advertising(task_group)
        super().__init__(
            app, config, context, task_group, connection_state, ssl, client, server, send
        )

    def stream_send(self, event: StreamEvent) -> Coroutine[Any, Any, None]:
        if type(event) is FileBody:
            return self._send_file(event)
        return _Base.stream_send(self, event)

    async def _send_file(self, event: FileBody) -> None:
        placeholder = Placeholder(event.count)
        connection = self.connection
        assert isinstance(connection, h11.Connection)  # never a WebSocket's: only HTTP streams
        try:
            pieces: list[Any] | None = connection.send_with_data_passthrough(
                h11.Data(data=as_data(placeholder))
            )
        except h11.LocalProtocolError:
            # As hypercorn's _send_h11_event: too many bytes for the Content-Length is the
            # app's error, unless the client already broke the connection.
            if connection.their_state != h11.ERROR:
                raise
            return
        assert pieces is not None  # None only for a ConnectionClosed event
        at = next(i for i, piece in enumerate(pieces) if piece is placeholder)
        before = b"".join(pieces[:at])
        after = b"".join(pieces[at + 1 :])
        await self.send(FileData(event.file, event.offset, event.count, before, after))
