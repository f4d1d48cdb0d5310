"""zcio's exceptions, and the one place where OS errors become them.

Every transfer failure after arguments were accepted is a :class:`TransferError` carrying how
many bytes reached the destination, so an HTTP server that promised a Content-Length can decide
to abort the connection. The destination errors also subclass anyio's resource errors, so code
written against anyio streams catches them without knowing zcio.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from ._progress import Progress

__all__ = [
    "BrokenDestination",
    "BusyError",
    "ClosedDestination",
    "IncompleteTransfer",
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
    """Another task is already sending to this destination through zcio.

    Raised before any byte moved; the other transfer is not disturbed.
    """

    def __init__(self, what: str) -> None:
        # anyio.BusyResourceError wants an action ("sending to"); keep our own message.
        Exception.__init__(self, f"another task is already sending to {what}")


class TransferError(ZcioError):
    """A transfer stopped part way. :attr:`sent` bytes reached the destination before it did."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


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


_BROKEN_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED, errno.ESHUTDOWN}
)


def destination_error(exc: BaseException, sent: int) -> TransferError | None:
    """What ``exc``, raised while writing to a destination, means for a zcio caller.

    Returns None for errors zcio does not translate (they propagate unchanged).
    """
    if isinstance(exc, TransferError):
        return None
    if isinstance(exc, anyio.ClosedResourceError) or (
        isinstance(exc, OSError) and exc.errno == errno.EBADF
    ):
        return ClosedDestination(f"destination closed after {sent} bytes", sent)
    if isinstance(exc, anyio.BrokenResourceError | ConnectionError) or (
        isinstance(exc, OSError) and exc.errno in _BROKEN_ERRNOS
    ):
        return BrokenDestination(f"destination broken after {sent} bytes: {exc}", sent)
    trio_error = _trio_destination_error(exc, sent)
    if trio_error is not None:
        return trio_error
    return None


def _trio_destination_error(exc: BaseException, sent: int) -> TransferError | None:
    import sys

    trio = sys.modules.get("trio")
    if trio is None:
        return None
    if isinstance(exc, trio.ClosedResourceError):
        return ClosedDestination(f"destination closed after {sent} bytes", sent)
    if isinstance(exc, trio.BrokenResourceError):
        return BrokenDestination(f"destination broken after {sent} bytes: {exc}", sent)
    return None


@contextmanager
def destination_errors(progress: Progress) -> Iterator[None]:
    """Turn destination failures into zcio errors once, keeping the original as the cause."""
    try:
        yield
    except Exception as exc:
        mapped = destination_error(exc, progress.sent)
        if mapped is None:
            raise
        raise mapped from exc
