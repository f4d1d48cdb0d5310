"""What sinks and taps share: the described object, and claiming it for one transfer at a time."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from enum import Enum
from types import TracebackType
from typing import ClassVar, Self

from ._errors import BusyError, ClosedDestination
from ._kinds import Kind
from ._probe import FdInfo, describe_fd, describe_target
from ._target import Target

__all__ = [
    "Action",
    "ClaimKey",
    "Endpoint",
    "claim_key",
    "describe",
    "is_claimed",
    "require_nonblocking",
]


class Action(Enum):
    """What a transfer does to an endpoint; the value is the phrase :class:`BusyError` shows."""

    USE = "using"
    SEND = "sending to"
    RECEIVE = "reading from"


#: ``(action, st_dev, st_ino, fd or -1)``: see :func:`claim_key`.
ClaimKey = tuple[Action, int, int, int]

_busy_lock = threading.Lock()
_busy: set[ClaimKey] = set()


class Endpoint:
    """One side of a transfer. Use as ``async with``: entering claims it (``BusyError`` if
    another zcio transfer is doing the same ``action`` to the same socket or pipe, whatever
    fd or wrapper reaches it, or to the same fd of a regular file; see :func:`claim_key`),
    then ``_take``
    puts what the transfer holds on a stack and ``_prepare`` readies the fd; leaving releases
    everything, in reverse order."""

    action: ClassVar[Action] = Action.USE

    def __init__(self, target: Target, info: FdInfo) -> None:
        self.target = target
        self.info = info
        #: The fd the kernel reads or writes: may become a private dup in ``_take``.
        self.fd = target.fd
        self._exit = ExitStack()

    @property
    def tls(self) -> bool:
        return self.info.kind is Kind.TLS

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info}>"

    async def __aenter__(self) -> Self:
        # The stack is live from the start, so that ``_prepare`` (and later waits) can add to
        # it; if entering fails, everything taken so far is released at once.
        self._exit = stack = ExitStack()
        try:
            stack.enter_context(self._claim())
            self._take(stack)
            await self._prepare()
        except BaseException:
            stack.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit.close()

    def _take(self, stack: ExitStack) -> None:
        """Hold what the transfer needs (guards, fences, paused reading) until ``stack`` closes."""

    async def _prepare(self) -> None:
        """Ready the fd once everything is held (flush what the wrapper buffers, say)."""

    def _claim(self) -> ExitStack:
        stack = ExitStack()
        key = claim_key(self.action, self.info, self.fd)
        if key is None:
            return stack
        with _busy_lock:
            if key in _busy:
                raise BusyError(self.target.description, self.action.value)
            _busy.add(key)
        stack.callback(_release, key)
        return stack


def claim_key(action: Action, info: FdInfo, fd: int) -> ClaimKey | None:
    """What a transfer that does ``action`` to ``info`` (open at ``fd``) claims; ``None`` for
    nothing. A claim exists so that two zcio transfers never interleave their bytes in one
    ordered stream (see docs/design.md, "Claims"):

    - sockets, pipes and FIFOs are ordered streams, whichever fd or wrapper reaches them:
      claimed by ``st_dev, st_ino``;
    - a regular file is written at its fd's position: claimed by ``st_dev, st_ino`` and the
      fd, so the same fd is refused while other fds of the file (each at its own position)
      are not;
    - a character device (``/dev/null``, a terminal) is not one stream zcio could break:
      never claimed; neither is an object without an fd (its wrapper guards itself).
    """
    kind = info.kind
    if info.identity == (0, 0) or kind is Kind.CHAR_DEVICE:
        return None
    return (action, *info.identity, fd if kind is Kind.REGULAR_FILE else -1)


def _release(key: ClaimKey) -> None:
    with _busy_lock:
        _busy.discard(key)


def is_claimed(action: Action, identity: tuple[int, int]) -> bool:
    """Whether a running zcio transfer holds the stream (socket, pipe) ``identity`` for
    ``action``.

    No lock: one membership test of a set is atomic (the lock makes claiming's test-and-add
    atomic). A claim by another thread can begin right after; a caller that must exclude it
    claims instead."""
    return (action, identity[0], identity[1], -1) in _busy


def describe(target: Target) -> FdInfo:
    """Describe an endpoint's target. Raises :class:`~zcio.ClosedDestination` if its fd is not
    open (for sources too: the message was always this one)."""
    if target.fd < 0:
        return describe_target(target)
    try:
        return describe_fd(target.fd, tls=target.tls, owner=target.description)
    except OSError as exc:
        raise ClosedDestination(f"{target.description} is not open: {exc}", 0) from exc


#: Kinds that report EAGAIN, so must be non-blocking to be used on an event loop.
_MUST_NOT_BLOCK = frozenset({Kind.TCP, Kind.UNIX_STREAM, Kind.DATAGRAM, Kind.PIPE, Kind.TLS})


def require_nonblocking(info: FdInfo, target: Target) -> None:
    """``ValueError`` for a blocking socket or pipe.

    It would stall the event loop inside write(2); asyncio's sock_sendfile refuses them the
    same way. Regular files and devices never report EAGAIN."""
    if info.kind in _MUST_NOT_BLOCK and not info.nonblocking:
        raise ValueError(
            f"{target.description} must be non-blocking "
            "(sock.setblocking(False) or os.set_blocking(fd, False))"
        )
