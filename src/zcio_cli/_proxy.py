"""``zcio proxy``: a TCP relay that moves both directions with ``splice(2)``, and can mirror.

Each connection runs two pumps, client -> target and target -> client, each a
:func:`zcio.splice_stream` followed by a half-close (``send_eof``), so a client that shuts its
side down still gets the whole answer. With ``--mirror``, the client -> target pump is a
:func:`zcio.tee_stream` whose mirror is best-effort: when it fails or falls behind it is
dropped (and logged) and the real connection goes on. What the mirror answers is discarded,
spliced into ``/dev/null``.

Shutdown (SIGINT or SIGTERM): stop accepting, give the active connections ``--grace`` seconds
to finish, then cancel them (each closes its sockets; bytes already taken from one side are
flushed to the other for at most a second, by zcio). A second signal cancels them at once.
A relay that ends in an error (a peer's reset) resets both sides: a plain close would tell the
other peer that its stream ended whole.

At ``--max-connections``, a new client closes the relay that has been idle longest (nothing
moved either way for at least a second), as nginx reuses idle keep-alive connections; only
when every relay is moving bytes does it wait in the backlog. The pipes come from a pool of
the proxy's own, sized for every relay at once (2 per relay, 5 with a mirror, 256 KiB each);
when relays still find none (the process or the user out of pipes), they copy through user
space, and a warning says so at most every ``PIPE_WARN_EVERY`` seconds.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import struct
import sys
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

import zcio

from ._errors import CliError, parse_address, require
from ._report import active_methods, human
from ._sockets import accept, connect, format_address, listen

__all__ = ["register"]

log = logging.getLogger("zcio.proxy")

CONNECT_TIMEOUT = 5.0
PIPE_SIZE = 256 * 1024  # bytes of kernel memory a full pipe holds: 512 MiB for 1,024 relays
PIPES_PER_RELAY = 2  # one each way
PIPES_PER_MIRRORED_RELAY = 5  # the tee's three (source, target, mirror), down, the discard
PIPES_KEPT = 64  # idle pipes kept open after a burst (as many as zcio's shared pool)
PIPE_WARN_EVERY = 10.0  # seconds: at most one warning about user-space copies this often
CAP_WARN_EVERY = 10.0  # seconds: at most one line about the connection limit this often
CAP_RETRY = 1.0  # seconds: at the limit with every relay busy, how often to look again
ACCEPT_PAUSE = 0.1  # seconds between accepts while the process is out of fds or memory
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# Any of these ends one connection (a peer that reset, a refused connect); never the proxy.
ENDED = (OSError, zcio.TransferError)


# flag, type, default, metavar, help
_TUNING: list[tuple[str, type[int] | type[float], float, str, str]] = [
    (
        "--max-connections",
        int,
        1024,
        "N",
        "connections relayed at once; one more closes the longest-idle relay, or waits in the "
        "backlog while every relay moves bytes. Sizes the pipe pool: 2 pipes of 256 KiB per "
        "connection (5 with --mirror), so 512 MiB of kernel memory at most for 1024",
    ),
    ("--idle-timeout", float, 300, "S", "close a connection after S seconds without a byte"),
    ("--mirror-lag", float, 0.25, "S", "drop the mirror when still busy S s after the target"),
    ("--grace", float, 10, "S", "on SIGINT/SIGTERM, how long active connections may finish"),
    ("--stats-interval", float, 60, "S", "log bytes moved by each method every S s; 0: at exit"),
]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "proxy",
        help="a TCP relay moving both directions with splice(2), optionally mirroring",
        description="Relay TCP connections from --listen to --target, both directions with "
        "splice(2), half-close respected. With --mirror, every byte the client sends also goes "
        "to the mirror (shadow traffic) through tee(2); a slow or dead mirror is dropped and "
        "logged, never slowing or breaking the real connection.",
    )
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to accept")
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="where to relay")
    parser.add_argument("--mirror", metavar="HOST:PORT", help="where to copy client bytes")
    parser.add_argument(
        "--backend",
        choices=["asyncio", "uvloop", "trio"],
        default="asyncio",
        help="the event loop the proxy runs on (default: asyncio)",
    )
    for flag, kind, default, metavar, what in _TUNING:
        parser.add_argument(
            flag, type=kind, default=default, metavar=metavar, help=f"{what} (default {default})"
        )
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Options:
    listen: tuple[str, int]
    target: tuple[str, int]
    mirror: tuple[str, int] | None
    max_connections: int
    idle_timeout: float
    mirror_lag: float
    grace: float
    stats_interval: float
    backend: str = "asyncio"


def run(args: argparse.Namespace) -> int:
    for name in ("max_connections", "idle_timeout", "grace"):
        if not getattr(args, name) > 0:
            raise CliError(f"--{name.replace('_', '-')} must be more than 0")
    if not args.mirror_lag >= 0 or not args.stats_interval >= 0:
        raise CliError("--mirror-lag and --stats-interval must be 0 or more")
    options = Options(
        listen=parse_address(args.listen, what="--listen"),
        target=parse_address(args.target, what="--target"),
        mirror=parse_address(args.mirror, what="--mirror") if args.mirror else None,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        mirror_lag=args.mirror_lag,
        grace=args.grace,
        stats_interval=args.stats_interval,
        backend=args.backend,
    )
    backend, backend_options = _backend(args.backend)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    anyio.run(Proxy(options).serve, backend=backend, backend_options=backend_options)
    return 0


def _backend(name: str) -> tuple[str, dict[str, Any]]:
    if name == "trio":
        require("trio", "trio")
        return "trio", {}
    if name == "uvloop":
        uvloop = require("uvloop", "uvloop")
        return "asyncio", {"loop_factory": uvloop.new_event_loop}
    return "asyncio", {}


@dataclass
class Connection:
    """One client's relay: its counters, for the idle timeout and the log."""

    number: int
    peer: str
    up: zcio.Progress = field(default_factory=zcio.Progress)
    mirrored: zcio.TeeProgress = field(default_factory=zcio.TeeProgress)  # up, with a mirror
    down: zcio.Progress = field(default_factory=zcio.Progress)
    mirror_dropped: bool = False
    idle: float = 0.0  # seconds without a byte either way, as the watch last saw it
    scope: anyio.CancelScope | None = None  # set once relaying: cancelling it ends the relay
    evicted: bool = False

    @property
    def taken_up(self) -> int:
        return self.up.taken + self.mirrored.taken

    @property
    def moved(self) -> int:
        return self.taken_up + self.down.taken


class Proxy:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.active: dict[int, Connection] = {}
        self.served = 0
        self.mirror_drops = 0
        self.start = zcio.stats()
        self.slots = anyio.Semaphore(options.max_connections)
        per_relay = PIPES_PER_MIRRORED_RELAY if options.mirror else PIPES_PER_RELAY
        self.pool = zcio.PipePool(
            limit=per_relay * options.max_connections, size=PIPE_SIZE, keep=PIPES_KEPT
        )
        self.evicted = 0
        self._cap_logged_at: dict[str, float] = {}  # per message
        self.stopping = False
        self._control: TaskGroup | None = None
        self._connections: TaskGroup | None = None

    # -- the listener and its life ---------------------------------------------------------

    async def serve(self) -> None:
        host, port = self.options.listen
        try:
            listeners = listen(host, port)
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from exc
        try:  # a target that is down at start is a mistake worth one line, not a log per client
            with anyio.fail_after(CONNECT_TIMEOUT):
                (await connect(*self.options.target)).close()
        except (OSError, TimeoutError) as exc:
            for sock in listeners:
                sock.close()
            why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or exc
            where = format_address(self.options.target)
            raise CliError(f"target {where}: {why} (is it running?)", 1) from exc
        with ExitStack() as stack:
            for sock in listeners:
                stack.enter_context(sock)
            try:
                await self._serve(listeners)
            finally:
                self.pool.clear()  # every relay has ended: all its pipes are idle
        self.report("exit")

    async def _serve(self, listeners: list[socket.socket]) -> None:
        bound = ", ".join(format_address(sock.getsockname()) for sock in listeners)
        to = format_address(self.options.target)
        if self.options.mirror:
            to += f" (mirror {format_address(self.options.mirror)})"
        log.info("%s", active_methods(("splice", "tee") if self.options.mirror else ("splice",)))
        log.info("pipe pool: up to %d pipes of %s (%s of kernel memory when all are full)",
                 self.pool.limit, human(PIPE_SIZE), human(self.pool.limit * PIPE_SIZE))  # fmt: skip
        print(
            f"zcio proxy: listening on {bound}, relaying to {to} ({self.options.backend})",
            flush=True,
        )
        async with anyio.create_task_group() as top:
            top.start_soon(self.watch_signals)
            async with anyio.create_task_group() as connections:
                self._connections = connections
                async with anyio.create_task_group() as control:
                    self._control = control
                    if self.stopping:  # a signal came before we got here
                        control.cancel_scope.cancel()
                    for sock in listeners:
                        control.start_soon(self.accept_loop, sock, connections)
                    if self.options.stats_interval:
                        control.start_soon(self.report_every, self.options.stats_interval)
                    control.start_soon(self.watch_pipes)
                for sock in listeners:  # stop listening first: a new client is refused now,
                    sock.close()  # not accepted by the kernel and reset at exit
                if self.active:
                    log.info("waiting up to %g s for %d connection(s)", self.options.grace,
                             len(self.active))  # fmt: skip
                connections.cancel_scope.deadline = anyio.current_time() + self.options.grace
            top.cancel_scope.cancel()

    async def accept_loop(self, listener: socket.socket, connections: TaskGroup) -> None:
        while True:
            await anyio.wait_readable(listener)  # a client is waiting
            if self.slots.value == 0 and not self.make_room():
                self.log_cap("new ones wait")
                with anyio.move_on_after(CAP_RETRY):  # by then a relay may have gone idle
                    await self.slots.acquire()
                    self.slots.release()
                continue
            await self.slots.acquire()  # at once, or once the relay closed for room has ended
            try:
                client, peer = await accept(listener)
            except OSError as exc:
                self.slots.release()
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                # Out of fds or memory: the client waits in the backlog until a relay ends.
                log.warning("cannot accept: %s; retrying in %g s", exc.strerror, ACCEPT_PAUSE)
                await anyio.sleep(ACCEPT_PAUSE)
                continue
            except BaseException:
                self.slots.release()
                raise
            self.served += 1
            connections.start_soon(self.relay, client, Connection(self.served, peer))

    def make_room(self) -> bool:
        """At the limit with a client waiting: close the relay idle longest (the oldest of
        those idle as long). False when every relay moved bytes in the last second (or is
        still connecting to the target)."""
        idle = [c for c in self.active.values() if c.idle > 0 and not c.evicted and c.scope]
        if not idle:
            return False
        victim = max(idle, key=lambda c: (c.idle, -c.number))
        scope, victim.evicted = victim.scope, True
        self.evicted += 1
        log.info("#%d %s: idle for %g s, closed for a new client (at the limit of %d)",
                 victim.number, victim.peer, victim.idle, self.options.max_connections)  # fmt: skip
        self.log_cap("idle relays are closed for new ones")
        if scope is not None:  # always: only relaying connections were candidates
            scope.cancel()
        return True

    def log_cap(self, what: str) -> None:
        now = anyio.current_time()
        if now - self._cap_logged_at.get(what, float("-inf")) >= CAP_WARN_EVERY:
            self._cap_logged_at[what] = now
            log.info("at the limit of %d connections: %s (%d idle ones closed so far)",
                     self.options.max_connections, what, self.evicted)  # fmt: skip

    async def watch_pipes(self) -> None:
        """Warn when relays copied through user space for lack of a pipe (the process or the
        user out of pipes, or the pool at its limit): at once, then at most once every
        ``PIPE_WARN_EVERY`` seconds, with the count since the last warning."""
        seen = zcio.stats().fallbacks.get("no_pipe", 0)
        warned_at = float("-inf")
        while True:
            await anyio.sleep(1.0)
            now = zcio.stats().fallbacks.get("no_pipe", 0)
            if now == seen or anyio.current_time() - warned_at < PIPE_WARN_EVERY:
                continue
            warned_at = anyio.current_time()
            log.warning(
                "%d transfer(s) copied through user space for lack of a pipe (pool: %d of %d "
                "in use); see ulimit -n and /proc/sys/fs/pipe-user-pages-soft",
                now - seen,
                self.pool.busy,
                self.pool.limit,
            )
            seen = now

    async def watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.stopping:
                    log.info("%s again: closing %d connection(s) now", name, len(self.active))
                    if self._connections is not None:
                        self._connections.cancel_scope.cancel()
                    continue
                self.stopping = True
                log.info("%s: shutting down, no new connections", name)
                if self._control is not None:
                    self._control.cancel_scope.cancel()

    async def report_every(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            self.report("so far")

    def report(self, when: str) -> None:
        moved = (zcio.stats() - self.start).summary()
        log.info("%s: %d connection(s), %d active, %d mirror drop(s); %s", when, self.served,
                 len(self.active), self.mirror_drops, moved)  # fmt: skip

    # -- one connection ---------------------------------------------------------------------

    async def relay(self, client: socket.socket, conn: Connection) -> None:
        """Relay one client until both directions ended; every socket is closed after."""
        self.active[conn.number] = conn
        try:
            with ExitStack() as stack:
                stack.enter_context(client)
                target = await self.connect(conn, self.options.target, "target")
                if target is None:
                    return
                stack.enter_context(target)
                mirror = None
                if self.options.mirror:
                    mirror = await self.connect(conn, self.options.mirror, "mirror")
                    if mirror is not None:
                        stack.enter_context(mirror)
                log.info("#%d %s: relaying", conn.number, conn.peer)
                try:
                    await self.pump_both(conn, client, target, mirror)
                except* ENDED:
                    # Ended by an error (a peer's reset, a broken pipe): both sides get a
                    # reset, as a relay must pass it on. A plain close would tell the client
                    # that the answer ended whole when it was cut short. (Left: the kernel
                    # reports a reset to one call only; when the other direction's write
                    # takes it, the read ends as at a FIN, and that FIN may go out first.)
                    _reset_on_close(client)
                    _reset_on_close(target)
                    raise
            log.info("#%d %s: done, %s up, %s down", conn.number, conn.peer, human(conn.taken_up),
                     human(conn.down.taken))  # fmt: skip
        except* ENDED as group:
            log.info("#%d %s: ended: %s", conn.number, conn.peer, _reason(group))
        finally:
            del self.active[conn.number]
            self.slots.release()

    async def connect(
        self, conn: Connection, address: tuple[str, int], role: str
    ) -> socket.socket | None:
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                return await connect(*address)
        except (OSError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or exc
            where = format_address(address)
            if role == "mirror":
                self.mirror_drops += 1
                log.warning("#%d %s: mirror %s unavailable (%s): relaying without it",
                            conn.number, conn.peer, where, why)  # fmt: skip
            else:
                log.warning("#%d %s: target %s: %s; closing the client", conn.number, conn.peer,
                            where, why)  # fmt: skip
            return None

    async def pump_both(
        self,
        conn: Connection,
        client: socket.socket,
        target: socket.socket,
        mirror: socket.socket | None,
    ) -> None:
        async with anyio.create_task_group() as whole:
            conn.scope = whole.cancel_scope
            whole.start_soon(self.watch, conn, whole.cancel_scope, mirror)
            if mirror is not None:
                whole.start_soon(_discard, mirror, self.pool)
            async with anyio.create_task_group() as pumps:
                pumps.start_soon(self.upstream, conn, client, target, mirror)
                pumps.start_soon(_pump, target, client, conn.down, self.pool)
            whole.cancel_scope.cancel()  # both directions ended: stop the watch and the discard
        self.notice_drop(conn, mirror)

    async def upstream(
        self,
        conn: Connection,
        client: socket.socket,
        target: socket.socket,
        mirror: socket.socket | None,
    ) -> None:
        if mirror is None:
            await _pump(client, target, conn.up, self.pool)
            return
        lag, progress = self.options.mirror_lag, conn.mirrored
        await zcio.tee_stream(
            client, target, mirrors=[mirror], mirror_lag=lag, progress=progress, pool=self.pool
        )
        target.shutdown(socket.SHUT_WR)
        if not progress.dropped:
            # The mirror may have died after taking the last bytes (the tee did not see it;
            # _discard may have shut it down already): its trouble, never the connection's.
            with suppress(OSError):
                mirror.shutdown(socket.SHUT_WR)

    async def watch(
        self, conn: Connection, scope: anyio.CancelScope, mirror: socket.socket | None
    ) -> None:
        """The idle timeout, and noticing a dropped mirror while the connection goes on."""
        tick = min(1.0, self.options.idle_timeout / 4)  # one wake-up a second per connection
        last, idle = conn.moved, 0.0
        while True:
            await anyio.sleep(tick)
            self.notice_drop(conn, mirror)
            idle = 0.0 if conn.moved != last else idle + tick
            conn.idle = idle
            last = conn.moved
            if idle >= self.options.idle_timeout:
                log.info("#%d %s: idle for %g s, closing", conn.number, conn.peer, idle)
                scope.cancel()
                return

    def notice_drop(self, conn: Connection, mirror: socket.socket | None) -> None:
        """Log a dropped mirror once, and shut its socket down: it sees the end now."""
        if mirror is None or not conn.mirrored.dropped or conn.mirror_dropped:
            return
        conn.mirror_dropped = True
        self.mirror_drops += 1
        why = next(iter(conn.mirrored.dropped.values()))
        log.warning("#%d %s: mirror dropped: %s", conn.number, conn.peer, why)
        with suppress(OSError):
            mirror.shutdown(socket.SHUT_RDWR)


async def _pump(
    src: socket.socket, dst: socket.socket, progress: zcio.Progress, pool: zcio.PipePool
) -> None:
    await zcio.splice_stream(src, dst, progress=progress, pool=pool)
    dst.shutdown(socket.SHUT_WR)  # pass the half-close on; the other direction goes on


async def _discard(mirror: socket.socket, pool: zcio.PipePool) -> None:
    """Splice what the mirror answers into /dev/null, so that it never blocks on its writes.

    Whatever goes wrong here is the mirror's trouble, never the connection's: the mirror's
    socket is shut down, so the tee drops it (and it is logged once, by ``notice_drop``)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            await zcio.splice_stream(mirror, null, pool=pool)
        finally:
            os.close(null)
    except Exception as exc:
        log.debug("mirror's answers: %s: %s", type(exc).__name__, exc)
        with suppress(OSError):
            mirror.shutdown(socket.SHUT_RDWR)


def _reset_on_close(sock: socket.socket) -> None:
    """Make ``close`` send an RST (``SO_LINGER`` on, 0 s) instead of a FIN."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reason(group: BaseExceptionGroup[BaseException]) -> str:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return "; ".join(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in leaves)
