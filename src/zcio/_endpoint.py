"""What sinks and taps share: the described object, and claiming it for one transfer at a time."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from types import TracebackType
from typing import ClassVar, Self

from ._errors import BusyError
from ._kinds import Kind
from ._objects import Target
from ._probe import FdInfo

__all__ = ["Endpoint", "claim_key", "is_claimed"]

_busy_lock = threading.Lock()
_busy: set[tuple[str, int, int, int]] = set()


class Endpoint:
    """One side of a transfer. Use as ``async with``: entering claims it (``BusyError`` if
    another zcio transfer is doing the same ``action`` to the same socket or pipe, whatever
    fd or wrapper reaches it, or to the same fd of a regular file; see :func:`claim_key`),
    then ``_take``
    puts what the transfer holds on a stack and ``_prepare`` readies the fd; leaving releases
    everything, in reverse order."""

    action: ClassVar[str] = "using"

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
                raise BusyError(self.target.description, self.action)
            _busy.add(key)
        stack.callback(_release, key)
        return stack


def claim_key(action: str, info: FdInfo, fd: int) -> tuple[str, int, int, int] | None:
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


def _release(key: tuple[str, int, int, int]) -> None:
    with _busy_lock:
        _busy.discard(key)


def is_claimed(action: str, identity: tuple[int, int]) -> bool:
    """Whether a running zcio transfer holds the stream (socket, pipe) ``identity`` for
    ``action``.

    No lock: one membership test of a set is atomic (the lock makes claiming's test-and-add
    atomic). A claim by another thread can begin right after; a caller that must exclude it
    claims instead."""
    return (action, identity[0], identity[1], -1) in _busy
