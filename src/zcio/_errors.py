"""zcio's exceptions, and the one place where OS errors become them (:func:`map_exceptions`).

Every transfer failure after arguments were accepted is a :class:`TransferError` carrying how
many bytes reached the destination, so an HTTP server that promised a Content-Length can decide
to abort the connection. The destination errors also subclass anyio's resource errors, so code
written against anyio streams catches them without knowing zcio.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

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
    "map_exceptions",
    "register_resource_errors",
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
    site (``map_exceptions``) knows which side it came from."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


#: What each loaded adapter calls "closed on our side" and "broken by the peer or the OS",
#: beyond ``OSError``'s errnos: anyio's as soon as ``_adapters`` is imported, trio's once the
#: trio adapter is loaded. Tuples, replaced whole, so a reader never sees one half-updated.
_closed_types: tuple[type[BaseException], ...] = ()
_broken_types: tuple[type[BaseException], ...] = (ConnectionError,)


def register_resource_errors(
    closed: tuple[type[BaseException], ...], broken: tuple[type[BaseException], ...]
) -> None:
    """Add an adapter's closed and broken exception types (called by ``_adapters`` when it
    loads one); the types already known are not added twice."""
    global _closed_types, _broken_types
    _closed_types += tuple(t for t in closed if t not in _closed_types)
    _broken_types += tuple(t for t in broken if t not in _broken_types)


def _is_closed(exc: BaseException) -> bool:
    return isinstance(exc, _closed_types) or (isinstance(exc, OSError) and exc.errno == errno.EBADF)


def _is_broken(exc: BaseException) -> bool:
    return isinstance(exc, _broken_types) or (
        isinstance(exc, OSError) and exc.errno in _BROKEN_ERRNOS
    )


def _translate(exc: BaseException, sent: int, taken: int) -> BaseException | None:
    """What ``exc``, raised by a transfer, means for a zcio caller; None: leave it as it is.

    Destination errors become :class:`BrokenDestination`/:class:`ClosedDestination`, source
    errors (wrapped in :class:`SourceFailed` where they happen) :class:`BrokenSource`; the
    original is kept as ``__cause__`` by :func:`map_exceptions`.
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


class Counts(Protocol):
    """What :func:`map_exceptions` reports: bytes delivered and bytes taken from the source."""

    @property
    def sent(self) -> int: ...

    @property
    def taken(self) -> int: ...


@contextmanager
def map_exceptions(
    counts: Counts, only: tuple[type[BaseException], ...] = (Exception,)
) -> Iterator[None]:
    """Turn what escapes the block into zcio's exception for it, with ``counts``' numbers.

    The one place errors are translated (httpcore's ``map_exceptions`` is the model): an
    exception of one of the ``only`` types is given to :func:`_translate`; what it maps is
    raised from the original (kept as ``__cause__``), a :class:`SourceFailed` it does not map
    is unwrapped, and anything else goes on unchanged. Cancellation is never touched.
    """
    try:
        yield
    except only as exc:
        cause = exc.exc if isinstance(exc, SourceFailed) else exc
        mapped = _translate(exc, counts.sent, counts.taken)
        if mapped is None:
            raise
        if mapped is cause:
            raise cause.with_traceback(cause.__traceback__) from None
        raise mapped from cause
