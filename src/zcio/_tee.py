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

import functools
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from typing import Any, Literal

import anyio

from ._errors import (
    IncompleteTransfer,
    SourceFailed,
    TransferError,
    ZeroCopyUnavailable,
    translate,
)
from ._file_loops import USER_CHUNK
from ._job import Job, _deliver, deliver
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE, Refusal
from ._pipes import Pipe, PipePool, default_pipe_pool
from ._plan import Plan, Reason, choose
from ._progress import Progress
from ._sinks import Sink, open_sink
from ._stats import COUNTERS
from ._stream_loops import at_urgent_mark, read_past_mark
from ._syscalls import tee
from ._taps import Tap, open_tap

__all__ = ["TeeProgress", "tee_stream"]

_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


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


class _Tee:
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
        self.remaining = count if count is not None else 1 << 62
        self.progress = progress
        self.on_error = on_error
        self.mirror_lag = mirror_lag

    @property
    def live(self) -> list[_Lane]:
        return [lane for lane in self.lanes if lane.index not in self.progress.dropped]

    def took(self, n: int) -> None:
        self.remaining -= n
        self.progress.taken += n
        for lane in self.live:
            lane.job.took(n)

    def fail(self, lane: _Lane, exc: BaseException) -> None:
        """A destination failed: record it; drop it, or let ``check`` raise."""
        mapped = translate(exc, lane.job.sent, lane.job.taken) or exc
        if mapped is not exc:
            mapped.__cause__ = exc
        if isinstance(mapped, TransferError):
            mapped.args = (f"destination {lane.index}: {mapped}",)
        lane.error = mapped
        if self.on_error == "drop" or lane.mirror:
            self.progress.dropped[lane.index] = mapped

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
        async def deliver_one(lane: _Lane) -> None:
            try:
                if lane.mirror:  # no shielded flush after a cancel: a stalled mirror is dropped
                    await _deliver(lane.job, data, False)
                else:
                    await deliver(lane.job, data)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self.fail(lane, exc)

        live = self.live
        if any(lane.mirror for lane in live):
            await self.together(deliver_one, live)
        else:
            for lane in live:
                await deliver_one(lane)
        self.check()

    # -- user space ------------------------------------------------------------------------

    async def userspace(self) -> None:
        tap = self.tap
        buf = memoryview(bytearray(USER_CHUNK))
        while self.remaining > 0:
            limit = min(self.remaining, len(buf))
            try:
                if tap.tls:
                    data = memoryview(await tap.read_stream(limit))
                elif tap.info.kind is Kind.REGULAR_FILE:  # may wait for the disk: not here
                    data = buf[: await anyio.to_thread.run_sync(tap.read_fd, buf[:limit])]
                else:
                    data = buf[: tap.read_fd(buf[:limit])]
            except BlockingIOError:
                await tap.wait_readable()
                continue
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise SourceFailed(exc) from exc
            if not data:
                return
            self.took(len(data))
            await self.deliver_all(data)
            await anyio.lowlevel.checkpoint()

    # -- splice and tee ----------------------------------------------------------------------

    async def native(self, pool: PipePool) -> None:
        async with AsyncExitStack() as stack:
            pipes = [pool.acquire() for _ in range(len(self.lanes) + 1)]
            for pipe in pipes:
                if pipe is not None:
                    stack.callback(pool.release, pipe)
            if any(pipe is None for pipe in pipes):
                raise Refusal(Method.TEE, None, Reason.NO_PIPE.value, Reason.NO_PIPE)
            head, *rest = [p for p in pipes if p is not None]
            for lane, pipe in zip(self.lanes, rest, strict=True):
                lane.pipe = pipe
            null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
            stack.callback(os.close, null)
            # tee(2) copies pipe buffers, not bytes: an empty pipe takes all of another's
            # buffers only if it has as many slots. So every pipe gets the smallest size (an
            # empty pipe can always shrink); pipes of the pool can differ (a pool resized
            # while one was lent, or new pipes held to one page past the per-user limit).
            unit = min(p.size for p in (head, *rest))
            if not all(pipe.shrink(unit) for pipe in (head, *rest)):
                raise Refusal(Method.TEE, None, Reason.NO_PIPE.value, Reason.NO_PIPE)
            while self.remaining > 0:
                n = await self.fill(head, min(self.remaining, unit))
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

    async def fill(self, head: Pipe, limit: int) -> int:
        first = self.progress.taken == 0
        splice_in = functools.partial(os.splice, self.tap.fd, head.w, limit, flags=_FLAGS)
        while True:
            try:
                if self.tap.info.kind is Kind.REGULAR_FILE:  # may wait for the disk: not here
                    n = await anyio.to_thread.run_sync(splice_in)
                else:
                    n = splice_in()
            except BlockingIOError:
                if at_urgent_mark(self.tap):
                    return 0  # native() reads past the mark
                await self.tap.wait_readable()
                continue
            except OSError as exc:
                if first and KNOWLEDGE.is_refusal(
                    Method.SPLICE, exc, self.tap.info, self.lanes[0].sink.info
                ):
                    raise Refusal(Method.SPLICE, exc) from exc
                raise SourceFailed(exc) from exc
            head.held = n
            self.took(n)
            return n

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
        pipe = lane.pipe
        assert pipe is not None
        while pipe.held:
            try:
                m = os.splice(pipe.r, lane.sink.fd, pipe.held, flags=_FLAGS)
            except BlockingIOError:
                return False
            except OSError as exc:
                self.fail(lane, exc)
                return True
            pipe.held -= m
            lane.job.delivered(m, Method.SPLICE)
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
    from ._transfer import _check_count

    _check_count(count)
    if not dsts:
        raise TypeError("tee_stream needs at least one destination")
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', not {on_error!r}")
    if not mirror_lag >= 0:
        raise ValueError(f"mirror_lag must be >= 0 seconds, not {mirror_lag!r}")
    progress = progress if progress is not None else TeeProgress()
    await anyio.lowlevel.checkpoint_if_cancelled()
    tap = open_tap(src)
    sinks = [open_sink(dst) for dst in (*dsts, *mirrors)]
    idents = [s.info.identity for s in sinks if s.info.identity != (0, 0)]
    if len(set(idents)) != len(idents):
        raise ValueError("the same destination appears twice")
    lanes = [_Lane(i, sink, tap, count, i >= len(dsts)) for i, sink in enumerate(sinks)]
    progress._lanes = [lane.progress for lane in lanes]
    progress._mirrors = len(mirrors)
    tee_run = _Tee(tap, lanes, count, progress, on_error, mirror_lag)
    plans = [
        choose(
            tap.info,
            sink.info,
            offered={Method.SPLICE, Method.USERSPACE},
            disabled=KNOWLEDGE.disabled(),
            refused_pairs=KNOWLEDGE.refused_pairs(),
        )
        for sink in sinks
    ]
    native = all(p.zero_copy for p in plans) and Method.TEE not in KNOWLEDGE.disabled()
    async with AsyncExitStack() as stack:
        for sink in sinks:
            await stack.enter_async_context(sink)
        await stack.enter_async_context(tap)
        buffered = tap.take_buffered(tee_run.remaining)
        if buffered:
            tee_run.took(len(buffered))
            await tee_run.deliver_all(memoryview(buffered))
        if tee_run.remaining > 0 and not tap.at_eof:
            await _run(tee_run, native, fallback, pool or default_pipe_pool(), plans)
    sent = progress.sent
    if count is not None and sent < count:
        raise IncompleteTransfer(sent, count)
    return sent


async def _run(
    tee_run: _Tee, native: bool, fallback: bool, pool: PipePool, plans: list[Plan]
) -> None:
    from ._transfer import _static_reason

    if native:
        COUNTERS.transfer(Method.TEE)
        try:
            await _translated(tee_run, tee_run.native(pool))
            return
        except Refusal as refusal:
            COUNTERS.fallback(refusal.reason)
            if not fallback:
                raise ZeroCopyUnavailable(f"tee_stream: {refusal}") from refusal
    elif not fallback:
        raise ZeroCopyUnavailable("tee_stream: no zero-copy path:\n" + "\n".join(map(str, plans)))
    else:
        worst = next((p for p in plans if not p.zero_copy), None)
        COUNTERS.fallback(Reason.DISABLED if worst is None else _static_reason(worst))
    COUNTERS.transfer(Method.USERSPACE)
    await _translated(tee_run, tee_run.userspace())


async def _translated(tee_run: _Tee, work: Awaitable[None]) -> None:
    try:
        await work
    except SourceFailed as exc:
        mapped = translate(exc, tee_run.progress.sent, tee_run.progress.taken) or exc.exc
        raise mapped from exc.exc
