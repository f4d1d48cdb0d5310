"""zcio's exceptions, and the one place where OS errors become them.

Every transfer failure after arguments were accepted is a :class:`TransferError` carrying how
many bytes reached the destination, so an HTTP server that promised a Content-Length can decide
to abort the connection. The destination errors also subclass anyio's resource errors, so code
written against anyio streams catches them without knowing zcio.
"""

from __future__ import annotations

import errno
import sys

import anyio

__all__ = [
    "BrokenDestination",
    "BrokenSource",
    "BusyError",
    "ClosedDestination",
    "ClosedSource",
    "IncompleteTransfer",
    "SourceFailed",
    "TransferError",
    "ZcioError",
    "ZeroCopyUnavailable",
]


class ZcioError(Exception):
    """Base class of every error zcio raises on its own account."""


class ZeroCopyUnavailable(ZcioError):
    """``fallback=False`` was asked for and no zero-copy method can move these bytes.

    Raised before any byte moved. :attr:`reasons` says, for each method passed over, why.
    """

    def __init__(self, message: str, reasons: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class BusyError(ZcioError, anyio.BusyResourceError):
    """Another zcio transfer is already writing to this destination (or reading this source).

    Raised before any byte moved; the other transfer is not disturbed.
    """

    def __init__(self, what: str, action: str = "sending to") -> None:
        # anyio.BusyResourceError wants an action; keep our own, fuller message.
        Exception.__init__(self, f"another task is already {action} {what}")


class TransferError(ZcioError):
    """A transfer stopped part way. :attr:`sent` bytes reached the destination before it did.

    :attr:`taken` is how many bytes were consumed from the source; more than ``sent`` only when
    a splice left bytes in its pipe (see :attr:`zcio.Progress.stranded`).
    """

    def __init__(self, message: str, sent: int, taken: int | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.taken = sent if taken is None else taken


class IncompleteTransfer(TransferError):
    """The source ended before ``count`` bytes were sent (for example, the file shrank).

    The destination received exactly :attr:`sent` bytes, fewer than :attr:`expected`. A server
    that announced a length must close the connection rather than go on.
    """

    def __init__(self, sent: int, expected: int) -> None:
        super().__init__(f"source ended after {sent} of {expected} bytes", sent)
        self.expected = expected


class BrokenDestination(TransferError, anyio.BrokenResourceError):
    """The peer or the OS broke the destination (reset, broken pipe) mid-transfer.

    The underlying ``OSError`` (or backend error) is the ``__cause__``.
    """


class ClosedDestination(TransferError, anyio.ClosedResourceError):
    """The destination was closed on our side (by this process) before or during the transfer."""


class BrokenSource(TransferError, anyio.BrokenResourceError):
    """Reading the source failed mid-transfer (a connection reset by its peer, say).

    The underlying ``OSError`` (or backend error) is the ``__cause__``.
    """


_BROKEN_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED, errno.ESHUTDOWN}
)


class ClosedSource(TransferError, anyio.ClosedResourceError):
    """The source was closed on our side (by this process) before or during the transfer."""


class SourceFailed(Exception):
    """Internal: wraps an error raised while reading the source, so that the one translation
    site (``translate``) knows which side it came from."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _is_closed(exc: BaseException) -> bool:
    trio = sys.modules.get("trio")
    return (
        isinstance(exc, anyio.ClosedResourceError)
        or (isinstance(exc, OSError) and exc.errno == errno.EBADF)
        or (trio is not None and isinstance(exc, trio.ClosedResourceError))
    )


def _is_broken(exc: BaseException) -> bool:
    trio = sys.modules.get("trio")
    return (
        isinstance(exc, anyio.BrokenResourceError | ConnectionError)
        or (isinstance(exc, OSError) and exc.errno in _BROKEN_ERRNOS)
        or (trio is not None and isinstance(exc, trio.BrokenResourceError))
    )


def translate(exc: BaseException, sent: int, taken: int) -> BaseException | None:
    """What ``exc``, raised by a transfer, means for a zcio caller; None: leave it as it is.

    Destination errors become :class:`BrokenDestination`/:class:`ClosedDestination`, source
    errors (wrapped in :class:`SourceFailed` where they happen) :class:`BrokenSource`; the
    original is kept as ``__cause__`` by the caller.
    """
    if isinstance(exc, TransferError):
        return None
    if isinstance(exc, SourceFailed):
        inner = exc.exc
        if _is_closed(inner):
            return ClosedSource(f"source closed after {taken} bytes", sent, taken)
        if _is_broken(inner):
            return BrokenSource(f"source broken after {taken} bytes: {inner}", sent, taken)
        return inner
    if _is_closed(exc):
        return ClosedDestination(f"destination closed after {sent} bytes", sent, taken)
    if _is_broken(exc):
        return BrokenDestination(f"destination broken after {sent} bytes: {exc}", sent, taken)
    return None
