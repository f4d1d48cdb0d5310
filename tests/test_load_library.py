"""The library under load: many ``send_file``, ``splice_stream`` and ``tee_stream`` tasks at once
on one event loop (asyncio, uvloop, trio; native and forced fallback), some of them cancelled at
random moments (seeded) while the others run.

Every byte is accounted for: a transfer that finished delivered its whole range (by hash); a
cancelled one delivered exactly ``progress.sent`` bytes, the very first ones of its range, and
its source still holds exactly the bytes after ``progress.taken``; no fd is left open (the
conftest's check) and no pipe is left lent out of the pool. The peers run on their own asyncio
loop in a thread, so they behave alike whichever loop the transfers run on; some read slowly.

More tasks than the pipe pool has pipes for (64): some transfers find no pipe and copy through
user space, as they would on a loaded server; ``zcio.stats()`` shows both.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

import zcio
from _load import TIMEOUT, PeerLoop, sha, snapshot
from _support import backend, make_data

pytestmark = [pytest.mark.anyio, pytest.mark.load, pytest.mark.timeout(300)]

TASKS = 60  # a third of each kind
BLOB = make_data(3 << 20, seed=11)


@dataclass
class Peers:
    """Servers on the peer loop: ``feeds`` write a registered range and then EOF to whoever
    connects from a registered port; ``drains`` read to EOF, some slowly, and keep the bytes."""

    peer: PeerLoop
    feed_port: int = 0
    drain_port: int = 0
    feeds: dict[int, bytes] = field(default_factory=dict)
    slow: set[int] = field(default_factory=set)
    stalled: set[int] = field(default_factory=set)
    got: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> None:
        feed = await asyncio.start_server(self._feed, "127.0.0.1", 0, backlog=512)
        drain = await asyncio.start_server(self._drain, "127.0.0.1", 0, backlog=512)
        self.servers = [feed, drain]
        self.feed_port = feed.sockets[0].getsockname()[1]
        self.drain_port = drain.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()

    async def _feed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("peername")[1]
        with suppress(OSError):
            writer.write(self.feeds.pop(port))
            await writer.drain()
            writer.write_eof()
            await reader.read()  # until the transfer's side closes
        writer.close()

    async def _drain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("peername")[1]
        future = self.got.setdefault(port, asyncio.get_running_loop().create_future())
        got = bytearray()
        try:
            if port in self.stalled:  # a mirror that stops reading for a while
                await asyncio.sleep(1.0)
            while chunk := await reader.read(32 << 10 if port in self.slow else 1 << 20):
                got += chunk
                if port in self.slow:
                    await asyncio.sleep(0.005)
        except OSError as exc:
            future.set_exception(exc)
        else:
            future.set_result(bytes(got))
        writer.close()

    async def received(self, port: int) -> bytes:
        loop = asyncio.get_running_loop()
        future = self.got.setdefault(port, loop.create_future())
        return await asyncio.wait_for(future, TIMEOUT)

    # -- called from the loop under test (blocking calls, but short: the peer accepts) -------

    def source(self, data: bytes) -> socket.socket:
        """A connected, non-blocking socket from which ``data`` and then EOF can be read."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.feeds[sock.getsockname()[1]] = data
        sock.connect(("127.0.0.1", self.feed_port))
        sock.setblocking(False)
        return sock

    def destination(self, slow: bool, stalled: bool = False) -> tuple[socket.socket, int]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if slow:
            self.slow.add(port)
        if stalled:  # a small send buffer: the bytes do not all fit in buffers
            self.stalled.add(port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 10)
        sock.connect(("127.0.0.1", self.drain_port))
        sock.setblocking(False)
        return sock, port

    async def result(self, dst: socket.socket, port: int) -> bytes:
        """Close ``dst`` (the drain sees its end) and what the drain received."""
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        dst.close()
        return await self.peer.start(self.received(port))


async def rest_of(sock: socket.socket) -> bytes:
    """Read ``sock`` to its end (in a worker thread, blocking with a timeout) and close it."""

    def read() -> bytes:
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        out = bytearray()
        while chunk := sock.recv(1 << 20):
            out += chunk
        return bytes(out)

    try:
        return await anyio.to_thread.run_sync(read)
    finally:
        sock.close()


@dataclass
class Outcome:
    kind: str
    size: int
    cancelled: bool = False  # the cancellation landed before the transfer ended
    sent: int = 0
    taken: int = 0
    stranded: int = 0
    dropped: int = 0  # mirrors dropped


async def one_send_file(
    peers: Peers, path: str, start: int, size: int, slow: bool, scope: anyio.CancelScope
) -> Outcome:
    dst, port = peers.destination(slow)
    progress = zcio.Progress()
    out = Outcome("send_file", size)
    with scope:
        assert await zcio.send_file(dst, path, offset=start, count=size, progress=progress) == size
    out.cancelled = scope.cancelled_caught
    got = await peers.result(dst, port)
    # What arrived is exactly what progress says, from the start of the range.
    assert len(got) == progress.sent and sha(got) == sha(BLOB[start : start + progress.sent])
    assert progress.taken == progress.sent  # sendfile takes nothing it does not send
    if not out.cancelled:
        assert progress.sent == size
    out.sent, out.taken = progress.sent, progress.taken
    return out


async def one_splice(
    peers: Peers, start: int, size: int, slow: bool, scope: anyio.CancelScope
) -> Outcome:
    data = BLOB[start : start + size]
    src = peers.source(data)
    dst, port = peers.destination(slow)
    progress = zcio.Progress()
    out = Outcome("splice_stream", size)
    try:
        with scope:
            assert await zcio.splice_stream(src, dst, progress=progress) == size
        out.cancelled = scope.cancelled_caught
        got = await peers.result(dst, port)
    finally:
        rest = await rest_of(src)
    assert progress.taken == progress.sent + progress.stranded
    assert len(got) == progress.sent and sha(got) == sha(data[: progress.sent])
    # Nothing taken twice, nothing taken unreported: the source holds the rest, exactly.
    assert progress.taken + len(rest) == size and sha(rest) == sha(data[progress.taken :])
    if not out.cancelled:
        assert progress.sent == size
    out.sent, out.taken, out.stranded = progress.sent, progress.taken, progress.stranded
    return out


async def one_tee(
    peers: Peers, start: int, size: int, slow: bool, scope: anyio.CancelScope, mirror: bool
) -> Outcome:
    """Two destinations; or with ``mirror``, one and a mirror that stalls a second (dropped
    after 0.1 s when the bytes do not fit in the buffers)."""
    data = BLOB[start : start + size]
    src = peers.source(data)
    (a, pa), (b, pb) = peers.destination(slow), peers.destination(False, stalled=mirror)
    progress = zcio.TeeProgress()
    out = Outcome("tee_stream" + (" with a mirror" if mirror else ""), size)
    dsts, mirrors = ([a], [b]) if mirror else ([a, b], [])
    try:
        with scope:
            sent = await zcio.tee_stream(
                src, *dsts, mirrors=mirrors, mirror_lag=0.1, progress=progress
            )
            assert sent == size
        out.cancelled = scope.cancelled_caught
        got = [await peers.result(a, pa), await peers.result(b, pb)]
    finally:
        rest = await rest_of(src)
    for i, (each, sent) in enumerate(zip(got, progress.sent_to, strict=True)):
        # Every destination, a dropped mirror too, got exactly what sent_to says.
        assert len(each) == sent and sha(each) == sha(data[:sent])
        assert sent <= progress.taken
        if not out.cancelled and i not in progress.dropped:
            assert sent == size
    assert progress.taken + len(rest) == size and sha(rest) == sha(data[progress.taken :])
    assert set(progress.dropped) <= ({1} if mirror else set()), progress.dropped
    out.dropped = len(progress.dropped)
    out.sent, out.taken = progress.sent, progress.taken
    out.stranded = progress.taken - progress.sent
    return out


async def test_many_transfers_with_random_cancellations(
    anyio_backend: Any, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = backend()
    rng = random.Random(f"load-{name}-{mode}")
    path = tmp_path / "blob.bin"
    path.write_bytes(BLOB)
    specs = []  # drawn before any task runs: the same draws whatever the scheduling
    for _ in range(TASKS):
        size = rng.randrange(64 << 10, 1536 << 10)
        start = rng.randrange(0, len(BLOB) - size)
        delay = rng.uniform(0, rng.choice((0.01, 0.05, 0.15))) if rng.random() < 0.35 else None
        specs.append((size, start, rng.random() < 0.2, delay))
    before = zcio.stats()
    rss_before = snapshot(os.getpid()).rss_kib
    outcomes: list[Outcome] = []
    pool = zcio.default_pipe_pool()
    with PeerLoop() as peer:
        peers = Peers(peer)
        peer.run(peers.start())
        try:
            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tg:

                    async def run(i: int, size: int, start: int, slow: bool,
                                  delay: float | None) -> None:  # fmt: skip
                        scope = anyio.CancelScope()
                        if delay is not None:  # cancelled at a random moment

                            async def cancel_later() -> None:
                                await anyio.sleep(delay)
                                scope.cancel()

                            tg.start_soon(cancel_later)
                        kind = i % 3
                        if kind == 0:
                            out = await one_send_file(peers, str(path), start, size, slow, scope)
                        elif kind == 1:
                            out = await one_splice(peers, start, size, slow, scope)
                        else:
                            out = await one_tee(peers, start, size, slow, scope, i % 6 == 5)
                        outcomes.append(out)

                    for i, spec in enumerate(specs):
                        tg.start_soon(run, i, *spec)
        finally:
            peer.run(peers.stop())
    assert len(outcomes) == TASKS
    assert pool.busy == 0
    rss_after = snapshot(os.getpid()).rss_kib
    # This process holds the data and every peer's copy of it (about 100 MB at most): generous.
    assert rss_after - rss_before < 512 << 10, (rss_before, rss_after)
    moved = zcio.stats() - before
    cancelled = [o for o in outcomes if o.cancelled]
    whole = [o for o in outcomes if not o.cancelled]
    assert whole and cancelled  # both really happened
    if mode == "native":
        for method in ("sendfile", "splice", "tee"):
            assert moved.bytes(method) > 0, moved
    else:
        assert moved.bytes("sendfile") == moved.bytes("splice") == moved.bytes("tee") == 0
    with capsys.disabled():
        total = sum(o.size for o in outcomes)
        print(
            f"\n[load] library {name}/{mode}: {TASKS} concurrent tasks, {len(cancelled)} "
            f"cancelled (sent {sum(o.sent for o in cancelled):,} B of "
            f"{sum(o.size for o in cancelled):,}, stranded {sum(o.stranded for o in cancelled)} B,"
            f" all accounted), {len(whole)} whole ({total:,} B asked in all), "
            f"{sum(o.dropped for o in outcomes)} stalled mirror(s) dropped; RSS "
            f"{rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB; moved: "
            + ", ".join(f"{m} {s.bytes:,} B" for m, s in sorted(moved.methods.items()) if s.bytes)
        )
