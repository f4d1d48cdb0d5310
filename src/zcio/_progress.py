"""The caller's window onto a running transfer."""

from __future__ import annotations

__all__ = ["Progress"]


class Progress:
    """Live byte counts of one transfer; pass one in to know where a transfer stopped.

    zcio updates it after every system call, on the task that runs the transfer, so after a
    cancellation or an exception it says exactly what happened::

        progress = zcio.Progress()
        with anyio.move_on_after(1):
            await zcio.send_file(sock, "big.iso", progress=progress)
        print(progress.sent, "bytes reached the socket")

    ``taken`` counts bytes consumed from the source, ``sent`` bytes handed to the destination
    (for a socket: accepted into the kernel's send buffer). They differ only while bytes sit in
    an intermediate kernel pipe (``splice``); ``stranded`` is that difference.
    """

    __slots__ = ("method", "sent", "taken")

    def __init__(self) -> None:
        self.sent = 0
        self.taken = 0
        self.method: str | None = None

    @property
    def stranded(self) -> int:
        """Bytes taken from the source that did not reach the destination."""
        return self.taken - self.sent

    def __repr__(self) -> str:
        return f"Progress(sent={self.sent}, taken={self.taken}, method={self.method!r})"
