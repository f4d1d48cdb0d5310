"""What one hostile client can do to a uvicorn server, stock and with zcio_uvicorn's limits.

Measured, never asserted. Each scenario runs against a fresh server process (a one-route ASGI
app answering ``ok``), stock uvicorn (``--http httptools`` / ``h11``) and zcio_uvicorn
(``zcio_uvicorn:HttpToolsProtocol`` / ``H11Protocol``, default limits):

- **header flood**: one connection sends header lines (200-byte fields) until ``--flood-mib``
  MiB or until the server closes it; the server's RSS before, at its peak (sampled every 20 ms)
  and after.
- **request-line flood**: one connection sends a request line of ``--line-mib`` MiB while a
  prompt client sends ``GET /`` on a new connection every 50 ms; that client's worst and
  median latency, and how long the flood ran.
- **slow heads**: ``--slow`` connections each send one byte of a head every 2 s for
  ``--seconds`` s, reconnecting when the server closes them (a slowloris), while the prompt
  client runs; its latencies and failures, and how many times the server closed the crowd's
  connections.
- **no attack**: ``wrk -t2 -c32`` requests per second, what the limits cost when nobody
  attacks (skipped without wrk).
- **cpu**: the CPU one keep-alive request costs each protocol class in process, limits on and
  off (the limits' own cost, steadier than a rate on a shared machine).
- **connection flood**: the server's open-file limit is 4,096; ``--crowd`` idle connections are
  opened and held for ``--seconds`` s while the prompt client runs: its latencies and failures
  (a failure is no answer within 5 s).

"MiB sent" is what the attacker got into the connection before the server closed it (socket
buffers included). ``python bench/limits.py`` (about 4 minutes), ``--quick`` for a smaller run
(about 1 minute).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    MIB,
    environment,
    finish,
    free_port,
    markdown_table,
    median,
    percentile,
    process_cpu,
    progress,
)

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

SERVERS = {
    "uvicorn httptools": "httptools",
    "zcio_uvicorn httptools": "zcio_uvicorn:HttpToolsProtocol",
    "uvicorn h11": "h11",
    "zcio_uvicorn h11": "zcio_uvicorn:H11Protocol",
}
CLIENT_TIMEOUT = 5.0


NO_LIMITS = {
    f"ZCIO_UVICORN_{name}": "0"
    for name in ("MAX_REQUEST_LINE", "MAX_HEADER_BYTES", "MAX_HEADERS", "HEAD_TIMEOUT")
} | {"ZCIO_UVICORN_MAX_CONNECTIONS": "0", "ZCIO_UVICORN_SEND_TIMEOUT": "0"}


@dataclass
class Server:
    http: str
    nofile: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        folder = tempfile.mkdtemp(prefix="zcio-limits-")
        Path(folder, "limits_app.py").write_text(APP)
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "limits_app:app", "--port", str(self.port)),
                *("--http", self.http, "--loop", "asyncio", "--log-level", "critical"),
                *("--backlog", "2048"),
            ],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=limit,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 20
        while get(self.port) is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.http}: the server did not start")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)

    def rss(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def get(port: int, timeout: float = CLIENT_TIMEOUT) -> float | None:
    """Seconds for one ``GET /`` on a new connection, or None if it failed or timed out."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
    except OSError:
        return None
    return time.monotonic() - start if data.startswith(b"HTTP/1.1 200") else None


@contextlib.contextmanager
def prompt_client(port: int) -> Iterator[list[float | None]]:
    """A client sending ``GET /`` every 50 ms in a thread; the latencies (None: failed)."""
    results: list[float | None] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            results.append(get(port))
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(CLIENT_TIMEOUT * 2)  # the request under way counts too


def latency_cells(results: Sequence[float | None]) -> list[str]:
    ok = [r for r in results if r is not None]
    return [
        str(len(results)),
        str(len(results) - len(ok)),
        f"{median(ok) * 1000:.1f}" if ok else "-",
        f"{percentile(ok, 99) * 1000:.1f}" if ok else "-",
        f"{max(ok) * 1000:.0f}" if ok else "-",
    ]


def flood(port: int, head: bytes, filler: bytes, total: int) -> tuple[int, float]:
    """Send ``head`` then ``filler`` up to ``total`` bytes or until the server closes."""
    sent, start = 0, time.monotonic()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as c:
        c.settimeout(60)
        c.sendall(head)
        while sent < total:
            c.sendall(filler)
            sent += len(filler)
        with contextlib.suppress(OSError):  # let the server finish reading what it got
            c.shutdown(socket.SHUT_WR)
            c.recv(4096)
    return sent, time.monotonic() - start


def header_flood(http: str, mib: int) -> list[str]:
    with Server(http) as srv:
        get(srv.port)
        before = peak = srv.rss()
        done = threading.Event()
        result: list[tuple[int, float]] = []

        def attack() -> None:
            filler = b"".join(b"x-%05d: %s\r\n" % (n, b"v" * 190) for n in range(1024))
            result.append(flood(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n", filler, mib * MIB))
            done.set()

        threading.Thread(target=attack, daemon=True).start()
        while not done.wait(0.02):
            peak = max(peak, srv.rss())
        time.sleep(1)
        after = srv.rss()
    sent, took = result[0]
    return [
        f"{sent / MIB:.2f}",
        f"{took:.2f}",
        f"{before / MIB:.0f}",
        f"{peak / MIB:.0f}",
        f"{after / MIB:.0f}",
    ]


def line_flood(http: str, mib: int) -> list[str]:
    with Server(http) as srv, prompt_client(srv.port) as results:
        time.sleep(0.3)
        sent, took = flood(srv.port, b"GET /", b"a" * 65536, mib * MIB)
    return [f"{sent / MIB:.2f}", f"{took:.2f}", *latency_cells(results)]


def slow_heads(http: str, crowd: int, seconds: float) -> list[str]:
    closed = 0
    with Server(http) as srv:
        sel = selectors.DefaultSelector()
        conns: set[socket.socket] = set()

        def open_one() -> None:
            with contextlib.suppress(OSError):
                c = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
                c.setblocking(False)
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                sel.register(c, selectors.EVENT_READ)
                conns.add(c)

        for _ in range(crowd):
            open_one()
        with prompt_client(srv.port) as results:
            end = time.monotonic() + seconds
            tick = 0.0
            while time.monotonic() < end:
                for key, _ in sel.select(0.1):
                    c = key.fileobj
                    assert isinstance(c, socket.socket)
                    with contextlib.suppress(OSError):
                        if c.recv(4096):
                            continue
                    sel.unregister(c)
                    conns.discard(c)
                    c.close()
                    closed += 1
                    open_one()  # the slowloris comes back
                if time.monotonic() > tick:
                    tick = time.monotonic() + 2
                    for c in list(conns):
                        with contextlib.suppress(OSError):
                            c.send(b"a")
        for c in conns:
            c.close()
        sel.close()
    return [str(closed), *latency_cells(results)]


def connection_flood(http: str, crowd: int, seconds: float) -> list[str]:
    with Server(http, nofile=4096) as srv:
        conns = []
        for _ in range(crowd):
            c = socket.socket()
            c.setblocking(False)
            if c.connect_ex(("127.0.0.1", srv.port)) not in (0, errno.EINPROGRESS):
                c.close()
                continue
            conns.append(c)
        with prompt_client(srv.port) as results:
            time.sleep(seconds)
        for c in conns:
            c.close()
    return [str(len(conns)), *latency_cells(results)]


def cost(http: str, seconds: float, env: dict[str, str]) -> list[str]:
    """``wrk -t2 -c32`` on ``GET /``: requests per second, and the server's CPU per request
    (steadier than the rate on a shared machine). What the limits cost when nobody attacks."""
    import shutil

    if shutil.which("wrk") is None:
        return ["wrk not installed", "-"]
    with Server(http, env=env) as srv:
        assert srv.proc is not None
        before = process_cpu(srv.proc.pid)
        run = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{seconds:g}s", f"http://127.0.0.1:{srv.port}/"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        used = process_cpu(srv.proc.pid) - before
    total = next((ln.split()[0] for ln in run.stdout.splitlines() if "requests in" in ln), None)
    rate = next(
        (ln.split()[1] for ln in run.stdout.splitlines() if ln.startswith("Requests/")), None
    )
    if total is None or rate is None:
        return ["wrk failed", "-"]
    return [f"{float(rate):.0f}", f"{used / int(total) * 1e6:.1f}"]


class _Transport:
    """A stand-in transport: the protocol classes write into nothing."""

    closed = False

    def get_extra_info(self, key: str) -> object:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(key)

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def _ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def protocol_cpu(runs: int = 15, requests: int = 5000) -> list[list[str]]:
    """CPU microseconds one keep-alive request costs each protocol class, in this process
    (no sockets: a stand-in transport), median of ``runs``: the limits' own cost, steadier
    than any rate on a shared machine."""
    import asyncio

    import uvicorn.protocols.http.h11_impl as h11_impl
    import uvicorn.protocols.http.httptools_impl as httptools_impl
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    import zcio_uvicorn

    request = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
    off = zcio_uvicorn.Limits(None, None, None, None, None, None)

    async def run(cls: Any) -> float:
        config = Config(app=_ok_app, log_level="critical", access_log=False)
        protocol = cls(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(_Transport())
        start = time.process_time()
        for _ in range(requests):
            protocol.data_received(request)
            while protocol.server_state.tasks:  # noqa: ASYNC110 (the app's task, to its end)
                await asyncio.sleep(0)
        return (time.process_time() - start) / requests * 1e6

    classes = {
        "uvicorn httptools": httptools_impl.HttpToolsProtocol,
        "zcio_uvicorn httptools": zcio_uvicorn.HttpToolsProtocol.configure(report=False),
        "zcio_uvicorn httptools, limits off": zcio_uvicorn.HttpToolsProtocol.configure(
            off, report=False
        ),
        "uvicorn h11": h11_impl.H11Protocol,
        "zcio_uvicorn h11": zcio_uvicorn.H11Protocol.configure(report=False),
        "zcio_uvicorn h11, limits off": zcio_uvicorn.H11Protocol.configure(off, report=False),
    }
    times: dict[str, list[float]] = {name: [] for name in classes}

    async def all_runs() -> None:
        for _ in range(runs):
            for name, cls in classes.items():
                times[name].append(await run(cls))

    asyncio.run(all_runs())
    return [[name, f"{median(t):.1f}", f"{min(t):.1f}"] for name, t in times.items()]


#: A table of the report: its title, headers and rows.
Table = tuple[str, list[str], list[list[str]]]
LATENCY = ["requests", "failed", "p50 ms", "p99 ms", "max ms"]


def _floods(args: argparse.Namespace, only: set[str]) -> dict[str, Table]:
    """The header flood and the request-line flood, on every server."""
    header, line = [], []
    for name, http in SERVERS.items() if "header" in only else ():
        progress(f"header flood: {name}")
        header.append([name, *header_flood(http, args.flood_mib)])
    for name, http in SERVERS.items() if "line" in only else ():
        progress(f"request-line flood: {name}")
        line.append([name, *line_flood(http, args.line_mib)])
    heads = ["server", "MiB sent", "s", "RSS before MiB", "peak MiB", "after MiB"]
    return {
        "header_flood": (f"Header flood ({args.flood_mib} MiB offered)", heads, header),
        "line_flood": (
            f"Request-line flood ({args.line_mib} MiB offered)",
            ["server", "MiB sent", "s", *LATENCY],
            line,
        ),
    }


def _crowds(args: argparse.Namespace, only: set[str]) -> dict[str, Table]:
    """Slow heads and the connection flood, on the two stock-and-zcio httptools servers."""
    slow, crowd = [], []
    for name, http in list(SERVERS.items())[:2] if "slow" in only else ():
        progress(f"slow heads: {name}")
        slow.append([name, *slow_heads(http, args.slow, args.seconds)])
    for name, http in list(SERVERS.items())[:2] if "crowd" in only else ():
        progress(f"connection flood: {name}")
        crowd.append([name, *connection_flood(http, args.crowd, args.seconds)])
    return {
        "slow_heads": (
            f"Slow heads ({args.slow} connections, a byte every 2 s, {args.seconds:g} s)",
            ["server", "closed by server", *LATENCY],
            slow,
        ),
        "connection_flood": (
            f"Connection flood ({args.crowd} idle connections, server open-file limit 4096, "
            f"{args.seconds:g} s)",
            ["server", "connections", *LATENCY],
            crowd,
        ),
    }


def _costs(args: argparse.Namespace, only: set[str]) -> dict[str, Table]:
    """What the limits cost when nobody attacks: wrk's rate, and CPU per request in process."""
    rows = []
    variants: list[tuple[str, str, dict[str, str]]] = [(n, h, {}) for n, h in SERVERS.items()]
    variants += [(f"{n}, limits off", h, NO_LIMITS) for n, h in SERVERS.items() if ":" in h]
    for name, http, env in variants if "cost" in only else ():
        progress(f"cost: {name}")
        rows.append([name, *cost(http, args.seconds, env)])
    return {
        "cost": (
            f"No attack: wrk -t2 -c32, {args.seconds:g} s",
            ["server", "requests/s", "server CPU µs/request"],
            rows,
        ),
        "protocol_cpu": (
            "No attack: one keep-alive request through the protocol, in process",
            ["protocol class", "CPU µs/request, median", "min"],
            protocol_cpu() if "cpu" in only else [],
        ),
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--flood-mib", type=int, default=512)
    parser.add_argument("--line-mib", type=int, default=64)
    parser.add_argument("--slow", type=int, default=3000)
    parser.add_argument("--crowd", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--only",
        default="header,line,slow,crowd,cost,cpu",
        help="comma-separated scenarios: header, line, slow, crowd, cost, cpu (default: all)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.flood_mib, args.line_mib, args.slow, args.crowd, args.seconds = 64, 16, 500, 5000, 5
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    only = set(args.only.split(","))
    tables = {**_floods(args, only), **_crowds(args, only), **_costs(args, only)}
    for title, heads, rows in tables.values():
        if rows:
            print(f"\n{title}\n")
            print(markdown_table(heads, rows, "l" + "r" * (len(heads) - 1)))
    results = {"environment": environment(), **{k: t[2] for k, t in tables.items()}}
    # No rows: the limits are not part of zcio bench's table.
    return finish([], args.json, results, script="limits")


if __name__ == "__main__":
    sys.exit(main())
