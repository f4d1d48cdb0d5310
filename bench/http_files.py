"""Benchmark Starlette file responses over HTTP: stock Starlette and ``zcio_starlette`` on real
servers, against nginx with ``sendfile on``.

The app (``bench/http_app.py``) serves a folder of files with ``FileResponse`` (stock
``starlette.responses.FileResponse`` or ``zcio_starlette.FileResponse``, same routes), and the
small files' bytes from memory with an ordinary ``Response``. Servers, each a fresh process
(tree) per run, measured from ``/proc`` (user + system of the whole process tree):

- stock Starlette on uvicorn, ``--http httptools``, ``--loop asyncio`` and ``--loop uvloop``;
- ``zcio_starlette`` on uvicorn with ``--http zcio_uvicorn:HttpToolsProtocol`` and
  ``--http zcio_uvicorn:H11Protocol``, each on ``--loop asyncio`` and ``--loop uvloop``;
- stock Starlette on granian (``pathsend``), ``zcio_starlette`` on anycorn ``-k trio``
  (``zerocopysend``), and nginx with ``sendfile on``, when installed (else a "not installed"
  row).

Figure 1: one large cached file over one connection; a splice client (socket -> pipe ->
``/dev/null``) times the response from the request to its last byte. GB/s and server CPU
seconds per GiB, with ratios to nginx and to stock Starlette on uvicorn, round by round.

Figure 2: small files (4 KiB, 64 KiB) at 32 concurrent connections with ``wrk -t2 -c32``:
requests/s of the file, and of the in-memory ``Response`` of the same bytes served by the same
server process in the same run.

Targets are printed beside the results, never asserted.

    python bench/http_files.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                         [--servers KEY,...] [--figures 1|2|both] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    Meter,
    Run,
    Sizes,
    add_servers,
    bench_parser,
    by_round,
    cached_pages,
    chosen_servers,
    cpu_per_gib,
    ensure_file,
    environment,
    finish,
    fmt,
    free_port,
    listening,
    markdown_table,
    median,
    missing,
    open_fd,
    package_versions,
    parse_args,
    per_gib,
    process_group,
    program_version,
    progress,
    result_row,
    result_section,
    run_child,
    run_gbps,
    run_gib,
    sizing_text,
    spread,
    stats_json_delta,
    tree_cpu,
    wait_quiet,
    warm,
    wrk_sizing_text,
)

HOST = "127.0.0.1"
#: Where the servers' files live: ``ROOT/f/`` holds the files (nginx serves ``ROOT``, so the
#: URL paths are the same for every server).
ROOT = BENCH_DIR / "http-root"
FILES = ROOT / "f"
#: A folder holding only a link to ``http_app.py``: the servers import the app from there, so
#: that nothing else in ``bench/`` lands on their import path.
APP_DIR = BENCH_DIR / "http-app"
APP_MODULE = Path(__file__).resolve().with_name("http_app.py")
#: The aiohttp server of ``bench/aiohttp_files.py`` (kind "aiohttp"), run as a script.
AIOHTTP_APP = Path(__file__).resolve().with_name("aiohttp_app.py")
#: Every app module a variant may import (``Variant.app``), linked into ``APP_DIR``.
APP_MODULES = (APP_MODULE, APP_MODULE.with_name("http_litestar_app.py"))
#: What the printed texts call the integration measured and the stock row (bench/http_litestar.py
#: sets its own).
SUBJECT = "zcio_starlette"
STOCK_TEXT = "Starlette's FileResponse on uvicorn, httptools, asyncio loop"
IN_MEMORY = "`Response`"
#: The small files: URL name and size.
SMALL = (("4k.bin", 4 << 10), ("64k.bin", 64 << 10))
LARGE = "large.bin"
#: The client's pipe for the splice to /dev/null.
PIPE_SIZE = MIB
#: The client gives up when no byte arrives for this long.
RECV_TIMEOUT = 30
#: How long a server may take to listen, and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: wrk's command line, as in the issue: 2 threads, 32 connections.
WRK_THREADS = 2
WRK_CONNECTIONS = 32
#: Before each server's small-file run, wrk warms it up for this long (threads, caches).
WRK_WARMUP_S = 1
#: Before each run, wait (at most this long) until the machine is at most 15% busy.
QUIET_TIMEOUT = 15.0
#: Targets, printed and never asserted.
TARGET_X_NGINX_GBPS = 0.9
TARGET_X_NGINX_CPU = 2.0
TARGET_X_STOCK_GBPS = 3.0
TARGET_SMALL = 0.5

NGINX_CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path {dir}/nginx-tmp/body;
  proxy_temp_path {dir}/nginx-tmp/proxy;
  fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
  uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
  scgi_temp_path {dir}/nginx-tmp/scgi;
  server {{ listen {host}:{port}; root {root}; }}
}}
"""

Result = dict[str, Any]


# === A small HTTP/1.1 client =====================================================================


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: dict[str, str]
    rest: bytes  # body bytes that came with the head


def _request(path: str, port: int) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: zcio-bench\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def _read_head(sock: socket.socket) -> Head:
    """Read a response's status line and headers (and whatever body bytes came with them)."""
    buf = b""
    for _ in range(64):  # 64 reads of up to 4 KiB: a longer head is an error
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {len(buf)} bytes")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            continue
        lines = buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Head(int(parts[1]), headers, buf[end + 4 :])
    raise ValueError("the response head is longer than 256 KiB")


def http_get(port: int, path: str, timeout: float = 30.0, limit: int = 16 * MIB) -> Head:
    """GET ``path`` and read the whole body (Content-Length framing) into ``Head.rest``."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(_request(path, port))
        head = _read_head(sock)
        length = int(head.headers.get("content-length", "-1"))
        if not 0 <= length <= limit:
            raise ValueError(f"GET {path}: Content-Length {length} (at most {limit} expected)")
        body = head.rest
        for _ in range(length + 1):  # recv returns at least one byte unless the peer closed
            if len(body) >= length:
                break
            chunk = sock.recv(min(length - len(body), MIB))
            if not chunk:
                break
            body += chunk
        return Head(head.status, head.headers, body)


# === Figure 1's client: a child per run, which also does the measuring ===========================


def large_get(port: int, path: str, size: int, server_pid: int) -> Result:
    """GET ``path``, splice its body into ``/dev/null``, and measure the server's process tree
    (``/proc``), this process and the machine from just before the request to the last byte."""
    null_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a smaller pipe only costs a few more calls
            fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        with socket.create_connection((HOST, port), timeout=RECV_TIMEOUT) as sock:
            sock.settimeout(None)  # blocking, for splice; SO_RCVTIMEO bounds every wait
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", RECV_TIMEOUT, 0)
            )
            request = _request(path, port)
            time.sleep(0.05)  # let the server accept, so that is not counted
            user0, system0 = tree_cpu(server_pid)
            meter = Meter()
            sock.sendall(request)
            head = _read_head(sock)
            length = int(head.headers.get("content-length", "-1"))
            got = len(head.rest)
            calls = 0
            if head.status == 200 and length > 0:
                for _ in range(length):  # every splice moves at least a byte, or ends the loop
                    if got >= length:
                        break
                    n = os.splice(sock.fileno(), pipe_w, min(PIPE_SIZE, length - got))
                    if n == 0:
                        break
                    calls += 1
                    got += n
                    pending = n
                    for _ in range(n):  # empty the pipe before the next read
                        if pending == 0:
                            break
                        pending -= os.splice(pipe_r, null_fd, pending)
            sample = meter.stop()
            user1, system1 = tree_cpu(server_pid)
    finally:
        for fd in (null_fd, pipe_r, pipe_w):
            os.close(fd)
    return {
        "status": head.status,
        "content_length": length,
        "body": got,
        "expected": size,
        "wall_s": sample.wall,
        "server_user_s": user1 - user0,
        "server_system_s": system1 - system0,
        "client_cpu_s": sample.cpu,
        "machine_s": sample.machine,
        "client_splices": calls,
        "server_header": head.headers.get("server", ""),
    }


# === The servers ================================================================================


@dataclass(frozen=True, slots=True)
class Variant:
    """One server to measure."""

    key: str
    label: str
    kind: str  # uvicorn, granian, anycorn, nginx, aiohttp
    flavour: str = ""  # the app's FileResponse: stock or zcio ("" for nginx)
    loop: str = ""  # uvicorn's --loop; aiohttp_app.py's --loop
    http: str = ""  # uvicorn's --http
    worker: str = ""  # anycorn's -k
    needs: tuple[str, ...] = ()  # Python modules it cannot run without
    command: str = ""  # a program it cannot run without
    app: str = "http_app:app"  # the ASGI app the server imports (from APP_DIR)

    @property
    def zcio(self) -> bool:
        """The app's files go out by zero-copy messages where the server offers them (zcio's
        integration, or an app that sends them by itself: servestatic)."""
        return self.flavour in ("zcio", "servestatic")

    @property
    def has_app(self) -> bool:
        return self.kind != "nginx"

    @property
    def zcio_sends(self) -> bool:
        """zcio itself moves the bytes (zcio_uvicorn): ``zcio.stats()`` in the server counts
        them. On anycorn the server's own code serves ``zerocopysend``."""
        return self.zcio and self.kind == "uvicorn"


def _venv_script(name: str) -> str:
    """A console script installed next to this Python (the venv's), else on PATH."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else name


def _granian_loop() -> str:
    # granian's --loop auto: rloop if installed, else uvloop, else asyncio.
    for name in ("rloop", "uvloop"):
        if importlib.util.find_spec(name) is not None:
            return name
    return "asyncio"


STOCK = Variant(
    "stock_uvicorn_asyncio",
    "Starlette `FileResponse`, uvicorn `--http httptools --loop asyncio`",
    "uvicorn",
    "stock",
    loop="asyncio",
    http="httptools",
    needs=("uvicorn", "httptools"),
)
NGINX = Variant("nginx", "nginx, `sendfile on`", "nginx", command="nginx")
VARIANTS: tuple[Variant, ...] = (
    STOCK,
    Variant(
        "stock_uvicorn_uvloop",
        "Starlette `FileResponse`, uvicorn `--http httptools --loop uvloop`",
        "uvicorn",
        "stock",
        loop="uvloop",
        http="httptools",
        needs=("uvicorn", "httptools", "uvloop"),
    ),
    *(
        Variant(
            f"zcio_{proto.lower()}_{loop}",
            f"zcio_starlette `FileResponse`, uvicorn `--http zcio_uvicorn:{proto}Protocol "
            f"--loop {loop}`",
            "uvicorn",
            "zcio",
            loop=loop,
            http=f"zcio_uvicorn:{proto}Protocol",
            needs=("uvicorn", "zcio_uvicorn", "zcio_starlette", *needs),
        )
        for proto, extra in (("HttpTools", ("httptools",)), ("H11", ("h11",)))
        for loop, needs in (("asyncio", extra), ("uvloop", (*extra, "uvloop")))
    ),
    Variant(
        "stock_granian",
        f"Starlette `FileResponse`, granian `--interface asgi --workers 1` (pathsend; "
        f"loop auto = {_granian_loop()})",
        "granian",
        "stock",
        needs=("granian",),
        command="granian",
    ),
    Variant(
        "zcio_anycorn_trio",
        "zcio_starlette `FileResponse`, anycorn `-k trio` (zerocopysend)",
        "anycorn",
        "zcio",
        worker="trio",
        needs=("anycorn", "trio", "zcio_starlette"),
        command="anycorn",
    ),
    NGINX,
)


def _with_version(v: Variant, env: dict[str, str]) -> Variant:
    """The anchors' labels with their versions: "nginx 1.22.1, ..."."""
    version = env.get(v.kind, "")
    if v.kind not in ("nginx", "granian", "anycorn") or version in ("", "not installed"):
        return v
    return replace(v, label=v.label.replace(v.kind, f"{v.kind} {version}", 1))


def _available(v: Variant) -> bool:
    if missing(v.needs):
        return False
    if v.kind == "nginx":
        return not missing(programs=["nginx"])
    return not v.command or not missing(programs=[_venv_script(v.command)])


def _missing(v: Variant) -> str:
    absent = missing(v.needs)
    if v.command and not absent:
        absent.append(v.command)
    return ", ".join(absent) or "?"


#: The Python distributions whose versions the report names.
VERSIONS_OF: tuple[str, ...] = ("starlette", "uvicorn", "httptools", "h11", "granian", "anycorn")


def versions() -> dict[str, str]:
    """The versions the report names: Python packages, nginx and wrk."""
    out = package_versions(VERSIONS_OF)
    nginx = shutil.which("nginx")
    out["nginx"] = program_version([nginx, "-v"], r"nginx/(\S+)") if nginx else "not installed"
    wrk = shutil.which("wrk")
    out["wrk"] = program_version([wrk, "-v"], r"wrk (\S+)") if wrk else "not installed"
    return out


def prepare_files(large: Path) -> None:
    """The servers' folder: the small files (random bytes, written once) and a link to the large
    test file; and the app folder with its link to ``http_app.py``."""
    FILES.mkdir(parents=True, exist_ok=True)
    for name, size in SMALL:
        ensure_file(FILES / name, size)
    links = [(FILES / LARGE, large), *((APP_DIR / m.name, m) for m in APP_MODULES)]
    for link, target in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        tmp = link.with_name(link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)  # atomically: a server never sees a missing file
    for d in (ROOT, FILES):
        d.chmod(0o755)  # nginx's worker may run as another user


class Server:
    """A server under test, started in its own process group: ``with Server(v) as srv:``.

    Waits until it listens on its port (read from ``/proc/net/tcp``, no connection). Leaving the
    block sends SIGTERM to the group, then SIGKILL after ``STOP_TIMEOUT`` seconds, and checks
    that no process of the group is left (any that is, is killed by its PID).
    """

    def __init__(self, v: Variant) -> None:
        self.v = v
        self.port = 0
        self.log = BENCH_DIR / f"http-{v.key}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def _argv(self, port: int) -> list[str]:
        v = self.v
        if v.kind == "uvicorn":
            return [
                sys.executable,
                "-m",
                "uvicorn",
                v.app,
                "--host",
                HOST,
                "--port",
                str(port),
                "--loop",
                v.loop,
                "--http",
                v.http,
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "2",
            ]
        if v.kind == "granian":
            return [
                _venv_script("granian"),
                "--interface",
                "asgi",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                v.app,
            ]
        if v.kind == "anycorn":
            return [
                _venv_script("anycorn"),
                "-b",
                f"{HOST}:{port}",
                "-k",
                v.worker,
                "--graceful-timeout",
                "2",
                v.app,
            ]
        if v.kind == "aiohttp":
            return [
                *(sys.executable, str(AIOHTTP_APP), "--host", HOST, "--port", str(port)),
                *("--loop", v.loop),
            ]
        if v.kind == "nginx":
            config = BENCH_DIR / "http-nginx.conf"
            (BENCH_DIR / "nginx-tmp").mkdir(parents=True, exist_ok=True)
            config.write_text(NGINX_CONFIG.format(dir=BENCH_DIR, host=HOST, port=port, root=ROOT))
            nginx = shutil.which("nginx") or "nginx"
            return [nginx, "-e", str(BENCH_DIR / "nginx.err"), "-c", str(config)]
        raise ValueError(f"unknown server kind {v.kind!r}")

    def __enter__(self) -> Server:
        env = {k: val for k, val in os.environ.items() if k != "ZCIO_DISABLE"}
        env.update(
            PYTHONPATH=str(APP_DIR),
            ZCIO_BENCH_FLAVOUR=self.v.flavour or "stock",
            ZCIO_BENCH_FILES=str(FILES),
        )
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port(HOST)
            with self.log.open("wb") as log:
                self._proc = subprocess.Popen(
                    self._argv(port),
                    cwd=APP_DIR,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, to stop it whole
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._proc.poll() is None:
                if listening(port, HOST):
                    self.port = port
                    return self
                time.sleep(0.02)
            self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise ChildFailed(f"{self.v.key} did not start listening; its log ({self.log}):\n{tail}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        pgid = proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; wait (bounded) for the rest of its group, then kill by PID.
            for _ in range(int(STOP_TIMEOUT / 0.05)):
                if not process_group(pgid):
                    break
                time.sleep(0.05)
            for pid in process_group(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            break
        else:  # SIGKILL did not end it within STOP_TIMEOUT: nothing more to do
            progress(f"  warning: {self.v.key} (pid {pgid}) did not exit")
        return proc.returncode


def _zcio_stats(srv: Server) -> Result:
    """What ``zcio.stats()`` says inside the server (zcio flavour), over its own connection."""
    if not srv.v.zcio:
        return {}
    head = http_get(srv.port, "/zcio-stats")
    if head.status != 200:
        return {}
    out: Result = json.loads(head.rest)
    return out


def _warm_up(srv: Server) -> None:
    """The first requests of a fresh server: imports, thread pools, caches. Not measured."""
    paths = ["/f/64k.bin", "/f/4k.bin"]
    if srv.v.has_app:
        paths += ["/m/4k.bin", "/m/64k.bin"]
    for path in paths:
        head = http_get(srv.port, path)
        want = dict(SMALL)[path.rsplit("/", 1)[1]]
        if head.status != 200 or len(head.rest) != want:
            raise ChildFailed(f"warm-up GET {path}: status {head.status}, {len(head.rest)} bytes")


# === Figure 1: the large file =====================================================================


class Bench:
    """Runs of both figures; keeps the failures and how long it waited for a quiet machine."""

    def __init__(
        self, large: Path, size: int, timeout: float, quiet_timeout: float = QUIET_TIMEOUT
    ) -> None:
        self.large = large
        self.size = size
        self.timeout = timeout
        self.quiet_timeout = quiet_timeout
        self.failures: list[str] = []
        self.waited = 0.0
        self.rewarmed = 0
        self.script = str(Path(__file__).resolve())

    def _quiet(self) -> float:
        waited, share = wait_quiet(timeout=self.quiet_timeout)
        self.waited += waited
        return share

    def _cached(self) -> None:
        """Read the large file back into the page cache if pages went missing (DAMON reclaim
        pages out file pages nobody touched for a while on the development VM)."""
        with open_fd(self.large) as fd:
            state = cached_pages(fd)
        if state is not None and state[0] < state[1]:
            warm(self.large)
            self.rewarmed += 1

    def large_run(self, v: Variant, round_no: int, label: str) -> Result | None:
        try:
            self._cached()
            busy = self._quiet()
            with Server(v) as srv:
                _warm_up(srv)
                before = _zcio_stats(srv)
                argv = [
                    sys.executable,
                    self.script,
                    "--worker",
                    "get",
                    "--port",
                    str(srv.port),
                    "--path",
                    f"/f/{LARGE}",
                    "--size",
                    str(self.size),
                    "--server-pid",
                    str(srv.pid),
                ]
                result = run_child(argv, timeout=self.timeout)
                after = _zcio_stats(srv)
            result["zcio"] = stats_json_delta(before, after) if v.zcio else {}
            result["round"] = round_no
            result["busy_before"] = busy
            problem = self._check_large(result, v)
        except (ChildFailed, OSError, KeyError, ValueError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self.failures.append(f"{label} {v.key}: {problem}")
            progress(f"  {label} {v.label}: FAILED: {problem}")
            return None
        return result

    def _check_large(self, r: Result, v: Variant) -> str:
        if r["status"] != 200:
            return f"status {r['status']}"
        if r["content_length"] != self.size:
            return f"Content-Length {r['content_length']}, expected {self.size}"
        if r["body"] != self.size:
            return f"the client got {r['body']} body bytes, expected {self.size}"
        return ""

    # === Figure 2: small files with wrk ==========================================================

    def small_run(self, v: Variant, round_no: int, seconds: int, label: str) -> Result | None:
        targets = [f"/f/{name}" for name, _ in SMALL]
        if v.has_app:
            targets += [f"/m/{name}" for name, _ in SMALL]
        # Alternate which goes first, file or memory, round by round.
        targets.sort(key=lambda p: (p.startswith("/m/") == (round_no % 2 == 1), p))
        try:
            busy = self._quiet()
            with Server(v) as srv:
                _warm_up(srv)
                wrk(srv.port, "/f/4k.bin", WRK_WARMUP_S, srv.pid)
                out: Result = {"round": round_no, "busy_before": busy, "paths": {}}
                for path in targets:
                    before = _zcio_stats(srv)
                    r = wrk(srv.port, path, seconds, srv.pid)
                    r["size"] = dict(SMALL)[path.rsplit("/", 1)[1]]
                    if v.zcio:
                        r["zcio"] = stats_json_delta(before, _zcio_stats(srv))
                    problem = _check_wrk(r, dict(SMALL)[path.rsplit("/", 1)[1]])
                    if problem:
                        raise ChildFailed(f"{path}: {problem}")
                    out["paths"][path] = r
        except (ChildFailed, OSError, KeyError, ValueError, TypeError) as exc:
            self.failures.append(f"{label} {v.key}: {type(exc).__name__}: {exc}")
            progress(f"  {label} {v.label}: FAILED: {exc}")
            return None
        return out


_WRK_PATTERNS = {
    "requests": r"(\d+) requests in ([\d.]+)(us|ms|s|m)",
    "read": r"requests in [\d.]+\w+, ([\d.]+)([KMGT]?B) read",
    "rps": r"Requests/sec:\s+([\d.]+)",
    "non2xx": r"Non-2xx or 3xx responses: (\d+)",
    "errors": r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    "p50": r"\n\s+50%\s+([\d.]+)(us|ms|s)",
    "p99": r"\n\s+99%\s+([\d.]+)(us|ms|s)",
}
_TIME_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_SIZE_UNIT = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def wrk(port: int, path: str, seconds: int, server_pid: int) -> Result:
    """``wrk -t2 -c32 -dNs --latency`` against one URL; the server's process-tree CPU, wrk's own
    CPU and the machine's over the same time."""
    exe = shutil.which("wrk")
    if exe is None:
        raise ChildFailed("wrk is not installed")
    argv = [
        exe,
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        f"http://{HOST}:{port}{path}",
    ]
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    user0, system0 = tree_cpu(server_pid)
    meter = Meter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildFailed(f"wrk timed out: {' '.join(argv)}") from exc
    sample = meter.stop()
    user1, system1 = tree_cpu(server_pid)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise ChildFailed(f"wrk exit status {done.returncode}: {done.stderr.strip()[-500:]}")
    text = done.stdout
    found = {k: re.search(p, text) for k, p in _WRK_PATTERNS.items()}
    req, rps, read = found["requests"], found["rps"], found["read"]
    if req is None or rps is None or read is None:
        raise ChildFailed(f"cannot read wrk's output:\n{text}")
    errors = found["errors"]
    latency = {
        k: float(m.group(1)) * _TIME_UNIT[m.group(2)] * 1e3
        for k in ("p50", "p99")
        if (m := found[k]) is not None
    }
    non2xx = found["non2xx"]
    return {
        "requests": int(req.group(1)),
        "duration_s": float(req.group(2)) * _TIME_UNIT[req.group(3)],
        "rps": float(rps.group(1)),
        "bytes_read": float(read.group(1)) * _SIZE_UNIT[read.group(2)],
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": [int(x) for x in errors.groups()] if errors else [0, 0, 0, 0],
        "latency_ms": latency,
        "server_user_s": user1 - user0,
        "server_system_s": system1 - system0,
        "wrk_cpu_s": (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime),
        "machine_s": sample.machine,
        "wall_s": sample.wall,
    }


def _check_wrk(r: Result, size: int) -> str:
    if r["requests"] <= 0:
        return "no request completed"
    if r["non2xx"]:
        return f"{r['non2xx']} responses were not 2xx/3xx"
    if sum(r["socket_errors"]) > max(10, r["requests"] // 100):
        return f"socket errors (connect, read, write, timeout): {r['socket_errors']}"
    # wrk rounds what it read to 2 decimals of its unit: allow 1% less than the bodies alone.
    if r["bytes_read"] < 0.99 * size * r["requests"]:
        return f"{r['bytes_read']:.0f} bytes read for {r['requests']} responses of {size} bytes"
    return ""


# === Summaries ====================================================================================


def _gbps(r: Run) -> float:
    return run_gbps(r)


def _cpu_per_gib(r: Run) -> float:
    return cpu_per_gib(r, "server")


def _methods(ok: Sequence[Result], size: int) -> str:
    """What zcio.stats() in the server saw moving the large file, and calls per GiB."""
    seen: dict[str, list[float]] = {}
    short = 0
    for r in ok:
        methods = r.get("zcio", {}).get("methods", {})
        for name, m in methods.items():
            if int(m["bytes"]):
                seen.setdefault(name, []).append(float(m["calls"]) / run_gib(r))
        if int(methods.get("sendfile", {}).get("bytes", 0)) < size:
            short += 1
    text = ", ".join(f"{name} ({median(c):.0f} calls/GiB)" for name, c in sorted(seen.items()))
    text = text or "none"
    return text + (f"; NOT all sendfile in {short} runs" if short else "")


def _large_target(xn_gbps: float, xn_cpu: float, xs_gbps: float, nginx: bool, stock: bool) -> str:
    misses = []
    if nginx:
        if not xn_gbps >= TARGET_X_NGINX_GBPS:
            misses.append(f"GB/s < {TARGET_X_NGINX_GBPS}x nginx")
        if not xn_cpu <= TARGET_X_NGINX_CPU:
            misses.append(f"CPU > {TARGET_X_NGINX_CPU}x nginx")
    if stock and not xs_gbps >= TARGET_X_STOCK_GBPS:
        misses.append(f"GB/s < {TARGET_X_STOCK_GBPS}x stock")
    target = "met" if not misses else "MISSED: " + ", ".join(misses)
    if not nginx or not stock:
        target += " (" + ("nginx" if not nginx else "stock") + " part not measured)"
    return target


def _large_summary(
    v: Variant, ok: Sequence[Result], nginx: Sequence[Result], stock: Sequence[Result]
) -> dict[str, Any]:
    """One server's medians, and its per-round ratios to nginx and to stock."""
    e: dict[str, Any] = {
        "label": v.label,
        "runs_ok": len(ok),
        "gbps": median([_gbps(r) for r in ok]),
        "server_cpu_s_per_gib": median([_cpu_per_gib(r) for r in ok]),
        "server_user_s_per_gib": median([per_gib(r, "server_user_s") for r in ok]),
        "server_system_s_per_gib": median([per_gib(r, "server_system_s") for r in ok]),
        "x_nginx_gbps": by_round(ok, nginx, _gbps),
        "x_nginx_cpu": by_round(ok, nginx, _cpu_per_gib),
        "x_stock_gbps": by_round(ok, stock, _gbps),
        "x_stock_cpu": by_round(ok, stock, _cpu_per_gib),
    }
    if v.zcio:
        ratios = (e["x_nginx_gbps"], e["x_nginx_cpu"], e["x_stock_gbps"])
        e["target"] = _large_target(*ratios, nginx=bool(nginx), stock=bool(stock))
        e["target_met"] = e["target"] == "met"
    return e


def _other(r: Result) -> float:
    """Machine CPU that neither the server nor the client accounts for."""
    mine = float(r["server_user_s"]) + float(r["server_system_s"]) + float(r["client_cpu_s"])
    return (float(r["machine_s"]) - mine) / run_gib(r)


def _large_detail(
    v: Variant, ok: Sequence[Result], e: dict[str, Any], runs: int, size: int
) -> list[str]:
    return [
        v.label,
        f"{len(ok)}/{runs}",
        spread([_gbps(r) for r in ok]),
        spread([_cpu_per_gib(r) for r in ok], 3),
        f"{e['server_user_s_per_gib']:.3f} / {e['server_system_s_per_gib']:.3f}",
        fmt(median([per_gib(r, "client_cpu_s") for r in ok]), 3),
        fmt(median([per_gib(r, "machine_s") for r in ok]), 3),
        fmt(median([_other(r) for r in ok]), 3),
        _methods(ok, size) if v.zcio_sends else "(the server's own)" if v.zcio else "-",
    ]


LARGE_HEADERS = [
    "server",
    "GB/s",
    "server CPU s/GiB",
    "x nginx GB/s",
    "x nginx CPU",
    "x stock GB/s",
    "x stock CPU",
    "target",
]
LARGE_DETAIL_HEADERS = [
    "server",
    "runs ok",
    "GB/s min-max",
    "server CPU s/GiB min-max",
    "server user / sys s/GiB",
    "client CPU s/GiB",
    "machine CPU s/GiB",
    "other CPU s/GiB",
    "zcio in the server",
]
_LARGE_FIGURES = ("x_nginx_gbps", "x_nginx_cpu", "x_stock_gbps", "x_stock_cpu")


def large_tables(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, size: int
) -> tuple[str, str, dict[str, Any]]:
    nginx = results.get(NGINX.key) or []
    stock = results.get(STOCK.key) or []
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        ok = results.get(v.key)
        if not ok:
            skipped = v.key not in results
            note = f"({_missing(v)} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 5, note])
            continue
        e = summary[v.key] = _large_summary(v, ok, nginx, stock)
        figures = [fmt(e["gbps"]), fmt(e["server_cpu_s_per_gib"], 3)]
        ratios = [fmt(e[k]) for k in _LARGE_FIGURES]
        rows.append([v.label, *figures, *ratios, e.pop("target", "-")])
        detail.append(_large_detail(v, ok, e, runs, size))
    main = markdown_table(LARGE_HEADERS, rows, "lrrrrrrl")
    return main, markdown_table(LARGE_DETAIL_HEADERS, detail, "lrrrrrrrl"), summary


def _path_runs(ok: Sequence[Result], path: str) -> list[Result]:
    return [r["paths"][path] | {"round": r["round"]} for r in ok if path in r["paths"]]


def _rps(r: Run) -> float:
    return float(r["rps"])


def _us_per_request(r: Result) -> float:
    return (float(r["server_user_s"]) + float(r["server_system_s"])) / int(r["requests"]) * 1e6


def _user_us(r: Result) -> float:
    return float(r["server_user_s"]) / int(r["requests"]) * 1e6


def _system_us(r: Result) -> float:
    return float(r["server_system_s"]) / int(r["requests"]) * 1e6


def _p99(r: Result) -> float:
    return float(r["latency_ms"].get("p99", math.nan))


def _sendfile_share(r: Result) -> float:
    """Bytes zcio counted for sendfile over the bytes of the bodies wrk received."""
    moved = r.get("zcio", {}).get("methods", {}).get("sendfile", {}).get("bytes", 0)
    return float(moved) / (float(r["size"]) * int(r["requests"]))


def _med(ok: Sequence[Result], path: str, fn: Callable[[Result], float]) -> float:
    return median([fn(r) for r in _path_runs(ok, path)])


def _pair(
    ok: Sequence[Result], name: str, fn: Callable[[Result], float], digits: int, memory: bool
) -> str:
    """``file / memory`` medians of ``fn`` for one small file."""
    mem = fmt(_med(ok, f"/m/{name}", fn), digits) if memory else "-"
    return f"{fmt(_med(ok, f'/f/{name}', fn), digits)} / {mem}"


def _file_over_memory(ok: Sequence[Result], name: str) -> float:
    """Median over runs of file req/s / in-memory req/s, both from the same server process."""
    pairs = [
        (r["paths"][f"/f/{name}"]["rps"], r["paths"][f"/m/{name}"]["rps"])
        for r in ok
        if f"/f/{name}" in r["paths"] and f"/m/{name}" in r["paths"]
    ]
    return median([float(a) / float(b) for a, b in pairs if b])


def _small_entry(
    v: Variant, ok: Sequence[Result], nginx: Sequence[Result], stock: Sequence[Result]
) -> dict[str, Any]:
    """One server's small-file medians, file / memory ratios and ratios to stock and nginx."""
    entry: dict[str, Any] = {"label": v.label, "runs_ok": len(ok)}
    misses: list[str] = []
    for name, _size in SMALL:
        file_rps = median([_rps(r) for r in _path_runs(ok, f"/f/{name}")])
        mem_rps = median([_rps(r) for r in _path_runs(ok, f"/m/{name}")])
        ratio = _file_over_memory(ok, name)
        entry[name] = {"file_rps": file_rps, "memory_rps": mem_rps, "file_x_memory": ratio}
        if v.zcio and not ratio >= TARGET_SMALL:
            misses.append(f"{name.split('.')[0].upper().replace('K', ' KiB')}")
    if v.zcio:
        entry["target"] = "met" if not misses else f"MISSED ({', '.join(misses)})"
        entry["target_met"] = not misses
    four = _path_runs(ok, "/f/4k.bin")
    entry["x_stock_4k_file_rps"] = by_round(four, _path_runs(stock, "/f/4k.bin"), _rps)
    entry["x_nginx_4k_file_rps"] = by_round(four, _path_runs(nginx, "/f/4k.bin"), _rps)
    return entry


def _small_detail(v: Variant, ok: Sequence[Result], runs: int, xn: float) -> list[str]:
    has_mem = v.has_app
    share = "-"
    if v.zcio_sends:
        share = (
            f"{fmt(_med(ok, '/f/4k.bin', _sendfile_share))} / "
            f"{fmt(_med(ok, '/f/64k.bin', _sendfile_share))}"
        )
    elif v.zcio:
        share = "(the server's own)"
    return [
        v.label,
        f"{len(ok)}/{runs}",
        _pair(ok, "4k.bin", _us_per_request, 0, has_mem),
        _pair(ok, "64k.bin", _us_per_request, 0, has_mem),
        f"{fmt(_med(ok, '/f/4k.bin', _user_us), 0)} / {fmt(_med(ok, '/f/4k.bin', _system_us), 0)}",
        _pair(ok, "4k.bin", _p99, 2, has_mem),
        _pair(ok, "64k.bin", _p99, 2, has_mem),
        fmt(xn),
        share,
    ]


SMALL_HEADERS = [
    "server",
    "4 KiB file req/s",
    "4 KiB in-memory req/s",
    "4 KiB file / memory",
    "64 KiB file req/s",
    "64 KiB in-memory req/s",
    "64 KiB file / memory",
    "x stock (4 KiB file)",
    "target",
]
SMALL_DETAIL_HEADERS = [
    "server",
    "runs ok",
    "server CPU us/req 4 KiB file / memory",
    "server CPU us/req 64 KiB file / memory",
    "4 KiB file: user / sys us/req",
    "p99 ms 4 KiB file / memory",
    "p99 ms 64 KiB file / memory",
    "x nginx (4 KiB file)",
    "zcio sendfile share 4 / 64 KiB",
]


def small_tables(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, wrk_missing: bool
) -> tuple[str, str, dict[str, Any]]:
    stock = results.get(STOCK.key) or []
    nginx = results.get(NGINX.key) or []
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        ok = results.get(v.key)
        if wrk_missing or not ok:
            skipped = wrk_missing or v.key not in results
            why = "wrk" if wrk_missing else _missing(v)
            note = f"({why} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 6, note])
            continue
        e = summary[v.key] = _small_entry(v, ok, nginx, stock)
        cells = [v.label]
        for name, _size in SMALL:
            f = e[name]
            cells += [fmt(f["file_rps"], 0), fmt(f["memory_rps"], 0), fmt(f["file_x_memory"])]
        rows.append([*cells, fmt(e["x_stock_4k_file_rps"]), e.pop("target", "-")])
        detail.append(_small_detail(v, ok, runs, e["x_nginx_4k_file_rps"]))
    main = markdown_table(SMALL_HEADERS, rows, "lrrrrrrrl")
    return main, markdown_table(SMALL_DETAIL_HEADERS, detail, "lrrrrrrrr"), summary


# === The results schema ===========================================================================


@dataclass(frozen=True)
class Sections:
    """What an HTTP script's two sections of ``zcio bench``'s table say (``prefix`` large and
    ``prefix`` small), and how its summaries name their ratios: ``x_{anchor}_gbps``,
    ``x_{baseline}_gbps``, ``x_{baseline}_4k_file_rps``..."""

    script: str
    prefix: str
    baseline: str
    large: str
    small: str
    roles: dict[str, str]
    optional: tuple[tuple[str, str, str], ...] = ()
    ratio_to: str = "stock"


SECTIONS = Sections(
    "http_files",
    "http",
    "stock Starlette `FileResponse`, uvicorn (httptools, asyncio)",
    "one large cached file over HTTP; CPU: the server's process tree",
    "4 and 64 KiB files, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
    {"nginx": "anchor", "stock_uvicorn_asyncio": "baseline"},
    (
        ("nginx", "nginx, `sendfile on`", "nginx"),
        ("stock_granian", "Starlette `FileResponse`, granian", "granian"),
        ("zcio_anycorn_trio", "zcio_starlette `FileResponse`, anycorn `-k trio`", "anycorn"),
    ),
)

#: A script's notes for a row: (figure "large" or "small", the row's key, its summary entry).
Notes = Callable[[str, str, Mapping[str, Any]], list[str]]


def memory_notes(figure: str, key: str, e: Mapping[str, Any]) -> list[str]:
    """The small-file target's figure: file req/s over the same server's in-memory response's
    (4 KiB / 64 KiB)."""
    ratios = [e.get(name, {}).get("file_x_memory") for name in ("4k.bin", "64k.bin")]
    ratios = [float(r) if isinstance(r, int | float) else math.nan for r in ratios]
    if figure != "small" or not any(math.isfinite(r) for r in ratios):
        return []
    return ["x memory " + " / ".join(fmt(r) if math.isfinite(r) else "-" for r in ratios)]


def _http_row(
    spec: Sections, figure: str, key: str, e: Mapping[str, Any], notes: Notes
) -> dict[str, Any]:
    x, base = "x_nginx", f"x_{spec.ratio_to}"
    common: dict[str, Any] = {
        "role": spec.roles.get(key, ""),
        "target_met": e.get("target_met"),
        "notes": notes(figure, key, e),
    }
    figures: dict[str, Any]
    if figure == "large":
        figures = {
            "gbps": e.get("gbps"),
            "cpu_s_per_gib": e.get("server_cpu_s_per_gib"),
            "x_anchor": e.get(f"{x}_gbps"),
            "x_anchor_cpu": e.get(f"{x}_cpu"),
            "x_baseline": e.get(f"{base}_gbps"),
            "x_baseline_cpu": e.get(f"{base}_cpu"),
        }
    else:
        figures = {
            "rps_4k": e.get("4k.bin", {}).get("file_rps"),
            "rps_64k": e.get("64k.bin", {}).get("file_rps"),
            "x_anchor": e.get(f"{x}_4k_file_rps"),
            "x_baseline": e.get(f"{base}_4k_file_rps"),
        }
    section = f"{spec.prefix} {figure}"
    return result_row(section, key, str(e.get("label", key)), **common, **figures)


def http_schema(
    spec: Sections, summary: Mapping[str, Any], sizing: Sequence[int], notes: Notes = memory_notes
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The results schema's two sections and their rows, from an HTTP script's summaries;
    ``sizing``: size in bytes, runs, wrk seconds, wrk runs."""
    size, runs, wrk_seconds, wrk_runs = sizing
    common: dict[str, Any] = {
        "anchor": "nginx",
        "anchor_program": "nginx",
        "baseline": spec.baseline,
        "optional": spec.optional,
    }
    sections = [
        result_section(
            f"{spec.prefix} large", spec.large, sizing=sizing_text(size, runs), **common
        ),
        result_section(
            f"{spec.prefix} small",
            spec.small,
            sizing=wrk_sizing_text(wrk_seconds, wrk_runs),
            needs="wrk",
            **common,
        ),
    ]
    rows = [
        _http_row(spec, figure, key, e, notes)
        for figure in ("large", "small")
        for key, e in (summary.get(figure) or {}).items()
    ]
    return sections, rows


# === Main =========================================================================================


def _order(variants: Sequence[Variant], round_no: int) -> list[Variant]:
    """The servers of a round, starting one further along each round (drift spreads evenly)."""
    k = round_no % len(variants) if variants else 0
    return [*variants[k:], *variants[:k]]


def http_parser(description: str, sizes: Sizes) -> argparse.ArgumentParser:
    """The HTTP benchmarks' options: the common ones, ``--servers`` and ``--figures``."""
    parser = bench_parser(description, sizes)
    add_servers(parser)
    return parser


HTTP_SIZES = Sizes(
    size_mib=(1024, 64),
    runs=(5, 3),
    wrk_runs=(3, 1),
    wrk_seconds=(5, 2),
    quiet_timeout=QUIET_TIMEOUT,
)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = http_parser(
        "Benchmark Starlette file responses (stock and zcio) against nginx.", HTTP_SIZES
    )
    # Figure 1's client child.
    parser.add_argument("--worker", choices=["get"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parse_args(parser, argv)
    args.chosen = chosen_servers(parser, args, [v.key for v in VARIANTS])
    return args


def select(
    variants: Sequence[Variant], args: argparse.Namespace, env: dict[str, str]
) -> tuple[list[Variant], list[Variant]]:
    """The servers ``--servers`` chose (anchors labelled with their versions), and those of
    them that are installed; says which are skipped."""
    selected = [_with_version(v, env) for v in variants if not args.chosen or v.key in args.chosen]
    present = [v for v in selected if _available(v)]
    for v in selected:
        if v not in present:
            progress(f"skipping {v.key}: {_missing(v)} not installed")
    return selected, present


def _large_rounds(bench: Bench, present: Sequence[Variant], runs: int) -> dict[str, list[Result]]:
    warm(bench.large)
    first = next((v for v in present if v.zcio), present[0])
    bench.large_run(first, 0, "[warm-up]")  # discarded: page cache, first processes
    results: dict[str, list[Result]] = {v.key: [] for v in present}
    for i in range(1, runs + 1):
        for v in _order(present, i):
            label = f"[large {i}/{runs}]"
            r = bench.large_run(v, i, label)
            if r is not None:
                results[v.key].append(r)
                progress(f"  {label} {v.key}: {_gbps(r):.2f} GB/s, {_cpu_per_gib(r):.3f} s/GiB")
    return results


def _small_rounds(
    bench: Bench, present: Sequence[Variant], runs: int, seconds: int
) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {v.key: [] for v in present}
    for i in range(1, runs + 1):
        for v in _order(present, i):
            label = f"[small {i}/{runs}]"
            r = bench.small_run(v, i, seconds, label)
            if r is not None:
                results[v.key].append(r)
                rps = ", ".join(
                    f"{p} {float(x['rps']):.0f}/s" for p, x in sorted(r["paths"].items())
                )
                progress(f"  {label} {v.key}: {rps}")
    return results


def measure(
    bench: Bench, present: Sequence[Variant], args: argparse.Namespace, wrk_missing: bool
) -> tuple[dict[str, list[Result]], dict[str, list[Result]]]:
    """The figures ``--figures`` asks for, server after server in a rotating order: the
    large-file runs and the small-file runs (Ctrl-C keeps what was measured)."""
    large: dict[str, list[Result]] = {}
    small: dict[str, list[Result]] = {}
    try:
        if args.figures in ("1", "both") and present:
            large = _large_rounds(bench, present, args.runs)
        if args.figures in ("2", "both") and present and not wrk_missing:
            small = _small_rounds(bench, present, args.wrk_runs, args.wrk_seconds)
    except KeyboardInterrupt:
        progress("interrupted: printing what was measured")
    return large, small


def _print_large(args: argparse.Namespace, main_table: str, detail_table: str) -> None:
    print()
    print(f"## A {args.size_mib} MiB cached file over one connection (medians of {args.runs} runs)")
    print()
    print(main_table)
    print()
    print(
        f"Targets (printed, never asserted) for {SUBJECT}: >= {TARGET_X_NGINX_GBPS}x "
        f"nginx's GB/s, <= {TARGET_X_NGINX_CPU}x nginx's server CPU per GiB, >= "
        f"{TARGET_X_STOCK_GBPS}x stock's GB/s. Stock is the first row ({STOCK_TEXT}). "
        "The client sends one GET and "
        "splices the body into /dev/null; the clock runs from the request to the last "
        "byte. Server CPU: user + system of the server's whole process tree "
        "(/proc/PID/stat, 10 ms ticks) over the same time. The x columns are medians of "
        "per-round ratios (to the nginx or stock run of the same round). Each run is a "
        "fresh server process, warmed up first with four small requests (not counted)."
    )
    print()
    print(detail_table)
    print()
    print(
        "client CPU: the splice client's own time. machine CPU: all cores' busy time "
        "(/proc/stat) over the transfer. other: machine minus server minus client (kernel "
        "threads, other programs). zcio in the server: what zcio.stats() in the server "
        "process saw move the file (via the app's /zcio-stats route), with system calls "
        "per GiB."
    )


def _print_small(
    args: argparse.Namespace, main_table: str, detail_table: str, wrk_missing: bool
) -> None:
    print()
    print(
        f"## Small files: `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` "
        f"(medians of {args.wrk_runs} runs)"
    )
    print()
    if wrk_missing:
        print("wrk is not installed (Debian package `wrk`): this figure was skipped.")
        print()
    print(main_table)
    print()
    print(
        f"Target (printed, never asserted) for {SUBJECT}: a file's requests/s >= "
        f"{TARGET_SMALL}x the same server's in-memory {IN_MEMORY} of the same bytes, "
        "measured by the same server process in the same run (file / memory is the median "
        "of the per-run ratios). Each run is a fresh server process: four requests and a "
        f"{WRK_WARMUP_S} s wrk warm-up on the 4 KiB file first (not counted), then the "
        "file and memory URLs one after the other (which kind goes first alternates by "
        "round). nginx has no in-memory route. x stock: per-round ratio to the stock "
        "row's 4 KiB file requests/s."
    )
    print()
    print(detail_table)
    print()
    print(
        "server CPU us/req: the server process tree's user + system time over the wrk run "
        "divided by the requests served (wrk itself runs on the same two cores). p99: "
        "wrk's latency percentile. zcio sendfile share: bytes zcio.stats() counted for "
        "sendfile over the bytes of the bodies served (1.00: every body by sendfile)."
    )


def _summaries(
    args: argparse.Namespace,
    selected: Sequence[Variant],
    results: tuple[dict[str, list[Result]], dict[str, list[Result]]],
    wrk_missing: bool,
) -> dict[str, Any]:
    """Both figures' tables, printed; their summaries."""
    summary: dict[str, Any] = {}
    if args.figures in ("1", "both"):
        size = args.size_mib * MIB
        main_table, detail, summary["large"] = large_tables(selected, results[0], args.runs, size)
        _print_large(args, main_table, detail)
    if args.figures in ("2", "both"):
        main_table, detail, summary["small"] = small_tables(
            selected, results[1], args.wrk_runs, wrk_missing
        )
        _print_small(args, main_table, detail, wrk_missing)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker == "get":
        print(json.dumps(large_get(args.port, args.path, args.size, args.server_pid)))
        return 0
    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    env.update(versions())
    selected, present = select(VARIANTS, args, env)
    wrk_missing = shutil.which("wrk") is None
    # The same file as bench/send_file.py: written once, kept in /tmp/zcio-bench.
    large = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    prepare_files(large)
    timeout = 30.0 + 60.0 * size / GIB  # the slowest server here moves about 0.3 GB/s
    bench = Bench(large, size, timeout, args.quiet_timeout)
    print(
        f"# zcio HTTP benchmark: {args.size_mib} MiB file x {args.runs} runs; small files "
        f"`wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` x {args.wrk_runs} runs"
    )
    print()
    print(", ".join(f"{k} {val}" for k, val in env.items()))
    if args.runs < 5:
        print(f"(only {args.runs} large-file runs per server: medians of fewer than 5 are rough)")
    results = measure(bench, present, args, wrk_missing)
    elapsed = time.monotonic() - started
    summary = _summaries(args, selected, results, wrk_missing)
    print()
    print(
        f"Total time: {elapsed:.0f} s (waited {bench.waited:.0f} s for a quiet machine; "
        f"large file re-read into the page cache {bench.rewarmed} times)."
    )
    return write_results(args, bench.failures, env, summary, results, elapsed)


def write_results(
    args: argparse.Namespace,
    failures: Sequence[str],
    env: dict[str, str],
    summary: dict[str, Any],
    results: tuple[Mapping[str, Any], Mapping[str, Any]],
    elapsed: float,
    notes: Notes = memory_notes,
) -> int:
    """:func:`finish` for an HTTP script: the schema of :data:`SECTIONS`, then every run."""
    size = args.size_mib * MIB
    sizing = (size, args.runs, args.wrk_seconds, args.wrk_runs)
    sections, rows = http_schema(SECTIONS, summary, sizing, notes)
    detail = {
        "environment": env,
        "size_bytes": size,
        "runs": args.runs,
        "wrk_runs": args.wrk_runs,
        "wrk_seconds": args.wrk_seconds,
        "elapsed_s": elapsed,
        "summary": summary,
        "large": results[0],
        "small": results[1],
    }
    return finish(failures, args.json, detail, script=SECTIONS.script, sections=sections, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
