"""zcio_tornado in process: install()/uninstall(), the class, the handlers that call
``web.StaticFileHandler.get`` explicitly (as Jupyter's and Bokeh's do), and Tornado's own path,
byte for byte, where sendfile must not be used: a connection that is not a socket, gzip, an
overridden ``get_content``. Tornado runs on asyncio (its default loop, or uvloop).
"""

from __future__ import annotations

import asyncio
import builtins
import gzip
import threading
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import BIG, evict, make_root, sha

pytest.importorskip("tornado")

import tornado.httputil
import tornado.web
from tornado import web

import zcio
import zcio_tornado

TEXT = b"zero-copy, not zero-effort. " * 20000  # compressible, larger than a chunk


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = make_root(tmp_path)
    (root / "page.txt").write_bytes(TEXT)
    return root


@pytest.fixture
def installed() -> Iterator[None]:
    zcio_tornado.install()
    try:
        yield
    finally:
        zcio_tornado.uninstall()


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return lambda main: uvloop.run(main)
    return lambda main: asyncio.run(main)


class JupyterStyle(tornado.web.StaticFileHandler):
    """As jupyter_server's AuthenticatedFileHandler: its own get, calling Tornado's by name."""

    async def get(self, path: str, include_body: bool = True) -> None:
        self.set_header("X-Explicit", "1")
        await web.StaticFileHandler.get(self, path, include_body=include_body)


class OwnContent(tornado.web.StaticFileHandler):
    @classmethod
    def get_content(
        cls, abspath: str, start: int | None = None, end: int | None = None
    ) -> Generator[bytes, None, None]:
        for chunk in super().get_content(abspath, start, end):
            yield chunk.upper()


class NoLength(tornado.web.StaticFileHandler):
    """Takes Content-Length away as the headers go: the body must then be chunked."""

    def flush(self, include_footers: bool = False) -> Any:
        self.clear_header("Content-Length")
        return super().flush(include_footers)


def app(root: Path, **settings: Any) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(root)}),
            (r"/jupyter/(.*)", JupyterStyle, {"path": str(root)}),
            (r"/own/(.*)", OwnContent, {"path": str(root)}),
            (r"/class/(.*)", zcio_tornado.StaticFileHandler, {"path": str(root)}),
            (r"/nolength/(.*)", NoLength, {"path": str(root)}),
        ],
        **settings,
    )


async def fetch(
    application: tornado.web.Application, target: str, headers: dict[str, str] | None = None
) -> tuple[bytes, bytes]:
    """One GET on a real loopback socket: the response's head and body (by Content-Length)."""
    server = application.listen(0, "127.0.0.1")
    try:
        port = next(iter(server._sockets.values())).getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {target} HTTP/1.1", "Host: x", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        server.stop()
        await server.close_all_connections()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body."""
    out = bytearray()
    while True:
        size, _, body = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return bytes(out)
        out += body[:n]
        body = body[n + 2 :]


def without_date(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]


def test_install_and_uninstall_are_idempotent() -> None:
    stock = tornado.web.StaticFileHandler.get
    assert not zcio_tornado.installed()
    zcio_tornado.install()
    zcio_tornado.install()
    assert zcio_tornado.installed() and tornado.web.StaticFileHandler.get is not stock
    zcio_tornado.uninstall()
    zcio_tornado.uninstall()
    assert not zcio_tornado.installed() and tornado.web.StaticFileHandler.get is stock


@pytest.mark.parametrize("prefix", ["static", "jupyter"])
def test_every_handler_sends_by_sendfile_once_installed(
    root: Path, installed: None, run: Callable[[Coroutine[Any, Any, Any]], Any], prefix: str
) -> None:
    before = zcio.stats()
    head, body = run(fetch(app(root), f"/{prefix}/big.bin"))
    assert head.startswith(b"HTTP/1.1 200") and sha(body) == sha(BIG)
    assert (zcio.stats() - before).bytes("sendfile") == len(BIG)
    assert (b"X-Explicit: 1" in head) is (prefix == "jupyter")


def test_a_cold_file_is_sent_from_a_worker_thread(
    root: Path, installed: None, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    run(fetch(app(root), "/static/big.bin"))  # Tornado hashes the file once for its ETag
    if not evict(str(root / "big.bin")):
        pytest.skip("the kernel kept the file cached (tmpfs, or read again meanwhile)")
    before = zcio.stats()
    head, body = run(fetch(app(root), "/static/big.bin"))
    assert head.startswith(b"HTTP/1.1 200") and sha(body) == sha(BIG)
    moved = (zcio.stats() - before).methods["sendfile"]
    assert moved.bytes == len(BIG) and moved.offloaded > 0, moved


def test_the_class_sends_by_sendfile_without_install(
    root: Path, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    before = zcio.stats()
    head, body = run(fetch(app(root), "/class/big.bin", {"Range": "bytes=7-"}))
    assert head.startswith(b"HTTP/1.1 206") and sha(body) == sha(BIG[7:])
    assert (zcio.stats() - before).bytes("sendfile") == len(BIG) - 7
    before = zcio.stats()
    head, body = run(fetch(app(root), "/static/big.bin"))  # not installed: Tornado's
    assert sha(body) == sha(BIG) and (zcio.stats() - before).bytes("sendfile") == 0


def test_gzip_goes_tornados_way_byte_for_byte(
    root: Path, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    headers = {"Accept-Encoding": "gzip"}
    stock_head, stock_body = run(
        fetch(app(root, compress_response=True), "/static/page.txt", headers)
    )
    zcio_tornado.install()
    try:
        counts = zcio_tornado.counts()
        head, body = run(fetch(app(root, compress_response=True), "/static/page.txt", headers))
        assert zcio_tornado.counts()["thread"] == counts.get("thread", 0) + 1
        # A type gzip leaves alone goes by sendfile even with compress_response.
        before = zcio.stats()
        _, whole = run(fetch(app(root, compress_response=True), "/static/big.bin", headers))
        assert sha(whole) == sha(BIG) and (zcio.stats() - before).bytes("sendfile") == len(BIG)
    finally:
        zcio_tornado.uninstall()
    assert without_date(head) == without_date(stock_head)
    assert b"Content-Encoding: gzip" in head and b"Transfer-Encoding: chunked" in head
    body, stock_body = dechunk(body), dechunk(stock_body)
    assert gzip.decompress(body) == TEXT
    # The same compressed bytes, but for the gzip header's timestamp (bytes 4 to 8).
    assert body[:4] + body[8:] == stock_body[:4] + stock_body[8:]


def test_no_content_length_goes_tornados_way(
    root: Path, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    stock_head, stock_body = run(fetch(app(root), "/nolength/big.bin"))
    zcio_tornado.install()
    try:
        head, body = run(fetch(app(root), "/nolength/big.bin"))
    finally:
        zcio_tornado.uninstall()
    assert b"Transfer-Encoding: chunked" in head and dechunk(body) == BIG
    assert without_date(head) == without_date(stock_head) and body == stock_body


def test_own_get_content_is_tornados_get(
    root: Path, installed: None, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    counts = zcio_tornado.counts()
    before = zcio.stats()
    _, body = run(fetch(app(root), "/own/hello.txt"))
    assert body == b"HELLO\n"
    assert zcio_tornado.counts()["stock"] == counts.get("stock", 0) + 1
    assert (zcio.stats() - before).bytes("sendfile") == 0


class Recorder(tornado.httputil.HTTPConnection):
    """A connection that is not a socket (as tests mock one): it keeps what it is given."""

    def __init__(self) -> None:
        self.start_line: Any = None
        self.headers: Any = None
        self.body = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def set_close_callback(self, callback: Any) -> None:
        pass

    def _done(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def write_headers(self, start_line: Any, headers: Any, chunk: bytes | None = None) -> Any:
        self.start_line, self.headers = start_line, headers
        self.body += chunk or b""
        return self._done()

    def write(self, chunk: bytes) -> Any:
        self.body += chunk
        return self._done()

    def finish(self) -> None:
        self.done.set_result(None)


async def through_recorder(root: Path, target: str) -> Recorder:
    connection = Recorder()
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("GET", target, "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "x"}),
        connection=connection,
    )
    app(root)(request)
    await connection.done
    return connection


def test_not_a_socket_goes_tornados_way_with_reads_in_a_thread(
    root: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[[Coroutine[Any, Any, Any]], Any]
) -> None:
    stock = run(through_recorder(root, "/static/big.bin"))
    opened_on: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("big.bin"):
            opened_on.append(threading.current_thread().name)
        return real_open(file, *args, **kwargs)

    zcio_tornado.install()
    try:
        monkeypatch.setattr(builtins, "open", spy)
        counts = zcio_tornado.counts()
        ours = run(through_recorder(root, "/static/big.bin"))
        monkeypatch.undo()
    finally:
        zcio_tornado.uninstall()
    assert zcio_tornado.counts()["thread"] == counts.get("thread", 0) + 1
    assert opened_on and threading.main_thread().name not in opened_on, opened_on
    assert ours.start_line == stock.start_line and bytes(ours.body) == bytes(stock.body) == BIG
    # Date is the clock's, not the response's: the two may straddle a second.
    assert _without_date(ours.headers.get_all()) == _without_date(stock.headers.get_all())


def _without_date(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((name, value) for name, value in headers if name.lower() != "date")
