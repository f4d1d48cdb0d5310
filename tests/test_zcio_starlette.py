"""zcio_starlette: the same bytes as Starlette's FileResponse and StaticFiles, with every file
byte handed to the server by ``http.response.zerocopysend`` where the server and the middleware
allow it.

A small ASGI "server" here calls the app with a scope advertising the extensions under test and
assembles the response body from every message kind: ``zerocopysend`` slices are read back with
``os.pread`` from the file object the app handed over (so a closed file fails the read), and
``pathsend`` reads the path. Every comparison runs stock Starlette and zcio_starlette on the same
request with the same extensions advertised.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import starlette
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware, GZipResponder
from starlette.requests import Request
from starlette.responses import FileResponse as StockFileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles as StockStaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import zcio
import zcio_starlette
from _support import INSIDE, SECRET, Swapper, backend, make_data, make_root
from zcio_starlette import FileResponse, NoZeroCopyMiddleware, StaticFiles, why_not_zerocopy

pytestmark = pytest.mark.anyio

ZC = "http.response.zerocopysend"
PS = "http.response.pathsend"
START = "http.response.start"
BODY = "http.response.body"

# Every set of extensions a server may advertise; stock and ours are compared under each.
EXTENSION_SETS: list[tuple[str, ...]] = [(ZC, PS), (ZC,), (PS,), ()]


@pytest.fixture(autouse=True)
def _uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """This file checks the uncached responses (each opens and closes its file); the open-file
    cache has its own differential and staleness tests (tests/test_file_cache*.py)."""
    monkeypatch.setattr(FileResponse, "cache", False)
    monkeypatch.setattr(StaticFiles, "cache", False)


SIZE = 3 * 64 * 1024 + 7  # a few of Starlette's 64 KiB chunks, and a short last one
DATA = make_data(SIZE, seed=77)


# --- the fake server ---------------------------------------------------------------------


@dataclass
class Reply:
    """What a client would have received, and how it was sent."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    kinds: list[str] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # the count of each zerocopysend
    short: bool = False  # a zerocopysend asked for more bytes than the file had
    complete: bool = False

    def count(self, kind: str) -> int:
        return self.kinds.count(kind)

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    def normalised(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body with a multipart boundary (random) replaced."""
        headers, body = self.headers, bytes(self.body)
        content_type = self.header(b"content-type") or b""
        if b"boundary=" in content_type:
            boundary = content_type.split(b"boundary=")[1]
            headers = [(k, v.replace(boundary, b"BOUNDARY")) for k, v in headers]
            body = body.replace(boundary, b"BOUNDARY").replace(boundary.swapcase(), b"BOUNDARY")
        return self.status, headers, body


def read_slice(file: Any, offset: int | None, count: int | None) -> tuple[bytes, bool]:
    """The bytes a server would sendfile; fails if the app already closed the file."""
    fd = file if isinstance(file, int) else file.fileno()
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    if count is None:
        count = max(os.fstat(fd).st_size - offset, 0)
    out = bytearray()
    while len(out) < count:
        chunk = os.pread(fd, count - len(out), offset + len(out))
        if not chunk:
            return bytes(out), True
        out += chunk
    return bytes(out), False


async def call(
    app: ASGIApp,
    *,
    method: str = "GET",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    extensions: Iterable[str] = (ZC, PS),
    spec: str = "2.3",
    send_hook: Callable[[Message], Awaitable[None]] | None = None,
    receive_hook: Callable[[], Awaitable[Message]] | None = None,
) -> Reply:
    """Call ``app`` as a server advertising ``extensions`` would, and assemble the reply."""
    extensions = tuple(extensions)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {name: {} for name in extensions},
    }
    reply = Reply()
    done = anyio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if receive_hook is not None:
            return await receive_hook()
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        kind = message["type"]
        assert not reply.complete, f"{kind} after the response was complete"
        reply.kinds.append(kind)
        if send_hook is not None:
            await send_hook(message)
        if kind == START:
            assert reply.status == 0, "a second http.response.start"
            reply.status = message["status"]
            reply.headers = list(message["headers"])
            return
        assert reply.status, f"{kind} before http.response.start"
        if kind == BODY:
            reply.body += message.get("body", b"")
            more = message.get("more_body", False)
        elif kind == ZC:
            assert ZC in extensions, "zerocopysend to a server that did not advertise it"
            reply.files.append(message["file"])
            reply.counts.append(message["count"])
            data, short = read_slice(message["file"], message.get("offset"), message["count"])
            reply.body += data
            reply.short |= short
            more = message.get("more_body", False)
        elif kind == PS:
            assert PS in extensions, "pathsend to a server that did not advertise it"
            assert reply.count(BODY) == 0, "pathsend mixed with body messages"
            reply.body += Path(message["path"]).read_bytes()
            more = False
        else:
            raise AssertionError(f"unexpected message {message}")
        if not more:
            reply.complete = True
            done.set()

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return reply


def data_file(tmp_path: Path, data: bytes = DATA, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def stat_headers(path: Path) -> tuple[str, str]:
    """The ETag and Last-Modified Starlette gives ``path``."""
    headers = StockFileResponse(path, stat_result=os.stat(path)).headers
    return headers["etag"], headers["last-modified"]


async def compare(
    make_app: Callable[[type[StockFileResponse]], ASGIApp],
    extensions: Iterable[str],
    **request: Any,
) -> tuple[Reply, Reply]:
    """Stock and ours, same request, same extensions: the same status, headers and body."""
    stock = await call(make_app(StockFileResponse), extensions=extensions, **request)
    ours = await call(make_app(FileResponse), extensions=extensions, **request)
    assert ours.normalised() == stock.normalised()
    assert stock.complete and ours.complete
    assert all(file.closed for file in ours.files), "a file was left open"
    assert not ours.short
    return stock, ours


# --- FileResponse against Starlette's ----------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    parts: int = 1  # zerocopysend messages expected when the server advertises it
    status: int = 200


STARLETTE = tuple(int(part) for part in starlette.__version__.split(".")[:2])
RANGES_101 = ",".join(f"{i}-{i}" for i in range(0, 202, 2))
CASES = [
    Case("whole"),
    Case("range-first-bytes", {"range": "bytes=0-99"}, status=206),
    Case("range-across-chunks", {"range": "bytes=70000-140000"}, status=206),
    Case("range-open-ended", {"range": "bytes=100-"}, status=206),
    Case("range-suffix", {"range": "bytes=-100"}, status=206),
    Case("range-suffix-larger-than-file", {"range": f"bytes=-{2 * SIZE}"}, status=206),
    Case("range-one-byte", {"range": "bytes=5-5"}, status=206),
    Case("range-end-past-eof", {"range": f"bytes=10-{SIZE + 100}"}, status=206),
    Case("range-last-byte", {"range": f"bytes={SIZE - 1}-"}, status=206),
    Case("multipart", {"range": "bytes=0-9,20-29,150000-"}, parts=3, status=206),
    Case("multipart-unsorted", {"range": "bytes=100-200, 0-50"}, parts=2, status=206),
    Case("multipart-merged-into-one", {"range": "bytes=0-100, 50-200"}, status=206),
    Case("multipart-ignores-junk", {"range": "bytes=abc-def, - ,0-50, 60"}, status=206),
    Case("too-many-ranges", {"range": f"bytes={RANGES_101}"}),
    Case("if-range-etag", {"range": "bytes=0-9", "if-range": "{etag}"}, status=206),
    Case("if-range-date", {"range": "bytes=0-9", "if-range": "{last_modified}"}, status=206),
    Case("if-range-stale", {"range": "bytes=0-9", "if-range": '"stale"'}),
    Case("if-range-weak", {"range": "bytes=0-9", "if-range": "W/{etag}"}),
    Case("416", {"range": f"bytes={SIZE + 1}-"}, parts=0, status=416),
    Case("malformed-no-equals", {"range": "bytes: 0-1"}, parts=0, status=400),
    Case("malformed-unit", {"range": "items=0-1"}, parts=0, status=400),
    Case("malformed-empty", {"range": "bytes="}, parts=0, status=400),
    Case("malformed-inverted", {"range": "bytes=5-4"}, parts=0, status=400),
    Case("head", method="HEAD", parts=0),
    Case("head-range", {"range": "bytes=0-9"}, method="HEAD", parts=0, status=206),
    Case("head-multipart", {"range": "bytes=0-9,20-29"}, method="HEAD", parts=0, status=206),
    # Starlette 1.10 ignores Range on other methods; 1.8 and 1.9 answer it (zcio follows both).
    Case(
        "post-ignores-range",
        {"range": "bytes=0-9"},
        method="POST",
        parts=1,
        status=200 if STARLETTE >= (1, 10) else 206,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_same_reply_as_starlette(tmp_path: Path, case: Case) -> None:
    path = data_file(tmp_path)
    etag, last_modified = stat_headers(path)
    headers = {
        k: v.replace("{etag}", etag).replace("{last_modified}", last_modified)
        for k, v in case.headers.items()
    }
    for extensions in EXTENSION_SETS:
        stock, ours = await compare(
            lambda cls: cls(path), extensions, method=case.method, headers=headers
        )
        assert ours.status == case.status
        if ZC in extensions:
            # Every file byte by zerocopysend; boundaries and error bodies as body messages.
            assert ours.count(ZC) == case.parts
            assert ours.count(PS) == 0
            if case.parts:
                assert ours.count(BODY) == (case.parts + 1 if case.parts > 1 else 0)
            assert len({id(file) for file in ours.files}) <= 1, "one open file per response"
        else:
            assert ours.kinds == stock.kinds, "without zerocopysend, Starlette's own messages"


@pytest.mark.parametrize(
    "size", [0, 1, 64 * 1024, 2 * 64 * 1024], ids=["empty", "one-byte", "one-chunk", "two-chunks"]
)
async def test_sizes(tmp_path: Path, size: int) -> None:
    path = data_file(tmp_path, make_data(size, seed=size))
    for extensions in EXTENSION_SETS:
        _, ours = await compare(lambda cls: cls(path), extensions)
        if ZC in extensions:
            assert ours.count(ZC) == (1 if size else 0)
            assert ours.kinds == [START, ZC] if size else [START, BODY]


CONSTRUCTORS: list[dict[str, Any]] = [
    {"filename": "example.png"},
    {"filename": "你好.txt", "content_disposition_type": "inline"},
    {"media_type": "image/jpeg", "headers": {"cache-control": "no-store", "etag": '"mine"'}},
    {"status_code": 404},
    {"background": "task"},
]


@pytest.mark.parametrize("kwargs", CONSTRUCTORS, ids=lambda kw: ",".join(kw))
@pytest.mark.parametrize("request_headers", [{}, {"range": "bytes=0-9"}, {"if-range": '"mine"'}])
async def test_constructor_arguments(
    tmp_path: Path, kwargs: dict[str, Any], request_headers: dict[str, str]
) -> None:
    path = data_file(tmp_path)
    ran: list[str] = []

    def make(cls: type[StockFileResponse]) -> StockFileResponse:
        extra = dict(kwargs)
        if "background" in extra:
            extra["background"] = BackgroundTask(ran.append, cls.__module__)
        return cls(path, **extra)

    _, ours = await compare(make, (ZC, PS), headers=request_headers)
    assert ours.count(ZC) == 1
    if "background" in kwargs:
        assert ran == ["starlette.responses", "zcio_starlette"]


async def test_stat_result_given(tmp_path: Path) -> None:
    """As StaticFiles calls it: headers from the given stat, no second stat."""
    path = data_file(tmp_path)
    st = os.stat(path)
    for headers in ({}, {"range": "bytes=5-20"}, {"range": "bytes=0-1,5-6"}):
        _, ours = await compare(lambda cls: cls(path, stat_result=st), (ZC,), headers=headers)
        assert ours.count(ZC) >= 1


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"ETag": '"mine"'},
        {"Last-Modified": "Thu, 01 Jan 1970 00:00:00 GMT", "content-length": "3"},
    ],
)
def test_stat_headers_as_starlette(tmp_path: Path, given: dict[str, str]) -> None:
    """The memoised stat headers are Starlette's, for sizes and mtimes (fractional, old,
    future) that differ in one field at a time, with headers the app set left alone."""
    path = data_file(tmp_path)
    real = os.stat(path)
    for size, mtime in [
        (real.st_size, real.st_mtime),
        (real.st_size + 1, real.st_mtime),
        (real.st_size, real.st_mtime + 0.5),
        (0, 0.0),
        (1 << 40, 4102444800.25),
        (real.st_size, real.st_mtime),  # again: from the memo
    ]:
        fields = list(real)
        fields[6], fields[8] = size, int(mtime)
        st = os.stat_result((*fields, real.st_atime, mtime, real.st_ctime))
        ours = FileResponse(path, headers=given, stat_result=st)
        stock = StockFileResponse(path, headers=given, stat_result=st)
        assert ours.raw_headers == stock.raw_headers


async def test_same_response_object_called_twice(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    response = FileResponse(path)
    first = await call(response, headers={"range": "bytes=0-100"})
    second = await call(response)
    assert first.status == 206 and bytes(first.body) == DATA[:101]
    assert second.status == 200 and bytes(second.body) == DATA
    assert second.header(b"content-length") == str(SIZE).encode()


async def test_spec_versions(tmp_path: Path) -> None:
    """With and without the disconnect listener Starlette runs before ASGI 2.4."""
    path = data_file(tmp_path)
    for spec in ("2.0", "2.3", "2.4", "2.5"):
        for headers in ({}, {"range": "bytes=0-9,100-"}):
            stock = await call(StockFileResponse(path), spec=spec, headers=headers, extensions=())
            ours = await call(FileResponse(path), spec=spec, headers=headers)
            assert ours.normalised() == stock.normalised()
            assert ours.count(ZC) >= 1


async def test_websocket_denial_is_starlettes(tmp_path: Path) -> None:
    path = data_file(tmp_path, b"denied")
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("not called")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "headers": [],
        "extensions": {ZC: {}, "websocket.http.response": {}},
    }
    await FileResponse(path, status_code=403)(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.http.response.start"] + [
        "websocket.http.response.body"
    ] * (len(sent) - 1)
    assert b"".join(m.get("body", b"") for m in sent) == b"denied"


# --- errors, cancellation, disconnects ---------------------------------------------------


async def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        await call(FileResponse(tmp_path / "missing.txt"))


async def test_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="is not a file"):
        await call(FileResponse(tmp_path))


async def test_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RuntimeError, match="is not a file"):
        await call(FileResponse(fifo))


async def test_given_stat_then_file_removed(tmp_path: Path) -> None:
    """Starlette raises FileNotFoundError after the headers went out; we raise it before."""
    path = data_file(tmp_path)
    response = FileResponse(path, stat_result=os.stat(path))
    path.unlink()
    kinds: list[str] = []

    async def record(message: Message) -> None:
        kinds.append(message["type"])

    with pytest.raises(FileNotFoundError):
        await call(response, send_hook=record)
    assert kinds == []


async def test_given_stat_then_not_a_file(tmp_path: Path) -> None:
    """Not a regular file any more: Starlette's own path, and Starlette's error."""
    for cls in (StockFileResponse, FileResponse):
        path = data_file(tmp_path)
        response = cls(path, stat_result=os.stat(path))
        path.unlink()
        path.mkdir()
        with pytest.raises(IsADirectoryError):
            await call(response)
        path.rmdir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_unreadable_file_fails_before_the_response_starts(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    path.chmod(0)
    kinds: list[str] = []

    async def record(message: Message) -> None:
        kinds.append(message["type"])

    with pytest.raises(PermissionError):
        await call(FileResponse(path), send_hook=record)
    assert kinds == []


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
@pytest.mark.parametrize("headers", [{}, {"range": "bytes=0-9"}, {"range": "bytes=0-9,20-29"}])
async def test_send_error_closes_the_file(
    tmp_path: Path, spec: str, headers: dict[str, str]
) -> None:
    """A broken connection (ASGI 2.4: send raises OSError): the error comes out as it is, the
    file is closed, and the background task does not run (as Starlette)."""
    path = data_file(tmp_path)
    error = OSError("client gone")
    files: list[Any] = []
    ran: list[bool] = []

    async def fail(message: Message) -> None:
        if message["type"] == ZC:
            files.append(message["file"])
            raise error

    with pytest.raises(OSError, match="client gone") as caught:
        await call(
            FileResponse(path, background=BackgroundTask(ran.append, True)),
            spec=spec,
            headers=headers,
            send_hook=fail,
        )
    assert caught.value is error
    assert len(files) == 1 and files[0].closed
    assert ran == []


@pytest.mark.parametrize("headers", [{}, {"range": "bytes=0-9"}, {"range": "bytes=0-9,20-29"}])
async def test_disconnect_while_sending(tmp_path: Path, headers: dict[str, str]) -> None:
    """Before ASGI 2.4 a server whose client went away during a zerocopysend returns and
    ignores what follows (uvicorn does): the response ends, the file is closed, the background
    task runs, as Starlette's does after a disconnect."""
    path = data_file(tmp_path)
    files: list[Any] = []
    ran: list[bool] = []
    gone = False

    async def client_leaves(message: Message) -> None:
        nonlocal gone
        if message["type"] == ZC and not gone:
            files.append(message["file"])
            gone = True

    async def receive() -> Message:
        raise AssertionError("the zero-copy path does not listen for disconnects")

    reply = await call(
        FileResponse(path, background=BackgroundTask(ran.append, True)),
        spec="2.3",
        headers=headers,
        send_hook=client_leaves,
        receive_hook=receive,
    )
    assert gone and reply.complete
    assert len(files) == 1 and files[0].closed
    assert ran == [True]


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_cancelled_while_sending(tmp_path: Path, spec: str) -> None:
    path = data_file(tmp_path)
    files: list[Any] = []
    ran: list[bool] = []

    async def stuck(message: Message) -> None:
        if message["type"] == ZC:
            files.append(message["file"])
            scope.cancel()
            await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        await call(
            FileResponse(path, background=BackgroundTask(ran.append, True)),
            spec=spec,
            send_hook=stuck,
        )
    assert scope.cancelled_caught
    assert len(files) == 1 and files[0].closed
    assert ran == []


async def test_cancelled_while_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open in the worker thread finishes; the cancellation is taken right after it, and
    the file it opened is closed."""
    from zcio_starlette import _responses

    path = data_file(tmp_path)
    # A path the kernel could not open from its caches: the worker thread opens it.
    monkeypatch.setattr(zcio, "open_cached_stat", lambda path: None)
    opened: list[Any] = []
    started = threading.Event()
    real = _responses._open_regular

    def slow_open(p: Any, check: bool) -> Any:
        started.set()
        time.sleep(0.2)
        result = real(p, check)
        opened.append(result[0])
        return result

    monkeypatch.setattr(_responses, "_open_regular", slow_open)
    kinds: list[str] = []

    async def record(message: Message) -> None:
        kinds.append(message["type"])

    with anyio.move_on_after(0.05) as scope:
        await call(FileResponse(path), send_hook=record)
    assert scope.cancelled_caught
    assert started.is_set() and len(opened) == 1 and opened[0].closed
    assert kinds == []


async def test_cached_open_needs_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the filesystem is known, a cached path is opened without a worker thread; the
    bytes and headers are the same."""
    from zcio_starlette import _responses

    path = data_file(tmp_path)
    first = await call(FileResponse(path))  # the worker thread opens it and learns the mount
    if zcio.open_cached(path) is None:
        pytest.skip("this kernel or filesystem cannot open from the caches")
    threads: list[Any] = []
    real = _responses._open_regular

    def counted(*args: Any) -> Any:
        threads.append(args)
        return real(*args)

    monkeypatch.setattr(_responses, "_open_regular", counted)
    second = await call(FileResponse(path))
    assert threads == []
    assert second.body == first.body == DATA
    assert second.headers == first.headers


async def test_file_shrinks_after_stat_whole(tmp_path: Path) -> None:
    """The headers promise the stat's size; zerocopysend asks the server for exactly that, and
    a server finding the file short must abort the connection (Starlette sends a short body)."""
    path = data_file(tmp_path)
    response = FileResponse(path, stat_result=os.stat(path))
    path.write_bytes(DATA[:1000])
    reply = await call(response)
    assert reply.counts == [SIZE]
    assert reply.short


async def test_file_shrinks_multipart(tmp_path: Path) -> None:
    """Multipart: Starlette raises part-way; so do we, after the same bytes."""
    bodies = []
    for cls, extensions in ((StockFileResponse, ()), (FileResponse, (ZC,))):
        path = data_file(tmp_path)
        response = cls(path, stat_result=os.stat(path))
        path.write_bytes(DATA[:25])
        body = bytearray()
        kinds: list[str] = []

        async def keep(message: Message, body: bytearray = body, kinds: list[str] = kinds) -> None:
            kinds.append(message["type"])
            if message["type"] == BODY:
                body.extend(message.get("body", b""))
            elif message["type"] == ZC:
                body.extend(read_slice(message["file"], message["offset"], message["count"])[0])

        with pytest.raises(RuntimeError, match="is shorter than expected"):
            await call(
                response,
                headers={"range": "bytes=0-9,20-29,40-49"},
                extensions=extensions,
                send_hook=keep,
            )
        boundary = bytes(body).split(b"\r\n", 1)[0]
        bodies.append(bytes(body).replace(boundary, b"--BOUNDARY"))
    stock, ours = bodies
    assert ours == stock
    assert kinds.count(ZC) == 2  # the whole first part, 5 bytes of the second


# --- StaticFiles -------------------------------------------------------------------------


def static_app(cls: type[StockStaticFiles], directory: Path) -> Starlette:
    return Starlette(routes=[Mount("/static", app=cls(directory=directory, html=True))])


@pytest.mark.parametrize(
    ("url", "headers", "parts", "status"),
    [
        ("/static/data.txt", {}, 1, 200),
        ("/static/data.txt", {"range": "bytes=10-19"}, 1, 206),
        ("/static/data.txt", {"range": "bytes=0-9,100-199"}, 2, 206),
        ("/static/data.txt", {"if-none-match": "{etag}"}, 0, 304),
        ("/static/sub/", {}, 1, 200),
        ("/static/sub", {}, 0, 307),
        ("/static/missing.txt", {}, 1, 404),
    ],
)
async def test_staticfiles(
    tmp_path: Path, url: str, headers: dict[str, str], parts: int, status: int
) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    path = data_file(root)
    data_file(root / "sub", b"<h1>index</h1>", "index.html")
    data_file(root, b"<h1>not here</h1>", "404.html")
    etag, _ = stat_headers(path)
    headers = {k: v.replace("{etag}", etag) for k, v in headers.items()}
    for extensions in EXTENSION_SETS:
        ours = await call(
            static_app(StaticFiles, root), path=url, headers=headers, extensions=extensions
        )
        stock = await call(
            static_app(StockStaticFiles, root), path=url, headers=headers, extensions=extensions
        )
        assert ours.normalised() == stock.normalised()
        assert ours.status == status
        assert ours.count(ZC) == (parts if ZC in extensions else 0)
        assert all(file.closed for file in ours.files)


# --- middleware --------------------------------------------------------------------------


def route_app(
    cls: type[StockFileResponse], path: Path, middleware: Iterable[Middleware] = ()
) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return cls(path)

    return Starlette(
        routes=[Route("/", endpoint, methods=["GET", "HEAD", "POST"])], middleware=list(middleware)
    )


class Stamp:
    """A pure ASGI middleware that wraps send: adds a header, passes every message on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == START:
                message = {**message, "headers": [*message["headers"], (b"x-stamp", b"1")]}
            await send(message)

        await self.app(scope, receive, stamped)


class SwapCase:
    """A pure ASGI middleware that rewrites body messages (and knows no other kind)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def swapped(message: Message) -> None:
            if message["type"] == BODY:
                message = {**message, "body": message.get("body", b"").swapcase()}
            await send(message)

        await self.app(scope, receive, swapped)


async def passthrough(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["x-base"] = "1"
    return response


TEXT = b"".join(b"line %d of a compressible text file\n" % i for i in range(20000))
REQUESTS = [
    {},
    {"range": "bytes=0-99"},
    {"range": "bytes=0-9,1000-1099"},
    {"range": f"bytes={len(TEXT) + 5}-"},
]
GZIP = {"accept-encoding": "gzip"}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("request_headers", REQUESTS, ids=["whole", "range", "multi", "416"])
@pytest.mark.parametrize(
    ("stack", "zerocopy"),
    [
        pytest.param(lambda app: app, True, id="none"),
        pytest.param(lambda app: [Middleware(GZipMiddleware, minimum_size=1)], False, id="gzip"),
        pytest.param(lambda app: [Middleware(GZipMiddleware)], False, id="gzip-identity"),
        pytest.param(lambda app: GZipMiddleware(app, minimum_size=1), False, id="gzip-outside"),
        pytest.param(
            lambda app: [Middleware(BaseHTTPMiddleware, dispatch=passthrough)], False, id="base"
        ),
        pytest.param(
            lambda app: [
                Middleware(BaseHTTPMiddleware, dispatch=passthrough),
                Middleware(GZipMiddleware, minimum_size=1),
            ],
            False,
            id="base+gzip",
        ),
        pytest.param(lambda app: Stamp(app), True, id="pure-send-wrapper"),
        pytest.param(lambda app: [Middleware(Stamp)], True, id="pure-send-wrapper-inside"),
        pytest.param(
            lambda app: [Middleware(CORSMiddleware, allow_origins=["*"])], True, id="cors"
        ),
        pytest.param(
            lambda app: SwapCase(NoZeroCopyMiddleware(app)), False, id="body-rewriter+opt-out"
        ),
    ],
)
async def test_middleware_sees_the_same_bytes(
    tmp_path: Path,
    stack: Callable[[ASGIApp], Any],
    zerocopy: bool,
    request_headers: dict[str, str],
    method: str,
) -> None:
    """Behind every middleware, ours gives stock Starlette's bytes under every set of
    extensions; zerocopysend only where the middleware lets it through."""
    path = data_file(tmp_path, TEXT)

    def make_app(cls: type[StockFileResponse]) -> ASGIApp:
        wrapped = stack(route_app(cls, path))  # a list: Starlette middleware; else an app
        if isinstance(wrapped, list):
            return route_app(cls, path, wrapped)
        return wrapped  # type: ignore[no-any-return]

    headers = {**GZIP, "origin": "http://example.com", **request_headers}
    for extensions in EXTENSION_SETS:
        _, ours = await compare(make_app, extensions, method=method, headers=headers)
        used = ours.count(ZC) > 0
        expected = zerocopy and ZC in extensions and method == "GET" and ours.status < 400
        assert used == expected, (extensions, ours.kinds)


async def test_middleware_is_per_route(tmp_path: Path) -> None:
    """GZip on a mount costs zero-copy on that mount only."""
    path = data_file(tmp_path, TEXT)

    def make_app(cls: type[StockFileResponse]) -> ASGIApp:
        async def endpoint(request: Request) -> Response:
            return cls(path)

        return Starlette(
            routes=[
                Route("/plain", endpoint),
                Mount(
                    "/gz",
                    routes=[Route("/", endpoint)],
                    middleware=[Middleware(GZipMiddleware, minimum_size=1)],
                ),
            ]
        )

    _, plain = await compare(make_app, (ZC, PS), path="/plain", headers=GZIP)
    _, gz = await compare(make_app, (ZC, PS), path="/gz/", headers=GZIP)
    assert plain.count(ZC) == 1
    assert gz.count(ZC) == 0 and gz.header(b"content-encoding") is None  # pathsend: as stock
    _, gz_only_zc = await compare(make_app, (ZC,), path="/gz/", headers=GZIP)
    assert gz_only_zc.header(b"content-encoding") == b"gzip"


@pytest.mark.parametrize(
    "extensions", [(ZC, PS), (PS,), ()], ids=["zerocopysend", "pathsend", "starlette-reads"]
)
@pytest.mark.parametrize("intruder", ["symlink", "fifo"])
async def test_staticfiles_opens_beneath_its_folder_under_a_race(
    tmp_path: Path, extensions: tuple[str, ...], intruder: str
) -> None:
    """A name swapped again and again for a symlink leading out (or a FIFO): on every path
    the response takes, each answer is the file inside or a 404, never a byte from outside,
    never a hang, and never the size or ETag of the file outside."""
    root = make_root(tmp_path)
    app = Starlette(routes=[Mount("/", app=StaticFiles(directory=root))])
    secret = tmp_path / "secret.txt"
    outside = StockFileResponse(secret, stat_result=os.stat(secret))
    seen: dict[int, int] = {}
    with Swapper(root, "swap", intruder) as swapper:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline or not seen.get(200):
            reply = await call(app, path="/swap", extensions=extensions)
            seen[reply.status] = seen.get(reply.status, 0) + 1
            assert SECRET not in reply.body
            if reply.status == 200:
                assert reply.body == INSIDE
                assert reply.header(b"etag") != outside.headers["etag"].encode()
                assert reply.header(b"content-length") == str(len(INSIDE)).encode()
            else:
                assert reply.status == 404, reply.status
    assert swapper.swaps > 10
    assert set(seen) <= {200, 404}


# --- real loops, real servers ------------------------------------------------------------


async def test_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """No stat, open or read of ours runs on the event loop (blockbuster watches asyncio)."""
    blockbuster = pytest.importorskip("blockbuster")
    if backend() == "trio":
        pytest.skip("blockbuster watches asyncio loops")
    data_file(tmp_path)
    buster = blockbuster.BlockBuster(["zcio_starlette"])
    buster.activate()
    try:
        for headers in ({}, {"range": "bytes=0-9"}, {"range": "bytes=0-9,20-29"}):
            reply = await call(FileResponse(tmp_path / "data.txt"), headers=headers)
            assert reply.count(ZC) >= 1
            reply = await call(
                static_app(StaticFiles, tmp_path), path="/static/data.txt", headers=headers
            )
            assert reply.count(ZC) >= 1
    finally:
        buster.deactivate()


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_on_stock_uvicorn(tmp_path: Path, http: str) -> None:
    """uvicorn advertises neither extension: Starlette's own path, over real loopback HTTP."""
    if backend() == "trio":
        pytest.skip("uvicorn serves on asyncio loops")
    import httpx
    import uvicorn

    path = data_file(tmp_path)

    async def endpoint(request: Request) -> Response:
        return FileResponse(path)

    app = Starlette(
        routes=[Route("/file", endpoint), Mount("/static", app=StaticFiles(directory=tmp_path))]
    )
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, http=http, lifespan="off", log_level="warning"))
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    for url in ("/file", "/static/data.txt"):
                        whole = await client.get(url)
                        assert whole.content == DATA
                        one = await client.get(url, headers={"range": "bytes=70000-70009"})
                        assert (one.status_code, one.content) == (206, DATA[70000:70010])
                        many = await client.get(url, headers={"range": "bytes=0-1,-2"})
                        assert many.status_code == 206
                        assert DATA[:2] in many.content and DATA[-2:] in many.content
            server.should_exit = True
    finally:
        sock.close()


# --- the decision, without an event loop -------------------------------------------------

HTTP: dict[str, Any] = {"type": "http", "extensions": {ZC: {}}}


async def server_send(message: Message) -> None:  # pragma: no cover - never awaited
    pass


def wrap(send: Send) -> Send:
    async def wrapper(message: Message) -> None:  # pragma: no cover - never awaited
        await send(message)

    return wrapper


def gzip_send() -> Send:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        pass

    responder = GZipResponder(inner, minimum_size=1)
    responder.send = server_send
    return responder.send_with_compression


@pytest.mark.parametrize(
    ("scope", "send", "reason"),
    [
        pytest.param(HTTP, server_send, None, id="plain"),
        pytest.param(HTTP, wrap(wrap(server_send)), None, id="unknown-wrappers-are-trusted"),
        pytest.param({"type": "websocket", "extensions": {ZC: {}}}, server_send, "HTTP", id="ws"),
        pytest.param({"type": "http"}, server_send, "advertise", id="no-extensions"),
        pytest.param({"type": "http", "extensions": {PS: {}}}, server_send, "advertise", id="ps"),
        pytest.param(HTTP, gzip_send(), "GZipMiddleware", id="gzip"),
        pytest.param(HTTP, wrap(wrap(gzip_send())), "GZipMiddleware", id="gzip-in-closures"),
        pytest.param(
            HTTP, functools.partial(wrap(gzip_send())), "GZipMiddleware", id="gzip-in-partial"
        ),
    ],
)
def test_why_not_zerocopy(scope: Scope, send: Send, reason: str | None) -> None:
    got = why_not_zerocopy(scope, send)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_why_not_zerocopy_follows_send_attributes() -> None:
    """A class-based wrapper that keeps the next send as an attribute and passes a bound
    method of its own."""

    class Responder:
        def __init__(self, send: Send) -> None:
            self.send = send

        async def forward(self, message: Message) -> None:  # pragma: no cover
            await self.send(message)

    assert why_not_zerocopy(HTTP, Responder(server_send).forward) is None
    assert "GZip" in (why_not_zerocopy(HTTP, Responder(gzip_send()).forward) or "")


def test_why_not_zerocopy_remembers_kinds_not_chains() -> None:
    """Verdicts are remembered per function and per class, never per chain: the same wrapper
    code around a server and around GZip, asked in turn, gets each its own answer."""
    for _ in range(3):
        assert why_not_zerocopy(HTTP, wrap(server_send)) is None
        assert "GZip" in (why_not_zerocopy(HTTP, wrap(gzip_send())) or "")


def test_why_not_zerocopy_stops_at_the_server() -> None:
    """A bound send of a server's request cycle ends the chain: what the cycle holds (the
    protocol, the transport, the app) is not followed."""

    def cycle_class(module: str) -> type:
        class Cycle:
            def __init__(self) -> None:
                self.app_send = gzip_send()  # an offender, if it were followed

            async def send(self, message: Message) -> None:  # pragma: no cover
                pass

        Cycle.__module__ = module
        return Cycle

    server_cycle = cycle_class("uvicorn.protocols.http.fake_impl")()
    assert why_not_zerocopy(HTTP, wrap(server_cycle.send)) is None
    other = cycle_class(__name__)()  # an ordinary class: its send attributes are followed
    assert "GZip" in (why_not_zerocopy(HTTP, wrap(other.send)) or "")


def test_why_not_zerocopy_cycles_and_depth() -> None:
    async def selfish(message: Message) -> None:  # pragma: no cover
        await selfish(message)

    assert why_not_zerocopy(HTTP, selfish) is None
    send: Send = server_send
    for _ in range(300):
        send = wrap(send)
    assert "longer than" in (why_not_zerocopy(HTTP, send) or "")


async def test_why_not_zerocopy_in_real_stacks(tmp_path: Path) -> None:
    """What a response sees from inside real Starlette stacks."""
    seen: list[str | None] = []

    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(why_not_zerocopy(scope, send))
        await Response(b"ok")(scope, receive, send)

    stacks: list[list[Middleware]] = [
        [],
        [Middleware(GZipMiddleware)],
        [Middleware(BaseHTTPMiddleware, dispatch=passthrough)],
        [Middleware(Stamp), Middleware(CORSMiddleware, allow_origins=["*"])],
        [Middleware(BaseHTTPMiddleware, dispatch=passthrough), Middleware(Stamp)],
    ]
    for middleware in stacks:
        app = Starlette(routes=[Mount("/", app=probe)], middleware=middleware)
        await call(app, headers=GZIP)
    assert seen[0] is None
    assert "GZipMiddleware" in (seen[1] or "")
    assert "BaseHTTPMiddleware" in (seen[2] or "")
    assert seen[3] is None
    assert "BaseHTTPMiddleware" in (seen[4] or "")


def test_public_names() -> None:
    assert zcio_starlette.FileResponse.__module__ == "zcio_starlette"
    assert issubclass(zcio_starlette.FileResponse, StockFileResponse)
    assert issubclass(zcio_starlette.StaticFiles, StockStaticFiles)
    assert sorted(zcio_starlette.__all__) == [
        "FileResponse",
        "NoZeroCopyMiddleware",
        "StaticFiles",
        "ZcioStats",
        "why_not_zerocopy",
    ]
