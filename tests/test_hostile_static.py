"""Hostile input against the Django and Litestar drop-ins' static files, on a live server
(uvicorn with zcio_uvicorn's protocol, over loopback): a local process that plants symlinks,
FIFOs and device links in the served folder and races symlinks over a served name, and names
any client can choose.

Each server runs tests/apps/hostile_static_app.py: ``/static/`` is the drop-in as it comes
(contained), ``/follow/`` the same with ``follow_symlink=True``. Bounded: every race runs for
a few seconds and stops by itself; every request has a timeout. At the end, the core's
``zcio.asgi.open_static`` (what ``follow_symlink=True`` opens with) on its own.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import zcio.asgi
from _support import INSIDE, SECRET, Swapper, free_port, make_root, stop_server

pytest.importorskip("django")
pytest.importorskip("litestar")

APPS = Path(__file__).parent / "apps"
TIMEOUT = 20.0
RACE_SECONDS = 3.0
CLIENTS = 4  # keep-alive connections racing at once
MIB = 1024


@dataclass
class Server:
    framework: str
    port: int
    root: Path
    proc: subprocess.Popen[str]
    log: Path

    def stats(self) -> dict[str, int]:
        status, _, body = get(self.port, "/stats")
        assert status == 200
        return dict(json.loads(body))

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def get(port: int, target: str, conn: http.client.HTTPConnection | None = None) -> Response:
    """GET ``target`` (sent as it is, not normalised): status, headers, body."""
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        if own:
            conn.close()


Response = tuple[int, dict[str, str], bytes]


def plant(root: Path) -> None:
    """What a local user with write access to the folder can leave there."""
    base = root.parent
    os.mkfifo(root / "fifo")  # a FIFO inside: no writer ever comes
    os.mkfifo(base / "outside-fifo")
    for name, target in [
        ("fifo-link", base / "outside-fifo"),
        ("zero", Path("/dev/zero")),
        ("status", Path("/proc/self/status")),
        ("environ", Path("/proc/self/environ")),
        ("loop", Path("loop")),
    ]:
        (root / name).symlink_to(target)


@pytest.fixture(scope="module", params=["litestar", "django"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    framework: str = request.param
    base = tmp_path_factory.mktemp(f"hostile-{framework}")
    root = make_root(base)
    plant(root)
    port = free_port()
    log = base / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    env.update(ZCIO_HOSTILE_FRAMEWORK=framework, ZCIO_HOSTILE_ROOT=str(root))
    command = [
        *(sys.executable, "-m", "uvicorn", "hostile_static_app:app", "--port", str(port)),
        *("--http", "zcio_uvicorn:HttpToolsProtocol", "--log-level", "warning"),
        "--no-access-log",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=APPS, env=env, stdout=out, stderr=out, text=True)
    srv = Server(framework, port, root, proc, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            srv.stats()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                error = f"{framework} server did not start: {srv.output()[-2000:]}"
                raise RuntimeError(error) from None
            time.sleep(0.1)
    try:
        yield srv
    finally:
        stop_server(proc)


def no_traceback(output: str) -> None:
    at = output.find("Traceback")
    assert at < 0, output[max(at - 500, 0) : at + 3000]


def is_404(response: Response) -> bool:
    status, _, body = response
    return status == 404 and SECRET not in body


# --- planted symlinks, FIFOs, devices and /proc -------------------------------------------


def test_a_planted_symlink_leading_out_is_a_404(server: Server) -> None:
    for target in ("/static/escape.txt", "/static/up/secret.txt"):
        assert is_404(get(server.port, target)), target
    status, _, body = get(server.port, "/static/hello.txt")
    assert (status, body) == (200, b"hello\n")
    status, _, body = get(server.port, "/static/alias.txt")  # a symlink staying inside
    assert (status, body) == (200, b"hello\n")
    # The opt-in follows it out, as the framework itself does.
    status, _, body = get(server.port, "/follow/escape.txt")
    assert (status, body) == (200, SECRET)
    no_traceback(server.output())


def test_fifos_devices_and_proc_are_404s_never_read(server: Server) -> None:
    """A FIFO inside, and (through the opt-in, for the symlinks) a FIFO outside, /dev/zero
    and /proc files: each a 404, eight at once, none read into memory, no thread left
    waiting: the server answers the next request, with its RSS and fds where they were."""
    before = server.stats()
    targets = [
        "/static/fifo",
        "/follow/fifo",
        "/static/fifo-link",
        "/follow/fifo-link",
        "/static/zero",
        "/follow/zero",
        "/follow/status",
        "/follow/environ",
    ]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for _ in range(3):
            answers = list(pool.map(lambda t: get(server.port, t), targets * 2))
            for target, answer in zip(targets * 2, answers, strict=True):
                assert is_404(answer), (target, answer[0])
                assert b"VmRSS" not in answer[2] and b"PATH=" not in answer[2]
    status, _, body = get(server.port, "/static/hello.txt")
    assert (status, body) == (200, b"hello\n")
    after = server.stats()
    # Stock Django read /dev/zero at ~230 MiB/s into memory; stock Litestar's FIFO threads
    # never came back. A bound far below either, far above the noise of 48 small requests.
    assert after["rss_kb"] - before["rss_kb"] < 64 * MIB, (before, after)
    assert after["fds"] <= before["fds"] + 2, (before, after)
    no_traceback(server.output())


# --- names any client can choose ----------------------------------------------------------

NAMES = [
    "../secret.txt",
    "%2e%2e/secret.txt",
    "..%2fsecret.txt",
    "sub/..%2f..%2fsecret.txt",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "sub%5c..%5c..%5csecret.txt",
    "up/..%2f..%2fsecret.txt",
    "x" * 300,
    "loop",
    "loop/inner",
    "hello.txt/x",
    "a%00b",
    "%00",
    "sub/inner.txt%00.png",
]


@pytest.mark.parametrize("prefix", ["static", "follow"])
def test_names_any_client_can_choose_are_404s(server: Server, prefix: str) -> None:
    before = len(server.output())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        for name in NAMES:
            answer = get(server.port, f"/{prefix}/{name}", conn)
            assert is_404(answer), (name, answer[0], answer[2][:300])
            assert b"root:" not in answer[2]
        status, _, _ = get(server.port, f"/{prefix}/" + "a/" * 2100 + "b", conn)
        assert status in (404, 414), status
    finally:
        conn.close()
    no_traceback(server.output()[before:])


# --- the symlink-swap race ------------------------------------------------------------------


def hammer(port: int, target: str, seconds: float) -> Counter[str]:
    """GET ``target`` from CLIENTS keep-alive connections for ``seconds``: what came back.
    ``bad`` counts a 200 whose body is not exactly what its own headers promise."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        mine: Counter[str] = Counter()
        try:
            while time.monotonic() < deadline:
                try:
                    status, headers, body = get(port, target, conn)
                except (ConnectionError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                    mine["broken"] += 1
                    continue
                length = {k.lower(): v for k, v in headers.items()}.get("content-length")
                if SECRET in body:
                    mine["leaked"] += 1
                if status == 200:
                    if length != str(len(body)):
                        mine["bad"] += 1
                    mine[
                        "inside" if body == INSIDE else "outside" if body == SECRET else "bad"
                    ] += 1
                elif status == 404:
                    mine["404"] += 1
                else:
                    mine[f"status {status}"] += 1
        finally:
            conn.close()
            with lock:
                counts.update(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * TIMEOUT)
    return counts


@pytest.mark.parametrize("intruder", ["symlink", "symlink-dir", "fifo"])
def test_a_swap_race_never_serves_a_byte_from_outside(server: Server, intruder: str) -> None:
    """A served name (or a folder on the way to it) swapped atomically, thousands of times,
    for a symlink leading out (or a FIFO), while clients ask for it: every answer is the file
    inside, whole, under its own headers, or a 404."""
    name = f"swap-{intruder}"
    target = f"/static/{name}/secret.txt" if intruder == "symlink-dir" else f"/static/{name}"
    with Swapper(server.root, name, intruder) as swapper:
        counts = hammer(server.port, target, RACE_SECONDS)
    assert swapper.swaps > 10
    assert counts["leaked"] == 0 and counts["outside"] == 0, counts
    assert counts["bad"] == 0 and counts["broken"] == 0, counts
    assert set(counts) <= {"inside", "404"}, counts
    assert counts["inside"] > 0, counts  # the race ran on a name that is served
    no_traceback(server.output())


def test_the_opt_in_race_sends_each_file_under_its_own_headers(server: Server) -> None:
    """With ``follow_symlink=True`` the symlink out is followed, as the framework does; yet
    the file is opened once and its headers made from that open file, so a body is never one
    file under the other's Content-Length."""
    with Swapper(server.root, "swap-follow", "symlink") as swapper:
        counts = hammer(server.port, "/follow/swap-follow", RACE_SECONDS / 2)
    assert swapper.swaps > 10
    assert counts["bad"] == 0 and counts["broken"] == 0, counts
    assert set(counts) <= {"inside", "outside", "leaked", "404"}, counts
    no_traceback(server.output())


# --- zcio.asgi.open_static, what follow_symlink=True opens with ------------------------------


NOT_REAL_FILES = [
    "/proc/self/status",
    "/proc/self/environ",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/dev/zero",
    "/dev/null",
]


@pytest.mark.parametrize("path", NOT_REAL_FILES)
def test_open_static_refuses_what_is_not_a_real_file(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    with pytest.raises(zcio.asgi.NotARegularFileError, match="not a regular file"):
        zcio.asgi.open_static(path)


def test_open_static_opens_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    with zcio.asgi.open_static(tmp_path / "f") as opened:
        assert opened.file.read() == b"data" and opened.stat.st_size == 4
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(zcio.asgi.NotARegularFileError):
        zcio.asgi.open_static(tmp_path / "fifo")  # no writer: never waited for
    with pytest.raises(ValueError, match="null"):
        zcio.asgi.open_static(str(tmp_path / "a\0b"))
