"""Benchmark ``zcio.send_file`` against the ways a Python program sends a file today.

Two figures, both over loopback TCP to a receiver process that splices the socket into a pipe
and the pipe into ``/dev/null`` (``bench/_common.py``), so what the receiver costs is never
counted against the sender:

1. **A cached 1 GiB file**: throughput (GB/s) and sender CPU seconds per GiB, medians of
   several runs, for a blocking ``os.sendfile`` loop (the ceiling for a Python sender),
   asyncio's native ``loop.sock_sendfile``, blocking read/write loops (64 KiB, and 256 KiB
   for context: zcio's user-space buffer), and
   ``zcio.send_file`` on asyncio, asyncio+uvloop and trio (through anyio), plus zcio with its
   zero-copy methods switched off (``ZCIO_DISABLE``). Ratios are to the ceiling of the same run.
2. **Event-loop lag while the file is not in the page cache**: a ticker task sleeps 1 ms in a
   loop in the same event loop and records how late each wake-up is, while the file's pages
   were dropped from the page cache before each run. ``_lagprobe.LoopProbe`` also counts, on
   the loop's thread, the time it waited for a CPU (so a shared machine's share of the lag can
   be told apart), the disk reads it started, and where it was when a tick was late.

Every measured run is a fresh child process (``--worker``), which counts its own CPU
(``getrusage(RUSAGE_SELF)``, every thread) from just before the transfer to the receiver's
byte-count answer. Runs of all paths are interleaved, so drift on a shared machine hits every
path alike. Targets are printed beside the results, never asserted.

    python bench/send_file.py [--size-mib N] [--runs N] [--quick] [--lag-only] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from _common import (
    ACK,
    BENCH_DIR,
    GIB,
    MAX_CALL,
    MIB,
    ChildFailed,
    Job,
    Meter,
    Receiver,
    Sizes,
    bench_parser,
    by_round,
    cache_state,
    cached_pages,
    calls_per_gib,
    cpu_per_gib,
    ensure_file,
    environment,
    evict,
    finish,
    fmt,
    markdown_table,
    median,
    methods_seen,
    missing,
    open_fd,
    parse_args,
    per_gib,
    percentile,
    progress,
    read_nowait_blocks,
    result_row,
    result_section,
    run_child,
    run_gbps,
    run_gib,
    sizing_text,
    spread,
    stats_delta,
    transfer_result,
    warm,
)
from _lagprobe import LoopProbe

HOST = "127.0.0.1"
#: The ticker's sleep; its lateness on each wake-up is the event-loop lag.
TICK = 0.001
#: How long the idle reference ticks, with no transfer at all.
IDLE_SECONDS = 0.5
#: zcio targets relative to the ceiling (printed beside the results, never asserted).
TARGET_THROUGHPUT = 0.95
TARGET_CPU = 1.2
TARGET_P99_MS = 5.0
TARGET_MAX_MS = 10.0
#: The lag runs keep where the loop's thread was whenever a tick was this late.
STALL_MS = 5.0
FALLBACK_ENV = {"ZCIO_DISABLE": "sendfile,copy_file_range"}

Result = dict[str, Any]


# === Children: one measured transfer each ======================================================


def _finish_blocking(sock: socket.socket) -> int:
    """Half-close, then wait for the receiver's byte count."""
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while len(data) < ACK.size:
        chunk = sock.recv(ACK.size - len(data))
        if not chunk:
            break
        data += chunk
    return ACK.unpack(data)[0] if len(data) == ACK.size else -1


async def _finish_stream(stream: SocketStream) -> int:
    await stream.send_eof()
    data = b""
    while len(data) < ACK.size:
        try:
            data += await stream.receive(ACK.size - len(data))
        except anyio.EndOfStream:
            break
    return ACK.unpack(data)[0] if len(data) == ACK.size else -1


async def _finish_sock(sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while len(data) < ACK.size:
        chunk = await loop.sock_recv(sock, ACK.size - len(data))
        if not chunk:
            break
        data += chunk
    return ACK.unpack(data)[0] if len(data) == ACK.size else -1


def _connect_blocking(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=None)


def hot_sendfile(job: Job) -> Result:
    """The ceiling: a blocking socket, ``os.sendfile`` until the file is sent."""
    with open_fd(job.path) as fd, _connect_blocking(job.port) as sock:
        cache = cache_state(fd)
        calls = sent = 0
        meter = Meter()
        while sent < job.size:
            n = os.sendfile(sock.fileno(), fd, sent, min(job.size - sent, MAX_CALL))
            if n == 0:
                break
            sent += n
            calls += 1
        acked = _finish_blocking(sock)
        sample = meter.stop()
        return transfer_result(sample, sent, acked, sock.getsockname()[1], calls=calls, **cache)


def hot_read_write(job: Job, chunk: int) -> Result:
    """A blocking read/write loop with a ``chunk``-byte buffer: every byte passes through
    Python."""
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open_fd(job.path) as fd, _connect_blocking(job.port) as sock:
        cache = cache_state(fd)
        calls = sent = 0
        meter = Meter()
        while sent < job.size:
            n = os.readv(fd, [view[: min(len(buf), job.size - sent)]])
            if n == 0:
                break
            sock.sendall(view[:n])
            sent += n
            calls += 1
        acked = _finish_blocking(sock)
        sample = meter.stop()
        return transfer_result(sample, sent, acked, sock.getsockname()[1], calls=calls, **cache)


def hot_sock_sendfile(job: Job) -> Result:
    """asyncio's own ``loop.sock_sendfile`` on the default loop, native only."""

    async def main() -> Result:
        loop = asyncio.get_running_loop()
        with job.path.open("rb") as f, _connect_blocking(job.port) as sock:
            sock.setblocking(False)
            cache = cache_state(f.fileno())
            meter = Meter()
            sent = await loop.sock_sendfile(sock, f, 0, job.size, fallback=False)
            acked = await _finish_sock(sock)
            sample = meter.stop()
            loop_name = type(loop).__module__ + "." + type(loop).__qualname__
            return transfer_result(
                sample, sent, acked, sock.getsockname()[1], loop=loop_name, **cache
            )

    return asyncio.run(main())


def _backend_run(fn: Callable[[], Awaitable[Result]], backend: str) -> Result:
    if backend == "uvloop":
        return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})
    return anyio.run(fn, backend=backend)


def _loop_name() -> str:
    import sniffio

    library = sniffio.current_async_library()
    if library == "asyncio":
        loop = asyncio.get_running_loop()
        return type(loop).__module__ + "." + type(loop).__qualname__
    return library


def hot_zcio(job: Job, backend: str) -> Result:
    """``zcio.send_file`` into an anyio SocketStream from ``anyio.connect_tcp``."""
    import zcio

    async def main() -> Result:
        with open_fd(job.path) as fd:
            cache = cache_state(fd)
            async with await anyio.connect_tcp(HOST, job.port) as stream:
                before = zcio.stats()
                meter = Meter()
                sent = await zcio.send_file(stream, fd, count=job.size)
                acked = await _finish_stream(stream)
                sample = meter.stop()
                stats = stats_delta(before, zcio.stats())
                port = stream.extra(SocketAttribute.local_port)
                return transfer_result(
                    sample,
                    sent,
                    acked,
                    port,
                    loop=_loop_name(),
                    zcio=stats,
                    zcio_disable=os.environ.get("ZCIO_DISABLE", ""),
                    **cache,
                )

    return _backend_run(main, backend)


# --- Event-loop lag with a cold file -----------------------------------------------------------


def _make_cold(fd: int, size: int, tries: int = 5) -> dict[str, Any]:
    """Evict the file's pages and check that they are gone.

    4 KiB ``RWF_NOWAIT`` reads at the start, middle and end must fail. Such a probe starts a
    little readahead as a side effect, so after it: wait for that I/O, evict once more, and
    count what is left with ``cachestat`` (which has no side effect)."""
    offsets = sorted({0, max(0, size // 2 - 4096), max(0, size - 4096)})
    readable: list[bool] = []
    for attempt in range(1, tries + 1):
        evict(fd)
        readable = read_nowait_blocks(fd, offsets)
        time.sleep(0.05)
        evict(fd)
        if not any(readable):
            return {"cold_verified": True, "evict_attempts": attempt, **cache_state(fd)}
        time.sleep(0.2)
    return {
        "cold_verified": False,
        "evict_attempts": tries,
        "still_cached_at": [o for o, r in zip(offsets, readable, strict=True) if r],
        **cache_state(fd),
    }


async def _tick(
    lags: list[float],
    waits: list[float],
    probe: LoopProbe,
    stop: anyio.Event,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Sleep ``TICK`` again and again; record how late each wake-up is, and how long of that
    the loop's thread waited for a CPU (``waits``, ms; empty without the counter). Reports
    itself started only once its first sleep is under way, so a stall right at the start is
    seen too."""
    first = True
    while not stop.is_set():
        start = time.perf_counter()
        probe.beat()
        before = probe.runq_ms()
        if first:
            task_status.started()
            first = False
        await anyio.sleep(TICK)
        lags.append(max(0.0, time.perf_counter() - start - TICK))
        after = probe.runq_ms()
        if before is not None and after is not None:
            waits.append(after - before)


async def _lag_zcio(stream: SocketStream, fd: int, size: int) -> tuple[int, int, dict[str, Any]]:
    import zcio  # already imported by lag_run, before its loop started

    before = zcio.stats()
    sent = await zcio.send_file(stream, fd, count=size)
    acked = await _finish_stream(stream)
    return sent, acked, {"zcio": stats_delta(before, zcio.stats())}


async def _lag_sock_sendfile(sock: socket.socket, fd: int, size: int) -> tuple[int, int]:
    # asyncio's native path: os.sendfile on the loop thread, which waits for the disk inline.
    with os.fdopen(fd, "rb", closefd=False) as f:
        sent = await asyncio.get_running_loop().sock_sendfile(sock, f, 0, size, fallback=False)
    return sent, await _finish_sock(sock)


def lag_run(job: Job, backend: str, how: str) -> Result:
    """Send the cold file with ``how`` ("zcio", "sock_sendfile", or "idle": no transfer at
    all) while a ticker in the same loop measures how late its 1 ms sleeps wake up.

    Eviction and the connection happen before the ticker starts; the ticker runs from just
    before the first byte until the receiver's byte count arrives. A :class:`LoopProbe` on the
    loop's thread counts its CPU waits and disk reads, and samples where it was when late."""
    if how == "zcio":
        # Before the loop starts: importing zcio takes 40-90 ms, which an import in the loop
        # (in _lag_zcio) added to the ticker's first wake-up (the "first tick" of issue 25).
        import zcio  # noqa: F401

    async def main() -> Result:
        lags: list[float] = []
        waits: list[float] = []
        probe = LoopProbe(STALL_MS)
        stop = anyio.Event()
        extra: dict[str, Any] = {}
        sent = acked = port = 0
        async with AsyncExitStack() as stack:
            fd = stack.enter_context(open_fd(job.path))
            cold = {} if how == "idle" else _make_cold(fd, job.size)
            stream: SocketStream | None = None
            sock: socket.socket | None = None
            if how == "zcio":
                stream = await stack.enter_async_context(await anyio.connect_tcp(HOST, job.port))
                port = stream.extra(SocketAttribute.local_port)
            elif how == "sock_sendfile":
                sock = stack.enter_context(_connect_blocking(job.port))
                sock.setblocking(False)
                port = sock.getsockname()[1]
            probe.start()
            async with anyio.create_task_group() as tg:
                await tg.start(_tick, lags, waits, probe, stop)
                meter = Meter()
                if stream is not None:
                    sent, acked, extra = await _lag_zcio(stream, fd, job.size)
                elif sock is not None:
                    sent, acked = await _lag_sock_sendfile(sock, fd, job.size)
                else:
                    await anyio.sleep(IDLE_SECONDS)
                sample = meter.stop()
                stop.set()
            probe.stop()
        return transfer_result(
            sample,
            sent,
            acked,
            port,
            loop=_loop_name(),
            lags_ms=[x * 1e3 for x in lags],
            cpu_wait_ms=waits if len(waits) == len(lags) else [],
            **probe.result(),
            **cold,
            **extra,
        )

    return _backend_run(main, backend)


WORKERS: dict[str, Callable[[Job], Result]] = {
    "hot-sendfile": hot_sendfile,
    "hot-sock-sendfile": hot_sock_sendfile,
    "hot-read-write": lambda job: hot_read_write(job, 64 << 10),
    "hot-read-write-256k": lambda job: hot_read_write(job, 256 << 10),
    "hot-zcio-asyncio": lambda job: hot_zcio(job, "asyncio"),
    "hot-zcio-uvloop": lambda job: hot_zcio(job, "uvloop"),
    "hot-zcio-trio": lambda job: hot_zcio(job, "trio"),
    "lag-idle-asyncio": lambda job: lag_run(job, "asyncio", "idle"),
    "lag-idle-uvloop": lambda job: lag_run(job, "uvloop", "idle"),
    "lag-idle-trio": lambda job: lag_run(job, "trio", "idle"),
    "lag-zcio-asyncio": lambda job: lag_run(job, "asyncio", "zcio"),
    "lag-zcio-uvloop": lambda job: lag_run(job, "uvloop", "zcio"),
    "lag-zcio-trio": lambda job: lag_run(job, "trio", "zcio"),
    "lag-sock-sendfile-asyncio": lambda job: lag_run(job, "asyncio", "sock_sendfile"),
}


# === The parent: runs, checks, tables ==========================================================


@dataclass(frozen=True, slots=True)
class Variant:
    """One row of a table: which child to run, with which environment."""

    key: str
    label: str
    worker: str
    env: dict[str, str] = field(default_factory=dict)
    target: bool = False  # a zcio zero-copy backend: the targets apply
    method: str = ""  # the method zcio.stats() should show moving every byte
    needs: str = ""  # an optional module the path cannot run without


HOT_PATHS = (
    Variant("sendfile", "blocking `os.sendfile` loop (ceiling)", "hot-sendfile"),
    Variant("sock_sendfile", "asyncio `loop.sock_sendfile` (native)", "hot-sock-sendfile"),
    Variant("read_write", "blocking read/write loop, 64 KiB", "hot-read-write"),
    Variant("read_write_256k", "blocking read/write loop, 256 KiB", "hot-read-write-256k"),
    Variant(
        "zcio_asyncio",
        "`zcio.send_file`, asyncio",
        "hot-zcio-asyncio",
        target=True,
        method="sendfile",
    ),
    Variant(
        "zcio_uvloop",
        "`zcio.send_file`, asyncio+uvloop",
        "hot-zcio-uvloop",
        target=True,
        method="sendfile",
        needs="uvloop",
    ),
    Variant(
        "zcio_trio",
        "`zcio.send_file`, trio",
        "hot-zcio-trio",
        target=True,
        method="sendfile",
        needs="trio",
    ),
    Variant(
        "zcio_fallback_asyncio",
        "`zcio.send_file`, forced fallback (user space), asyncio",
        "hot-zcio-asyncio",
        env=FALLBACK_ENV,
        method="userspace",
    ),
)

LAG_PATHS = (
    Variant("idle_asyncio", "idle reference (no transfer), asyncio", "lag-idle-asyncio"),
    Variant(
        "idle_uvloop", "idle reference (no transfer), uvloop", "lag-idle-uvloop", needs="uvloop"
    ),
    Variant("idle_trio", "idle reference (no transfer), trio", "lag-idle-trio", needs="trio"),
    Variant(
        "zcio_asyncio",
        "`zcio.send_file`, asyncio",
        "lag-zcio-asyncio",
        target=True,
        method="sendfile",
    ),
    Variant(
        "zcio_uvloop",
        "`zcio.send_file`, asyncio+uvloop",
        "lag-zcio-uvloop",
        target=True,
        method="sendfile",
        needs="uvloop",
    ),
    Variant(
        "zcio_trio",
        "`zcio.send_file`, trio",
        "lag-zcio-trio",
        target=True,
        method="sendfile",
        needs="trio",
    ),
    Variant(
        "naive_sock_sendfile",
        "naive: asyncio `loop.sock_sendfile` (sendfile on the loop thread)",
        "lag-sock-sendfile-asyncio",
    ),
)


class Bench:
    """Runs children for every path, checks each transfer's byte count, keeps the results."""

    def __init__(self, rx: Receiver, path: Path, size: int, timeout: float) -> None:
        self.rx = rx
        self.path = path
        self.size = size
        self.timeout = timeout
        self.failures: list[str] = []

    def run(self, p: Variant, round_no: int, run_label: str) -> Result | None:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            p.worker,
            "--file",
            str(self.path),
            "--size",
            str(self.size),
            "--port",
            str(self.rx.port),
        ]
        env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
        env.update(p.env)
        try:
            result = run_child(argv, timeout=self.timeout, env=env)
            if result["client_port"]:
                result["receiver"] = self.rx.connection(int(result["client_port"]))
            result["round"] = round_no
            problem = self._check(result, p)
        except (ChildFailed, KeyError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            result = None
        if problem:
            self.failures.append(f"{run_label} {p.key}: {problem}")
            progress(f"  {run_label} {p.label}: FAILED: {problem}")
            return None
        return result

    def _check(self, result: Result, p: Variant) -> str:
        if p.worker.startswith("lag-idle"):
            return ""
        want = self.size
        receiver = result.get("receiver", {})
        if result["sent"] != want:
            return f"sender says it sent {result['sent']} bytes, expected {want}"
        if result["acked"] != want or receiver.get("bytes") != want:
            return (
                f"receiver got {result['acked']} bytes (its report: {receiver.get('bytes')}), "
                f"expected {want}"
            )
        return ""


# --- Summaries ---------------------------------------------------------------------------------


def _target(x_gbps: float, x_cpu: float) -> str:
    misses = []
    if not x_gbps >= TARGET_THROUGHPUT:
        misses.append(f"GB/s < {TARGET_THROUGHPUT}x")
    if not x_cpu <= TARGET_CPU:
        misses.append(f"CPU > {TARGET_CPU}x")
    return "met" if not misses else "MISSED: " + ", ".join(misses)


def _hot_summary(p: Variant, ok: Sequence[Result], ceiling: Sequence[Result]) -> dict[str, Any]:
    """One path's medians, and its per-round ratios to the ceiling."""
    x_gbps = by_round(ok, ceiling, run_gbps)
    x_cpu = by_round(ok, ceiling, cpu_per_gib)
    return {
        "label": p.label,
        "runs_ok": len(ok),
        "gbps": median([run_gbps(r) for r in ok]),
        "cpu_s_per_gib": median([cpu_per_gib(r) for r in ok]),
        "x_ceiling_gbps": x_gbps,
        "x_ceiling_cpu": x_cpu,
        "machine_cpu_s_per_gib": median([per_gib(r, "machine_s") for r in ok]),
        "receiver_cpu_s_per_gib": median([float(r["receiver"]["cpu_s"]) / run_gib(r) for r in ok]),
        **({"target_met": _target(x_gbps, x_cpu) == "met"} if p.target else {}),
    }


def _hot_detail(p: Variant, ok: Sequence[Result], e: dict[str, Any], runs: int) -> list[str]:
    user = median([per_gib(r, "user_s") for r in ok])
    system = median([per_gib(r, "system_s") for r in ok])
    return [
        p.label,
        f"{len(ok)}/{runs}",
        spread([run_gbps(r) for r in ok]),
        spread([cpu_per_gib(r) for r in ok], 3),
        f"{user:.3f} / {system:.3f}",
        fmt(e["receiver_cpu_s_per_gib"], 3),
        fmt(e["machine_cpu_s_per_gib"], 3),
        calls_per_gib(ok),
        methods_seen(ok, p.method) if p.method else "-",
    ]


HOT_HEADERS = ["path", "GB/s", "CPU s/GiB", "x ceiling GB/s", "x ceiling CPU", "target"]
HOT_DETAIL_HEADERS = [
    "path",
    "runs ok",
    "GB/s min-max",
    "CPU s/GiB min-max",
    "user / sys s/GiB",
    "receiver CPU s/GiB",
    "machine CPU s/GiB",
    "calls/GiB",
    "zcio method",
]


def hot_tables(results: dict[str, list[Result]], runs: int) -> tuple[str, str, dict[str, Any]]:
    """The main table (medians and ratios to the ceiling) and the detail table."""
    ceiling = results.get(HOT_PATHS[0].key, [])
    summary: dict[str, Any] = {}
    main_rows: list[list[str]] = []
    detail_rows: list[list[str]] = []
    for p in HOT_PATHS:
        ok = results.get(p.key)
        if not ok:
            skipped = p.key not in results
            note = f"({p.needs} not installed)" if skipped else ""
            main_rows.append([p.label, "skipped" if skipped else "failed", "", "", "", note])
            continue
        e = summary[p.key] = _hot_summary(p, ok, ceiling)
        x_gbps, x_cpu = e["x_ceiling_gbps"], e["x_ceiling_cpu"]
        target = _target(x_gbps, x_cpu) if p.target else "-"
        cells = [fmt(e["gbps"]), fmt(e["cpu_s_per_gib"], 3), fmt(x_gbps), fmt(x_cpu)]
        main_rows.append([p.label, *cells, target])
        detail_rows.append(_hot_detail(p, ok, e, runs))
    main = markdown_table(HOT_HEADERS, main_rows, "lrrrrl")
    detail = markdown_table(HOT_DETAIL_HEADERS, detail_rows, "lrrrrrrrl")
    return main, detail, summary


def _own_lags(r: Result) -> list[float] | None:
    """Each wake-up's lag less the time the loop's thread waited for a CPU; None without the
    counter."""
    waits = r.get("cpu_wait_ms") or []
    if len(waits) != len(r["lags_ms"]):
        return None
    return [max(0.0, lag - wait) for lag, wait in zip(r["lags_ms"], waits, strict=True)]


def _lag_summary(ok: Sequence[Result], p: Variant) -> dict[str, Any]:
    pooled = [x for r in ok for x in r["lags_ms"]]
    own = [x for x in map(_own_lags, ok) if x is not None]
    reads = [r["loop_disk_read_bytes"] for r in ok if r.get("loop_disk_read_bytes") is not None]
    return {
        "label": p.label,
        "runs_ok": len(ok),
        "p50_ms": median([percentile(r["lags_ms"], 50) for r in ok]),
        "p99_ms": median([percentile(r["lags_ms"], 99) for r in ok]),
        "max_ms": max(max(r["lags_ms"], default=0.0) for r in ok),
        "pooled_p99_ms": percentile(pooled, 99),
        "wakeups": len(pooled),
        # Less the CPU waits: what is left is the loop's own (busy, or asleep on something).
        "own_p99_ms": median([percentile(x, 99) for x in own]) if own else None,
        "own_max_ms": max(max(x, default=0.0) for x in own) if own else None,
        "loop_disk_read_mib": max(reads) / MIB if reads else None,
    }


def _lag_target(e: dict[str, Any]) -> str:
    def misses(p99: float, most: float) -> list[str]:
        out = [f"p99 >= {TARGET_P99_MS:g} ms"] if not p99 < TARGET_P99_MS else []
        return out + ([f"max > {TARGET_MAX_MS:g} ms"] if not most <= TARGET_MAX_MS else [])

    missed = misses(e["p99_ms"], e["max_ms"])
    if not missed:
        return "met"
    text = "MISSED: " + ", ".join(missed)
    if e["own_p99_ms"] is not None and not misses(e["own_p99_ms"], e["own_max_ms"]):
        text += " (met less CPU waits)"
    return text


def _lag_cells(ok: Sequence[Result], p: Variant, e: dict[str, Any]) -> list[str]:
    idle = p.worker.startswith("lag-idle")
    gbps = "-" if idle else fmt(median([run_gbps(r) for r in ok]))
    cold = "-" if idle else f"{sum(bool(r.get('cold_verified')) for r in ok)}/{len(ok)}"
    target = _lag_target(e) if p.target else "-"
    wakeups = median([len(r["lags_ms"]) / float(r["wall_s"]) for r in ok])
    lags = [f"{e[k]:.2f}" for k in ("p50_ms", "p99_ms", "max_ms")]
    own = "-"
    if e["own_p99_ms"] is not None:
        own = f"{e['own_p99_ms']:.2f} / {e['own_max_ms']:.2f}"
    reads = "-" if e["loop_disk_read_mib"] is None else f"{e['loop_disk_read_mib']:.1f}"
    return [p.label, *lags, own, reads, f"{wakeups:.0f}", gbps, cold, target]


def stall_lines(results: dict[str, list[Result]], least_ms: float = TARGET_MAX_MS) -> list[str]:
    """Where the loop's thread was when a tick was ``least_ms`` late, per path: the innermost
    Python frame, the thread's state and innermost kernel function, and how often."""
    lines = []
    for p in LAG_PATHS:
        seen: dict[str, int] = {}
        for r in results.get(p.key, []):
            for stall in r.get("stalls", []):
                if stall["late_ms"] < least_ms:
                    continue
                frame = stall["python"][-1] if stall["python"] else "?"
                kernel = stall["kernel"][0] if stall["kernel"] else "-"
                where = f"`{frame.strip()}` [{stall['state']}, {kernel}]"
                seen[where] = seen.get(where, 0) + 1
        if seen:
            top = sorted(seen.items(), key=lambda kv: -kv[1])[:4]
            lines.append(f"- {p.label}: " + "; ".join(f"{n}x {w}" for w, n in top))
    return lines


def lag_table(results: dict[str, list[Result]]) -> tuple[str, dict[str, Any]]:
    summary: dict[str, Any] = {}
    rows: list[list[str]] = []
    for p in LAG_PATHS:
        ok = results.get(p.key)
        if not ok:
            skipped = p.key not in results
            note = f"({p.needs} not installed)" if skipped else ""
            rows.append([p.label, "skipped" if skipped else "failed", *[""] * 7, note])
            continue
        summary[p.key] = _lag_summary(ok, p)
        rows.append(_lag_cells(ok, p, summary[p.key]))
    headers = ["path", "p50 ms", "p99 ms", "max ms", "less CPU waits: p99 / max ms"]
    headers += ["loop's disk reads MiB", "wake-ups/s", "GB/s", "cold runs", "target"]
    table = markdown_table(headers, rows, "lrrrrrrrrl")
    return table, summary


def schema(
    hot: dict[str, Any], lag: dict[str, Any], size: int, runs: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The results schema's sections, rows and footnotes, from the two summaries."""
    section = result_section(
        "send_file",
        "a cached file into a TCP socket; CPU: the sender's",
        baseline="blocking `os.sendfile` loop (the ceiling for a Python sender)",
        sizing=sizing_text(size, runs),
    )
    rows = [
        result_row(
            "send_file",
            key,
            str(e.get("label", key)),
            role="baseline" if key == HOT_PATHS[0].key else "",
            target_met=e.get("target_met"),
            gbps=e.get("gbps"),
            cpu_s_per_gib=e.get("cpu_s_per_gib"),
            x_baseline=e.get("x_ceiling_gbps"),
            x_baseline_cpu=e.get("x_ceiling_cpu"),
        )
        for key, e in hot.items()
    ]
    lags = [
        f"{e.get('label', key)} {float(e['p99_ms']):.2f} ms"
        for key, e in lag.items()
        if isinstance(e.get("p99_ms"), int | float)
    ]
    footnotes = []
    if lags:
        footnotes.append(
            "Event-loop lag, p99, file not in the page cache (send_file.py): " + "; ".join(lags)
        )
    return [section], rows, footnotes


# --- Main ----------------------------------------------------------------------------------------


def _available(p: Variant) -> bool:
    return not missing([p.needs])


def _announce(label: str, p: Variant, r: Result) -> None:
    if p.worker.startswith("lag-"):
        lags = r["lags_ms"]
        progress(
            f"  {label} {p.label}: p99 {percentile(lags, 99):.2f} ms, "
            f"max {max(lags, default=0.0):.2f} ms"
            + ("" if p.worker.startswith("lag-idle") else f", {run_gbps(r):.2f} GB/s")
        )
    else:
        progress(f"  {label} {p.label}: {run_gbps(r):.2f} GB/s, {cpu_per_gib(r):.3f} CPU s/GiB")


def _interleaved(
    bench: Bench, paths: Sequence[Variant], runs: int, phase: str
) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {p.key: [] for p in paths if _available(p)}
    for p in paths:
        if not _available(p):
            progress(f"  skipping {p.label}: {p.needs} is not installed")
    for i in range(1, runs + 1):
        for p in paths:
            if p.key not in results:
                continue
            label = f"[{phase} {i}/{runs}]"
            r = bench.run(p, i, label)
            if r is not None:
                results[p.key].append(r)
                _announce(label, p, r)
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "Benchmark zcio.send_file against sendfile, sock_sendfile and read/write.",
        Sizes(size_mib=(1024, 64), runs=(7, 3)),
    )
    parser.add_argument(
        "--lag-only", action="store_true", help="only the event-loop lag with a cold file"
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parse_args(parser, argv)


def _measure(args: argparse.Namespace, path: Path, size: int) -> tuple[Bench, dict[str, Any]]:
    """Every run of both figures, interleaved by round, against one receiver."""
    # Generous, but bounded: 30 s plus a minute per GiB (the slowest path runs near 1 GB/s).
    timeout = 30.0 + 60.0 * size / GIB
    with Receiver() as rx:
        bench = Bench(rx, path, size, timeout)
        progress(f"receiver on {HOST}:{rx.port}; warming {path} into the page cache")
        warm(path)
        with open_fd(path) as fd:
            state = cached_pages(fd)
        if state is not None and state[0] < state[1]:
            progress(f"  warning: only {state[0]}/{state[1]} pages cached after warming")
        bench.run(HOT_PATHS[0], 0, "[warm-up]")  # one discarded run: first connection, caches
        hot = {} if args.lag_only else _interleaved(bench, HOT_PATHS, args.runs, "hot")
        lag = _interleaved(bench, LAG_PATHS, args.runs, "cold")
    return bench, {"hot": hot, "lag": lag}


def _print_hot(args: argparse.Namespace, main_table: str, detail_table: str) -> None:
    print()
    print(f"## Cached file, {args.size_mib} MiB over loopback TCP (medians of {args.runs} runs)")
    print()
    print(main_table)
    print()
    print(
        f"Targets (printed, never asserted): every zcio backend >= {TARGET_THROUGHPUT}x the "
        f"ceiling's GB/s and <= {TARGET_CPU}x its CPU s/GiB. CPU is the sender's user+system "
        "time, all threads, from the first byte to the receiver's byte count. The x-ceiling "
        "columns are medians of per-round ratios (each path against the ceiling's run in the "
        "same round), so drift between rounds cancels."
    )
    print()
    print("Spread and detail:")
    print()
    print(detail_table)
    print()
    print(
        "machine CPU: busy time of all cores during the transfer (/proc/stat), wherever the "
        "kernel did the loopback work; it includes the receiver. calls/GiB: transfer system "
        "calls per GiB (zcio: zcio.stats(); the baselines count their own loops; '-': not "
        "counted). zcio method: what zcio.stats() saw moving the bytes."
    )


def _print_lag(args: argparse.Namespace, lag_text: str, stalls: Sequence[str]) -> None:
    print()
    print(
        f"## Event-loop lag, file not in the page cache ({args.size_mib} MiB, "
        f"{TICK * 1e3:.0f} ms ticker; median of per-run p50/p99, max over all runs)"
    )
    print()
    print(lag_text)
    print()
    print(
        f"Target (printed, never asserted): zcio p99 < {TARGET_P99_MS:g} ms and no wake-up "
        f"more than {TARGET_MAX_MS:g} ms late. less CPU waits: each wake-up's lag less the "
        "time the loop's thread waited, runnable, for a CPU (schedstat): what remains is the "
        "loop's own, busy or asleep on something; on a shared machine the difference is the "
        "other processes'. loop's disk reads: disk reads the loop's thread started, most in "
        "one run (/proc/thread-self/io); zcio's must be 0."
    )
    if stalls:
        print()
        print(f"Where the loop's thread was when a tick was over {TARGET_MAX_MS:g} ms late:")
        print()
        print("\n".join(stalls))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        job = Job(args.worker, args.file, args.size, args.port)
        print(json.dumps(WORKERS[job.worker](job)), flush=True)
        return 0

    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    path = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    print(f"# zcio send_file benchmark: {args.size_mib} MiB, {args.runs} runs per path")
    print()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    if args.runs < 5:
        print(f"(only {args.runs} runs per path: medians of fewer than 5 are rough)")
    bench, runs = _measure(args, path, size)
    main_table, detail_table, hot_summary = hot_tables(runs["hot"], args.runs)
    lag_text, lag_summary = lag_table(runs["lag"])
    elapsed = time.monotonic() - started
    if not args.lag_only:
        _print_hot(args, main_table, detail_table)
    _print_lag(args, lag_text, stall_lines(runs["lag"]))
    print()
    print(f"Total time: {elapsed:.0f} s.")
    sections, rows, footnotes = schema(hot_summary, lag_summary, size, args.runs)
    detail = {
        "environment": env,
        "size_bytes": size,
        "runs": args.runs,
        "elapsed_s": elapsed,
        "hot": {"summary": hot_summary, "runs": runs["hot"]},
        "lag": {"summary": lag_summary, "runs": runs["lag"]},
    }
    return finish(
        bench.failures,
        args.json,
        detail,
        script="send_file",
        sections=sections,
        rows=rows,
        footnotes=footnotes,
    )


if __name__ == "__main__":
    sys.exit(main())
