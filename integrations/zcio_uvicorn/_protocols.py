"""uvicorn's HTTP/1.1 protocols, with the ASGI zero-copy extensions."""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http import h11_impl, httptools_impl

from ._zerocopy import advertise, cycle_class

__all__ = ["H11Protocol", "HttpToolsProtocol"]


class _Placeholder:
    """Stands for ``count`` body bytes in h11's framing; ``sendfile`` writes the real ones."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


def _h11_framing(cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]:
    # h11 counts the bytes against Content-Length (or writes the chunk's size line and CRLF)
    # and hands our placeholder back in place of the data: see h11's "sendfile" docs.
    placeholder = _Placeholder(count)
    data: Any = placeholder  # h11 only takes len() of it and passes it through
    pieces = cycle.conn.send_with_data_passthrough(h11.Data(data=data))
    at = next(i for i, piece in enumerate(pieces) if piece is placeholder)
    return pieces[:at], pieces[at + 1 :]


def _httptools_framing(cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]:
    # The bookkeeping httptools' cycle.send does for a body of `count` bytes.
    if cycle.chunked_encoding:
        return [b"%x\r\n" % count], [b"\r\n"]
    if count > cycle.expected_content_length:
        raise RuntimeError("Response content longer than Content-Length")
    cycle.expected_content_length -= count
    return [], []


_H11Cycle = cycle_class(h11_impl.RequestResponseCycle, _h11_framing)
_HttpToolsCycle = cycle_class(httptools_impl.RequestResponseCycle, _httptools_framing)


class H11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol, advertising and serving ``http.response.zerocopysend`` and
    ``http.response.pathsend`` on plaintext connections with ``sendfile(2)``.

    ``uvicorn app:app --http zcio_uvicorn:H11Protocol``
    """

    def handle_events(self) -> None:
        super().handle_events()
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            advertise(self, cycle, _H11Cycle)


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, advertising and serving ``http.response.zerocopysend`` and
    ``http.response.pathsend`` on plaintext connections with ``sendfile(2)``.

    ``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol``
    """

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None:  # a pipelined request's cycle is created here too, then queued
            advertise(self, cycle, _HttpToolsCycle)
