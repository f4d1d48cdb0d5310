"""Benchmark a TCP relay built on ``zcio.splice_stream`` (and ``zcio.tee_stream``) against the
relays a user would otherwise run.

Every run moves one stream over loopback TCP: a **sender** process (a blocking ``os.sendfile``
loop of a cached file, then a half-close) -> the **relay** under test -> the **receiver**
process of ``bench/_common.py`` (socket -> pipe -> ``/dev/null`` with splice, then it answers
with the byte count). The relay is a real full-duplex relay program: it carries both directions
and passes each half-close on, so the receiver's answer comes back through it to the sender,
whose clock stops there. The relay is the measured process: its CPU (user + system, all threads,
from ``/proc/PID/stat``) is read by the sender right before the first byte and right after the
answer, the same way for every relay, HAProxy included.

For scale, a first row has no relay: the sender straight into the receiver. Relays:
``zcio.splice_stream`` on asyncio, asyncio+uvloop and trio (anyio streams), the same
with zcio's zero-copy methods switched off (``ZCIO_DISABLE=all``), an asyncio
``StreamReader``/``StreamWriter`` relay with 64 KiB reads, a blocking Python splice relay (one
thread per direction), and HAProxy in TCP mode with splice when ``haproxy`` is installed.

A second figure: ``zcio.tee_stream`` copying the sender's stream to two receivers (two receiver
processes), per backend, against ``splice_stream`` to one receiver on the same backend.

Every relay runs as a fresh process per run; runs of all relays are interleaved, so drift on a
shared machine hits every relay alike. Targets are printed beside the results, never asserted.

    python bench/relay.py [--size-mib N] [--runs N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from _common import (
    ACK,
    BENCH_DIR,
    GIB,
    MAX_CALL,
    MIB,
    ChildFailed,
    Meter,
    Receiver,
    Run,
    Service,
    Sizes,
    bench_parser,
    by_round,
    calls_per_gib,
    cpu_per_gib,
    ensure_file,
    environment,
    finish,
    fmt,
    free_port,
    listening,
    markdown_table,
    median,
    methods_seen,
    missing,
    open_fd,
    parse_args,
    per_gib,
    program_version,
    progress,
    result_row,
    result_section,
    run_child,
    run_gbps,
    run_gib,
    sizing_text,
    spread,
    stats_delta,
    tree_cpu,
    warm,
    zcio_of,
)

HOST = "127.0.0.1"
#: The asyncio streams relay's read size: what such relays are usually written with.
STREAMS_CHUNK = 64 << 10
#: The blocking splice relay's pipe (the default /proc/sys/fs/pipe-max-size).
PIPE_SIZE = MIB
#: The sender waits this long after connecting before it starts the clock, so that the relay's
#: accept and its own connection to the receiver are not counted.
SETTLE = 0.1
#: How long the sender waits for the receiver's answer, then for the relay's end of stream.
ANSWER_TIMEOUT = 30.0
#: Targets for zcio's zero-copy relays (printed beside the results, never asserted).
TARGET_X_HAPROXY_GBPS = 1.1
TARGET_X_HAPROXY_CPU = 1.0
TARGET_X_STREAMS_GBPS = 4.0
TARGET_TEE = 0.8
HAPROXY_CONFIG = """\
global
  maxconn 1000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option splice-request
  option splice-response
listen relay
  bind {host}:{listen_port}
  server s1 {host}:{target_port}
"""

Result = dict[str, Any]


# === The sender: a child per run, which also does the measuring ================================


@dataclass(frozen=True, slots=True)
class SendJob:
    path: Path
    size: int
    port: int
    relay_pid: int  # 0: no relay (the sender connects straight to the receiver)


def _recv_answer(sock: socket.socket) -> int:
    """The receiver's byte count, relayed back; -1 if the stream ended first."""
    data = b""
    for _ in range(ACK.size):  # recv returns at least one byte unless the stream ended
        chunk = sock.recv(ACK.size - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) == ACK.size:
            return int(ACK.unpack(data)[0])
    return -1


def _relay_closed(sock: socket.socket) -> bool:
    """After the answer: does the relay pass the receiver's end of stream on to us?"""
    for _ in range(16):
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
    return False  # more bytes than the answer: the relay sent something it should not have


def _machine_split() -> dict[str, int]:
    """The first line of ``/proc/stat``, in clock ticks, by kind of time."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(x) for name, x in zip(names, fields[1:9], strict=True)}


def send(job: SendJob) -> Result:
    """Send the cached file through the relay; measure the relay, the machine and ourselves."""
    with open_fd(job.path) as fd, socket.create_connection((HOST, job.port)) as sock:
        time.sleep(SETTLE)
        user0, system0 = tree_cpu(job.relay_pid) if job.relay_pid else (0.0, 0.0)
        split0 = _machine_split()
        meter = Meter()
        sent = calls = 0
        while sent < job.size:
            n = os.sendfile(sock.fileno(), fd, sent, min(job.size - sent, MAX_CALL))
            if n == 0:
                break
            sent += n
            calls += 1
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(ANSWER_TIMEOUT)
        acked = _recv_answer(sock)
        sample = meter.stop()
        split1 = _machine_split()
        user1, system1 = tree_cpu(job.relay_pid) if job.relay_pid else (0.0, 0.0)
        closed = _relay_closed(sock)
    return {
        "wall_s": sample.wall,
        "relay_user_s": user1 - user0,
        "relay_system_s": system1 - system0,
        "machine_s": sample.machine,
        "machine_ticks": {k: split1[k] - split0[k] for k in split0},
        "sender_cpu_s": sample.cpu,
        "sent": sent,
        "acked": acked,
        "relay_closed": closed,
        "sender_calls": calls,
    }


# === The relays: a child per run, serving --connections connections ============================


@dataclass(frozen=True, slots=True)
class RelayJob:
    kind: str
    backend: str
    targets: tuple[int, ...]
    connections: int
    deadline: float


def _announce(port: int) -> None:
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)


def _report(report: Result) -> None:
    print(json.dumps(report), flush=True)


def _local_port(stream: SocketStream) -> int:
    return int(stream.extra(SocketAttribute.local_port))


async def _send_eof(stream: SocketStream) -> None:
    """Pass the half-close on; a peer that is already gone needs none."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send_eof()


async def _zcio_connection(inbound: SocketStream, job: RelayJob) -> Result:
    """One proxied connection: ``splice_stream`` in each direction, each passing its
    half-close on, as a proxy does; one failing direction ends the other."""
    import zcio

    async with inbound, await anyio.connect_tcp(HOST, job.targets[0]) as outbound:
        before = zcio.stats()
        meter = Meter()
        moved: dict[str, int] = {}

        async def one_way(src: SocketStream, dst: SocketStream, key: str) -> None:
            moved[key] = await zcio.splice_stream(src, dst)
            await _send_eof(dst)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one_way, inbound, outbound, "up")
            tg.start_soon(one_way, outbound, inbound, "down")
        spent = meter.stop()
        return {
            "up": moved["up"],
            "down": moved["down"],
            "outbound_ports": [_local_port(outbound)],
            "self_cpu_s": spent.cpu,
            "self_wall_s": spent.wall,
            "zcio": stats_delta(before, zcio.stats()),
            "zcio_disable": os.environ.get("ZCIO_DISABLE", ""),
        }


async def _collect(stream: SocketStream, limit: int = 1 << 16) -> bytes:
    """Everything a receiver answers (a few bytes) until it closes."""
    data = b""
    for _ in range(limit):
        try:
            data += await stream.receive()
        except anyio.EndOfStream:
            break
        if len(data) >= limit:
            break
    return data


async def _tee_connection(inbound: SocketStream, job: RelayJob) -> Result:
    """One mirrored connection: the inbound stream goes to every target with ``tee_stream``.
    The sender is answered with the first target's answer once every target has answered
    (an acknowledged write to all replicas), so its clock covers delivery to all of them."""
    import zcio

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(inbound)
        outs = [
            await stack.enter_async_context(await anyio.connect_tcp(HOST, port))
            for port in job.targets
        ]
        before = zcio.stats()
        meter = Meter()
        moved: dict[str, int] = {}
        answers: list[bytes] = [b""] * len(outs)

        async def forward() -> None:
            moved["up"] = await zcio.tee_stream(inbound, *outs)
            for out in outs:
                await _send_eof(out)

        async def collect(i: int) -> None:
            answers[i] = await _collect(outs[i])

        async def answer() -> None:
            async with anyio.create_task_group() as tg:
                for i in range(len(outs)):
                    tg.start_soon(collect, i)
            await inbound.send(answers[0])
            moved["down"] = len(answers[0])
            await _send_eof(inbound)

        async with anyio.create_task_group() as tg:
            tg.start_soon(forward)
            tg.start_soon(answer)
        spent = meter.stop()
        return {
            "up": moved["up"],
            "down": moved["down"],
            "answers": [ACK.unpack(a)[0] if len(a) == ACK.size else -1 for a in answers],
            "outbound_ports": [_local_port(out) for out in outs],
            "self_cpu_s": spent.cpu,
            "self_wall_s": spent.wall,
            "zcio": stats_delta(before, zcio.stats()),
            "zcio_disable": os.environ.get("ZCIO_DISABLE", ""),
        }


def anyio_relay(job: RelayJob) -> None:
    """The zcio relay: an anyio TCP listener; every connection handled in its own task."""
    handler = _tee_connection if job.kind == "zcio-tee" else _zcio_connection

    async def handle(stream: SocketStream) -> None:
        _report(await handler(stream, job))

    async def main() -> None:
        import zcio  # imported before the first connection, as a server would

        del zcio
        multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0, backlog=16)
        async with multi:
            listener = multi.listeners[0]
            if not isinstance(listener, SocketListener):
                raise TypeError(f"unexpected listener {listener!r}")
            _announce(int(listener.extra(SocketAttribute.local_port)))
            with anyio.fail_after(job.deadline):
                async with anyio.create_task_group() as tg:
                    for _ in range(job.connections):
                        tg.start_soon(handle, await listener.accept())

    if job.backend == "uvloop":
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(main, backend=job.backend)


async def _streams_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """What relays are written with today: read 64 KiB, write, drain, until EOF."""
    total = 0
    while data := await reader.read(STREAMS_CHUNK):
        writer.write(data)
        await writer.drain()
        total += len(data)
    if writer.can_write_eof():
        writer.write_eof()
    return total


def streams_relay(job: RelayJob) -> None:
    """The asyncio streams relay: ``asyncio.start_server``; a task per direction."""

    async def main() -> None:
        served = 0
        all_served = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            try:
                up_reader, up_writer = await asyncio.open_connection(HOST, job.targets[0])
                meter = Meter()
                try:
                    async with asyncio.TaskGroup() as tg:
                        up = tg.create_task(_streams_pump(reader, up_writer))
                        down = tg.create_task(_streams_pump(up_reader, writer))
                finally:
                    up_writer.close()
                spent = meter.stop()
                sockname = up_writer.get_extra_info("sockname")
                _report(
                    {
                        "up": up.result(),
                        "down": down.result(),
                        "outbound_ports": [int(sockname[1])] if sockname else [],
                        "self_cpu_s": spent.cpu,
                        "self_wall_s": spent.wall,
                    }
                )
            finally:
                writer.close()
                served += 1
                if served >= job.connections:
                    all_served.set()

        server = await asyncio.start_server(handle, HOST, 0, backlog=16)
        async with server:
            _announce(int(server.sockets[0].getsockname()[1]))
            async with asyncio.timeout(job.deadline):
                await all_served.wait()

    asyncio.run(main())


def _splice_one_way(
    src: socket.socket, dst: socket.socket, moved: dict[str, int], key: str
) -> None:
    """Blocking socket -> pipe -> socket until ``src`` ends, then half-close ``dst``."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        total = 0
        while n := os.splice(src.fileno(), w, size, flags=os.SPLICE_F_MOVE):
            total += n
            while n:  # empty the pipe before reading again
                m = os.splice(r, dst.fileno(), n, flags=os.SPLICE_F_MOVE)
                if m == 0:
                    raise ConnectionError("splice into the socket moved nothing")
                n -= m
        moved[key] = total
        dst.shutdown(socket.SHUT_WR)
    finally:
        os.close(r)
        os.close(w)


def _blocking_connection(conn: socket.socket, job: RelayJob, deadline: float) -> None:
    with conn, socket.create_connection((HOST, job.targets[0])) as out:
        meter = Meter()
        moved: dict[str, int] = {}
        threads = [
            threading.Thread(target=_splice_one_way, args=(conn, out, moved, "up")),
            threading.Thread(target=_splice_one_way, args=(out, conn, moved, "down")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):  # out of time: wake the splices, give up
            for s in (conn, out):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            for t in threads:
                t.join(timeout=10)
            raise TimeoutError("the blocking relay ran out of time")
        spent = meter.stop()
        _report(
            {
                "up": moved.get("up", -1),
                "down": moved.get("down", -1),
                "outbound_ports": [int(out.getsockname()[1])],
                "self_cpu_s": spent.cpu,
                "self_wall_s": spent.wall,
            }
        )


def blocking_relay(job: RelayJob) -> None:
    """A blocking splice relay: a thread per connection, and a thread per direction in it."""
    deadline = time.monotonic() + job.deadline
    with socket.create_server((HOST, 0), backlog=16) as listener:
        _announce(int(listener.getsockname()[1]))
        handlers: list[threading.Thread] = []
        for _ in range(job.connections):
            listener.settimeout(max(0.001, deadline - time.monotonic()))
            conn, _peer = listener.accept()
            conn.setblocking(True)  # splice needs the fd itself to block
            t = threading.Thread(target=_blocking_connection, args=(conn, job, deadline))
            t.start()
            handlers.append(t)
        for t in handlers:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + 15)


RELAYS: dict[str, Callable[[RelayJob], None]] = {
    "zcio": anyio_relay,
    "zcio-tee": anyio_relay,
    "streams": streams_relay,
    "blocking-splice": blocking_relay,
}


# === The parent: relays, runs, checks, tables ==================================================


@dataclass(frozen=True, slots=True)
class Variant:
    """One relay to measure: which program, on which backend, with which environment."""

    key: str
    label: str
    relay: str  # a key of RELAYS, "haproxy", "zcio-proxy" (the command), or "none" (no relay)
    backend: str = "asyncio"
    env: dict[str, str] = field(default_factory=dict)
    target: bool = False  # a zcio zero-copy relay: the targets apply
    method: str = ""  # the method zcio.stats() should show moving the stream
    needs: str = ""  # an optional module the relay cannot run without
    command: str = ""  # an optional program the relay is

    @property
    def receivers(self) -> int:
        return 2 if self.relay == "zcio-tee" else 1


DIRECT = Variant(
    "direct",
    "no relay: the sender straight into the receiver (for scale)",
    "none",
)
HAPROXY = Variant(
    "haproxy",
    "HAProxy, TCP mode, `option splice-request` + `splice-response`",
    "haproxy",
    command="haproxy",
)
STREAMS = Variant(
    "asyncio_streams",
    "asyncio StreamReader/StreamWriter relay, 64 KiB reads",
    "streams",
)
BACKENDS = (("asyncio", ""), ("uvloop", "uvloop"), ("trio", "trio"))
_BACKEND_LABEL = {"asyncio": "asyncio", "uvloop": "asyncio+uvloop", "trio": "trio"}

RELAY_VARIANTS = (
    DIRECT,
    *(
        Variant(
            f"zcio_{backend}",
            f"`zcio.splice_stream` relay, {_BACKEND_LABEL[backend]}",
            "zcio",
            backend=backend,
            target=True,
            method="splice",
            needs=needs,
        )
        for backend, needs in BACKENDS
    ),
    Variant(
        "zcio_fallback_asyncio",
        "`zcio.splice_stream` relay, forced fallback (`ZCIO_DISABLE=all`), asyncio",
        "zcio",
        env={"ZCIO_DISABLE": "all"},
        method="userspace",
    ),
    *(
        Variant(
            f"zcio_proxy_{backend}",
            f"`zcio proxy` (the command), `--backend {backend}`",
            "zcio-proxy",
            backend=backend,
            target=True,
            needs=needs,
        )
        for backend, needs in (("asyncio", ""), ("trio", "trio"))
    ),
    STREAMS,
    Variant(
        "blocking_splice",
        "blocking Python splice relay, 1 MiB pipe, thread per direction",
        "blocking-splice",
    ),
    HAPROXY,
)

TEE_VARIANTS = tuple(
    Variant(
        f"tee_{backend}",
        f"`zcio.tee_stream` to 2 receivers, {_BACKEND_LABEL[backend]}",
        "zcio-tee",
        backend=backend,
        target=True,
        method="tee",
        needs=needs,
    )
    for backend, needs in BACKENDS
)


def _available(v: Variant) -> bool:
    return not missing([v.needs], [v.command])


def _missing(v: Variant) -> str:
    return v.command or v.needs


def _haproxy_version() -> str:
    exe = shutil.which("haproxy")
    if exe is None:
        return "not installed"
    return program_version([exe, "-v"], r"HAProxy version (\S+)")


class Bench:
    """Starts a relay and a sender per run, checks every byte count, keeps the results."""

    def __init__(
        self, receivers: Sequence[Receiver], path: Path, size: int, timeout: float
    ) -> None:
        self.receivers = receivers
        self.path = path
        self.size = size
        self.timeout = timeout
        self.failures: list[str] = []
        self.script = str(Path(__file__).resolve())

    @contextlib.contextmanager
    def _haproxy(self) -> Iterator[tuple[Service | None, int]]:
        exe = shutil.which("haproxy")
        if exe is None:
            raise ChildFailed("haproxy is not installed")
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        config = BENCH_DIR / "relay-haproxy.cfg"
        log = BENCH_DIR / "relay-haproxy.err"
        for _attempt in range(3):  # the free port may be taken before haproxy binds it
            port = free_port(HOST)
            config.write_text(
                HAPROXY_CONFIG.format(
                    host=HOST, listen_port=port, target_port=self.receivers[0].port
                )
            )
            with Service([exe, "-f", str(config), "-db"], stderr=log) as svc:
                for _ in range(1000):
                    if listening(port, HOST) or svc.poll() is not None:
                        break
                    time.sleep(0.01)
                if svc.poll() is None and listening(port, HOST):
                    yield svc, port
                    return
        raise ChildFailed(f"haproxy did not start; its log ({log}):\n{log.read_text()[-2000:]}")

    @contextlib.contextmanager
    def _zcio_proxy(self, v: Variant) -> Iterator[tuple[Service | None, int]]:
        """``zcio proxy`` as a user runs it: its own process, measured like HAProxy."""
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        log = BENCH_DIR / "relay-zcio-proxy.err"
        for _attempt in range(3):  # the free port may be taken before the proxy binds it
            port = free_port(HOST)
            argv = [sys.executable, "-m", "zcio", "proxy", "--listen", f"{HOST}:{port}"]
            argv += ["--target", f"{HOST}:{self.receivers[0].port}", "--backend", v.backend]
            argv += ["--stats-interval", "0"]
            with Service(argv, stderr=log) as svc:
                for _ in range(1000):
                    if listening(port, HOST) or svc.poll() is not None:
                        break
                    time.sleep(0.01)
                if svc.poll() is None and listening(port, HOST):
                    # The proxy connects once at start to check its target: not a run's.
                    self.receivers[0].next_connection()
                    yield svc, port
                    return
        raise ChildFailed(f"zcio proxy did not start; its log ({log}):\n{log.read_text()[-2000:]}")

    @contextlib.contextmanager
    def _python_relay(self, v: Variant) -> Iterator[tuple[Service | None, int]]:
        argv = [
            sys.executable,
            self.script,
            "--relay",
            v.relay,
            "--backend",
            v.backend,
            "--connections",
            "1",
            "--deadline",
            str(self.timeout + 10),
            *(arg for rx in self.receivers[: v.receivers] for arg in ("--target", str(rx.port))),
        ]
        env = {key: val for key, val in os.environ.items() if key != "ZCIO_DISABLE"}
        env.update(v.env)
        with Service(argv, env=env) as svc:
            hello = svc.line(timeout=30)
            yield svc, int(hello["port"])

    @contextlib.contextmanager
    def _no_relay(self) -> Iterator[tuple[Service | None, int]]:
        yield None, self.receivers[0].port

    def run(self, v: Variant, round_no: int, run_label: str) -> Result | None:
        for rx in self.receivers:
            rx.discard_reports()
        if v.relay == "none":
            relay = self._no_relay()
        elif v.relay == "haproxy":
            relay = self._haproxy()
        elif v.relay == "zcio-proxy":
            relay = self._zcio_proxy(v)
        else:
            relay = self._python_relay(v)
        try:
            with relay as (svc, port):
                argv = [
                    sys.executable,
                    self.script,
                    "--worker",
                    "send",
                    "--file",
                    str(self.path),
                    "--size",
                    str(self.size),
                    "--port",
                    str(port),
                    "--relay-pid",
                    str(0 if svc is None else svc.pid),
                ]
                result = run_child(argv, timeout=self.timeout)
                external = v.relay in ("haproxy", "zcio-proxy")  # no JSON report
                report = {} if svc is None or external else svc.line(timeout=30)
            result["relay"] = report
            ports = report.get("outbound_ports") or []
            result["receivers"] = [
                rx.connection(int(ports[i])) if i < len(ports) else rx.next_connection()
                for i, rx in enumerate(self.receivers[: v.receivers])
            ]
            result["round"] = round_no
            problem = self._check(result, v)
        except (ChildFailed, KeyError, ValueError, IndexError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            result = None
        if problem:
            self.failures.append(f"{run_label} {v.key}: {problem}")
            progress(f"  {run_label} {v.label}: FAILED: {problem}")
            return None
        return result

    def _check(self, result: Result, v: Variant) -> str:
        want = self.size
        if result["sent"] != want:
            return f"the sender sent {result['sent']} bytes, expected {want}"
        if result["acked"] != want:
            return f"the answer relayed back says {result['acked']} bytes, expected {want}"
        for i, seen in enumerate(result["receivers"]):
            if seen.get("bytes") != want:
                return f"receiver {i + 1} got {seen.get('bytes')} bytes, expected {want}"
        relay = result["relay"]
        if relay and relay.get("up") != want:
            return f"the relay says it moved {relay.get('up')} bytes, expected {want}"
        if not result["relay_closed"]:
            return "the relay did not pass the receiver's end of stream back to the sender"
        return ""


# --- Summaries ---------------------------------------------------------------------------------


def _cpu_per_gib(r: Run) -> float:
    return cpu_per_gib(r, "relay")


def _relay_zcio(r: Run) -> Mapping[str, Any]:
    return zcio_of(r["relay"])


def _unattributed(r: Result) -> float:
    """Machine busy time that none of the relay, the sender and the receivers account for:
    kernel threads (ksoftirqd) and anything else running on the machine."""
    mine = float(r["relay_user_s"]) + float(r["relay_system_s"]) + float(r["sender_cpu_s"])
    return float(r["machine_s"]) - mine - sum(float(x["cpu_s"]) for x in r["receivers"])


def _detail_row(v: Variant, ok: Sequence[Result], runs: int) -> list[str]:
    gb_all = [run_gbps(r) for r in ok]
    relayed = [] if v is DIRECT else ok
    cpu_all = [_cpu_per_gib(r) for r in relayed]
    user = median([float(r["relay_user_s"]) / run_gib(r) for r in relayed])
    system = median([float(r["relay_system_s"]) / run_gib(r) for r in relayed])
    machine = median([float(r["machine_s"]) / run_gib(r) for r in ok])
    sender = median([float(r["sender_cpu_s"]) / run_gib(r) for r in ok])
    receiver = median([sum(float(x["cpu_s"]) for x in r["receivers"]) / run_gib(r) for r in ok])
    self_cpu = [float(r["relay"]["self_cpu_s"]) / run_gib(r) for r in ok if r["relay"]]
    other = median([_unattributed(r) / run_gib(r) for r in ok])
    zcio_calls = "-"
    if v.method:
        method = "userspace" if v.method == "userspace" else "splice"
        zcio_calls = calls_per_gib(ok, method, _relay_zcio)
    return [
        v.label,
        f"{len(ok)}/{runs}",
        spread(gb_all),
        spread(cpu_all, 3),
        f"{user:.3f} / {system:.3f}" if cpu_all else "-",
        fmt(median(self_cpu), 3) if self_cpu else "-",
        fmt(machine, 3),
        fmt(sender, 3),
        fmt(receiver, 3),
        fmt(other, 3),
        zcio_calls,
        methods_seen(ok, v.method, stats=_relay_zcio, whole=int.__ge__) if v.method else "-",
    ]


_DETAIL_HEADERS = [
    "relay",
    "runs ok",
    "GB/s min-max",
    "relay CPU s/GiB min-max",
    "relay user / sys s/GiB",
    "relay self-measured CPU s/GiB",
    "machine CPU s/GiB",
    "sender CPU s/GiB",
    "receiver CPU s/GiB",
    "other CPU s/GiB",
    "zcio calls/GiB",
    "zcio method",
]


def _relay_target(xh_gbps: float, xh_cpu: float, xs_gbps: float, anchor: bool) -> str:
    misses = []
    if anchor:
        if not xh_gbps >= TARGET_X_HAPROXY_GBPS:
            misses.append(f"GB/s < {TARGET_X_HAPROXY_GBPS}x HAProxy")
        if not xh_cpu <= TARGET_X_HAPROXY_CPU:
            misses.append(f"CPU > {TARGET_X_HAPROXY_CPU}x HAProxy")
    if not xs_gbps >= TARGET_X_STREAMS_GBPS:
        misses.append(f"GB/s < {TARGET_X_STREAMS_GBPS}x streams")
    target = "met" if not misses else "MISSED: " + ", ".join(misses)
    return target + ("" if anchor else " (HAProxy part not measured)")


def _relay_summary(
    v: Variant,
    label: str,
    ok: Sequence[Result],
    haproxy: Sequence[Result],
    streams: Sequence[Result],
) -> dict[str, Any]:
    """One relay's medians, and its per-round ratios to HAProxy and to the streams relay."""
    relayed = [] if v is DIRECT else ok  # no relay: no relay CPU
    return {
        "label": label,
        "runs_ok": len(ok),
        "gbps": median([run_gbps(r) for r in ok]),
        "relay_cpu_s_per_gib": median([_cpu_per_gib(r) for r in relayed]),
        "x_haproxy_gbps": by_round(ok, haproxy, run_gbps),
        "x_haproxy_cpu": by_round(relayed, haproxy, _cpu_per_gib),
        "x_streams_gbps": by_round(ok, streams, run_gbps),
        "x_streams_cpu": by_round(relayed, streams, _cpu_per_gib),
        "machine_cpu_s_per_gib": median([per_gib(r, "machine_s") for r in ok]),
    }


_RELAY_HEADERS = [
    "relay",
    "GB/s",
    "relay CPU s/GiB",
    "x HAProxy GB/s",
    "x HAProxy CPU",
    "x streams GB/s",
    "x streams CPU",
    "target",
]


def relay_tables(
    results: dict[str, list[Result]], runs: int, haproxy_version: str
) -> tuple[str, str, dict[str, Any]]:
    """The main table (medians, ratios to HAProxy and to the asyncio streams relay) and the
    detail table."""
    haproxy = results.get(HAPROXY.key) or []
    streams = results.get(STREAMS.key) or []
    summary: dict[str, Any] = {}
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    for v in RELAY_VARIANTS:
        label = v.label + (f" {haproxy_version}" if v is HAPROXY and haproxy else "")
        ok = results.get(v.key)
        if not ok:
            skipped = v.key not in results
            note = f"({_missing(v)} not installed)" if skipped else ""
            rows.append([label, "skipped" if skipped else "failed", *[""] * 5, note])
            continue
        e = summary[v.key] = _relay_summary(v, label, ok, haproxy, streams)
        ratios = ["x_haproxy_gbps", "x_haproxy_cpu", "x_streams_gbps", "x_streams_cpu"]
        target = "-"
        if v.target:
            target = _relay_target(e[ratios[0]], e[ratios[1]], e[ratios[2]], bool(haproxy))
            e["target_met"] = target == "met"
        figures = [fmt(e["gbps"]), fmt(e["relay_cpu_s_per_gib"], 3)]
        rows.append([label, *figures, *(fmt(e[k]) for k in ratios), target])
        detail.append(_detail_row(v, ok, runs))
    main = markdown_table(_RELAY_HEADERS, rows, "lrrrrrrl")
    return main, markdown_table(_DETAIL_HEADERS, detail, "lrrrrrrrrrrl"), summary


def tee_tables(
    tee: dict[str, list[Result]], single: dict[str, list[Result]], runs: int
) -> tuple[str, str, dict[str, Any]]:
    """The tee figure: GB/s of the source, relay CPU per GiB of the source, and the ratio to
    ``splice_stream`` to one receiver on the same backend in the same round."""
    summary: dict[str, Any] = {}
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    for v in TEE_VARIANTS:
        ok = tee.get(v.key)
        if not ok:
            skipped = v.key not in tee
            note = f"({_missing(v)} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", "", "", "", note])
            continue
        ref = single.get(f"zcio_{v.backend}") or []
        x_gbps = by_round(ok, ref, run_gbps)
        target = "met" if x_gbps >= TARGET_TEE else f"MISSED: < {TARGET_TEE}x splice_stream"
        if not ref:
            target = "n/a (no splice_stream runs)"
        e = summary[v.key] = {
            "label": v.label,
            "runs_ok": len(ok),
            "gbps": median([run_gbps(r) for r in ok]),
            "relay_cpu_s_per_gib": median([_cpu_per_gib(r) for r in ok]),
            "x_splice_stream_gbps": x_gbps,
            "x_splice_stream_cpu": by_round(ok, ref, _cpu_per_gib),
            "target_met": target == "met",
        }
        cells = [e[k] for k in ("gbps", "relay_cpu_s_per_gib", "x_splice_stream_cpu")]
        rows.append([v.label, fmt(cells[0]), fmt(cells[1], 3), fmt(x_gbps), fmt(cells[2]), target])
        detail.append(_detail_row(v, ok, runs))
    headers = ["relay", "GB/s (source)", "relay CPU s/GiB", "x splice_stream GB/s"]
    main = markdown_table([*headers, "x splice_stream CPU", "target"], rows, "lrrrrl")
    return main, markdown_table(_DETAIL_HEADERS, detail, "lrrrrrrrrrrl"), summary


def schema(
    relay: dict[str, Any], tee: dict[str, Any], size: int, runs: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The results schema's sections (relay, tee) and rows, from the two summaries."""
    sizing = sizing_text(size, runs)
    sections = [
        result_section(
            "relay",
            "TCP relay, sender -> relay -> receiver; CPU: the relay's",
            anchor="HAProxy",
            anchor_program="haproxy",
            baseline="asyncio streams relay, 64 KiB reads",
            sizing=sizing,
            optional=[(HAPROXY.key, "HAProxy, TCP mode, splice", "haproxy")],
        ),
        result_section(
            "tee",
            "`zcio.tee_stream` to 2 receivers; CPU: the relay's",
            baseline="`zcio.splice_stream` to one receiver, same backend",
            sizing=sizing,
        ),
    ]
    roles = {HAPROXY.key: "anchor", STREAMS.key: "baseline"}
    rows = [
        result_row(
            "relay",
            key,
            str(e.get("label", key)),
            role=roles.get(key, ""),
            target_met=e.get("target_met"),
            gbps=e.get("gbps"),
            cpu_s_per_gib=e.get("relay_cpu_s_per_gib"),
            x_anchor=e.get("x_haproxy_gbps"),
            x_anchor_cpu=e.get("x_haproxy_cpu"),
            x_baseline=e.get("x_streams_gbps"),
            x_baseline_cpu=e.get("x_streams_cpu"),
        )
        for key, e in relay.items()
    ]
    rows += [
        result_row(
            "tee",
            key,
            str(e.get("label", key)),
            target_met=e.get("target_met"),
            gbps=e.get("gbps"),
            cpu_s_per_gib=e.get("relay_cpu_s_per_gib"),
            x_baseline=e.get("x_splice_stream_gbps"),
            x_baseline_cpu=e.get("x_splice_stream_cpu"),
        )
        for key, e in tee.items()
    ]
    return sections, rows


# --- Main ----------------------------------------------------------------------------------------


def _interleaved(bench: Bench, variants: Sequence[Variant], runs: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {v.key: [] for v in variants if _available(v)}
    for v in variants:
        if v.key not in results:
            progress(f"  skipping {v.label}: {_missing(v)} is not installed")
    for i in range(1, runs + 1):
        for v in variants:
            if v.key not in results:
                continue
            label = f"[round {i}/{runs}]"
            r = bench.run(v, i, label)
            if r is None:
                continue
            results[v.key].append(r)
            progress(f"  {label} {v.label}: {run_gbps(r):.2f} GB/s, {_cpu_per_gib(r):.3f} s/GiB")
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "Benchmark a zcio.splice_stream relay against HAProxy and asyncio streams.",
        Sizes(size_mib=(1024, 64), runs=(7, 3)),
    )
    # The children: the sender, and the relays.
    parser.add_argument("--worker", choices=["send"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay", choices=sorted(RELAYS), help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=int, action="append", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=600.0, help=argparse.SUPPRESS)
    return parse_args(parser, argv)


RELAY_NOTE = (
    "Targets (printed, never asserted): every zcio zero-copy relay >= "
    f"{TARGET_X_HAPROXY_GBPS}x HAProxy's GB/s at <= {TARGET_X_HAPROXY_CPU}x its relay CPU "
    f"s/GiB, and >= {TARGET_X_STREAMS_GBPS}x the asyncio streams relay's GB/s. Relay CPU is "
    "the relay process's user+system time, all threads (/proc/PID/stat, 10 ms ticks), "
    "from the sender's first byte to the receiver's answer arriving back through the "
    "relay. The x columns are medians of per-round ratios (against the HAProxy or streams "
    "run of the same round), so drift between rounds cancels. The first row has no relay "
    "at all: the sender straight into the receiver, for scale (on loopback a relay takes "
    "over part of the kernel's work, so it can come close to it, even pass it)."
)
DETAIL_NOTE = (
    "relay self-measured CPU: getrusage(RUSAGE_SELF) inside the relay, microsecond "
    "resolution, from its connection to the receiver to the end of both directions (not "
    "available for HAProxy): a cross-check of the tick-resolution figure. "
    "machine CPU: busy time of all cores during the transfer (/proc/stat): relay, sender, "
    "receiver and the kernel's loopback work wherever it ran. sender/receiver CPU: those "
    "processes' own time. On loopback the kernel does one side's TCP receive work in "
    "whichever process is sending at that moment, so part of the work moves between the "
    "sender's and the relay's figures from one relay to another: read the relay's CPU "
    "beside the sender's. other CPU: machine CPU that none of these processes account "
    "for (kernel threads such as ksoftirqd, or other load: a large figure means a "
    "disturbed run). zcio calls/GiB: splice calls that moved bytes out of a pipe "
    "(userspace: write rounds), from zcio.stats() in the relay, both directions. zcio "
    "method: what zcio.stats() saw moving the bytes."
)
TEE_NOTE = (
    f"Target (printed, never asserted): >= {TARGET_TEE}x the GB/s of `splice_stream` to one "
    "receiver on the same backend (per-round ratio). GB/s and CPU per GiB count the "
    "source's bytes once; each receiver gets all of them. The relay answers the sender "
    "once both receivers have answered, so the clock covers delivery to both."
)


def _print_figures(args: argparse.Namespace, tables: Sequence[str]) -> None:
    main_table, detail_table, tee_table, tee_detail = tables
    print()
    print(
        f"## Relay: sender -> relay -> receiver, {args.size_mib} MiB over loopback TCP "
        f"(medians of {args.runs} runs)"
    )
    print()
    print(main_table)
    print()
    print(RELAY_NOTE)
    print()
    print("Spread and detail:")
    print()
    print(detail_table)
    print()
    print(DETAIL_NOTE)
    print()
    print(
        f"## Tee: sender -> `zcio.tee_stream` -> 2 receivers, {args.size_mib} MiB "
        f"(medians of {args.runs} runs)"
    )
    print()
    print(tee_table)
    print()
    print(TEE_NOTE)
    print()
    print(tee_detail)


def _child(args: argparse.Namespace) -> bool:
    """Run the child ``args`` ask for (the sender, or a relay); False in the parent."""
    if args.worker == "send":
        print(json.dumps(send(SendJob(args.file, args.size, args.port, args.relay_pid))))
        return True
    if args.relay:
        job = RelayJob(
            args.relay, args.backend, tuple(args.target or ()), args.connections, args.deadline
        )
        RELAYS[job.kind](job)
        return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if _child(args):
        return 0
    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    haproxy_version = _haproxy_version()
    env["haproxy"] = haproxy_version
    # The same file as bench/send_file.py: written once, kept in /tmp/zcio-bench.
    path = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    # Generous, but bounded: 30 s plus a minute per GiB (the slowest relay runs near 0.3 GB/s).
    timeout = 30.0 + 60.0 * size / GIB
    print(f"# zcio relay benchmark: {args.size_mib} MiB, {args.runs} runs per relay")
    print()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    if args.runs < 5:
        print(f"(only {args.runs} runs per relay: medians of fewer than 5 are rough)")

    with Receiver() as rx1, Receiver() as rx2:
        bench = Bench([rx1, rx2], path, size, timeout)
        progress(f"receivers on {HOST}:{rx1.port} and :{rx2.port}; warming {path}")
        warm(path)
        bench.run(RELAY_VARIANTS[1], 0, "[warm-up]")  # discarded: first connections, caches
        everything = _interleaved(bench, (*RELAY_VARIANTS, *TEE_VARIANTS), args.runs)
    relays = {k: v for k, v in everything.items() if not k.startswith("tee_")}
    tees = {k: v for k, v in everything.items() if k.startswith("tee_")}
    main_table, detail_table, relay_summary = relay_tables(relays, args.runs, haproxy_version)
    tee_table, tee_detail, tee_summary = tee_tables(tees, relays, args.runs)
    elapsed = time.monotonic() - started
    _print_figures(args, (main_table, detail_table, tee_table, tee_detail))
    print()
    print(f"Total time: {elapsed:.0f} s.")
    sections, rows = schema(relay_summary, tee_summary, size, args.runs)
    detail = {
        "environment": env,
        "size_bytes": size,
        "runs": args.runs,
        "elapsed_s": elapsed,
        "relay": {"summary": relay_summary, "runs": relays},
        "tee": {"summary": tee_summary, "runs": tees},
    }
    return finish(bench.failures, args.json, detail, script="relay", sections=sections, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
