"""The toolkit of zcio's benchmarks: test files, page-cache control, CPU accounting, a cheap
loopback receiver, child processes with time limits, Markdown tables, and what every script
does alike: formatting, per-round ratios, zcio counter deltas, availability checks, the common
options (:func:`bench_parser`) and the one results schema (:func:`finish`).

The receiver runs in its own process (``python bench/_common.py receive``) so that what it
costs never lands on the sender's CPU account. It accepts one connection at a time, moves
every byte socket -> pipe -> ``/dev/null`` with ``splice(2)`` (no copy into user space), and
when the sender shuts its side down it answers with the byte count (8 bytes, big-endian), then
reports the connection on its stdout as one JSON line. Senders time a transfer up to that
answer, so the figure covers delivery, not just filling the socket buffer.

Nothing here imports zcio: the baselines must not pay for it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import importlib.util
import json
import math
import mmap
import os
import platform
import queue
import re
import resource
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "ACK",
    "BENCH_DIR",
    "ChildFailed",
    "Job",
    "FIGURES",
    "GIB",
    "MAX_CALL",
    "MIB",
    "Meter",
    "Receiver",
    "Run",
    "SCHEMA",
    "SMOKE",
    "Sample",
    "Service",
    "Sizes",
    "add_servers",
    "bench_parser",
    "by_round",
    "cache_state",
    "cached_pages",
    "calls_per_gib",
    "chosen_servers",
    "cpu_per_gib",
    "ensure_file",
    "environment",
    "evict",
    "finish",
    "fmt",
    "free_port",
    "json_number",
    "listening",
    "locked_in_memory",
    "machine_busy",
    "markdown_table",
    "median",
    "methods_seen",
    "missing",
    "open_fd",
    "package_versions",
    "parse_args",
    "per_gib",
    "percentile",
    "process_cpu",
    "process_group",
    "program_version",
    "progress",
    "ratio_text",
    "read_nowait_blocks",
    "result_row",
    "result_section",
    "run_child",
    "run_gbps",
    "run_gib",
    "sizing_text",
    "spread",
    "stats_delta",
    "stats_json_delta",
    "transfer_result",
    "tree_cpu",
    "wait_quiet",
    "warm",
    "wrk_sizing_text",
    "zcio_of",
]

MIB = 1 << 20
GIB = 1 << 30
#: Where benchmark files live; kept between runs so a file is written only once.
#: ``ZCIO_BENCH_DIR`` moves it (two benchmarks sharing a machine must not share the folder: each
#: relinks the HTTP servers' large file to the size it measures).
BENCH_DIR = Path(os.environ.get("ZCIO_BENCH_DIR") or "/tmp/zcio-bench")
#: The receiver's answer once the sender's side reached end of file: bytes received.
ACK = struct.Struct("!Q")
#: Linux moves at most this many bytes in one sendfile/splice call.
MAX_CALL = 0x7FFFF000

_PIPE_SIZE = MIB  # /proc/sys/fs/pipe-max-size by default; a smaller pipe is fine too
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --- CPU and wall-clock accounting ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """Seconds spent between two points: wall clock, this process's CPU (user, system, every
    thread), and the whole machine's busy CPU time over all cores (``machine``)."""

    wall: float
    user: float
    system: float
    machine: float

    @property
    def cpu(self) -> float:
        return self.user + self.system


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot, all cores (``/proc/stat``): user,
    nice, system, irq and softirq; not idle, iowait or steal. Resolution: one clock tick.

    On loopback the kernel does much of the receiving side's TCP work in whichever context is
    at hand, and charges it to whichever process that is; this figure counts it wherever it
    ran (the receiver and anything else running included)."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / _CLK_TCK


def wait_quiet(
    max_busy: float = 0.15, window: float = 0.5, timeout: float = 60.0
) -> tuple[float, float]:
    """Wait until the machine looks idle: its busy share of all cores over ``window`` seconds
    (``/proc/stat``) at most ``max_busy``. Gives up after ``timeout`` seconds.

    Returns (seconds waited, the last window's busy share). For a shared machine where another
    program may be running tests: a run started meanwhile measures both. Resolution: one clock
    tick per window. A ``timeout`` of 0 or less does not wait (nor measure): ``(0.0, nan)``.
    """
    if timeout <= 0:
        return 0.0, math.nan
    cpus = os.cpu_count() or 1
    started = time.monotonic()
    share = math.nan
    for _ in range(int(timeout / window) + 1):
        before = machine_busy()
        time.sleep(window)
        share = (machine_busy() - before) / (window * cpus)
        waited = time.monotonic() - started
        if share <= max_busy or waited >= timeout:
            return waited, share
    return time.monotonic() - started, share


class Meter:
    """Measures this process, every thread included (``getrusage(RUSAGE_SELF)``), and the
    machine's busy time.

    ``Meter()`` takes the starting point; ``stop()`` returns what was spent since. Start it
    right before the work, after imports and connection set-up, so startup is not counted.
    """

    def __init__(self) -> None:
        self._machine = machine_busy()
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._wall = time.perf_counter()

    def stop(self) -> Sample:
        wall = time.perf_counter() - self._wall
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return Sample(
            wall=wall,
            user=usage.ru_utime - self._usage.ru_utime,
            system=usage.ru_stime - self._usage.ru_stime,
            machine=machine_busy() - self._machine,
        )


# --- The test file and the page cache ---------------------------------------------------------


def ensure_file(path: Path, size: int, block: int = 16 * MIB) -> Path:
    """Create ``path`` with ``size`` bytes (one random block repeated) unless it already exists
    with that size. Written to a temporary name, synced, then renamed: never half a file."""
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(min(block, max(size, 1)))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        left = size
        while left > 0:
            f.write(data[: min(left, len(data))])
            left -= min(left, len(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def warm(path: Path) -> None:
    """Read the whole file once so its pages are in the page cache."""
    buf = bytearray(4 * MIB)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        while os.readv(fd, [buf]):
            pass
    finally:
        os.close(fd)


def evict(fd: int) -> None:
    """Drop the file's pages from the page cache (no root needed): write back, then forget."""
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class _CacheStatRange(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _CacheStat(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    )


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451  # Linux 6.5+, the same number on every architecture
_libc_mmap = _libc.mmap
_libc_mmap.restype = ctypes.c_void_p
_libc_mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)


_MAP_FAILED = ctypes.c_void_p(-1).value


@contextlib.contextmanager
def locked_in_memory(path: Path) -> Iterator[bool]:
    """Keep ``path``'s pages in the page cache while the block runs: map the file and
    ``mlock(2)`` the mapping, so that reclaim (memory pressure, or DAMON's proactive pageout of
    pages nobody touched for a while) cannot evict them. Yields whether that worked; it needs
    ``CAP_IPC_LOCK`` or an ``RLIMIT_MEMLOCK`` above the file's size, and holds nothing if not.
    ``mlock`` reads in every page that is not cached yet, so this also warms the file."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        addr = _libc_mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0) if size else None
    finally:
        os.close(fd)  # the mapping keeps its own reference to the file
    if addr is None or addr == _MAP_FAILED:
        yield False
        return
    try:
        yield int(_libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(size))) == 0
    finally:
        _libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))  # also unlocks


def cached_pages(fd: int) -> tuple[int, int] | None:
    """(pages of the file in the page cache, pages in the file), from ``cachestat(2)``.

    None where the kernel lacks it (before 6.5); use :func:`read_nowait_blocks` then.
    """
    size = os.fstat(fd).st_size
    rng = _CacheStatRange(0, 0)  # len 0: up to the end of the file
    stat = _CacheStat()
    rc = int(_libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(stat), 0))
    if rc != 0:
        return None
    return int(stat.cache), (size + _PAGE - 1) // _PAGE


def read_nowait_blocks(fd: int, offsets: Sequence[int], length: int = 4096) -> list[bool]:
    """For each offset: can ``length`` bytes be read there without waiting for the disk?

    ``preadv2(RWF_NOWAIT)`` answers from the page cache only; ``BlockingIOError`` (EAGAIN)
    means the pages are not there.
    """
    buf = bytearray(length)
    out = []
    for offset in offsets:
        try:
            os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            out.append(False)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            out.append(False)  # no RWF_NOWAIT on this filesystem: cannot tell, assume cold
        else:
            out.append(True)
    return out


# --- Statistics and tables --------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    return percentile(values, 50.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A Markdown table, columns padded for reading as plain text too.

    ``align`` has one letter per column: ``l`` (left) or ``r`` (right); all left by default.
    """
    align = align or "l" * len(headers)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if a == "r" else "-" * w for w, a in zip(widths, align, strict=True)
    ]
    return "\n".join([line(headers), line(rule), *(line(r) for r in rows)])


# --- Child processes --------------------------------------------------------------------------


class ChildFailed(Exception):
    """A benchmark child exited non-zero, printed no result, or ran out of time."""


def run_child(
    argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``argv`` and return the JSON object on the last line of its stdout.

    The child is killed after ``timeout`` seconds. Its stderr passes through to ours.
    """
    try:
        done = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=timeout,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildFailed(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    if done.returncode != 0 or not lines:
        raise ChildFailed(f"exit status {done.returncode}: {' '.join(argv)}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ChildFailed(f"no JSON result from {' '.join(argv)}: {lines[-1]!r}") from exc
    if not isinstance(result, dict):
        raise ChildFailed(f"result is not an object: {lines[-1]!r}")
    return result


# --- The receiver -----------------------------------------------------------------------------


class Receiver:
    """The receiver process, for the whole benchmark: ``with Receiver() as rx: rx.port``.

    ``rx.connection(port)`` returns what the receiver saw on the connection whose client side
    was bound to local port ``port``: bytes, wall and CPU seconds of the receiver.

    Two options, both off by default (the standard receiver): ``rcvlowat`` sets ``SO_RCVLOWAT``
    on each accepted socket, so the kernel wakes the receiver only once that many bytes wait
    (or the peer half-closed) instead of for every segment that arrives; ``count_calls`` adds
    to each report the receiver's ``splices`` (socket -> pipe calls) and ``wakeups`` (its
    voluntary context switches: how often it slept waiting for bytes).
    """

    def __init__(
        self, idle_timeout: float = 600.0, *, rcvlowat: int = 0, count_calls: bool = False
    ) -> None:
        self._argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "receive",
            "--idle-timeout",
            str(idle_timeout),
        ]
        if rcvlowat:
            self._argv += ["--rcvlowat", str(rcvlowat)]
        if count_calls:
            self._argv.append("--count-calls")
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._pending: dict[int, dict[str, Any]] = {}
        self.port = 0

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        try:
            first = self._lines.get(timeout=30)
        except queue.Empty:
            self._stop()
            raise ChildFailed("the receiver did not start within 30 s") from None
        self.port = int(first["port"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self._lines.put(json.loads(line))

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def connection(self, client_port: int, timeout: float = 10.0) -> dict[str, Any]:
        """The receiver's report for one connection; ``ChildFailed`` if none comes in time."""
        deadline = time.monotonic() + timeout
        while client_port not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"the receiver reported no connection from port {client_port}")
            try:
                report = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            self._pending[int(report.get("peer_port", -1))] = report
        return self._pending.pop(client_port)

    def next_connection(self, timeout: float = 10.0) -> dict[str, Any]:
        """The oldest report not yet claimed, whatever its port: for a peer whose local port
        the caller cannot know (a relay it did not write). ``ChildFailed`` if none comes."""
        if self._pending:
            return self._pending.pop(next(iter(self._pending)))
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ChildFailed(
                f"the receiver reported no connection within {timeout:.0f} s"
            ) from None

    def discard_reports(self) -> int:
        """Forget every report received and not claimed (left over by a failed run)."""
        dropped = len(self._pending)
        self._pending.clear()
        for _ in range(self._lines.qsize()):
            try:
                self._lines.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        return dropped


def _drain(conn: socket.socket, null_fd: int, pipe_r: int, pipe_w: int) -> tuple[int, int]:
    """Move everything the peer sends into /dev/null through the pipe; return the byte count
    and the number of socket -> pipe calls."""
    total = calls = 0
    while True:
        n = os.splice(conn.fileno(), pipe_w, _PIPE_SIZE, flags=os.SPLICE_F_MOVE)
        calls += 1
        if n == 0:
            return total, calls
        total += n
        while n:  # empty the pipe before the next read, so a splice never waits on a full pipe
            n -= os.splice(pipe_r, null_fd, n, flags=os.SPLICE_F_MOVE)


def _serve(idle_timeout: float, rcvlowat: int = 0, count_calls: bool = False) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # a smaller pipe only costs a few more calls
        fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    null_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    parent = os.getppid()
    idle_since = time.monotonic()
    while True:
        if not sel.select(timeout=1.0):
            if os.getppid() != parent or time.monotonic() - idle_since > idle_timeout:
                return  # the parent is gone, or nobody came for too long
            continue
        conn, peer = listener.accept()
        extra: dict[str, int] = {}
        with conn:
            conn.setblocking(True)  # splice needs the fd itself to block
            if rcvlowat:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, rcvlowat)
                extra["rcvlowat"] = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
            switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw if count_calls else 0
            meter = Meter()
            splices = 0
            try:
                got, splices = _drain(conn, null_fd, pipe_r, pipe_w)
                conn.sendall(ACK.pack(got))
                error = None
            except OSError as exc:
                got, error = -1, f"{type(exc).__name__}: {exc}"
            spent = meter.stop()
            if count_calls:
                extra["splices"] = splices
                extra["wakeups"] = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - switches
        report = {"peer_port": peer[1], "bytes": got, "wall_s": spent.wall, "cpu_s": spent.cpu}
        report.update(extra)
        if error:
            report["error"] = error
        print(json.dumps(report), flush=True)
        idle_since = time.monotonic()


# --- A transfer child's job and result -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """What a transfer child is asked to do (from its command line)."""

    worker: str
    path: Path
    size: int
    port: int


def transfer_result(
    sample: Sample, sent: int, acked: int, client_port: int, **extra: Any
) -> dict[str, Any]:
    """What a transfer child prints: its clock and CPU, the bytes it sent and the receiver
    acknowledged, its local port (the receiver's report is found by it), and ``extra``."""
    return {
        "wall_s": sample.wall,
        "user_s": sample.user,
        "system_s": sample.system,
        "machine_s": sample.machine,
        "sent": sent,
        "acked": acked,
        "client_port": client_port,
        **extra,
    }


def cache_state(fd: int) -> dict[str, int]:
    """The file's pages in the page cache and in all (``{}`` without ``cachestat``)."""
    state = cached_pages(fd)
    return {} if state is None else {"cached_pages": state[0], "file_pages": state[1]}


# --- The environment --------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """What a reader needs to compare two runs: machine, kernel, Python, packages, commit."""

    env = {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    env.update(package_versions(("zcio", "anyio", "trio", "uvloop")))
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("zcio")
        if spec is not None and spec.origin:
            env["zcio from"] = str(Path(spec.origin).parent)
    repo = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        from_repo = env.get("zcio from", "").startswith(str(repo / "src"))
        if head:
            env["commit"] = head + (
                " (src/ has uncommitted changes)" if dirty and from_repo else ""
            )
    return env


@contextlib.contextmanager
def open_fd(path: Path, flags: int = os.O_RDONLY) -> Iterator[int]:
    """``os.open`` as a context manager."""
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


# --- Other processes: CPU of a process tree, long-running children, ports ------------------------


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from ``/proc``."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid`` and every live descendant, all threads.

    From ``/proc/PID/stat`` (``utime``, ``stime``; a thread group's figures include its threads,
    exited ones too), so it works for any program, HAProxy included. Resolution: one clock
    tick (usually 10 ms) per process. A descendant that exited is no longer counted.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
    user = system = 0.0
    todo: list[int] = [pid]
    seen: set[int] = set()
    while todo and len(seen) < 100_000:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = _stat_fields(current)
        except OSError:
            if current == pid:
                raise
            continue
        # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        # cmajflt utime stime: utime and stime are the 12th and 13th.
        user += int(fields[11]) / _CLK_TCK
        system += int(fields[12]) / _CLK_TCK
        todo.extend(children.get(current, ()))
    return user, system


def process_group(pgid: int) -> list[int]:
    """The live processes (not zombies) whose process group is ``pgid``, from ``/proc``: what
    is left of a server started with ``start_new_session=True`` once it was told to stop."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(int(entry))
            # After the name: state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] != b"Z":
                members.append(int(entry))
    return members


class Service:
    """A child that runs in the background while the caller works: a relay, say.

    ``with Service(argv) as svc:`` starts it; ``svc.line(timeout)`` returns the next JSON
    object it printed on a line of its stdout (other lines are ignored); leaving the block stops
    it (SIGTERM, then SIGKILL after ``stop_timeout`` seconds). Every wait has a time limit. Its
    stderr goes to ``stderr`` (a file) if given, else to ours.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stderr: Path | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.argv = list(argv)
        self._env = env
        self._stderr_path = stderr
        self._stop_timeout = stop_timeout
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._eof = False

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the service is not running")
        return self._proc.pid

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            err = None
            if self._stderr_path is not None:
                err = stack.enter_context(self._stderr_path.open("w"))
            self._proc = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                stderr=err,
                env=self._env,
                text=True,
            )
        threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    self._lines.put(obj)
        self._lines.put(None)  # end of its output

    def line(self, timeout: float) -> dict[str, Any]:
        """The next JSON object from its stdout; ``ChildFailed`` if none comes in time or the
        child ends its output first."""
        if not self._eof:
            try:
                obj = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise ChildFailed(
                    f"no report within {timeout:.0f} s from {' '.join(self.argv)}"
                ) from None
            if obj is not None:
                return obj
            self._eof = True
        code = self.poll()
        raise ChildFailed(f"ended (exit status {code}) without a report: {' '.join(self.argv)}")

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> int | None:
        """Terminate it (kill it if it lingers); its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
        try:
            return proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=self._stop_timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, for a program that cannot be told to pick one
    (another process may take it before that program binds it: retry on failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether some process listens on ``host:port`` (IPv4), read from ``/proc/net/tcp``, so
    that finding out opens no connection the program would have to serve."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(host), 'big')):08X}:{port:04X}"
    wildcard = f"00000000:{port:04X}"
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A" and fields[1] in (want, wildcard):
                return True
    return False


# === The toolkit every script uses: formatting, ratios, counters, availability, options, results ==


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


def fmt(x: float | None, digits: int = 2, missing: str = "-") -> str:
    """A figure with ``digits`` decimals; ``missing`` for NaN or None."""
    if x is None or math.isnan(x):
        return missing
    return f"{x:.{digits}f}"


def ratio_text(a: float, b: float) -> str:
    """``a / b`` as "1.23x", or "-" when either is NaN or ``b`` is 0."""
    return "-" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def json_number(x: float) -> float | None:
    """A figure for strict JSON: ``None`` for NaN or infinity."""
    return x if math.isfinite(x) else None


def run_gib(r: Mapping[str, Any]) -> float:
    """GiB moved by a run: its ``sent`` bytes (a sender, a relay) or its ``body`` (HTTP)."""
    return float(r["sent"] if "sent" in r else r["body"]) / GIB


def run_gbps(r: Mapping[str, Any]) -> float:
    """A run's throughput, in 10^9 bytes per second."""
    return run_gib(r) * GIB / float(r["wall_s"]) / 1e9


def cpu_per_gib(r: Mapping[str, Any], who: str = "") -> float:
    """User + system CPU seconds per GiB of a run; ``who`` picks whose (``relay``, ``server``:
    the keys ``relay_user_s``...; default: the run's own ``user_s`` and ``system_s``)."""
    prefix = f"{who}_" if who else ""
    return (float(r[f"{prefix}user_s"]) + float(r[f"{prefix}system_s"])) / run_gib(r)


def per_gib(r: Mapping[str, Any], key: str) -> float:
    """``r[key]`` (seconds, calls) per GiB the run moved."""
    return float(r[key]) / run_gib(r)


Run = Mapping[str, Any]


def by_round(ok: Sequence[Run], ref: Sequence[Run], fn: Callable[[Run], float]) -> float:
    """Median over rounds of ``fn(run) / fn(the reference's run in the same round)``: the
    machine drifts between rounds far more than within one. A reference figure of 0 (CPU under
    one clock tick) gives no ratio."""
    refs = {int(r["round"]): r for r in ref}
    pairs = [(fn(r), fn(refs[int(r["round"])])) for r in ok if int(r["round"]) in refs]
    return median([a / b for a, b in pairs if b > 0])


def spread(values: Sequence[float], digits: int = 2) -> str:
    """ "min-max" of a figure over the runs."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else "-"


def stats_delta(before: Any, after: Any) -> dict[str, Any]:
    """What ``zcio.stats()`` counted between two snapshots, as JSON: bytes, calls, transfers
    and offloaded calls per method, and fallbacks."""
    delta = after - before
    return {
        "methods": {
            name: {
                "transfers": m.transfers,
                "calls": m.calls,
                "bytes": m.bytes,
                "offloaded": m.offloaded,
            }
            for name, m in delta.methods.items()
        },
        "fallbacks": dict(delta.fallbacks),
    }


def stats_json_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`stats_delta` of two snapshots already in JSON (another process's counters):
    the methods that moved anything."""
    methods: dict[str, Any] = {}
    for name, m in after.get("methods", {}).items():
        b = before.get("methods", {}).get(name, {})
        delta = {k: int(m[k]) - int(b.get(k, 0)) for k in ("transfers", "calls", "bytes")}
        if any(delta.values()):
            methods[name] = delta
    return {"methods": methods}


def zcio_of(r: Run) -> Mapping[str, Any]:
    """A run's zcio counters (``{}`` for a run without zcio)."""
    stats = r.get("zcio")
    return stats if isinstance(stats, Mapping) else {}


def calls_per_gib(
    results: Sequence[Run], method: str = "", stats: Callable[[Run], Mapping[str, Any]] = zcio_of
) -> str:
    """Transfer system calls per GiB, median over runs: zcio's from its counters (one
    ``method``'s, or all), else the count a baseline kept of its own loop (``calls``)."""
    values = []
    for r in results:
        methods = stats(r).get("methods", {})
        if method:
            calls = methods[method]["calls"] if method in methods else None
        else:
            calls = sum(int(m["calls"]) for m in methods.values()) if methods else r.get("calls")
        if calls is not None:
            values.append(float(calls) / run_gib(r))
    return fmt(median(values), 0) if values else "-"


def methods_seen(
    results: Sequence[Run],
    expected: str,
    *,
    stats: Callable[[Run], Mapping[str, Any]] = zcio_of,
    whole: Callable[[int, int], bool] = int.__eq__,
) -> str:
    """Which method(s) ``zcio.stats()`` saw moving the bytes, "+"-joined; flags the runs where
    ``expected`` did not move the whole transfer (``whole(its bytes, sent)`` false), and any
    offloaded calls and fallbacks."""
    seen: set[str] = set()
    partial = offloaded = fallbacks = 0
    for r in results:
        counters = stats(r)
        methods = counters.get("methods", {})
        seen.update(name for name, m in methods.items() if int(m["bytes"]))
        if expected and not whole(int(methods.get(expected, {}).get("bytes", 0)), int(r["sent"])):
            partial += 1
        offloaded += sum(int(m.get("offloaded", 0)) for m in methods.values())
        fallbacks += sum(int(n) for n in counters.get("fallbacks", {}).values())
    text = "+".join(sorted(seen)) or "-"
    if partial:
        text += f" (NOT all {expected} in {partial} runs)"
    if offloaded:
        text += f" ({offloaded} calls offloaded)"
    if fallbacks:
        text += f" ({fallbacks} fallbacks)"
    return text


# --- Availability ---------------------------------------------------------------------------


def missing(modules: Sequence[str] = (), programs: Sequence[str] = ()) -> list[str]:
    """The Python modules and programs (on ``PATH``) of these that are not installed."""
    absent = [name for name in modules if name and importlib.util.find_spec(name) is None]
    return absent + [name for name in programs if name and shutil.which(name) is None]


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of Python distributions, "not installed" for the absent ones."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def program_version(argv: Sequence[str], pattern: str) -> str:
    """A program's version from its ``--version``-style output (stdout or stderr): the first
    group of ``pattern``; "not installed" when it cannot run, "unknown" when nothing matched."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


# --- Options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """A script's defaults: full and ``--quick`` (``--smoke`` is the same for every script)."""

    size_mib: tuple[int, int] = (1024, 64)
    runs: tuple[int, int] = (7, 3)
    #: Scripts with a small-file figure: wrk runs and seconds, full and quick.
    wrk_runs: tuple[int, int] | None = None
    wrk_seconds: tuple[int, int] | None = None
    #: Scripts that wait for a quiet machine before each run: the default wait.
    quiet_timeout: float | None = None


#: ``--smoke``: the smallest real run; it checks that everything works, measures nothing.
SMOKE = {"size_mib": 8, "runs": 1, "wrk_runs": 1, "wrk_seconds": 1, "quiet_timeout": 0.0}


def bench_parser(description: str, sizes: Sizes) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--size-mib``, ``--runs``, ``--quick``, ``--smoke``,
    ``--json``; ``--wrk-runs``/``--wrk-seconds`` and ``--quiet-timeout`` where ``sizes`` says.
    Read them with :func:`parse_args`, which fills in the defaults of the mode."""
    parser = argparse.ArgumentParser(description=description)
    size, runs = sizes.size_mib, sizes.runs
    parser.add_argument("--size-mib", type=int, help=f"file size (default {size[0]})")
    parser.add_argument("--runs", type=int, help=f"runs per path (default {runs[0]})")
    if sizes.wrk_runs and sizes.wrk_seconds:
        parser.add_argument(
            "--wrk-runs", type=int, help=f"small-file runs (default {sizes.wrk_runs[0]})"
        )
        parser.add_argument(
            "--wrk-seconds", type=int, help=f"each wrk run (default {sizes.wrk_seconds[0]})"
        )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help=f"a quick run: {size[1]} MiB, {runs[1]} runs"
    )
    mode.add_argument(
        "--smoke", action="store_true", help="the smallest run: 8 MiB, 1 run, no waiting"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    if sizes.quiet_timeout is not None:
        parser.add_argument(
            "--quiet-timeout",
            type=float,
            help="before each run, wait at most this many seconds for a quiet machine "
            f"(default {sizes.quiet_timeout:.0f}; 0: do not wait)",
        )
    parser.set_defaults(sizes=sizes)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, then fill every sizing option left out from the mode's defaults (full,
    ``--quick`` or ``--smoke``); counts must be at least 1."""
    args = parser.parse_args(argv)
    sizes: Sizes = args.sizes
    pick = 1 if args.quick else 0
    for name in ("size_mib", "runs", "wrk_runs", "wrk_seconds", "quiet_timeout"):
        default: Any = getattr(sizes, name)
        if default is None or getattr(args, name, None) is not None:
            continue
        chosen = default if name == "quiet_timeout" else default[pick]
        setattr(args, name, SMOKE[name] if args.smoke else chosen)
    counts = [n for n in ("size_mib", "runs", "wrk_runs", "wrk_seconds") if hasattr(args, n)]
    if any(getattr(args, n) < 1 for n in counts):
        parser.error(" and ".join(f"--{n.replace('_', '-')}" for n in counts) + " must be >= 1")
    return args


def add_servers(parser: argparse.ArgumentParser) -> None:
    """The HTTP benchmarks' ``--servers`` and ``--figures``; :func:`chosen_servers` checks."""
    parser.add_argument("--servers", default="", help="comma-separated server keys (default: all)")
    parser.add_argument("--figures", choices=["1", "2", "both"], default="both")


def chosen_servers(
    parser: argparse.ArgumentParser, args: argparse.Namespace, known: Sequence[str]
) -> list[str]:
    """The keys ``--servers`` named (all known ones), or a usage error."""
    chosen = [k for k in args.servers.split(",") if k]
    if unknown := [k for k in chosen if k not in known]:
        parser.error(f"unknown servers {unknown}; known: {sorted(known)}")
    return chosen


# --- Results: the one schema every script writes and ``zcio bench`` reads ----------------------

#: The version of the results schema (``schema`` in every script's JSON).
SCHEMA = 1


def result_row(
    section: str,
    key: str,
    path: str,
    *,
    role: str = "",
    target_met: bool | None = None,
    notes: Sequence[str] = (),
    **figures: float | None,
) -> dict[str, Any]:
    """One row of ``zcio bench``'s table: a measured path of one section.

    ``figures``: ``gbps``, ``cpu_s_per_gib``, ``rps_4k``, ``rps_64k`` and the medians of per-round
    ratios ``x_anchor``, ``x_anchor_cpu``, ``x_baseline``, ``x_baseline_cpu`` (any left out, NaN
    and None are all "no figure"). ``role``: "anchor", "baseline" or "". ``target_met``: the
    verdict on the script's target, None where no target applies. ``notes``: more to say."""
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise TypeError(f"unknown figures {sorted(unknown)}")
    return {
        "section": section,
        "key": key,
        "path": path,
        "role": role,
        **{name: _figure(figures.get(name)) for name in FIGURES},
        "target_met": target_met,
        "notes": list(notes),
    }


#: The figures a row may have, in the table's order.
FIGURES = (
    "gbps",
    "cpu_s_per_gib",
    "rps_4k",
    "rps_64k",
    "x_anchor",
    "x_anchor_cpu",
    "x_baseline",
    "x_baseline_cpu",
)


def _figure(x: Any) -> float | None:
    return json_number(float(x)) if isinstance(x, int | float) else None


def result_section(
    key: str,
    what: str,
    *,
    baseline: str,
    sizing: str,
    anchor: str = "-",
    anchor_program: str = "",
    optional: Sequence[tuple[str, str, str]] = (),
    needs: str = "",
) -> dict[str, Any]:
    """A section of the table: what it measures, how much (``sizing``), and what its rows are
    compared with. The anchor is ``anchor`` followed by the version the script's environment
    names for ``anchor_program`` ("not installed" when it does). ``optional``: (key, path,
    program) of rows that may be missing (the table shows "not installed (program)" or "no
    result" in their place); ``needs``: a program without which the whole section is missing
    (one "not installed" row)."""
    return {
        "key": key,
        "what": what,
        "anchor": anchor,
        "anchor_program": anchor_program,
        "baseline": baseline,
        "sizing": sizing,
        "optional": [{"key": k, "path": p, "program": prog} for k, p, prog in optional],
        "needs": needs,
    }


def sizing_text(size_bytes: int, runs: int) -> str:
    """How much a section measured: "64 MiB x 3 runs"."""
    return f"{size_bytes >> 20} MiB x {runs} runs"


def wrk_sizing_text(seconds: int, runs: int) -> str:
    """How much a small-file section measured: "wrk 5 s per URL x 3 runs"."""
    return f"wrk {seconds} s per URL x {runs} runs"


def finish(
    failures: Sequence[str],
    json_path: Path | None,
    results: Mapping[str, Any],
    *,
    script: str = "",
    sections: Sequence[Mapping[str, Any]] = (),
    rows: Sequence[Mapping[str, Any]] = (),
    footnotes: Sequence[str] = (),
) -> int:
    """End a benchmark: list the failed runs, write the results as JSON if asked, and return
    the exit status: 1 when a run broke, never because a target was missed.

    The JSON is one schema for every script: ``schema``, ``script``, ``environment`` (from
    ``results``), ``sections``, ``rows`` (:func:`result_section`, :func:`result_row`),
    ``footnotes`` (lines under the table) and ``failures``; then the script's own ``results``
    (its summaries and every run), for people and archives: ``zcio bench`` reads only the
    common part."""
    if failures:
        print()
        print("FAILED runs (left out of the medians):")
        for failure in failures:
            print(f"- {failure}")
    if json_path:
        head = {
            "schema": SCHEMA,
            "script": script or Path(sys.argv[0]).stem,
            "environment": results.get("environment", {}),
            "sections": list(sections),
            "rows": list(rows),
            "footnotes": list(footnotes),
            "failures": list(failures),
        }
        json_path.write_text(json.dumps({**results, **head}, indent=1))
        print(f"Results written to {json_path}.")
    return 1 if failures else 0


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The benchmarks' splice receiver.")
    sub = parser.add_subparsers(dest="command", required=True)
    receive = sub.add_parser("receive", help="serve 127.0.0.1:0, report each connection as JSON")
    receive.add_argument("--idle-timeout", type=float, default=600.0)
    receive.add_argument(
        "--rcvlowat", type=int, default=0, help="SO_RCVLOWAT for accepted sockets (0: leave it)"
    )
    receive.add_argument(
        "--count-calls", action="store_true", help="report splice calls and wake-ups too"
    )
    args = parser.parse_args(argv)
    if args.command == "receive":
        _serve(args.idle_timeout, args.rcvlowat, args.count_calls)


if __name__ == "__main__":
    _main()
