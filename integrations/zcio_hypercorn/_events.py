"""The two events zcio_hypercorn adds to hypercorn's chain: a file body from the HTTP stream to
the h11 protocol, and framed file bytes from the protocol to the TCP server.

hypercorn passes its own events down the same chain (``Body`` to the protocol, ``RawData`` to
the server); these travel beside them, through the same ``send`` callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from hypercorn.events import Event as ServerEvent
from hypercorn.protocol.events import Event as StreamEvent

__all__ = ["FileBody", "FileData", "Placeholder"]

#: A file: its fd, or a binary file object whose position moves on as bytes are sent.
File = int | IO[bytes]


@dataclass(frozen=True)
class FileBody(StreamEvent):
    """``count`` body bytes of ``file`` from ``offset`` (stream -> protocol). ``count`` > 0."""

    file: File
    offset: int
    count: int


@dataclass(frozen=True)
class FileData(ServerEvent):
    """``count`` bytes of ``file`` from ``offset``, framed: ``before`` and ``after`` are the
    framing bytes h11 wrote around them (a chunk's size line and CRLF, or nothing) (protocol ->
    TCP server)."""

    file: File
    offset: int
    count: int
    before: bytes
    after: bytes


class Placeholder:
    """Stands for ``count`` body bytes in h11's framing; ``sendfile`` writes the real ones."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Placeholder({self.count})"


def as_data(placeholder: Placeholder) -> Any:
    """h11 takes ``len()`` of body data and passes it through ``send_with_data_passthrough``."""
    return placeholder
