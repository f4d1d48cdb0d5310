"""Benchmark zcio's stream integrations against the copying loops their users write today.

A cached file goes over loopback TCP to the splice receiver of ``bench/_common.py``, per backend:

- **trio**: ``trio.SocketStream.send_all`` in 64 KiB chunks (the file read with ``os.preadv``
  into one reused buffer) against ``zcio_trio``'s ``ZeroCopySocketStream.send_file``;
- **asyncio** and **asyncio+uvloop**: a ``StreamWriter.write`` + ``drain`` loop in 64 KiB chunks
  against ``zcio.send_file(writer, ...)`` and ``zcio_asyncio.sendfile(transport, ...)`` (the
  ``loop.sendfile`` drop-in); on the default loop also asyncio's own ``loop.sendfile``, for
  context.

Every zero-copy row is compared with the copying loop of its own backend, run by run in the
same round: throughput, the sender's CPU per GiB (``getrusage``, every thread) and the whole
machine's (``/proc/stat``). Everything runs twice, interleaved: against the standard receiver,
and against one that sets ``SO_RCVLOWAT`` (256 KiB) on its socket. Over loopback the sender's
CPU goes mostly to the kernel's loopback work, waking the receiver once per 64-85 KiB
included; the second receiver is woken several times less often, which leaves the per-byte
cost visible. Targets are printed, never asserted.

    python bench/streams.py [--size-mib N] [--runs N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from _common import (
    ACK,
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    Job,
    Meter,
    Receiver,
    Run,
    Sample,
    Sizes,
    bench_parser,
    by_round,
    cache_state,
    cached_pages,
    calls_per_gib,
    cpu_per_gib,
    ensure_file,
    environment,
    finish,
    fmt,
    locked_in_memory,
    markdown_table,
    median,
    methods_seen,
    missing,
    open_fd,
    parse_args,
    per_gib,
    progress,
    result_row,
    result_section,
    run_child,
    run_gbps,
    run_gib,
    sizing_text,
    spread,
    stats_delta,
    transfer_result,
    wait_quiet,
    warm,
)

HOST = "127.0.0.1"
#: The copying loops' chunk: what ``StreamReader``-style code and most examples use.
CHUNK = 64 << 10
#: ``SO_RCVLOWAT`` of the second receiver.
RCVLOWAT = 256 << 10
#: Bytes each child sends once on a throwaway connection before it is measured.
WARMUP = 16 << 10
#: Target (printed, never asserted): a zero-copy row's sender CPU per GiB, as a fraction of the
#: copying loop's on the same backend in the same round.
TARGET_CPU = 0.5
#: Before each run, wait until the machine's busy share of all cores is at most this...
QUIET_BUSY = 0.15
#: ...for at most this many seconds.
QUIET_TIMEOUT = 60.0

Result = dict[str, Any]


# === Children: one measured transfer each ======================================================


class Clock:
    """``Meter`` plus this process's voluntary context switches: how often the sender slept
    waiting for the socket (each one a wake-up)."""

    def __init__(self) -> None:
        self._switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        self._meter = Meter()

    def stop(self) -> tuple[Sample, int]:
        sample = self._meter.stop()
        return sample, resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - self._switches


def _result(
    clock: tuple[Sample, int], sent: int, acked: int, client_port: int, **extra: Any
) -> Result:
    sample, switches = clock
    return transfer_result(sample, sent, acked, client_port, switches=switches, **extra)


# --- Warm-up ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _warmup_listener() -> Iterator[int]:
    """A loopback listener that never accepts: the kernel completes the handshake and buffers
    a small send, which is all a warm-up needs. Its port."""
    with socket.create_server((HOST, 0), backlog=4) as srv:
        yield int(srv.getsockname()[1])


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- trio ---------------------------------------------------------------------------------------


async def _trio_ack(stream: Any) -> int:
    """Half-close a trio stream, then read the receiver's byte count (-1 if cut short)."""
    await stream.send_eof()
    data = b""
    while len(data) < ACK.size:
        chunk = await stream.receive_some(ACK.size - len(data))
        if not chunk:
            break
        data += chunk
    return int(ACK.unpack(data)[0]) if len(data) == ACK.size else -1


def trio_run(job: Job, zero_copy: bool) -> Result:
    """trio: ``send_all`` of 64 KiB chunks read with ``os.preadv`` into one reused buffer, or
    ``zcio_trio``'s ``ZeroCopySocketStream.send_file``. Both streams come from
    ``trio.open_tcp_stream`` and so have trio's socket options (``TCP_NODELAY``, and
    ``TCP_NOTSENT_LOWAT`` 16 KiB)."""
    import trio

    import zcio_trio

    buf = bytearray(CHUNK)
    view = memoryview(buf)

    async def connect(port: int) -> trio.SocketStream | zcio_trio.ZeroCopySocketStream:
        if zero_copy:
            return await zcio_trio.open_tcp_stream(HOST, port)
        return await trio.open_tcp_stream(HOST, port)

    async def send(stream: trio.abc.HalfCloseableStream, f: BinaryIO, count: int) -> int:
        if isinstance(stream, zcio_trio.ZeroCopySocketStream):
            return await stream.send_file(f, count=count)
        fd = f.fileno()
        sent = 0
        while sent < count:
            n = os.preadv(fd, [view[: min(CHUNK, count - sent)]], sent)
            if n == 0:
                break
            await stream.send_all(view[:n])
            sent += n
        return sent

    async def main(f: BinaryIO, warmup_port: int) -> Result:
        import zcio

        # The same calls once on a throwaway connection, so that first-call costs (zcio's lazy
        # imports, trio's I/O manager) are not counted as transfer costs; reported apart.
        cpu = _cpu_now()
        async with await connect(warmup_port) as warm_stream:
            await send(warm_stream, f, WARMUP)
        warmup_cpu = _cpu_now() - cpu
        async with await connect(job.port) as stream:
            port = int(stream.socket.getsockname()[1])
            before = zcio.stats()
            clock = Clock()
            sent = await send(stream, f, job.size)
            acked = await _trio_ack(stream)
            measured = clock.stop()
            extra: dict[str, Any] = {"warmup_cpu_s": warmup_cpu, "loop": "trio"}
            if zero_copy:
                extra["zcio"] = stats_delta(before, zcio.stats())
            else:
                extra["calls"] = math.ceil(job.size / CHUNK)
            return _result(measured, sent, acked, port, **extra)

    with job.path.open("rb") as f, _warmup_listener() as warmup_port:
        cache = cache_state(f.fileno())
        result = trio.run(main, f, warmup_port)
    return {**result, **cache}


# --- asyncio, default loop and uvloop -------------------------------------------------------------


async def _asyncio_send(how: str, writer: asyncio.StreamWriter, f: BinaryIO, count: int) -> int:
    """Send ``count`` bytes of ``f`` from its start through ``writer``, ``how``:

    - ``copy``: ``writer.write(chunk)`` then ``await writer.drain()``, 64 KiB at a time. Each
      chunk is a fresh ``bytes`` (``os.pread``), as ``f.read()`` gives: reusing one buffer is
      not safe here, since a transport may keep a reference to bytes it could not send yet.
    - ``zcio``: ``zcio.send_file(writer, f)``;
    - ``sendfile``: ``zcio_asyncio.sendfile(writer.transport, f)``, the ``loop.sendfile``
      drop-in;
    - ``native``: asyncio's own ``loop.sendfile(writer.transport, f)`` (default loop only).
    """
    if how == "copy":
        fd = f.fileno()
        sent = 0
        while sent < count:
            data = os.pread(fd, min(CHUNK, count - sent), sent)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            sent += len(data)
        return sent
    if how == "native":
        loop = asyncio.get_running_loop()
        return await loop.sendfile(writer.transport, f, 0, count, fallback=False)
    import zcio
    import zcio_asyncio

    if how == "zcio":
        return await zcio.send_file(writer, f, count=count)
    return await zcio_asyncio.sendfile(writer.transport, f, 0, count)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _asyncio_transfer(job: Job, f: BinaryIO, how: str, warmup_port: int) -> Result:
    """One measured transfer on an ``asyncio.open_connection`` stream pair, after the same
    calls once on a throwaway connection (first-call costs are reported apart)."""
    import zcio

    cpu = _cpu_now()
    _, warm_writer = await asyncio.open_connection(HOST, warmup_port)
    try:
        await _asyncio_send(how, warm_writer, f, WARMUP)
    finally:
        await _close(warm_writer)
    warmup_cpu = _cpu_now() - cpu

    reader, writer = await asyncio.open_connection(HOST, job.port)
    try:
        port = int(writer.get_extra_info("sockname")[1])
        before = zcio.stats()
        clock = Clock()
        sent = await _asyncio_send(how, writer, f, job.size)
        writer.write_eof()
        try:
            acked = int(ACK.unpack(await reader.readexactly(ACK.size))[0])
        except asyncio.IncompleteReadError:
            acked = -1
        measured = clock.stop()
        extra: dict[str, Any] = {"warmup_cpu_s": warmup_cpu, "loop": _loop_name()}
        if how in ("zcio", "sendfile"):
            extra["zcio"] = stats_delta(before, zcio.stats())
        elif how == "copy":
            extra["calls"] = math.ceil(job.size / CHUNK)
        return _result(measured, sent, acked, port, **extra)
    finally:
        await _close(writer)


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return type(loop).__module__ + "." + type(loop).__qualname__


def asyncio_run(job: Job, how: str, uvloop: bool) -> Result:
    """Run :func:`_asyncio_transfer` on a fresh default loop, or a fresh uvloop loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if uvloop:
        import uvloop as uv

        factory = uv.new_event_loop
    with job.path.open("rb") as f, _warmup_listener() as warmup_port:
        cache = cache_state(f.fileno())
        main: Coroutine[Any, Any, Result] = _asyncio_transfer(job, f, how, warmup_port)
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(main)
    return {**result, **cache}


WORKERS: dict[str, Callable[[Job], Result]] = {
    "trio-copy": lambda job: trio_run(job, zero_copy=False),
    "trio-zcio": lambda job: trio_run(job, zero_copy=True),
    "asyncio-copy": lambda job: asyncio_run(job, "copy", uvloop=False),
    "asyncio-zcio": lambda job: asyncio_run(job, "zcio", uvloop=False),
    "asyncio-sendfile": lambda job: asyncio_run(job, "sendfile", uvloop=False),
    "asyncio-native": lambda job: asyncio_run(job, "native", uvloop=False),
    "uvloop-copy": lambda job: asyncio_run(job, "copy", uvloop=True),
    "uvloop-zcio": lambda job: asyncio_run(job, "zcio", uvloop=True),
    "uvloop-sendfile": lambda job: asyncio_run(job, "sendfile", uvloop=True),
}


# === The parent: runs, checks, tables ==========================================================


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a table: which child to run, and what to compare it with."""

    key: str
    backend: str
    label: str
    worker: str
    baseline: str = ""  # key of the copying loop on the same backend ("" for that loop itself)
    target: bool = False  # a zcio zero-copy row: the CPU target applies
    needs: str = ""  # a module the row cannot run without


PATHS = (
    Row("trio_copy", "trio", "`SocketStream.send_all`, 64 KiB chunks", "trio-copy", needs="trio"),
    Row(
        "trio_zcio",
        "trio",
        "`ZeroCopySocketStream.send_file`",
        "trio-zcio",
        baseline="trio_copy",
        target=True,
        needs="trio",
    ),
    Row("asyncio_copy", "asyncio", "`StreamWriter.write` + `drain`, 64 KiB", "asyncio-copy"),
    Row(
        "asyncio_zcio",
        "asyncio",
        "`zcio.send_file(writer, f)`",
        "asyncio-zcio",
        baseline="asyncio_copy",
        target=True,
    ),
    Row(
        "asyncio_sendfile",
        "asyncio",
        "`zcio_asyncio.sendfile(transport, f)`",
        "asyncio-sendfile",
        baseline="asyncio_copy",
        target=True,
    ),
    Row(
        "asyncio_native",
        "asyncio",
        "asyncio `loop.sendfile` (stdlib, for context)",
        "asyncio-native",
        baseline="asyncio_copy",
    ),
    Row(
        "uvloop_copy",
        "uvloop",
        "`StreamWriter.write` + `drain`, 64 KiB",
        "uvloop-copy",
        needs="uvloop",
    ),
    Row(
        "uvloop_zcio",
        "uvloop",
        "`zcio.send_file(writer, f)`",
        "uvloop-zcio",
        baseline="uvloop_copy",
        target=True,
        needs="uvloop",
    ),
    Row(
        "uvloop_sendfile",
        "uvloop",
        "`zcio_asyncio.sendfile(transport, f)`",
        "uvloop-sendfile",
        baseline="uvloop_copy",
        target=True,
        needs="uvloop",
    ),
)


@dataclass(frozen=True, slots=True)
class Setup:
    """One receiver configuration, and so one pair of tables."""

    key: str
    title: str
    rcvlowat: int


SETUPS = (
    Setup("standard", "(a) standard receiver", 0),
    Setup("rcvlowat", f"(b) receiver with SO_RCVLOWAT = {RCVLOWAT >> 10} KiB", RCVLOWAT),
)


class Bench:
    """Runs children, checks each transfer's byte count on both sides, keeps the failures."""

    def __init__(
        self, path: Path, size: int, timeout: float, quiet_timeout: float = QUIET_TIMEOUT
    ) -> None:
        self.path = path
        self.size = size
        self.timeout = timeout
        self.quiet_timeout = quiet_timeout
        self.failures: list[str] = []
        self.waited = 0.0
        self.rewarmed = 0

    def run(self, rx: Receiver, p: Row, round_no: int, label: str) -> Result | None:
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
            str(rx.port),
        ]
        env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
        problem = ""
        result: Result | None = None
        # Another program busy on this shared machine would be measured too: let it finish
        # (up to --quiet-timeout), and keep what it left as the run's "other" CPU.
        waited, busy = wait_quiet(QUIET_BUSY, timeout=self.quiet_timeout)
        self.waited += waited
        if busy > QUIET_BUSY:
            progress(f"  {label}: the machine is still {busy:.0%} busy; running anyway")
        # Some kernels evict pages nobody touched for a while (DAMON reclaim, memory pressure):
        # put back what is missing, last, so every run sends a cached file.
        with open_fd(self.path) as fd:
            state = cached_pages(fd)
        if state is not None and state[0] < state[1]:
            warm(self.path)
            self.rewarmed += 1
        try:
            result = run_child(argv, timeout=self.timeout, env=env)
            result["receiver"] = rx.connection(int(result["client_port"]))
            result["round"] = round_no
            result["busy_before"] = busy
            problem = self._check(result)
        except (ChildFailed, KeyError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem or result is None:
            self.failures.append(f"{label} {p.key}: {problem}")
            progress(f"  {label} {p.label}: FAILED: {problem}")
            dropped = rx.discard_reports()
            if dropped:
                progress(f"  (dropped {dropped} unclaimed receiver report(s))")
            return None
        return result

    def _check(self, result: Result) -> str:
        want = self.size
        receiver = result.get("receiver", {})
        if result["sent"] != want:
            return f"sender says it sent {result['sent']} bytes, expected {want}"
        if result["acked"] != want or receiver.get("bytes") != want:
            return (
                f"receiver got {result['acked']} bytes (its report: {receiver.get('bytes')}), "
                f"expected {want}"
            )
        if receiver.get("error"):
            return f"receiver: {receiver['error']}"
        return ""


# --- Summaries ---------------------------------------------------------------------------------


def _machine(r: Run) -> float:
    return per_gib(r, "machine_s")


def _receiver(r: Result, key: str) -> float:
    return float(r["receiver"].get(key, math.nan)) / run_gib(r)


def _methods(ok: Sequence[Result]) -> str:
    """What ``zcio.stats()`` saw moving the bytes ("-" for a row without zcio)."""
    if any(r.get("zcio") is None for r in ok):
        return "-"
    return methods_seen(ok, "sendfile")


def _summary(p: Row, ok: Sequence[Result], base: Sequence[Result]) -> dict[str, Any]:
    """One row's medians and per-round ratios to its backend's copying loop."""
    ratios = [by_round(ok, base, fn) for fn in (run_gbps, cpu_per_gib, _machine)]
    x_gbps, x_cpu, x_machine = ratios if p.baseline else [math.nan] * 3
    return {
        "backend": p.backend,
        "label": p.label,
        "runs_ok": len(ok),
        "gbps": median([run_gbps(r) for r in ok]),
        "cpu_s_per_gib": median([cpu_per_gib(r) for r in ok]),
        "machine_cpu_s_per_gib": median([_machine(r) for r in ok]),
        "x_copy_gbps": x_gbps,
        "x_copy_cpu": x_cpu,
        "x_copy_machine_cpu": x_machine,
        "sender_wakeups_per_gib": median([per_gib(r, "switches") for r in ok]),
        "receiver_cpu_s_per_gib": median([_receiver(r, "cpu_s") for r in ok]),
        "receiver_wakeups_per_gib": median([_receiver(r, "wakeups") for r in ok]),
        "other_cpu_s_per_gib": median(
            [_machine(r) - cpu_per_gib(r) - _receiver(r, "cpu_s") for r in ok]
        ),
        "warmup_cpu_ms": median([float(r.get("warmup_cpu_s", math.nan)) * 1e3 for r in ok]),
        **({"target_met": bool(x_cpu <= TARGET_CPU)} if p.target else {}),
    }


def _main_cells(p: Row, e: dict[str, Any]) -> list[str]:
    ratios = [fmt(e[k]) for k in ("x_copy_gbps", "x_copy_cpu", "x_copy_machine_cpu")]
    target = "-"
    if p.target:
        target = "met" if e["target_met"] else f"MISSED: CPU > {TARGET_CPU}x"
    figures = [fmt(e["gbps"]), fmt(e["cpu_s_per_gib"], 3), fmt(e["machine_cpu_s_per_gib"], 3)]
    return [p.backend, p.label, *figures, *(ratios if p.baseline else ["1 (ref)"] * 3), target]


def _detail_cells(p: Row, ok: Sequence[Result], e: dict[str, Any], runs: int) -> list[str]:
    user = median([per_gib(r, "user_s") for r in ok])
    system = median([per_gib(r, "system_s") for r in ok])
    return [
        p.backend,
        p.label,
        f"{len(ok)}/{runs}",
        spread([run_gbps(r) for r in ok]),
        spread([cpu_per_gib(r) for r in ok], 3),
        f"{user:.3f} / {system:.3f}",
        fmt(e["sender_wakeups_per_gib"], 0),
        fmt(e["receiver_cpu_s_per_gib"], 3),
        fmt(e["receiver_wakeups_per_gib"], 0),
        fmt(median([_receiver(r, "splices") for r in ok]), 0),
        fmt(e["other_cpu_s_per_gib"], 3),
        calls_per_gib(ok),
        fmt(e["warmup_cpu_ms"], 1),
        _methods(ok),
    ]


MAIN_HEADERS = [
    "backend",
    "path",
    "GB/s",
    "sender CPU s/GiB",
    "machine CPU s/GiB",
    "x copy GB/s",
    "x copy CPU",
    "x copy machine",
    "target",
]
DETAIL_HEADERS = [
    "backend",
    "path",
    "runs ok",
    "GB/s min-max",
    "CPU s/GiB min-max",
    "user / sys s/GiB",
    "sender wake-ups/GiB",
    "receiver CPU s/GiB",
    "receiver wake-ups/GiB",
    "receiver splices/GiB",
    "other CPU s/GiB",
    "calls/GiB",
    "warm-up CPU ms",
    "zcio method",
]


def tables(
    results: dict[str, list[Result]], runs: int
) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """The main table (medians, ratios to the backend's copying loop) and the detail table."""
    main_rows: list[list[str]] = []
    detail_rows: list[list[str]] = []
    summary: dict[str, dict[str, Any]] = {}
    for p in PATHS:
        ok = results.get(p.key)
        if not ok:
            state = "skipped" if p.key not in results else "failed"
            main_rows.append([p.backend, p.label, state, *[""] * 6])
            continue
        e = summary[p.key] = _summary(p, ok, results.get(p.baseline, []) if p.baseline else [])
        main_rows.append(_main_cells(p, e))
        detail_rows.append(_detail_cells(p, ok, e, runs))
    main = markdown_table(MAIN_HEADERS, main_rows, "llrrrrrrl")
    detail = markdown_table(DETAIL_HEADERS, detail_rows, "llrrrrrrrrrrrl")
    return main, detail, summary


def schema(
    summaries: dict[str, dict[str, Any]], size: int, runs: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The results schema's sections and rows: one section per receiver."""
    what = "the stream integrations; CPU: the sender's; "
    base = "the copying loop of the same backend"
    sections, rows = [], []
    for setup, key, receiver in (
        ("standard", "streams a", "standard receiver"),
        ("rcvlowat", "streams b", "receiver with SO_RCVLOWAT"),
    ):
        sections.append(
            result_section(key, what + receiver, baseline=base, sizing=sizing_text(size, runs))
        )
        for name, e in summaries.get(setup, {}).items():
            reference = name.endswith("_copy")  # the copying loop: its own baseline
            rows.append(
                result_row(
                    key,
                    name,
                    f"{e.get('backend', '?')}: {e.get('label', name)}",
                    role="baseline" if reference else "",
                    target_met=e.get("target_met"),
                    gbps=e.get("gbps"),
                    cpu_s_per_gib=e.get("cpu_s_per_gib"),
                    x_baseline=1.0 if reference else e.get("x_copy_gbps"),
                    x_baseline_cpu=1.0 if reference else e.get("x_copy_cpu"),
                )
            )
    return sections, rows


# --- Main ----------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "Benchmark zcio's trio and asyncio stream integrations against copying loops.",
        Sizes(size_mib=(1024, 64), runs=(7, 3), quiet_timeout=QUIET_TIMEOUT),
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parse_args(parser, argv)


NOTE = f"""\
Ratios ("x copy") compare each row with the copying loop of its own backend, run by run in
the same round, and give the median of those ratios. Sender CPU: user + system time of the
sending process, all threads (getrusage), from the first byte to the receiver's byte count.
Machine CPU: busy time of all cores over the same span (/proc/stat, one-tick resolution),
receiver and kernel threads included. Target (printed, never asserted): each zcio row at
<= {TARGET_CPU}x its copying loop's sender CPU per GiB.

Which table shows the per-byte cost: (b). With the standard receiver (a) the kernel wakes the
receiver every 64-85 KiB or so ("receiver wake-ups/GiB"), and most of the loopback work, the
receiving side's TCP processing and those wake-ups included, runs inside the sender's system
calls whatever the sender does: the same for copying and zero-copy senders, it hides the copy.
With SO_RCVLOWAT = {RCVLOWAT >> 10} KiB (b) the receiver is woken only once that much is waiting,
so what is left of the sender's CPU is mostly what it does per byte: copy each byte twice (file
to user space, user space to socket), or not at all. (a) is what a peer that reads as soon as
anything arrives costs; (b) shows what zero-copy removes."""

DETAIL_NOTE = """\
sender wake-ups/GiB: the sender's voluntary context switches (it slept waiting for the
socket). receiver wake-ups/GiB: the same for the receiver; receiver splices/GiB: its
socket -> pipe calls. other CPU: machine CPU minus the sender's and the receiver's (a little
below 0 when nothing else ran: getrusage is exact, /proc/stat counts clock ticks; well above 0
means another program or kernel threads ran). calls/GiB: zcio's system calls from
zcio.stats() (sendfile calls), or the copying loop's chunks. warm-up CPU: what the same calls
cost the child once, on a throwaway connection, before the measured transfer (first-call
costs: for zcio, importing anyio's backend for the running loop); not counted above. zcio
method: what zcio.stats() saw moving the bytes, and how many calls it sent from a worker
thread because pages were not cached ("offloaded")."""


def _rounds(
    bench: Bench, receivers: dict[str, Receiver], paths: Sequence[Row], runs: int
) -> dict[str, dict[str, list[Result]]]:
    """Every run: rounds of every path against both receivers, which go first in turn."""
    results: dict[str, dict[str, list[Result]]] = {
        s.key: {p.key: [] for p in paths} for s in SETUPS
    }
    for s in SETUPS:  # one discarded run each: first connection, caches
        bench.run(receivers[s.key], paths[0], 0, f"[warm-up {s.key}]")
    for i in range(1, runs + 1):
        # Alternate which receiver goes first, so neither always runs right after the other.
        for s in SETUPS if i % 2 else SETUPS[::-1]:
            for p in paths:
                label = f"[{s.key} {i}/{runs}]"
                r = bench.run(receivers[s.key], p, i, label)
                if r is None:
                    continue
                results[s.key][p.key].append(r)
                progress(
                    f"  {label} {p.backend} {p.label}: {run_gbps(r):.2f} GB/s, "
                    f"{cpu_per_gib(r):.3f} CPU s/GiB, machine {_machine(r):.3f}"
                )
    return results


def _measure(
    bench: Bench, paths: Sequence[Row], runs: int
) -> tuple[bool, dict[str, dict[str, list[Result]]]]:
    """The file locked in memory, both receivers up: every run. Whether the lock held."""
    path = bench.path
    with (
        locked_in_memory(path) as locked,
        Receiver(count_calls=True) as standard,
        Receiver(rcvlowat=RCVLOWAT, count_calls=True) as lowat,
    ):
        progress(
            "the file's pages are locked in memory (mlock)"
            if locked
            else "could not mlock the file: it is re-read into the page cache when pages go"
        )
        progress(
            f"receivers on {HOST}:{standard.port} (standard) and {HOST}:{lowat.port} "
            f"(SO_RCVLOWAT {RCVLOWAT}); warming {path} into the page cache"
        )
        warm(path)
        with open_fd(path) as fd:
            state = cached_pages(fd)
        if state is not None and state[0] < state[1]:
            progress(f"  warning: only {state[0]}/{state[1]} pages cached after warming")
        results = _rounds(bench, {"standard": standard, "rcvlowat": lowat}, paths, runs)
    return locked, results


def _print_tables(
    args: argparse.Namespace, results: dict[str, dict[str, list[Result]]]
) -> dict[str, Any]:
    """Both receivers' tables and the notes; the summaries, per receiver."""
    summaries: dict[str, Any] = {}
    print()
    print(
        f"Cached {args.size_mib} MiB file over loopback TCP, one connection per run, each run a "
        f"fresh sender process; medians of {args.runs} interleaved runs."
    )
    for s in SETUPS:
        main_table, detail_table, summaries[s.key] = tables(results[s.key], args.runs)
        print()
        print(f"## {s.title}")
        print()
        print(main_table)
        print()
        print("Detail:")
        print()
        print(detail_table)
    print()
    print(NOTE)
    print()
    print(DETAIL_NOTE)
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        job = Job(args.worker, args.file, args.size, args.port)
        print(json.dumps(WORKERS[job.worker](job)), flush=True)
        return 0

    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    # The same file as send_file.py (one 16 MiB random block repeated): written once, reused.
    path = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    timeout = 30.0 + 60.0 * size / GIB  # bounded; the slowest path runs near 1 GB/s
    paths = [p for p in PATHS if not missing([p.needs])]
    for p in PATHS:
        if p not in paths:
            progress(f"  skipping {p.label} ({p.backend}): {p.needs} is not installed")
    print(
        f"# zcio stream integrations benchmark: {args.size_mib} MiB, {args.runs} runs per path "
        "and receiver"
    )
    print()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    if args.runs < 5:
        print(f"(only {args.runs} runs per path: medians of fewer than 5 are rough)")
    bench = Bench(path, size, timeout, args.quiet_timeout)
    locked, results = _measure(bench, paths, args.runs)
    elapsed = time.monotonic() - started
    summaries = _print_tables(args, results)
    print()
    print(
        f"Total time: {elapsed:.0f} s, of which {bench.waited:.0f} s waiting for a quiet machine "
        f"before runs. The file's pages were {'' if locked else 'NOT '}locked in memory; it was "
        f"re-read into the page cache before {bench.rewarmed} runs."
    )
    sections, rows = schema(summaries, size, args.runs)
    detail = {
        "environment": env,
        "size_bytes": size,
        "runs": args.runs,
        "chunk": CHUNK,
        "rcvlowat": RCVLOWAT,
        "elapsed_s": elapsed,
        "setups": {s.key: {"summary": summaries[s.key], "runs": results[s.key]} for s in SETUPS},
    }
    return finish(bench.failures, args.json, detail, script="streams", sections=sections, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
