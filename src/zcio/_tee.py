"""tee_stream: one source, several destinations, no byte through user space.

Each round splices up to one pipe's worth from the source into a pipe ``P0``, duplicates it
with ``tee(2)`` into one pipe per destination (tee copies page references, not bytes), drops
``P0``'s references into ``/dev/null``, then splices every destination's pipe out, concurrently,
waiting for each destination's writability on its own. The next round starts when every pipe
is empty, so the source advances exactly as fast as the slowest destination (backpressure).

A destination that fails is either fatal (``on_error="raise"``) or dropped
(``on_error="drop"``): its pipe is closed with whatever it held and the others go on,
unaffected, since every destination has its own pipe.

Mirrors are destinations that must never hold the others back (shadow traffic): a mirror that
fails is always dropped, and one that has not taken a round's bytes ``mirror_lag`` seconds
after the destinations took theirs is dropped as stalled. So a mirror delays the destinations
by at most ``mirror_lag``, once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from typing import Any, Literal

import anyio

from ._adapters import open_sink, open_tap
from ._checks import check_count
from ._constants import UNBOUNDED
from ._driver import Refusals, run
from ._errors import IncompleteTransfer, TransferError, ZeroCopyUnavailable, map_exceptions
from ._inspect import choose_now
from ._job import Job, deliver, deliver_unshielded
from ._kinds import Method
from ._knowledge import KNOWLEDGE, Refusal
from ._pipes import Pipe, PipePool, default_pipe_pool
from ._plan import Plan, Reason, static_reason
from ._progress import Progress
from ._sinks import Sink
from ._stats import COUNTERS
from ._stream_loops import (
    at_urgent_mark,
    drain_pipe,
    read_past_mark,
    splice_in,
    userspace_from_tap,
)
from ._syscalls import tee
from ._taps import Tap

__all__ = ["TeeProgress", "tee_stream"]

#: What a destination may fail with: it is then dropped, or its error raised (``on_error``).
_LANE_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class TeeProgress:
    """Live counts of a :func:`tee_stream`, for after an error or a cancellation.

    ``taken``: bytes read from the source; ``sent_to[i]``: bytes delivered to destination ``i``
    (the mirrors come after the destinations); ``dropped``: destinations dropped (with
    ``on_error="drop"``, and every dropped mirror), by index, with their error. ``sent`` is what
    every remaining destination received, mirrors not counted.
    """

    __slots__ = ("_lanes", "_mirrors", "dropped", "taken")

    def __init__(self) -> None:
        self.taken = 0
        self.dropped: dict[int, BaseException] = {}
        self._lanes: list[Progress] = []
        self._mirrors = 0

    def _follow(self, lanes: list[Progress], mirrors: int) -> None:
        """Report the counts of ``lanes``, the last ``mirrors`` of them mirrors."""
        self._lanes = lanes
        self._mirrors = mirrors

    @property
    def sent_to(self) -> list[int]:
        return [p.sent for p in self._lanes]

    @property
    def sent(self) -> int:
        lanes = self._lanes[: len(self._lanes) - self._mirrors]
        alive = [p.sent for i, p in enumerate(lanes) if i not in self.dropped]
        return min(alive, default=0)

    def __repr__(self) -> str:
        return f"TeeProgress(taken={self.taken}, sent_to={self.sent_to}, dropped={self.dropped})"


class _Lane:
    """One destination: its sink, its pipe, its own counts."""

    def __init__(self, index: int, sink: Sink, tap: Tap, count: int | None, mirror: bool) -> None:
        self.index = index
        self.mirror = mirror
        self.sink = sink
        self.progress = Progress()
        self.job = Job(tap.info, sink, count, self.progress)
        self.pipe: Pipe | None = None
        self.error: BaseException | None = None


class TeeRoute:
    """The tee's candidates for the driver: tee(2) when every destination can take a splice
    and tee is not disabled, then the user-space copy."""

    def __init__(self, plans: list[Plan]) -> None:
        self.plans = plans
        native = all(p.zero_copy for p in plans) and Method.TEE not in KNOWLEDGE.disabled()
        self.zero_copy = native
        self.candidates = (Method.TEE, Method.USERSPACE) if native else (Method.USERSPACE,)

    def static_reason(self) -> Reason:
        worst = next((p for p in self.plans if not p.zero_copy), None)
        return Reason.DISABLED if worst is None else static_reason(worst)

    def unavailable(self) -> ZeroCopyUnavailable:
        return ZeroCopyUnavailable(
            "tee_stream: no zero-copy path:\n" + "\n".join(map(str, self.plans))
        )

    def refused(self, refusals: Refusals) -> ZeroCopyUnavailable:
        refusal = refusals[-1][1]
        exc = ZeroCopyUnavailable(f"tee_stream: {refusal}")
        exc.__cause__ = refusal
        return exc


class Fanout:
    """A running tee: one source, every destination (a lane each). What the driver and the
    shared loops see as the transfer (``_job.Running``): taking bytes counts them for every
    live lane; delivering writes them to every live lane."""

    def __init__(
        self,
        tap: Tap,
        lanes: list[_Lane],
        count: int | None,
        progress: TeeProgress,
        on_error: str,
        mirror_lag: float,
    ) -> None:
        self.tap = tap
        self.lanes = lanes
        self.remaining = count if count is not None else UNBOUNDED
        self.progress = progress
        self.on_error = on_error
        self.mirror_lag = mirror_lag
        self.carry = b""
        self.yielded = False

    @property
    def sent(self) -> int:
        return self.progress.sent

    @property
    def taken(self) -> int:
        return self.progress.taken

    @property
    def live(self) -> list[_Lane]:
        return [lane for lane in self.lanes if lane.index not in self.progress.dropped]

    def started(self, method: Method) -> None:
        """Nothing to note: a tee's progress has no ``method``."""

    def took(self, n: int) -> None:
        self.remaining -= n
        self.progress.taken += n
        for lane in self.live:
            lane.job.took(n)

    def raise_if_refused(self, method: Method, exc: OSError) -> None:
        """A first splice from the source refused: judged against the first destination."""
        if self.taken == 0 and KNOWLEDGE.is_refusal(
            method, exc, self.tap.info, self.lanes[0].sink.info
        ):
            raise Refusal(method, exc) from exc

    async def pause(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def deliver(self, data: memoryview) -> None:
        await self.deliver_all(data)

    # -- failing destinations -------------------------------------------------------------

    def fail(self, lane: _Lane, exc: BaseException) -> None:
        """A destination failed (``exc`` as ``map_exceptions`` left it): record it; drop it,
        or let ``check`` raise."""
        if isinstance(exc, TransferError):
            exc.args = (f"destination {lane.index}: {exc}",)
        lane.error = exc
        if self.on_error == "drop" or lane.mirror:
            self.progress.dropped[lane.index] = exc

    def stalled(self, lane: _Lane) -> None:
        """A mirror fell more than ``mirror_lag`` behind: drop it, with what its pipe held."""
        lane.error = TimeoutError(
            f"mirror {lane.index}: dropped, still busy {self.mirror_lag} s after the "
            f"destinations took their bytes ({lane.job.sent} bytes delivered)"
        )
        self.progress.dropped[lane.index] = lane.error

    def check(self) -> None:
        mains = [lane for lane in self.lanes if not lane.mirror]
        for lane in mains:
            if lane.error is not None and self.on_error == "raise":
                raise lane.error
        if all(lane.index in self.progress.dropped for lane in mains):
            raise next(lane.error for lane in mains if lane.error is not None)

    # -- every lane at once ---------------------------------------------------------------

    async def together(
        self, work: Callable[[_Lane], Coroutine[Any, Any, None]], lanes: list[_Lane]
    ) -> None:
        """Run ``work`` for every lane concurrently; mirrors still busy ``mirror_lag`` seconds
        after the last destination finished are cancelled and dropped as stalled."""
        mirrors = {lane.index: anyio.CancelScope() for lane in lanes if lane.mirror}

        async def mirrored(lane: _Lane) -> None:
            with mirrors[lane.index]:
                await work(lane)
                return
            self.stalled(lane)

        async with anyio.create_task_group() as outer:
            for lane in lanes:
                if lane.mirror:
                    outer.start_soon(mirrored, lane)
            async with anyio.create_task_group() as mains:
                for lane in lanes:
                    if not lane.mirror:
                        mains.start_soon(work, lane)
            deadline = anyio.current_time() + self.mirror_lag
            for scope in mirrors.values():
                scope.deadline = deadline

    async def deliver_all(self, data: memoryview) -> None:
        """Write ``data`` (taken already) to every live lane; then raise a failure that
        ``on_error`` makes fatal."""

        async def deliver_one(lane: _Lane) -> None:
            try:
                with map_exceptions(lane.job, only=_LANE_ERRORS):
                    if lane.mirror:  # no shielded flush after a cancel: a stalled mirror is dropped
                        await deliver_unshielded(lane.job, data, False)
                    else:
                        await deliver(lane.job, data)
            except _LANE_ERRORS as exc:
                self.fail(lane, exc)

        live = self.live
        if any(lane.mirror for lane in live):
            await self.together(deliver_one, live)
        else:
            for lane in live:
                await deliver_one(lane)
        self.check()

    # -- splice and tee ---------------------------------------------------------------------

    async def native(self, pool: PipePool) -> None:
        """The tee(2) runner: fill one pipe from the source, tee it into every lane's pipe,
        drain them all; again. ``Refusal`` if the pipes cannot be had, or the first splice
        is refused."""
        async with AsyncExitStack() as stack:
            head, unit = self._pipes(pool, stack)
            null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
            stack.callback(os.close, null)
            while self.remaining > 0:
                n = await splice_in(self, self.tap, head, min(self.remaining, unit))
                if n == 0:
                    if not at_urgent_mark(self.tap):
                        return
                    data = await read_past_mark(self.tap, self.remaining)
                    if not data:
                        return
                    self.took(len(data))  # bytes after an urgent mark; every pipe is empty
                    await self.deliver_all(data)
                    continue
                self.duplicate(head, n)
                _drain_into(head, null)
                await self.drain_all()
                self.check()

    def _pipes(self, pool: PipePool, stack: AsyncExitStack) -> tuple[Pipe, int]:
        """A pipe for the source and one per lane, all of one size (returned), released when
        ``stack`` closes."""
        pipes = [pool.acquire() for _ in range(len(self.lanes) + 1)]
        for pipe in pipes:
            if pipe is not None:
                stack.callback(pool.release, pipe)
        if any(pipe is None for pipe in pipes):
            raise Refusal(Method.TEE, None, Reason.NO_PIPE.value, Reason.NO_PIPE)
        head, *rest = [p for p in pipes if p is not None]
        for lane, pipe in zip(self.lanes, rest, strict=True):
            lane.pipe = pipe
        # tee(2) copies pipe buffers, not bytes: an empty pipe takes all of another's
        # buffers only if it has as many slots. So every pipe gets the smallest size (an
        # empty pipe can always shrink); pipes of the pool can differ (a pool resized
        # while one was lent, or new pipes held to one page past the per-user limit).
        unit = min(p.size for p in (head, *rest))
        if not all(pipe.shrink(unit) for pipe in (head, *rest)):
            raise Refusal(Method.TEE, None, Reason.NO_PIPE.value, Reason.NO_PIPE)
        return head, unit

    def duplicate(self, head: Pipe, n: int) -> None:
        for lane in self.live:
            assert lane.pipe is not None
            copied = tee(head.r, lane.pipe.w, n, os.SPLICE_F_NONBLOCK)
            if copied != n:  # every lane pipe is empty and of the head's size: never
                raise RuntimeError(f"tee(2) copied {copied} of {n} bytes into an empty pipe")
            lane.pipe.held = n
        COUNTERS.moved(Method.TEE, n * len(self.live))

    async def drain_all(self) -> None:
        waiting = [lane for lane in self.live if not self.drain_some(lane)]
        if waiting:
            await self.together(self.drain, waiting)
        else:
            await anyio.lowlevel.checkpoint()

    def drain_some(self, lane: _Lane) -> bool:
        """Splice what the destination takes now; True when the lane's pipe is empty."""
        assert lane.pipe is not None
        try:
            with map_exceptions(lane.job, only=_LANE_ERRORS):
                return drain_pipe(lane.pipe, lane.sink.fd, lane.job)
        except _LANE_ERRORS as exc:
            self.fail(lane, exc)
            return True

    async def drain(self, lane: _Lane) -> None:
        while not self.drain_some(lane):
            await lane.sink.wait_writable()


def _drain_into(pipe: Pipe, null: int) -> None:
    """Drop a pipe's page references into /dev/null (nothing is copied)."""
    while pipe.held:
        pipe.held -= os.splice(pipe.r, null, pipe.held)


async def tee_stream(
    src: object,
    *dsts: object,
    count: int | None = None,
    on_error: Literal["raise", "drop"] = "raise",
    mirrors: Sequence[object] = (),
    mirror_lag: float = 0.25,
    fallback: bool = True,
    progress: TeeProgress | None = None,
    pool: PipePool | None = None,
) -> int:
    """Deliver every byte of ``src`` to every destination; return how many bytes each got.

    Between sockets and pipes the bytes never pass through user space: ``splice(2)`` into a
    pipe, ``tee(2)`` into one pipe per destination, ``splice(2)`` out. The source advances as
    fast as the slowest destination. ``src`` and ``dsts`` accept what :func:`splice_stream`
    accepts; bytes the source's wrapper read ahead go first, to every destination.

    A destination that fails (its peer went away) raises :class:`BrokenDestination` (or
    :class:`ClosedDestination`) for the whole tee with ``on_error="raise"``; with
    ``on_error="drop"`` it is dropped, recorded in ``progress.dropped``, and the others go on
    unaffected. When the last destination is dropped, its error is raised.

    ``mirrors`` are best-effort destinations (shadow traffic): they get the same bytes, but
    never hold the destinations back. A mirror that fails is dropped (whatever ``on_error``
    says), and so is a mirror still busy ``mirror_lag`` seconds after the destinations have
    taken a round's bytes: its pipe is closed with what it held, the drop is recorded in
    ``progress.dropped`` (a :class:`TimeoutError` for a stalled mirror), and the destinations
    go on. The return value and ``progress.sent`` count the destinations only; mirrors
    follow them in ``progress.sent_to``. Closing a dropped mirror is the caller's job.

    TLS in user space, datagram sockets, a pipe pool at its limit, or ``ZCIO_DISABLE`` naming
    splice or tee make the tee copy through user space (``fallback=False``:
    :class:`ZeroCopyUnavailable`). Cancellation or an error leave exact counts in ``progress``
    (a :class:`TeeProgress`): ``taken`` from the source and ``sent_to`` each destination; bytes
    still in a destination's pipe are not delivered, and that pipe is closed.
    """
    _check(count, dsts, on_error, mirror_lag)
    progress = progress if progress is not None else TeeProgress()
    await anyio.lowlevel.checkpoint_if_cancelled()
    tap, lanes = _open(src, [*dsts, *mirrors], len(dsts), count)
    progress._follow([lane.progress for lane in lanes], len(mirrors))
    fanout = Fanout(tap, lanes, count, progress, on_error, mirror_lag)
    await _run(fanout, fallback, pool or default_pipe_pool())
    sent = progress.sent
    if count is not None and sent < count:
        raise IncompleteTransfer(sent, count)
    return sent


def _check(count: object, dsts: tuple[object, ...], on_error: str, mirror_lag: float) -> None:
    check_count(count)
    if not dsts:
        raise TypeError("tee_stream needs at least one destination")
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', not {on_error!r}")
    if not mirror_lag >= 0:
        raise ValueError(f"mirror_lag must be >= 0 seconds, not {mirror_lag!r}")


async def _run(fanout: Fanout, fallback: bool, pool: PipePool) -> None:
    """Enter every endpoint, deliver what the source's wrapper read ahead, then let the driver
    run the route (tee(2), then the user-space copy) inside ``map_exceptions``."""
    tap, lanes = fanout.tap, fanout.lanes
    route = TeeRoute([choose_now(tap.info, lane.sink.info, _OFFERED) for lane in lanes])
    async with AsyncExitStack() as stack:
        for lane in lanes:
            await stack.enter_async_context(lane.sink)
        await stack.enter_async_context(tap)
        buffered = tap.take_buffered(fanout.remaining)
        if buffered:
            fanout.took(len(buffered))
            await fanout.deliver_all(memoryview(buffered))
        if fanout.remaining > 0 and not tap.at_eof:
            with map_exceptions(fanout):
                await run(route, fanout, _runners(tap, pool), fallback)


_OFFERED = frozenset({Method.SPLICE})


def _open(
    src: object, dsts: list[object], mains: int, count: int | None
) -> tuple[Tap, list[_Lane]]:
    """The tap and one lane per destination (the first ``mains`` of them not mirrors).
    ``ValueError`` if a destination appears twice."""
    tap = open_tap(src)
    sinks = [open_sink(dst) for dst in dsts]
    idents = [s.info.identity for s in sinks if s.info.identity != (0, 0)]
    if len(set(idents)) != len(idents):
        raise ValueError("the same destination appears twice")
    return tap, [_Lane(i, sink, tap, count, i >= mains) for i, sink in enumerate(sinks)]


def _runners(tap: Tap, pool: PipePool) -> dict[Method, Callable[[Fanout], Awaitable[None]]]:
    async def native(fanout: Fanout) -> None:
        await fanout.native(pool)

    async def userspace(fanout: Fanout) -> None:
        await userspace_from_tap(fanout, tap)

    return {Method.TEE: native, Method.USERSPACE: userspace}
