"""The ``zcio`` command, run as a user runs it: ``zcio probe``, ``zcio serve``, and the
mistakes a user will make (one line, a non-zero status, no traceback).

``zcio serve`` runs on asyncio only (uvicorn has no trio loop): it is tested on the default
loop and on uvloop, with h11 and httptools, with two workers, and with every zero-copy method
turned off. What each server process moved, and how, comes from its own zcio counters (the
line it logs at shutdown).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from _cli import TIMEOUT, Command, moved, run, signal
from _support import BIG, SECRET, make_root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output


def test_help_lists_every_command() -> None:
    status, out = run(["--help"])
    assert status == 0
    for command in ("serve", "proxy", "probe", "bench"):
        assert f"    {command} " in out, out
    status, out = run(["--version"])
    assert status == 0 and out.startswith("zcio ")


# -- zcio probe ---------------------------------------------------------------------------------


def test_probe_reports_the_kernel_and_each_argument(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        status, out = run(["probe", str(path), str(fifo), f"127.0.0.1:{port}"])
    assert status == 0, out
    for name in ("sendfile", "splice", "tee", "copy_file_range"):
        assert f"  {name}" in out and "yes" in out.split(f"  {name}")[1].splitlines()[0], out
    assert "pipe-max-size" in out
    file_part = out.split(str(path))[1]
    assert "regular file, 1000 bytes" in file_part
    assert "to a TCP socket: sendfile" in file_part
    assert "pipe" in out.split(str(fifo))[1].splitlines()[0]
    assert "to a TCP socket: splice" in out.split(f"127.0.0.1:{port}:")[1]


def test_probe_explains_what_zcio_disable_turns_off(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    status, out = run(["probe", str(path)], env={"ZCIO_DISABLE": "sendfile"})
    assert status == 0, out
    assert "ZCIO_DISABLE     sendfile" in out
    assert "to a TCP socket: userspace (a copy)" in out
    assert "not sendfile: " in out and "ZCIO_DISABLE" in out.split("not sendfile: ")[1]


def test_probe_errors_are_one_line_each(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        status, out = run(["probe", str(tmp_path / "missing"), f"127.0.0.1:{port}", "nohost:x"])
    assert status == 1
    no_traceback(out)
    errors = [line for line in out.splitlines() if "error:" in line]
    assert len(errors) == 3, out
    assert "missing: No such file or directory" in errors[0]
    assert "Connection refused" in errors[1]
    assert "HOST:PORT" in errors[2]


# -- zcio serve ----------------------------------------------------------------------------------


@dataclass
class Served:
    command: Command
    root: Path
    port: int
    variant: str

    def get(
        self, path: str, method: str = "GET", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, headers=headers)  # the path goes out exactly as given
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


# variant -> (options, environment)
VARIANTS = {
    "asyncio-h11": (["--loop", "asyncio", "--http", "h11"], {}),
    "uvloop-httptools": (["--loop", "uvloop", "--http", "httptools"], {}),
    "two-workers": (["--loop", "asyncio", "--workers", "2"], {}),
    "fallback": (["--loop", "uvloop"], {"ZCIO_DISABLE": "all"}),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    options, env = VARIANTS[request.param]
    root = make_root(tmp_path_factory.mktemp("serve"))
    command = Command(["serve", str(root), "--port", "0", *options], env)
    try:
        port = command.port()
        command.wait_for("Application startup complete")
        yield Served(command, root, port, request.param)
    finally:
        command.kill()


def test_serve_announces_itself(served: Served) -> None:
    out = served.command.output
    assert f"zcio serve: {served.root} on http://127.0.0.1:{served.port}/" in out
    if served.variant == "fallback":
        assert "zero-copy: none, every byte is copied; off: sendfile (ZCIO_DISABLE)" in out
    else:
        assert "zero-copy: sendfile" in out


def test_serve_files_ranges_and_conditional_requests(served: Served) -> None:
    status, headers, body = served.get("/big.bin")
    assert status == 200 and sha(body) == sha(BIG)
    assert headers["content-length"] == str(len(BIG))
    status, headers, body = served.get("/big.bin", Range="bytes=1000-2000000")
    assert status == 206 and body == BIG[1000:2000001]
    assert headers["content-range"] == f"bytes 1000-2000000/{len(BIG)}"
    status, _, body = served.get("/big.bin", "HEAD")
    assert status == 200 and body == b""
    status, _, body = served.get("/big.bin", "GET", **{"If-None-Match": headers["etag"]})
    assert status == 304 and body == b""
    assert served.get("/alias.txt")[2] == b"hello\n"
    assert served.get("/sub/inner.txt")[2] == b"inner\n"
    assert served.get("/hello.txt", "POST")[0] == 405


def test_serve_lists_folders_without_hidden_entries(served: Served) -> None:
    status, headers, page = served.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    text = page.decode()
    for name in ("big.bin", "hello.txt", "sub/", "alias.txt"):
        assert f">{name}</a>" in text, text
    for name in (".hidden", ".git", "escape.txt", "up/"):  # hidden, or leading out of the root
        assert name not in text, text
    assert served.get("/sub")[0] == 307  # a folder without its slash is redirected
    assert ">inner.txt</a>" in served.get("/sub/")[2].decode()


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/escape.txt",
        "/up/secret.txt",
        "/up/",
        "/.hidden",
        "/.git/config",
        "/sub/../.hidden",
        "/%2ehidden",
        "/hello.txt%00",
        "/hello.txt%00.png",
        "/missing.txt",
    ],
)
def test_serve_refuses_every_way_out(served: Served, path: str) -> None:
    status, _, body = served.get(path)
    assert status == 404, (path, body)
    assert SECRET not in body and b"root:" not in body and b"hidden" not in body


def test_serve_counters_say_how_the_bytes_left(served: Served) -> None:
    """Last in the module for each server: it stops the server to read its counters."""
    for _ in range(3):
        assert sha(served.get("/big.bin")[2]) == sha(BIG)
    status = served.command.stop(signal.SIGINT)
    out = served.command.output
    assert status == 0, out
    no_traceback(out)
    workers = 2 if served.variant == "two-workers" else 1
    assert out.count("bytes moved:") == workers, out
    if served.variant == "fallback":
        assert moved(out, "sendfile") == 0
        assert moved(out, "userspace") >= 3 * len(BIG)
    else:
        assert moved(out, "sendfile") >= 3 * len(BIG)
        assert moved(out, "userspace") == 0


def test_serve_demo_folder() -> None:
    command = Command(["serve", "--demo", "--port", "0"])
    try:
        port = command.port()
        command.wait_for("Application startup complete")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", "/hello.txt")
        assert b"sendfile" in conn.getresponse().read()
        conn.close()
        assert command.stop() == 0
    finally:
        command.kill()


# -- mistakes -----------------------------------------------------------------------------------


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for args in (
            ["serve", str(tmp_path), "--port", port],
            ["proxy", "--listen", f"127.0.0.1:{port}", "--target", f"127.0.0.1:{port}"],
        ):
            status, out = run(args)
            assert status == 1, out
            no_traceback(out)
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out


def test_a_missing_directory(tmp_path: Path) -> None:
    status, out = run(["serve", str(tmp_path / "nowhere")])
    assert status == 2
    assert out.strip() == f"zcio serve: error: {tmp_path / 'nowhere'}: no such directory"
    (tmp_path / "file").write_bytes(b"")
    status, out = run(["serve", str(tmp_path / "file")])
    assert status == 2 and out.strip().endswith("not a directory")


def test_a_target_that_refuses() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        status, out = run(["proxy", "--listen", "127.0.0.1:0", "--target", f"127.0.0.1:{port}"])
    assert status == 1
    assert (
        out.strip()
        == f"zcio proxy: error: target 127.0.0.1:{port}: Connection refused (is it running?)"
    )


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("uvicorn", ["serve", "."], "serve"),
        ("starlette", ["serve", "."], "serve"),
        (
            "trio",
            ["proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1", "--backend", "trio"],
            "trio",
        ),
    ],
)
def test_a_missing_extra(module: str, args: list[str], extra: str) -> None:
    # The module hidden, as on a machine where the extra is not installed.
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        f"from zcio_cli import main; raise SystemExit(main({args!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 2
    no_traceback(proc.stderr)
    assert proc.stderr.strip().endswith(f"pip install 'zcio[{extra}]'")


def test_serve_with_an_unsupported_uvicorn() -> None:
    # zcio_uvicorn refuses the uvicorn (see test_zcio_uvicorn.py): one line naming the range.
    code = (
        "import uvicorn; uvicorn.__version__ = '0.1.0'\n"
        "from zcio_cli import main; raise SystemExit(main(['serve', '.']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 2
    no_traceback(proc.stderr)
    assert "zcio_uvicorn supports uvicorn>=" in proc.stderr
    assert "uvicorn 0.1.0 is installed" in proc.stderr


def test_bad_addresses() -> None:
    status, out = run(["proxy", "--listen", "8080", "--target", "127.0.0.1:1"])
    assert status == 2
    assert out.strip().startswith("zcio proxy: error: --listen must be HOST:PORT (e.g. ")
    assert out.strip().endswith("not '8080'")
