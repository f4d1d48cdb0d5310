"""zcio_django against stock Django, in process: the same requests give the same status,
headers and bytes, whichever extensions the server advertises; and the body goes the way it
should (zerocopysend, pathsend, chunks, or Django's own).

Django's handler runs on asyncio only (it calls ``asyncio.create_task``), so these tests run
on asyncio and uvloop, not trio. The live tests (real servers) are in
tests/test_zcio_django_live.py.
"""

from __future__ import annotations

import asyncio
import atexit
import gzip
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from _support import make_data, sha

pytest.importorskip("django")

ROOT = Path(tempfile.mkdtemp(prefix="zcio-django-"))
atexit.register(shutil.rmtree, ROOT, True)
os.environ["ZCIO_DJANGO_ROOT"] = str(ROOT)
sys.path.insert(0, str(Path(__file__).parent / "apps"))

import django_app  # noqa: E402
from django.contrib.staticfiles.finders import BaseFinder  # noqa: E402
from django.http import FileResponse  # noqa: E402

import zcio_django  # noqa: E402
from zcio_django import Way  # noqa: E402

pytestmark = pytest.mark.anyio

BIG = make_data(1024 * 1024 + 17, seed=71)
SMALL = b"hello, file\n" * 10
NAMES = {
    "big.bin": BIG,
    "small.txt": SMALL,
    "empty.txt": b"",
    "résumé ü.txt": SMALL,
    "app.js": b"console.log('zcio');\n" * 50,
}

ZEROCOPY: dict[str, Any] = {"http.response.zerocopysend": {}}
PATHSEND: dict[str, Any] = {"http.response.pathsend": {}}
BOTH = {**ZEROCOPY, **PATHSEND}


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Django's ASGI handler is asyncio's: asyncio and uvloop, never trio."""
    return ("asyncio", {"use_uvloop": True}) if request.param == "uvloop" else ("asyncio", {})


@pytest.fixture(autouse=True)
def _files() -> None:
    for name, data in NAMES.items():
        (ROOT / name).write_bytes(data)


@dataclass
class Reply:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    kinds: list[str] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


async def call(
    app: Any,
    url: str,
    *,
    method: str = "GET",
    extensions: dict[str, Any] | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Reply:
    """Run ``app`` for one request, as a server would, and resolve the zero-copy messages to
    the bytes they stand for (read while the file is still open, as the server sends it)."""
    path, _, query = url.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    reply = Reply()
    requested = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        reply.kinds.append(kind)
        if kind == "http.response.start":
            reply.status = message["status"]
            reply.headers = list(message["headers"])
        elif kind == "http.response.body":
            reply.body += message.get("body", b"")
        elif kind == "http.response.zerocopysend":
            file = message["file"]
            fd = file if isinstance(file, int) else file.fileno()
            reply.body += os.pread(fd, message["count"], message["offset"])
        elif kind == "http.response.pathsend":
            assert os.path.isabs(message["path"])
            reply.body += Path(message["path"]).read_bytes()
        else:
            raise AssertionError(kind)

    await asyncio.wait_for(app(scope, receive, send), 20)
    if method == "HEAD":
        reply.body.clear()  # what every server does with a HEAD response's body
    return reply


def q(name: str) -> str:
    from urllib.parse import quote

    return quote(str(ROOT / name))


CASES = [
    pytest.param(f"/file?path={q('big.bin')}", Way.ZEROCOPYSEND, id="whole"),
    pytest.param(f"/file?path={q('small.txt')}", Way.ZEROCOPYSEND, id="small"),
    pytest.param(f"/file?path={q('empty.txt')}", Way.ZEROCOPYSEND, id="empty"),
    pytest.param(
        f"/file?path={q('résumé ü.txt')}&attachment=1", Way.ZEROCOPYSEND, id="non-ascii-attachment"
    ),
    pytest.param(
        f"/file?path={q('big.bin')}&attachment=1&filename=r%C3%A9sum%C3%A9.bin",
        Way.ZEROCOPYSEND,
        id="filename",
    ),
    pytest.param(f"/file?path={q('big.bin')}&skip=1000", Way.ZEROCOPYSEND, id="position"),
    pytest.param(f"/file?path={q('big.bin')}&wrap=1", Way.ZEROCOPYSEND, id="django-file"),
    pytest.param("/bytes?size=300000", Way.DJANGO, id="bytesio"),
    pytest.param(f"/gzip?path={q('app.js')}", Way.ZEROCOPYSEND, id="gzip-not-accepted"),
    pytest.param("/serve/big.bin", Way.ZEROCOPYSEND, id="views-static-serve"),
    pytest.param("/static/app.js", Way.ZEROCOPYSEND, id="staticfiles"),
    pytest.param("/static/missing.js", Way.DJANGO, id="staticfiles-404"),
    pytest.param("/text", Way.DJANGO, id="ordinary"),
]


VARIANTS = [
    ("GET", None),
    ("GET", ZEROCOPY),
    ("GET", PATHSEND),
    ("GET", BOTH),
    ("HEAD", None),
    ("HEAD", BOTH),
]


@pytest.mark.parametrize("anyio_backend", [("asyncio", {})], ids=["asyncio"])
@pytest.mark.parametrize(("url", "way"), CASES)
async def test_same_reply_as_stock_django(url: str, way: Way) -> None:
    """GET and HEAD, with no extension, each, and both: same status, headers, bytes."""
    for method, extensions in VARIANTS:
        stock = await call(django_app.stock_application, url, method=method, extensions=extensions)
        ours = await call(django_app.zcio_application, url, method=method, extensions=extensions)
        where = (method, extensions)
        assert (ours.status, ours.headers) == (stock.status, stock.headers), where
        assert sha(bytes(ours.body)) == sha(bytes(stock.body)), where
        # The way it went.
        zc = "http.response.zerocopysend" in ours.kinds
        ps = "http.response.pathsend" in ours.kinds
        size = int(ours.header(b"content-length") or b"0")
        if method == "HEAD" and way is not Way.DJANGO:
            assert ours.kinds == ["http.response.start", "http.response.body"], where
        elif way is Way.DJANGO or size == 0:
            assert not zc and not ps, where
        elif extensions is not None and "http.response.zerocopysend" in extensions:
            assert zc and not ps, where
        elif extensions is PATHSEND and "skip" not in url and not url.startswith("/static/"):
            # (static files never go by pathsend: see DELIBERATE_DIFFERENCES)
            assert ps and not zc, where
        else:
            assert not zc and not ps, where
            # Bounded chunks, never the whole file in one message.
            assert ours.kinds.count("http.response.body") >= 2, where


OUTSIDE = Path(tempfile.mkdtemp(prefix="zcio-django-outside-"))
atexit.register(shutil.rmtree, OUTSIDE, True)
SECRET = b"outside the static folder\n"
(OUTSIDE / "secret.txt").write_bytes(SECRET)
(ROOT / "escape.txt").symlink_to(OUTSIDE / "secret.txt")
(ROOT / "alias.txt").symlink_to("small.txt")  # stays inside: followed, as Django does
(ROOT / "loop").symlink_to("loop")
(ROOT / "status").symlink_to("/proc/self/status")
os.mkfifo(ROOT / "fifo")

#: Where zcio_django's ASGIStaticFilesHandler answers differently from Django's on purpose
#: (issue 21), and why: request -> (stock status, zcio_django's, the reason). A stock status
#: of None: not asked of stock here (it would wait on a FIFO forever, holding a thread; or
#: read /dev/zero into memory: tests/test_hostile_static.py). Also different on purpose: a
#: static file never goes by pathsend (the server would open the name again, after the
#: lookup: the race itself); it goes in chunks of the file opened instead.
DELIBERATE_DIFFERENCES: dict[str, tuple[int | None, int, str]] = {
    "/static/escape.txt": (200, 404, "a symlink leading out of the folder (opt-in: "
                           "follow_symlink=True)"),
    "/static/status": (500, 404, "a symlink to /proc: leads out (and /proc's sizes lie: "
                       "stock's FileResponse fails to seek it, a 500)"),
    "/static/fifo": (None, 404, "a FIFO: never opened to wait, never read"),
    "/static/../secret.txt": (500, 404, "a path leading out (SuspiciousFileOperation, "
                              "a traceback, for stock): a name that leads nowhere"),
    "/static/%2e%2e/%2e%2e/etc/passwd": (500, 404, "the same, spelt otherwise"),
}  # fmt: skip


@pytest.mark.parametrize("anyio_backend", [("asyncio", {})], ids=["asyncio"])
@pytest.mark.parametrize("url", list(DELIBERATE_DIFFERENCES))
async def test_deliberate_differences(url: str) -> None:
    """Each listed request: stock's answer is still the one listed (when it can be asked)
    and zcio_django's is Django's own 404 page, whatever the extensions offered."""
    from urllib.parse import unquote

    stock_status, ours_status, _ = DELIBERATE_DIFFERENCES[url]
    not_found = await call(django_app.stock_application, "/static/missing.js")
    for method, extensions in VARIANTS:
        if stock_status is not None:
            try:
                stock = await call(
                    django_app.stock_application, unquote(url), method=method, extensions=extensions
                )
                status = stock.status
            except Exception:
                status = 500
            assert status == stock_status, (method, extensions)
        ours = await call(
            django_app.zcio_application, unquote(url), method=method, extensions=extensions
        )
        assert (ours.status, ours.headers) == (ours_status, not_found.headers)
        assert SECRET not in ours.body and b"VmRSS" not in ours.body


@pytest.mark.parametrize("anyio_backend", [("asyncio", {})], ids=["asyncio"])
async def test_symlinks_inside_and_the_opt_in(tmp_path: Path) -> None:
    """A symlink that stays inside is served as stock serves it; ``follow_symlink=True``
    follows one out, as stock does."""
    for url in ("/static/alias.txt",):
        stock = await call(django_app.stock_application, url, extensions=BOTH)
        ours = await call(django_app.zcio_application, url, extensions=BOTH)
        assert (ours.status, ours.headers, ours.body) == (stock.status, stock.headers, stock.body)
    follow = zcio_django.ASGIStaticFilesHandler(
        zcio_django.get_asgi_application(), follow_symlink=True
    )
    for url in ("/static/escape.txt", "/static/small.txt"):
        stock = await call(django_app.stock_application, url, extensions=BOTH)
        ours = await call(follow, url, extensions=BOTH)
        assert (ours.status, ours.headers, ours.body) == (stock.status, stock.headers, stock.body)
        assert "http.response.zerocopysend" in ours.kinds
    assert (await call(follow, "/static/status")).status == 404
    assert (await call(follow, "/static/fifo")).status == 404


class OutsideFinder(BaseFinder):
    """A finder of one's own (not Django's classes): asked for its path as Django asks it."""

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        return str(OUTSIDE / path) if path in ("secret.txt", "fifo") else []

    def list(self, ignore_patterns: Any) -> Any:
        return iter(())


@pytest.mark.parametrize("anyio_backend", [("asyncio", {})], ids=["asyncio"])
async def test_a_finder_of_ones_own_is_asked_as_django_asks_it() -> None:
    """Its path is opened by name (not contained: the finder decides where files are), as
    Django opens it, but only a regular file is served."""
    from django.test import override_settings

    if not (OUTSIDE / "fifo").exists():
        os.mkfifo(OUTSIDE / "fifo")
    with override_settings(STATICFILES_FINDERS=[f"{__name__}.OutsideFinder"]):
        stock = await call(django_app.stock_application, "/static/secret.txt", extensions=BOTH)
        ours = await call(django_app.zcio_application, "/static/secret.txt", extensions=BOTH)
        assert (ours.status, ours.headers, ours.body) == (stock.status, stock.headers, stock.body)
        assert ours.body == SECRET
        assert (await call(django_app.zcio_application, "/static/fifo")).status == 404
        assert (await call(django_app.zcio_application, "/static/small.txt")).status == 404


async def test_gzip_middleware_rewrites_the_body_as_on_stock() -> None:
    url = f"/gzip?path={q('app.js')}"
    accept = ((b"accept-encoding", b"gzip"),)
    stock = await call(django_app.stock_application, url, extensions=BOTH, headers=accept)
    ours = await call(django_app.zcio_application, url, extensions=BOTH, headers=accept)
    assert ours.header(b"content-encoding") == b"gzip"
    assert "http.response.zerocopysend" not in ours.kinds
    # GZipMiddleware pads with random bytes (BREACH): compare what the bytes decompress to.
    assert ours.status == stock.status
    assert {k for k, _ in ours.headers} == {k for k, _ in stock.headers}
    assert gzip.decompress(bytes(ours.body)) == gzip.decompress(bytes(stock.body))
    assert gzip.decompress(bytes(ours.body)) == NAMES["app.js"]


async def test_pathsend_only_for_the_whole_file() -> None:
    whole = await call(
        django_app.zcio_application, f"/file?path={q('big.bin')}", extensions=PATHSEND
    )
    assert "http.response.pathsend" in whole.kinds
    part = await call(
        django_app.zcio_application, f"/file?path={q('big.bin')}&skip=5", extensions=PATHSEND
    )
    assert "http.response.pathsend" not in part.kinds
    assert bytes(part.body) == BIG[5:]


async def test_chunks_are_bounded() -> None:
    reply = await call(django_app.zcio_application, f"/file?path={q('big.bin')}")
    bodies = reply.kinds.count("http.response.body")
    chunk = zcio_django.ASGIHandler.file_chunk_size
    assert bodies == -(-len(BIG) // chunk) + 1  # every chunk full but the last, then the end
    assert bytes(reply.body) == BIG


async def test_file_closed_once_after_the_body(tmp_path: Path) -> None:
    """request_finished fires, and the file is closed once, after its last message."""
    from django.core.signals import request_finished

    data = tmp_path / "d.bin"
    data.write_bytes(SMALL)
    events: list[str] = []

    class CountingFile(io.FileIO):
        def close(self) -> None:
            if not self.closed:
                events.append("close")
            super().close()

    def finished(**_: Any) -> None:
        events.append("finished")

    handler = zcio_django.ASGIHandler()

    async def view_response(request: Any) -> FileResponse:
        return FileResponse(io.BufferedReader(CountingFile(str(data), "r")))

    handler.get_response_async = view_response  # type: ignore[method-assign]
    request_finished.connect(finished)
    try:
        reply = Reply()

        async def send(message: Mapping[str, Any]) -> None:
            events.append(message["type"])
            if message["type"] == "http.response.zerocopysend":
                reply.body += os.pread(message["file"].fileno(), message["count"], 0)

        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request"}
            await asyncio.Event().wait()
            raise AssertionError

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "query_string": b"",
            "headers": [],
            "extensions": ZEROCOPY,
        }
        await asyncio.wait_for(handler(scope, receive, send), 20)
    finally:
        request_finished.disconnect(finished)
    assert bytes(reply.body) == SMALL
    # Django's response.close(): the file, then request_finished; once, after the body.
    assert events == ["http.response.start", "http.response.zerocopysend", "close", "finished"]


async def test_disconnect_during_chunks_stops_and_closes(tmp_path: Path) -> None:
    """``http.disconnect`` while the body goes in chunks: Django cancels the send, the file is
    closed, nothing is left open (the fd check of conftest)."""
    sent = 0
    gone = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request"}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += len(message.get("body", b""))
            if sent >= 512 * 1024:
                gone.set()
                await asyncio.sleep(1)  # the client is slow, then it is gone

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/file",
        "query_string": f"path={q('big.bin')}".encode(),
        "headers": [],
    }
    await asyncio.wait_for(django_app.zcio_application(scope, receive, send), 20)
    assert 512 * 1024 <= sent < len(BIG)


async def test_shrinking_file_in_chunks_ends_short_as_stock() -> None:
    for app in (django_app.stock_application, django_app.zcio_application):
        (ROOT / "shrink.bin").write_bytes(BIG)
        reply = await call(app, f"/shrink?path={q('shrink.bin')}")
        assert reply.header(b"content-length") == str(len(BIG)).encode()
        assert bytes(reply.body) == BIG[: len(BIG) // 2]


def test_choose_table() -> None:
    raw: Any = None
    body = zcio_django.FileBody(file=raw, fd=0, offset=0, count=10, size=10)
    part = zcio_django.FileBody(file=raw, fd=0, offset=3, count=7, size=10)
    get = {"type": "http", "method": "GET"}
    assert zcio_django.choose(get, None) is Way.DJANGO
    assert zcio_django.choose({"type": "websocket"}, body) is Way.DJANGO
    assert zcio_django.choose({**get, "method": "HEAD"}, body) is Way.HEADERS_ONLY
    assert zcio_django.choose(get, body) is Way.CHUNKS
    assert zcio_django.choose({**get, "extensions": BOTH}, body) is Way.ZEROCOPYSEND
    assert zcio_django.choose({**get, "extensions": PATHSEND}, body) is Way.PATHSEND
    assert zcio_django.choose({**get, "extensions": PATHSEND}, part) is Way.CHUNKS


def test_file_body_refuses_what_is_not_a_plain_file(tmp_path: Path) -> None:
    data = tmp_path / "f.bin"
    data.write_bytes(SMALL)
    with open(data, "rb") as f:
        body = zcio_django.file_body(FileResponse(f))
        assert body is not None and (body.offset, body.count) == (0, len(SMALL))
        assert body.whole and body.same_file_path() == str(data)
    assert zcio_django.file_body(FileResponse(io.BytesIO(SMALL))) is None
    with tempfile.SpooledTemporaryFile() as spooled:
        spooled.write(SMALL)
        spooled.seek(0)
        assert zcio_django.file_body(FileResponse(spooled)) is None
        assert not spooled._rolled  # type: ignore[attr-defined]  # fileno() was never called
    r, w = os.pipe()
    with open(r, "rb") as pipe:
        os.close(w)
        assert zcio_django.file_body(FileResponse(pipe)) is None
    with open(data, encoding="latin-1") as text:  # text mode: Django never ends reading it
        assert zcio_django.file_body(FileResponse(text)) is None
    with open(data, "rb") as f:
        response = FileResponse(f)
        response["Content-Length"] = "12, 12"
        assert zcio_django.file_body(response) is None
    with open(data, "rb") as f:
        renamed = FileResponse(f)
        os.rename(data, tmp_path / "g.bin")
        body = zcio_django.file_body(renamed)
        assert body is not None and body.whole
        assert body.same_file_path() is None  # the name no longer leads to it
