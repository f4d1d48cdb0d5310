"""Helpers of the load-and-fault suite: watching a process's fds and memory, resetting peers,
and an asyncio loop in a thread for peers that must not share the event loop under test.

The load generators are asyncio streams (one loop, hundreds of connections, no thread per
connection), so that two shared cores go to the process under test, not to its clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: Every wait of the suite ends by then, loaded machine or not.
TIMEOUT = 60.0


def sha(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """What a process holds at one moment: its fds by kind, and its resident memory."""

    fds: int
    sockets: int
    pipes: int
    rss_kib: int


def fd_targets(pid: int) -> dict[int, str]:
    """Each fd of ``pid`` and what it points to (``readlink``)."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with suppress(OSError):
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return out


def snapshot(pid: int) -> Snapshot:
    """``/proc/PID/fd`` (every fd, and how many are sockets and pipes) and ``VmRSS``."""
    sockets = pipes = total = 0
    folder = f"/proc/{pid}/fd"
    for name in os.listdir(folder):
        try:
            what = os.readlink(f"{folder}/{name}")
        except OSError:  # closed meanwhile
            continue
        total += 1
        sockets += what.startswith("socket:")
        pipes += what.startswith("pipe:")
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Snapshot(total, sockets, pipes, rss)


@dataclass
class Watch:
    """Samples a process every ``interval`` s in a thread: before, the peak of each figure,
    and after (``stop``). Use as a context manager around the load."""

    pid: int
    interval: float = 0.1
    before: Snapshot | None = None
    after: Snapshot | None = None
    samples: list[Snapshot] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self.before = snapshot(self.pid)
        self.samples.append(self.before)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with suppress(OSError):
                self.samples.append(snapshot(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(TIMEOUT)

    @property
    def peak(self) -> Snapshot:
        return Snapshot(
            max(s.fds for s in self.samples),
            max(s.sockets for s in self.samples),
            max(s.pipes for s in self.samples),
            max(s.rss_kib for s in self.samples),
        )

    def settle(self, done: Callable[[Snapshot], bool], timeout: float = 20.0) -> Snapshot:
        """Wait (bounded) until ``done(snapshot)``: connections close a little after their
        clients saw the end. Returns the last snapshot, whether or not it was done."""
        deadline = time.monotonic() + timeout
        while True:
            now = snapshot(self.pid)
            self.samples.append(now)
            if done(now) or time.monotonic() > deadline:
                self.after = now
                return now
            time.sleep(0.1)

    def line(self, what: str) -> str:
        """One line for the test's output: before / peak / after."""
        b, p, a = self.before, self.peak, self.after
        assert b is not None and a is not None
        return (
            f"{what}: fds {b.fds}/{p.fds}/{a.fds} (sockets {b.sockets}/{p.sockets}/{a.sockets}, "
            f"pipes {b.pipes}/{p.pipes}/{a.pipes}), RSS MiB {b.rss_kib / 1024:.1f}/"
            f"{p.rss_kib / 1024:.1f}/{a.rss_kib / 1024:.1f} (before/peak/after)"
        )


_LINGER_0 = struct.pack("ii", 1, 0)


def reset(writer: asyncio.StreamWriter) -> None:
    """Vanish: close the connection with an RST (``SO_LINGER`` 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
    writer.transport.abort()


def reset_socket(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
    sock.close()


async def connect(port: int, rcvbuf: int | None = None) -> tuple[Any, asyncio.StreamWriter]:
    """An asyncio stream to 127.0.0.1:port; ``rcvbuf`` (set before connecting, so that the
    window is sized for it) makes a slow reader hold the sender back early."""
    sock = socket.socket()
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 18)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()


class PeerLoop:
    """A plain asyncio loop in a thread, for the peers of transfers that run on the event loop
    under test (asyncio, uvloop or trio): ``run(coro)`` from any thread, ``await call(coro)``
    from an anyio task without blocking its loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> PeerLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def start(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Start ``coro`` there now; the returned awaitable (for any event loop, through a
        worker thread) gives its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)

        async def result() -> T:
            import anyio

            return await anyio.to_thread.run_sync(future.result, TIMEOUT)

        return result()
