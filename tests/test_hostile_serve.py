"""Hostile input against ``zcio serve`` and ``zcio_starlette.StaticFiles``: a local process that
races symlinks and FIFOs into the served folder, and names chosen to break things.

Bounded: each race runs for a few seconds and stops by itself; loopback only.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import zcio
from _cli import TIMEOUT, Command
from _support import INSIDE, SECRET, Swapper, make_root

RACE_SECONDS = 3.0


def no_traceback(output: str) -> None:
    """The server logged no error (its log shows the traceback when it did)."""
    at = output.find("Traceback")
    assert at < 0, output[at : at + 3000]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Command, Path, int]]:
    root = make_root(tmp_path_factory.mktemp("hostile"))
    # --cache-ttl 0: the open-file cache on, re-resolving the name at every request, so that
    # every request races the swapper (with a longer ttl most would be answered from the cache).
    args = ["serve", str(root), "--port", "0", "--http", request.param, "--cache-ttl", "0"]
    command = Command(args)
    try:
        port = command.port()
        command.wait_for("Application startup complete")
        yield command, root, port
    finally:
        command.kill()


def _hammer(port: int, path: str, seconds: float) -> dict[str, int]:
    """GET ``path`` over keep-alive connections for ``seconds``: counts of what came back."""
    counts = {"inside": 0, "leaked": 0, "404": 0, "other": 0}
    deadline = time.monotonic() + seconds
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                counts["other"] += 1
                continue
            if SECRET in body or b"root:" in body:
                counts["leaked"] += 1
            elif response.status == 200 and body == INSIDE:
                counts["inside"] += 1
            elif response.status == 404:
                counts["404"] += 1
            else:
                counts["other"] += 1
    finally:
        conn.close()
    return counts


@pytest.mark.parametrize("intruder", ["symlink", "symlink-dir"])
def test_a_symlink_race_never_serves_a_byte_from_outside(
    server: tuple[Command, Path, int], intruder: str
) -> None:
    """The name (or, for symlink-dir, a folder on the way to it) is swapped atomically for a
    symlink leading out, thousands of times, while a client asks for it: every answer is the
    file inside, or a 404."""
    command, root, port = server
    name = "swapdir" if intruder == "symlink-dir" else "swap"
    path = f"/{name}/secret.txt" if intruder == "symlink-dir" else f"/{name}"
    with Swapper(root, name, intruder) as swapper:
        counts = _hammer(port, path, RACE_SECONDS)
    assert swapper.swaps > 10
    assert counts["leaked"] == 0, counts
    assert counts["inside"] > 0, counts  # the race was run on a name that is served
    assert counts["other"] == 0, counts
    no_traceback(command.output)


def test_a_fifo_swapped_in_is_a_404_never_a_hang(server: tuple[Command, Path, int]) -> None:
    command, root, port = server
    with Swapper(root, "swapfifo", "fifo"):
        counts = _hammer(port, "/swapfifo", RACE_SECONDS)
    assert counts["leaked"] == 0
    assert counts["inside"] > 0 and counts["404"] > 0, counts
    assert counts["other"] == 0, counts
    no_traceback(command.output)


@pytest.mark.parametrize(
    "name",
    ["x" * 300, "loop", "loop/inner", "a/" * 2100 + "b"],
    ids=["long-name", "symlink-loop", "through-a-loop", "too-deep"],
)
def test_names_any_client_can_choose_are_404s(server: tuple[Command, Path, int], name: str) -> None:
    command, root, port = server
    if not (root / "loop").is_symlink():
        (root / "loop").symlink_to("loop")
    before = len(command.output)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/" + name)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status in (404, 414), response.status
    no_traceback(command.output[before:])


def test_a_listing_shows_a_name_that_is_not_utf8(server: tuple[Command, Path, int]) -> None:
    command, root, port = server
    folder = root / "odd"
    folder.mkdir(exist_ok=True)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:
        f.write(b"x")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/odd/")
        response = conn.getresponse()
        page = response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert b"caf\\xe9.txt" in page  # shown escaped
    assert b'href="caf%E9.txt"' in page  # linked by its bytes
    no_traceback(command.output)


# -- zcio.Folder, the mechanism ----------------------------------------------------------------


@pytest.fixture(params=["openat2", "checked"])
def folder(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[zcio.Folder]:
    """A folder made by make_root, opened with openat2 or with the check made afterwards
    (what a kernel without openat2 gets)."""
    if request.param == "checked":
        from zcio import _open

        monkeypatch.setattr(_open, "available", lambda: False)
    root = make_root(tmp_path)
    (root / "fifo").touch()
    (root / "fifo").unlink()
    os.mkfifo(root / "fifo")
    with zcio.Folder(root) as opened:
        yield opened


def test_folder_opens_regular_files_beneath_it(folder: zcio.Folder) -> None:
    file, st = folder.open("sub/inner.txt")
    with file:
        assert file.read() == b"inner\n"
        assert stat.S_ISREG(st.st_mode)
        assert os.get_blocking(file.fileno())


@pytest.mark.parametrize("name", ["escape.txt", "up/secret.txt", "../secret.txt", "/etc/passwd"])
def test_folder_refuses_every_way_out(folder: zcio.Folder, name: str) -> None:
    with pytest.raises(zcio.OutsideFolder) as caught:
        folder.open(name)
    assert isinstance(caught.value, FileNotFoundError)


def test_folder_symlinks_inside_only_when_asked(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with zcio.Folder(root) as strict, zcio.Folder(root, follow_symlinks=True) as lenient:
        with pytest.raises(zcio.OutsideFolder):
            strict.open("alias.txt")
        file, _ = lenient.open("alias.txt")
        with file:
            assert file.read() == b"hello\n"
        with pytest.raises(zcio.OutsideFolder):
            lenient.open("escape.txt")


def test_folder_never_waits_on_a_fifo(folder: zcio.Folder) -> None:
    with pytest.raises(FileNotFoundError):
        folder.open("fifo")  # no writer: an ordinary open would wait forever
    with pytest.raises(IsADirectoryError):
        folder.open("sub")


def test_folder_errors_are_the_open_errors(folder: zcio.Folder) -> None:
    with pytest.raises(FileNotFoundError):
        folder.open("missing")
    with pytest.raises(OSError, match="too long") as caught:
        folder.open("x" * 300)
    assert caught.value.errno == errno.ENAMETOOLONG
    with pytest.raises(zcio.OutsideFolder):
        folder.open("a\0b")
    folder.close()
    folder.close()
    with pytest.raises(ValueError, match="closed"):
        folder.open("hello.txt")


def test_folder_relative_asks_nothing_of_the_system(tmp_path: Path) -> None:
    with zcio.Folder(tmp_path) as folder:
        assert folder.relative(tmp_path / "a" / "b") == "a/b"
        assert folder.relative(tmp_path) == "."
        assert folder.relative(tmp_path.parent / "x") is None
        assert folder.relative(str(tmp_path) + "x/y") is None
        assert folder.relative("relative/path") is None


# -- zcio_uvicorn's pathsend -----------------------------------------------------------------


@pytest.mark.parametrize("http", ["zcio_uvicorn:H11Protocol", "zcio_uvicorn:HttpToolsProtocol"])
def test_pathsend_of_a_fifo_never_waits(tmp_path: Path, http: str) -> None:
    """An app hands the server a path that is now a FIFO (no writer): the server's open does
    not wait for one; the response fails at once and the server goes on serving."""
    import httpx

    from test_zcio_uvicorn import start, stop

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    server = start("--http", http)
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as c:
                c.sendall(
                    f"GET /file?path={fifo}&how=pathsend HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                )
                while c.recv(1 << 16):  # ends: the server closes, it does not hang
                    pass
        assert httpx.get(server.url + "/text", timeout=TIMEOUT).status_code == 200
    finally:
        err = stop(server)
    assert "not a regular file" in err
