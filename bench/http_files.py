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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    Meter,
    add_quiet_timeout,
    cached_pages,
    ensure_file,
    environment,
    finish,
    free_port,
    listening,
    markdown_table,
    median,
    open_fd,
    process_group,
    progress,
    run_child,
    tree_cpu,
    wait_quiet,
    warm,
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
    if any(importlib.util.find_spec(name) is None for name in v.needs):
        return False
    if v.kind == "nginx":
        return shutil.which("nginx") is not None
    return not v.command or shutil.which(_venv_script(v.command)) is not None


def _missing(v: Variant) -> str:
    absent = [name for name in v.needs if importlib.util.find_spec(name) is None]
    if v.command and not absent:
        absent.append(v.command)
    return ", ".join(absent) or "?"


def _version(argv: Sequence[str], pattern: str) -> str:
    """A program's version from its ``--version``-style output (stdout or stderr)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


#: The Python distributions whose versions the report names.
VERSIONS_OF: tuple[str, ...] = ("starlette", "uvicorn", "httptools", "h11", "granian", "anycorn")


def versions() -> dict[str, str]:
    from importlib import metadata

    out: dict[str, str] = {}
    for name in VERSIONS_OF:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    nginx = shutil.which("nginx")
    out["nginx"] = _version([nginx, "-v"], r"nginx/(\S+)") if nginx else "not installed"
    wrk = shutil.which("wrk")
    out["wrk"] = _version([wrk, "-v"], r"wrk (\S+)") if wrk else "not installed"
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


def _stats_delta(before: Result, after: Result) -> Result:
    methods: Result = {}
    for name, m in after.get("methods", {}).items():
        b = before.get("methods", {}).get(name, {})
        delta = {k: int(m[k]) - int(b.get(k, 0)) for k in ("transfers", "calls", "bytes")}
        if any(delta.values()):
            methods[name] = delta
    return {"methods": methods}


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
            result["zcio"] = _stats_delta(before, after) if v.zcio else {}
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
                        r["zcio"] = _stats_delta(before, _zcio_stats(srv))
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


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def _gib(r: Result) -> float:
    return float(r["body"]) / GIB


def _gbps(r: Result) -> float:
    return float(r["body"]) / float(r["wall_s"]) / 1e9


def _cpu_per_gib(r: Result) -> float:
    return (float(r["server_user_s"]) + float(r["server_system_s"])) / _gib(r)


def _by_round(ok: Sequence[Result], ref: Sequence[Result], fn: Callable[[Result], float]) -> float:
    """Median over rounds of fn(this run) / fn(the reference's run in the same round)."""
    refs = {int(r["round"]): r for r in ref}
    pairs = [(fn(r), fn(refs[int(r["round"])])) for r in ok if int(r["round"]) in refs]
    return median([a / b for a, b in pairs if b > 0])  # 0 CPU: less than a clock tick


def _methods(ok: Sequence[Result], size: int) -> str:
    """What zcio.stats() in the server saw moving the large file, and calls per GiB."""
    seen: dict[str, list[float]] = {}
    short = 0
    for r in ok:
        methods = r.get("zcio", {}).get("methods", {})
        for name, m in methods.items():
            if int(m["bytes"]):
                seen.setdefault(name, []).append(float(m["calls"]) / _gib(r))
        if int(methods.get("sendfile", {}).get("bytes", 0)) < size:
            short += 1
    text = ", ".join(f"{name} ({median(c):.0f} calls/GiB)" for name, c in sorted(seen.items()))
    text = text or "none"
    return text + (f"; NOT all sendfile in {short} runs" if short else "")


def large_tables(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, size: int
) -> tuple[str, str, dict[str, Any]]:
    nginx = results.get(NGINX.key) or []
    stock = results.get(STOCK.key) or []
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        if v.key not in results:
            rows.append([v.label, "skipped", "", "", "", "", "", f"({_missing(v)} not installed)"])
            continue
        ok = results[v.key]
        if not ok:
            rows.append([v.label, "failed", "", "", "", "", "", ""])
            continue
        gbps = median([_gbps(r) for r in ok])
        cpu = median([_cpu_per_gib(r) for r in ok])
        xn_gbps, xn_cpu = _by_round(ok, nginx, _gbps), _by_round(ok, nginx, _cpu_per_gib)
        xs_gbps, xs_cpu = _by_round(ok, stock, _gbps), _by_round(ok, stock, _cpu_per_gib)
        target = "-"
        if v.zcio:
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
        rows.append(
            [
                v.label,
                _fmt(gbps),
                _fmt(cpu, 3),
                _fmt(xn_gbps),
                _fmt(xn_cpu),
                _fmt(xs_gbps),
                _fmt(xs_cpu),
                target,
            ]
        )
        gb_all = [_gbps(r) for r in ok]
        cpu_all = [_cpu_per_gib(r) for r in ok]
        user = median([float(r["server_user_s"]) / _gib(r) for r in ok])
        system = median([float(r["server_system_s"]) / _gib(r) for r in ok])
        client = median([float(r["client_cpu_s"]) / _gib(r) for r in ok])
        machine = median([float(r["machine_s"]) / _gib(r) for r in ok])
        other = median(
            [
                (
                    float(r["machine_s"])
                    - float(r["server_user_s"])
                    - float(r["server_system_s"])
                    - float(r["client_cpu_s"])
                )
                / _gib(r)
                for r in ok
            ]
        )
        detail.append(
            [
                v.label,
                f"{len(ok)}/{runs}",
                f"{min(gb_all):.2f}-{max(gb_all):.2f}",
                f"{min(cpu_all):.3f}-{max(cpu_all):.3f}",
                f"{user:.3f} / {system:.3f}",
                _fmt(client, 3),
                _fmt(machine, 3),
                _fmt(other, 3),
                _methods(ok, size) if v.zcio_sends else "(the server's own)" if v.zcio else "-",
            ]
        )
        summary[v.key] = {
            "label": v.label,
            "runs_ok": len(ok),
            "gbps": gbps,
            "server_cpu_s_per_gib": cpu,
            "server_user_s_per_gib": user,
            "server_system_s_per_gib": system,
            "x_nginx_gbps": xn_gbps,
            "x_nginx_cpu": xn_cpu,
            "x_stock_gbps": xs_gbps,
            "x_stock_cpu": xs_cpu,
            **({"target_met": target == "met"} if v.zcio else {}),
        }
    main = markdown_table(
        [
            "server",
            "GB/s",
            "server CPU s/GiB",
            "x nginx GB/s",
            "x nginx CPU",
            "x stock GB/s",
            "x stock CPU",
            "target",
        ],
        rows,
        "lrrrrrrl",
    )
    detail_table = markdown_table(
        [
            "server",
            "runs ok",
            "GB/s min-max",
            "server CPU s/GiB min-max",
            "server user / sys s/GiB",
            "client CPU s/GiB",
            "machine CPU s/GiB",
            "other CPU s/GiB",
            "zcio in the server",
        ],
        detail,
        "lrrrrrrrl",
    )
    return main, detail_table, summary


def _path_runs(ok: Sequence[Result], path: str) -> list[Result]:
    return [r["paths"][path] | {"round": r["round"]} for r in ok if path in r["paths"]]


def _rps(r: Result) -> float:
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
    mem = _fmt(_med(ok, f"/m/{name}", fn), digits) if memory else "-"
    return f"{_fmt(_med(ok, f'/f/{name}', fn), digits)} / {mem}"


def _file_over_memory(ok: Sequence[Result], name: str) -> float:
    """Median over runs of file req/s / in-memory req/s, both from the same server process."""
    pairs = [
        (r["paths"][f"/f/{name}"]["rps"], r["paths"][f"/m/{name}"]["rps"])
        for r in ok
        if f"/f/{name}" in r["paths"] and f"/m/{name}" in r["paths"]
    ]
    return median([float(a) / float(b) for a, b in pairs if b])


def small_tables(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, wrk_missing: bool
) -> tuple[str, str, dict[str, Any]]:
    stock = results.get(STOCK.key) or []
    nginx = results.get(NGINX.key) or []
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        if wrk_missing or v.key not in results:
            why = "wrk" if wrk_missing else _missing(v)
            rows.append([v.label, "skipped", "", "", "", "", "", "", f"({why} not installed)"])
            continue
        ok = results[v.key]
        if not ok:
            rows.append([v.label, "failed", "", "", "", "", "", "", ""])
            continue
        cells: list[str] = [v.label]
        entry: dict[str, Any] = {"label": v.label, "runs_ok": len(ok)}
        misses: list[str] = []
        for name, _size in SMALL:
            file_rps = median([_rps(r) for r in _path_runs(ok, f"/f/{name}")])
            mem_rps = median([_rps(r) for r in _path_runs(ok, f"/m/{name}")])
            ratio = _file_over_memory(ok, name)
            cells += [_fmt(file_rps, 0), _fmt(mem_rps, 0), _fmt(ratio)]
            entry[name] = {"file_rps": file_rps, "memory_rps": mem_rps, "file_x_memory": ratio}
            if v.zcio and not ratio >= TARGET_SMALL:
                misses.append(f"{name.split('.')[0].upper().replace('K', ' KiB')}")
        xs = _by_round(_path_runs(ok, "/f/4k.bin"), _path_runs(stock, "/f/4k.bin"), _rps)
        xn = _by_round(_path_runs(ok, "/f/4k.bin"), _path_runs(nginx, "/f/4k.bin"), _rps)
        cells.append(_fmt(xs))
        target = "-"
        if v.zcio:
            target = "met" if not misses else f"MISSED ({', '.join(misses)})"
            entry["target_met"] = not misses
        cells.append(target)
        rows.append(cells)
        entry["x_stock_4k_file_rps"] = xs
        entry["x_nginx_4k_file_rps"] = xn
        summary[v.key] = entry

        has_mem = v.has_app
        detail.append(
            [
                v.label,
                f"{len(ok)}/{runs}",
                _pair(ok, "4k.bin", _us_per_request, 0, has_mem),
                _pair(ok, "64k.bin", _us_per_request, 0, has_mem),
                f"{_fmt(_med(ok, '/f/4k.bin', _user_us), 0)} / "
                f"{_fmt(_med(ok, '/f/4k.bin', _system_us), 0)}",
                _pair(ok, "4k.bin", _p99, 2, has_mem),
                _pair(ok, "64k.bin", _p99, 2, has_mem),
                _fmt(xn),
                (
                    f"{_fmt(_med(ok, '/f/4k.bin', _sendfile_share))} / "
                    f"{_fmt(_med(ok, '/f/64k.bin', _sendfile_share))}"
                    if v.zcio_sends
                    else "(the server's own)"
                    if v.zcio
                    else "-"
                ),
            ]
        )
    main = markdown_table(
        [
            "server",
            "4 KiB file req/s",
            "4 KiB in-memory req/s",
            "4 KiB file / memory",
            "64 KiB file req/s",
            "64 KiB in-memory req/s",
            "64 KiB file / memory",
            "x stock (4 KiB file)",
            "target",
        ],
        rows,
        "lrrrrrrrl",
    )
    detail_table = markdown_table(
        [
            "server",
            "runs ok",
            "server CPU us/req 4 KiB file / memory",
            "server CPU us/req 64 KiB file / memory",
            "4 KiB file: user / sys us/req",
            "p99 ms 4 KiB file / memory",
            "p99 ms 64 KiB file / memory",
            "x nginx (4 KiB file)",
            "zcio sendfile share 4 / 64 KiB",
        ],
        detail,
        "lrrrrrrrr",
    )
    return main, detail_table, summary


# === Main =========================================================================================


def _order(variants: Sequence[Variant], round_no: int) -> list[Variant]:
    """The servers of a round, starting one further along each round (drift spreads evenly)."""
    k = round_no % len(variants) if variants else 0
    return [*variants[k:], *variants[:k]]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Starlette file responses (stock and zcio) against nginx."
    )
    parser.add_argument("--size-mib", type=int, default=None, help="large file (default 1024)")
    parser.add_argument("--runs", type=int, default=None, help="large-file runs (default 5)")
    parser.add_argument("--wrk-runs", type=int, default=None, help="small-file runs (default 3)")
    parser.add_argument(
        "--wrk-seconds", type=int, default=None, help="each wrk measurement (default 5)"
    )
    parser.add_argument("--servers", default="", help="comma-separated server keys (default: all)")
    parser.add_argument("--figures", choices=["1", "2", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64 MiB, fewer runs")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    add_quiet_timeout(parser, QUIET_TIMEOUT)
    # Figure 1's client child.
    parser.add_argument("--worker", choices=["get"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size_mib is None:
        args.size_mib = 64 if args.quick else 1024
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.wrk_runs is None:
        args.wrk_runs = 1 if args.quick else 3
    if args.wrk_seconds is None:
        args.wrk_seconds = 2 if args.quick else 5
    if min(args.size_mib, args.runs, args.wrk_runs, args.wrk_seconds) < 1:
        parser.error("--size-mib, --runs, --wrk-runs and --wrk-seconds must be at least 1")
    known = {v.key for v in VARIANTS}
    chosen = [k for k in args.servers.split(",") if k]
    if unknown := [k for k in chosen if k not in known]:
        parser.error(f"unknown servers {unknown}; known: {sorted(known)}")
    args.chosen = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker == "get":
        print(json.dumps(large_get(args.port, args.path, args.size, args.server_pid)))
        return 0

    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    env.update(versions())
    selected = [_with_version(v, env) for v in VARIANTS if not args.chosen or v.key in args.chosen]
    present = [v for v in selected if _available(v)]
    for v in selected:
        if v not in present:
            progress(f"skipping {v.key}: {_missing(v)} not installed")
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

    large_results: dict[str, list[Result]] = {}
    small_results: dict[str, list[Result]] = {}
    try:
        if args.figures in ("1", "both") and present:
            warm(large)
            first = next((v for v in present if v.zcio), present[0])
            bench.large_run(first, 0, "[warm-up]")  # discarded: page cache, first processes
            large_results = {v.key: [] for v in present}
            for i in range(1, args.runs + 1):
                for v in _order(present, i):
                    label = f"[large {i}/{args.runs}]"
                    r = bench.large_run(v, i, label)
                    if r is not None:
                        large_results[v.key].append(r)
                        progress(
                            f"  {label} {v.key}: {_gbps(r):.2f} GB/s, {_cpu_per_gib(r):.3f} s/GiB"
                        )
        if args.figures in ("2", "both") and present and not wrk_missing:
            small_results = {v.key: [] for v in present}
            for i in range(1, args.wrk_runs + 1):
                for v in _order(present, i):
                    label = f"[small {i}/{args.wrk_runs}]"
                    r = bench.small_run(v, i, args.wrk_seconds, label)
                    if r is not None:
                        small_results[v.key].append(r)
                        rps = ", ".join(
                            f"{p} {float(x['rps']):.0f}/s" for p, x in sorted(r["paths"].items())
                        )
                        progress(f"  {label} {v.key}: {rps}")
    except KeyboardInterrupt:
        progress("interrupted: printing what was measured")
    elapsed = time.monotonic() - started

    summary: dict[str, Any] = {}
    if args.figures in ("1", "both"):
        main_table, detail_table, summary["large"] = large_tables(
            selected, large_results, args.runs, size
        )
        print()
        print(
            f"## A {args.size_mib} MiB cached file over one connection "
            f"(medians of {args.runs} runs)"
        )
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
    if args.figures in ("2", "both"):
        main_table, detail_table, summary["small"] = small_tables(
            selected, small_results, args.wrk_runs, wrk_missing
        )
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
    print()
    print(
        f"Total time: {elapsed:.0f} s (waited {bench.waited:.0f} s for a quiet machine; "
        f"large file re-read into the page cache {bench.rewarmed} times)."
    )
    return finish(
        bench.failures,
        args.json,
        {
            "environment": env,
            "size_bytes": size,
            "runs": args.runs,
            "wrk_runs": args.wrk_runs,
            "wrk_seconds": args.wrk_seconds,
            "elapsed_s": elapsed,
            "summary": summary,
            "large": large_results,
            "small": small_results,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
