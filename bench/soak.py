"""Soak: minutes of mixed load against ``zcio serve`` and ``zcio proxy --mirror`` at once, to see
whether requests/s, errors, open fds and memory hold steady over time. Measured, never asserted.

Both commands run as child processes, as a user runs them (``python -m zcio serve DIR`` on a
folder of 4 KiB to 16 MiB files; ``python -m zcio proxy --mirror`` in front of an echo server,
mirroring to a server that reads and discards). This process is the load, on one asyncio loop:

- HTTP clients on keep-alive connections: whole files (mostly small), Range requests, three
  pipelined requests in one write, a few slow readers (16 KiB window), and now and then a
  client that vanishes mid-body (RST); every complete body is checked by hash;
- proxy clients: a connection per exchange (4 KiB to 1 MiB sent, half-close, the echo read to
  its end and checked by hash), and now and then one that vanishes mid-stream (RST).

Every second it samples each server's fds (``/proc/PID/fd``) and RSS (``VmRSS``) and counts the
requests done; it prints a line every ``--report-every`` seconds, a summary table at the end
(with the ratio of the last third's requests/s to the first third's: drift within one run),
and with ``--chart PATH`` draws the series (``zcio bench soak --out DIR`` writes it as
``soak.png``). There is no anchor: a soak compares a server with itself over time.

Exit status 1 only when the soak itself broke: a server died or exited non-zero, or a client
got a wrong byte or an error that no fault explains. Errors are counted and shown too.

    python bench/soak.py [--seconds N] [--quick] [--smoke] [--json PATH] [--chart PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import queue
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import environment, finish, markdown_table, progress

FILES = {"4k.bin": 4 << 10, "64k.bin": 64 << 10, "1m.bin": 1 << 20, "16m.bin": 16 << 20}
#: Which file a whole-file GET asks for, by weight: mostly small, as static sites are.
FILE_WEIGHTS = {"4k.bin": 50, "64k.bin": 30, "1m.bin": 15, "16m.bin": 5}
PROXY_SIZES = (4 << 10, 64 << 10, 256 << 10, 1 << 20)
HTTP_CLIENTS = 40
SLOW_CLIENTS = 4
PROXY_CLIENTS = 16
#: Per request or exchange: the chance of each fault or shape.
VANISH = 0.02
RANGE = 0.2
PIPELINE = 0.1
START_TIMEOUT = 30.0
IO_TIMEOUT = 30.0
_LINGER_0 = struct.pack("ii", 1, 0)


# --- The servers -------------------------------------------------------------------------------


class Child:
    """``python -m zcio ARGS`` with its output read line by line in a thread."""

    def __init__(self, name: str, args: Sequence[str]) -> None:
        self.name = name
        env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zcio", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + START_TIMEOUT
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            with contextlib.suppress(queue.Empty):
                if self._new.get(timeout=0.2) is None:
                    break
        raise RuntimeError(f"{self.name}: no line matching {pattern!r}:\n{''.join(self.lines)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)

    def summary(self) -> str:
        """The "bytes moved:" lines it printed at exit."""
        return " / ".join(
            line.split("bytes moved:", 1)[1].strip()
            for line in self.lines
            if "bytes moved:" in line
        )


def proc_figures(pid: int) -> tuple[int, int]:
    """(open fds, VmRSS KiB) of ``pid``."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, rss


# --- The load ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """One service's counts, updated by its clients."""

    requests: int = 0
    bytes: int = 0
    errors: int = 0
    faults: int = 0  # clients that vanished on purpose
    wrong: int = 0  # bytes that were not the right ones: the soak is broken
    closed_idle: int = 0  # keep-alive connections the server closed as a request left
    closed_idle_slow: int = 0  # of which the slow readers' (the usual case)
    last_error: str = ""

    def error(self, exc: BaseException, where: str = "") -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc} ({where})" if where else repr(exc)


def _vanish(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _open(port: int, rcvbuf: int | None = None) -> tuple[Any, asyncio.StreamWriter]:
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


async def _send(writer: asyncio.StreamWriter, data: bytes, vanish: bool) -> None:
    """Send ``data`` and half-close; half of it and nothing more if the client will vanish."""
    writer.write(data[: len(data) // 2] if vanish else data)
    await writer.drain()
    if not vanish:
        writer.write_eof()


class Load:
    def __init__(self, files: dict[str, bytes], serve_port: int, proxy_port: int) -> None:
        self.files = files
        self.digests = {name: hashlib.sha256(data).digest() for name, data in files.items()}
        self.serve_port = serve_port
        self.proxy_port = proxy_port
        self.http = Tally()
        self.proxy = Tally()
        self.mirrored = 0
        self.deadline = 0.0
        self.blob = os.urandom(2 << 20)

    # -- HTTP ----------------------------------------------------------------------------------

    def _request(self, rng: random.Random) -> tuple[bytes, str, tuple[int, int] | None]:
        name = rng.choices(list(FILE_WEIGHTS), weights=list(FILE_WEIGHTS.values()))[0]
        head = f"GET /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        span = None
        if rng.random() < RANGE:
            size = len(self.files[name])
            first = rng.randrange(size)
            span = (first, rng.randrange(first, size))
            head += f"Range: bytes={span[0]}-{span[1]}\r\n"
        return (head + "\r\n").encode(), name, span

    async def _response(
        self, reader: asyncio.StreamReader, name: str, span: tuple[int, int] | None, slow: bool
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        if slow:
            body = bytearray()
            while len(body) < length:
                chunk = await reader.read(min(16 << 10, length - len(body)))
                if not chunk:
                    raise ConnectionError("the body ended early")
                body += chunk
                await asyncio.sleep(0.002)
        else:
            body = bytearray(await reader.readexactly(length))
        if span is None:
            right = head.startswith(b"HTTP/1.1 200") and (
                hashlib.sha256(body).digest() == self.digests[name]
            )
        else:
            right = head.startswith(b"HTTP/1.1 206") and (
                body == self.files[name][span[0] : span[1] + 1]
            )
        if not right:
            self.http.wrong += 1
            raise ValueError(f"wrong answer for {name} {span}: {head[:40]!r}")
        self.http.requests += 1
        self.http.bytes += length

    async def http_client(self, seed: int, slow: bool) -> None:
        rng = random.Random(seed)
        while time.monotonic() < self.deadline:
            writer = None
            exchange = 0
            try:
                async with asyncio.timeout(IO_TIMEOUT):
                    reader, writer = await _open(self.serve_port, 16 << 10 if slow else None)
                for exchange in range(rng.randint(1, 30)):  # keep-alive
                    if time.monotonic() >= self.deadline:
                        break
                    if exchange and reader.at_eof():  # closed as idle meanwhile: a new one
                        self.http.closed_idle += 1
                        self.http.closed_idle_slow += slow
                        break
                    # A time limit per exchange: a slow reader takes seconds per 16 MiB.
                    async with asyncio.timeout(IO_TIMEOUT):
                        if not slow and rng.random() < VANISH:  # part of a body, then reset
                            writer.write(b"GET /16m.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                            await reader.readuntil(b"\r\n\r\n")
                            await reader.read(rng.randrange(1, 1 << 20))
                            _vanish(writer)
                            writer = None
                            self.http.faults += 1
                            break
                        batch = 3 if not slow and rng.random() < PIPELINE else 1
                        asked = [self._request(rng) for _ in range(batch)]
                        writer.write(b"".join(head for head, _, _ in asked))
                        try:
                            await self._response(reader, *asked[0][1:], slow)
                        except asyncio.IncompleteReadError as exc:
                            if exchange and not exc.partial:
                                # Keep-alive's race (RFC 9112, 9.3.1): the server closed the
                                # connection, idle for its keep-alive timeout (a slow reader
                                # was still reading the last body out of the buffers), as the
                                # request left. A client retries on a new connection.
                                self.http.closed_idle += 1
                                self.http.closed_idle_slow += slow
                                break
                            raise
                        for _, name, span in asked[1:]:
                            await self._response(reader, name, span, slow)
            except (OSError, EOFError, TimeoutError, ValueError, IndexError) as exc:
                self.http.error(exc, f"slow={slow} exchange={exchange}")
            finally:
                if writer is not None:
                    await _close(writer)

    # -- The proxy, its target and its mirror ---------------------------------------------------

    async def echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(1 << 18):
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
        await _close(writer)

    async def mirror(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(b"the mirror's answer, discarded")
            while chunk := await reader.read(1 << 18):
                self.mirrored += len(chunk)
        await _close(writer)

    async def proxy_client(self, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < self.deadline:
            size = rng.choice(PROXY_SIZES)
            start = rng.randrange(len(self.blob) - size)
            data = self.blob[start : start + size]
            vanish = rng.random() < VANISH
            writer = None
            try:
                async with asyncio.timeout(IO_TIMEOUT):
                    reader, writer = await _open(self.proxy_port)

                    sender = asyncio.create_task(_send(writer, data, vanish))
                    if vanish:
                        await sender
                        await asyncio.sleep(0.001)
                        _vanish(writer)
                        writer = None
                        self.proxy.faults += 1
                        continue
                    got = await reader.read(-1)
                    await sender
                    if got != data:
                        self.proxy.wrong += 1
                        raise ValueError(f"echo of {size} bytes: {len(got)} came back")
                    self.proxy.requests += 1
                    self.proxy.bytes += 2 * size
            except (OSError, TimeoutError, ValueError) as exc:
                self.proxy.error(exc)
            finally:
                if writer is not None:
                    await _close(writer)


# --- The run -----------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    serve_requests: int
    proxy_requests: int
    serve_errors: int
    proxy_errors: int
    serve_fds: int
    proxy_fds: int
    serve_rss_kib: int
    proxy_rss_kib: int


@dataclass
class Run:
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    before: dict[str, tuple[int, int]] = field(default_factory=dict)
    after: dict[str, tuple[int, int]] = field(default_factory=dict)


async def soak(
    load: Load, pids: dict[str, int], seconds: float, every: float, echo: Any, mirror: Any
) -> Run:
    run = Run(seconds)
    run.before = {name: proc_figures(pid) for name, pid in pids.items()}
    started = time.monotonic()
    load.deadline = started + seconds
    tasks = [
        asyncio.create_task(load.http_client(i, slow=i < SLOW_CLIENTS)) for i in range(HTTP_CLIENTS)
    ]
    tasks += [asyncio.create_task(load.proxy_client(1000 + i)) for i in range(PROXY_CLIENTS)]
    next_print = started + every
    last = (0.0, 0, 0)
    serve, proxy = run.before["serve"], run.before["proxy"]
    run.samples.append(Sample(0.0, 0, 0, 0, 0, serve[0], proxy[0], serve[1], proxy[1]))
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1.0)
        now = time.monotonic()
        serve, proxy = proc_figures(pids["serve"]), proc_figures(pids["proxy"])
        run.samples.append(
            Sample(
                now - started,
                load.http.requests,
                load.proxy.requests,
                load.http.errors,
                load.proxy.errors,
                serve[0],
                proxy[0],
                serve[1],
                proxy[1],
            )
        )
        if now >= next_print or all(t.done() for t in tasks):
            span = now - last[0] if last[0] else now - started
            progress(
                f"{now - started:5.0f} s  serve {(load.http.requests - last[1]) / span:7.0f} "
                f"req/s, {load.http.errors} errors, {serve[0]} fds, {serve[1] / 1024:.0f} MiB | "
                f"proxy {(load.proxy.requests - last[2]) / span:6.0f} req/s, "
                f"{load.proxy.errors} errors, {proxy[0]} fds, {proxy[1] / 1024:.0f} MiB"
            )
            last = (now, load.http.requests, load.proxy.requests)
            next_print = now + every
        if now > load.deadline + IO_TIMEOUT + 10:
            for task in tasks:
                task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2.0)  # connections close a moment after their clients
    run.after = {name: proc_figures(pid) for name, pid in pids.items()}
    echo.close()
    mirror.close()
    return run


def _rate(samples: list[Sample], key: str, first: float, last: float) -> float:
    inside = [s for s in samples if first <= s.t <= last]
    if len(inside) < 2:
        return float("nan")
    a, b = inside[0], inside[-1]
    return (getattr(b, key) - getattr(a, key)) / (b.t - a.t) if b.t > a.t else float("nan")


def summarize(run: Run, load: Load, exits: dict[str, int], moved: dict[str, str]) -> dict[str, Any]:
    """The figures per service. Rates are taken over the load's own time (the samples up to
    ``--seconds``), not over the last requests finishing after it."""
    out: dict[str, Any] = {}
    inside = [s for s in run.samples if s.t <= run.seconds + 0.5] or run.samples
    end = inside[-1].t if inside else 0.0
    third = end / 3
    for name, tally, key in (("serve", load.http, "serve"), ("proxy", load.proxy, "proxy")):
        first = _rate(run.samples, f"{key}_requests", 0.0, third)
        final = _rate(run.samples, f"{key}_requests", 2 * third, end)
        out[name] = {
            "requests": tally.requests,
            "req_per_s": getattr(inside[-1], f"{key}_requests") / end if end else float("nan"),
            "req_per_s_first_third": first,
            "req_per_s_last_third": final,
            "drift": final / first if first and first == first else float("nan"),
            "mib_per_s": tally.bytes / run.samples[-1].t / (1 << 20) if end else float("nan"),
            "errors": tally.errors,
            "last_error": tally.last_error,
            "wrong": tally.wrong,
            "faults": tally.faults,
            "closed_idle": tally.closed_idle,
            "closed_idle_slow": tally.closed_idle_slow,
            "fds": [
                run.before[name][0],
                max(getattr(s, f"{key}_fds") for s in run.samples),
                run.after[name][0],
            ],
            "rss_mib": [
                run.before[name][1] / 1024,
                max(getattr(s, f"{key}_rss_kib") for s in run.samples) / 1024,
                run.after[name][1] / 1024,
            ],
            "exit_status": exits[name],
            "moved": moved[name],
        }
    out["proxy"]["mirrored_bytes"] = load.mirrored
    return out


def table(summary: dict[str, Any]) -> str:
    rows = []
    for name, label in (("serve", "`zcio serve` (HTTP)"), ("proxy", "`zcio proxy --mirror`")):
        s = summary[name]
        rows.append(
            [
                label,
                f"{s['requests']:,}",
                f"{s['req_per_s']:.0f}",
                f"{s['drift']:.2f}",
                f"{s['mib_per_s']:.0f}",
                f"{s['errors']}",
                f"{s['faults']}",
                f"{s['closed_idle']}" if name == "serve" else "-",
                "/".join(str(v) for v in s["fds"]),
                "/".join(f"{v:.0f}" for v in s["rss_mib"]),
            ]
        )
    return markdown_table(
        [
            "service",
            "requests",
            "req/s",
            "x first third",
            "MiB/s",
            "errors",
            "faults",
            "keep-alive closed",
            "fds before/peak/after",
            "RSS MiB before/peak/after",
        ],
        rows,
    )


async def main_async(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    files = {name: os.urandom(size) for name, size in FILES.items()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    load = Load(files, 0, 0)
    echo = await asyncio.start_server(load.echo, "127.0.0.1", 0, backlog=1024)
    mirror = await asyncio.start_server(load.mirror, "127.0.0.1", 0, backlog=1024)
    echo_port = echo.sockets[0].getsockname()[1]
    mirror_port = mirror.sockets[0].getsockname()[1]
    serve = Child("serve", ["serve", str(folder), "--port", "0"])
    proxy = Child(
        "proxy",
        [
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--target",
            f"127.0.0.1:{echo_port}",
            "--mirror",
            f"127.0.0.1:{mirror_port}",
            "--stats-interval",
            "0",
        ],
    )
    children = {"serve": serve, "proxy": proxy}
    try:
        load.serve_port = int((await asyncio.to_thread(serve.wait_for, r"on http://\S*?:(\d+)"))[1])
        await asyncio.to_thread(serve.wait_for, "Application startup complete")
        listening = await asyncio.to_thread(proxy.wait_for, r"listening on \S*?:(\d+)")
        load.proxy_port = int(listening[1])
        pids = {name: child.proc.pid for name, child in children.items()}
        progress(
            f"soak: {args.seconds:g} s; serve :{load.serve_port} ({HTTP_CLIENTS} HTTP clients, "
            f"{SLOW_CLIENTS} slow), proxy :{load.proxy_port} ({PROXY_CLIENTS} clients, mirror)"
        )
        run = await soak(load, pids, args.seconds, args.report_every, echo, mirror)
    finally:
        exits = {name: await asyncio.to_thread(child.stop) for name, child in children.items()}
    moved = {name: child.summary() for name, child in children.items()}
    drops = re.findall(r"(\d+) mirror drop\(s\)", "".join(proxy.lines))
    summary = summarize(run, load, exits, moved)
    summary["proxy"]["mirror_drops"] = int(drops[-1]) if drops else None
    return {"run": run, "summary": summary, "logs": {n: c.lines[-40:] for n, c in children.items()}}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Soak zcio serve and zcio proxy --mirror with mixed load; print req/s, "
        "errors, fds and RSS over time."
    )
    parser.add_argument("--seconds", type=float, default=None, help="how long (default 180)")
    parser.add_argument("--quick", action="store_true", help="30 s")
    parser.add_argument("--smoke", action="store_true", help="5 s: checks that it works")
    parser.add_argument(
        "--report-every",
        type=float,
        default=None,
        metavar="S",
        help="a progress line every S seconds (default: a tenth of the run)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--chart", type=Path, default=None, help="draw the series into PATH (PNG)")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 5.0 if args.smoke else 30.0 if args.quick else 180.0
    if not args.seconds > 0:
        parser.error("--seconds must be more than 0")
    if args.report_every is None:
        args.report_every = max(1.0, args.seconds / 10)
    return args


def _failures(summary: dict[str, Any]) -> list[str]:
    """What makes the soak fail: a server that died, a wrong byte, an error nobody caused."""
    failures = []
    for name in ("serve", "proxy"):
        s = summary[name]
        if s["exit_status"] != 0:
            failures.append(f"zcio {name} exited with status {s['exit_status']}")
        if s["wrong"]:
            failures.append(f"zcio {name}: {s['wrong']} wrong answer(s)")
        if s["errors"]:
            failures.append(f"zcio {name}: {s['errors']} error(s), the last: {s['last_error']}")
    return failures


def _print_report(args: argparse.Namespace, env: dict[str, str], summary: dict[str, Any]) -> str:
    """The table and what it means, printed; the table."""
    text = table(summary)
    print(f"# zcio soak: {args.seconds:g} s of mixed load")
    print()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    print()
    print(text)
    print()
    print(
        f"req/s: requests (HTTP responses, proxy echo exchanges) per second over the run; x first "
        f"third: the last third's req/s over the first third's (1.00: steady). faults: clients "
        f"that vanished on purpose (RST mid-body or mid-stream). keep-alive closed: a request "
        f"met its connection closed by the server (idle past its keep-alive timeout, often "
        f"while a slow reader emptied the buffers): the client goes on with a new connection, "
        f"as RFC 9112 (9.3.1) has it; not an error. Proxy mirror: "
        f"{summary['proxy']['mirrored_bytes']:,} bytes received, "
        f"{summary['proxy']['mirror_drops']} mirror drop(s). Exit summaries: serve "
        f"{summary['serve']['moved']}; proxy {summary['proxy']['moved']}."
    )
    return text


def _run(args: argparse.Namespace) -> dict[str, Any]:
    """The soak, on uvloop when installed (a cheaper load generator: more CPU for the servers)."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with (
        tempfile.TemporaryDirectory(prefix="zcio-soak-") as tmp,
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        return runner.run(main_async(args, Path(tmp)))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    env = environment()
    started = time.monotonic()
    result = _run(args)
    run, summary = result["run"], result["summary"]
    failures = _failures(summary)
    text = _print_report(args, env, summary)
    samples = [asdict(s) for s in run.samples]
    if args.chart is not None:
        from zcio_cli._bench_chart import write_soak_chart

        write_soak_chart(samples, args.chart, f"zcio soak, {args.seconds:g} s", args.seconds)
        print(f"Chart written to {args.chart}.")
    print(f"Total time: {time.monotonic() - started:.0f} s.")
    detail = {
        "environment": env,
        "seconds": args.seconds,
        "clients": {"http": HTTP_CLIENTS, "slow": SLOW_CLIENTS, "proxy": PROXY_CLIENTS},
        "summary": summary,
        "markdown": text,
        "samples": samples,
        "logs": result["logs"] if failures else {},
    }
    # No rows: soak.py measures stability, not speed; zcio bench prints its table apart.
    return finish(failures, args.json, detail, script="soak")


if __name__ == "__main__":
    sys.exit(main())
