"""zcio_litestar in process: the same status, headers and bytes as stock Litestar's ``File``
and static files router, with the body handed to the server by ``http.response.zerocopysend``
(or ``pathsend``) where the server, the file system and the middleware allow it.

A small ASGI "server" here calls a Litestar app with a scope advertising the extensions under
test and assembles the body from every message kind: ``zerocopysend`` slices are read back with
``os.pread`` from the file object the app handed over (so a file closed too early fails the
read), ``pathsend`` reads the path. Every comparison runs the stock app and the zcio app on the
same request with the same extensions advertised. tests/test_zcio_litestar_live.py does the
same over real servers.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.to_thread
import pytest
from litestar import Litestar, get, head
from litestar.background_tasks import BackgroundTask
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import CacheControlHeader, ETag
from litestar.file_system import BaseLocalFileSystem
from litestar.logging.config import LoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.params import FromPath
from litestar.response.file import File as StockFile
from litestar.static_files import create_static_files_router as stock_router

import zcio.asgi
import zcio_litestar
from _support import make_data, sha
from zcio_litestar import File, NoZeroCopyMiddleware, create_static_files_router, why_not_zerocopy

Message = Any  # litestar.types.Message is a union of TypedDicts: too strict for a fake server
ASGIApp = Any
Send = Callable[[Message], Awaitable[None]]

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """This file checks the uncached responses (each opens and closes its file); the static
    files router's open-file cache is tested in tests/test_file_cache_litestar.py."""

    async def never(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(zcio.asgi.FileCache, "get", never)


ZC = "http.response.zerocopysend"
PS = "http.response.pathsend"
START = "http.response.start"
BODY = "http.response.body"
ONE_MIB = 1 << 20
DATA = make_data(3 * ONE_MIB + 7, seed=14)  # three of Litestar's 1 MiB chunks and a bit
TEXT = b"".join(b"line %d of a compressible text file\n" % i for i in range(20000))
SETS = [(), (ZC,), (PS,), (ZC, PS)]
SET_IDS = ["none", "zerocopysend", "pathsend", "both"]


# --- the fake server ---------------------------------------------------------------------


@dataclass
class Reply:
    """What a client would have received, and how it was sent."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    kinds: list[str] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    complete: bool = False

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    def same(self) -> tuple[int, list[tuple[bytes, bytes]], str]:
        """Status, headers and the body's hash; a 405's Allow list in a fixed order (Litestar
        builds it from a set, in no order)."""
        headers = [
            (k, b", ".join(sorted(v.split(b", "))) if k == b"allow" else v) for k, v in self.headers
        ]
        return self.status, sorted(headers), sha(bytes(self.body))


def read_slice(file: Any, offset: int, count: int) -> bytes:
    """The bytes a server would sendfile; fails if the app already closed the file."""
    out = bytearray()
    while len(out) < count:
        chunk = os.pread(file.fileno(), count - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


async def call(
    app: ASGIApp,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    extensions: Iterable[str] = (ZC, PS),
    send_hook: Callable[[Message], Awaitable[None]] | None = None,
) -> Reply:
    """Call ``app`` as a server advertising ``extensions`` would, and assemble the reply."""
    extensions = tuple(extensions)
    quoted, _, query = path.partition("?")
    raw_path = unquote(quoted)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": quoted.encode(),
        "root_path": "",
        "query_string": query.encode(),
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
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # as a server does: the client goes once the response is complete
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
        more = message.get("more_body", False)
        if kind == BODY:
            reply.body += message.get("body", b"")
        elif kind == ZC:
            assert ZC in extensions, "zerocopysend to a server that did not advertise it"
            reply.files.append(message["file"])
            reply.body += read_slice(message["file"], message["offset"], message["count"])
        elif kind == PS:
            assert PS in extensions, "pathsend to a server that did not advertise it"
            assert os.path.isabs(message["path"])
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


# --- the apps ----------------------------------------------------------------------------


class MemoryFileSystem:
    """A file system that is not the local one: its ``open`` decides the bytes."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def info(self, path: str, **kwargs: Any) -> Any:
        if path not in self.files:
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.files[path]), "type": "file", "mtime": 1.5e9}

    async def open(self, file: str, mode: str, buffering: int = -1) -> Any:
        return anyio.wrap_file(io.BytesIO(self.files[str(file)]))


class LocalSubclass(BaseLocalFileSystem):
    """Keeps the local ``open``: still zero-copy."""


class ReversingFileSystem(BaseLocalFileSystem):
    """Overrides ``open``: Litestar's path, whatever the server offers."""

    async def open(self, file: Any, mode: str, buffering: int = -1) -> Any:
        with open(file, "rb") as f:
            return anyio.wrap_file(io.BytesIO(f.read()[::-1]))


def file_cases(root: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """What ``/file/{case}`` returns: the keyword arguments of ``File``."""
    data = root / "data.bin"
    return {
        "whole": lambda: {"path": data},
        "str-path": lambda: {"path": str(data)},
        "symlink": lambda: {"path": root / "link.bin"},
        "anyio-path": lambda: {"path": anyio.Path(data)},
        "empty": lambda: {"path": root / "empty.bin"},
        "one-byte": lambda: {"path": root / "one.bin"},
        "one-chunk": lambda: {"path": root / "chunk.bin"},  # exactly chunk_size: one read
        "small-chunks": lambda: {"path": data, "chunk_size": 4096},
        "filename": lambda: {"path": data, "filename": "report.pdf"},
        "inline": lambda: {
            "path": data,
            "filename": "notes.txt",
            "content_disposition_type": "inline",
        },
        "non-ascii": lambda: {"path": root / "naïve résumé.txt", "filename": "naïve résumé.txt"},
        "gz-name": lambda: {"path": data, "filename": "archive.tar.gz"},
        "media-type": lambda: {"path": data, "media_type": "image/png"},
        "etag": lambda: {"path": data, "etag": ETag(value="abc", weak=True)},
        "stat-result": lambda: {"path": data, "stat_result": os.stat(data)},
        "file-info": lambda: {
            "path": data,
            "file_info": {"name": str(data), "size": len(DATA), "type": "file", "mtime": 1e9},
        },
        "headers": lambda: {"path": data, "headers": {"x-extra": "1", "cache-control": "no"}},
        "status-201": lambda: {"path": data, "status_code": 201},
        "missing": lambda: {"path": root / "missing.bin"},
        "directory": lambda: {"path": root / "dir"},
        "memory-fs": lambda: {
            "path": "mem.bin",
            "file_system": MemoryFileSystem({"mem.bin": b"in memory " * 1000}),
        },
        "local-subclass": lambda: {"path": data, "file_system": LocalSubclass()},
        "overridden-open": lambda: {"path": data, "file_system": ReversingFileSystem()},
    }


def build_app(root: Path, zero_copy: bool, **config: Any) -> Litestar:
    """The same app, with stock Litestar's classes or zcio_litestar's."""
    file_cls = File if zero_copy else StockFile
    router = create_static_files_router if zero_copy else stock_router
    cases = file_cases(root)

    @get("/file/{case:str}", sync_to_thread=False)
    def file_get(case: FromPath[str]) -> StockFile:
        return file_cls(**cases[case]())

    @head("/file/{case:str}", sync_to_thread=False)
    def file_head(case: FromPath[str]) -> StockFile:
        return file_cls(**cases[case]())

    @get("/cached/{case:str}", sync_to_thread=False, cache=True)
    def cached(case: FromPath[str]) -> StockFile:
        return file_cls(**cases[case]())

    @get("/background", sync_to_thread=False)
    def background() -> StockFile:
        task = BackgroundTask(BACKGROUND.append, "ran")
        return file_cls(root / "data.bin", background=task)

    return Litestar(
        route_handlers=[
            file_get,
            file_head,
            cached,
            background,
            router("/static", directories=[root / "www"]),
            router("/site", directories=[root / "www"], html_mode=True, name="site"),
            router(
                "/attach",
                directories=[root / "www", root / "more"],
                send_as_attachment=True,
                cache_control=CacheControlHeader(max_age=60),
                name="attach",
            ),
            router("/follow", directories=[root / "www"], name="follow", **FOLLOW[zero_copy]),
            router(
                "/mem",
                directories=["/"],
                file_system=MemoryFileSystem({"/page.txt": b"memory page\n" * 50}),
                name="mem",
            ),
        ],
        **config,
    )


BACKGROUND: list[str] = []
#: zcio_litestar's opt-in to Litestar's symlinks (stock has no such argument).
FOLLOW: dict[bool, dict[str, Any]] = {False: {}, True: {"follow_symlink": True}}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("litestar")
    (root / "data.bin").write_bytes(DATA)
    (root / "link.bin").symlink_to(root / "data.bin")
    (root / "empty.bin").write_bytes(b"")
    (root / "one.bin").write_bytes(b"x")
    (root / "chunk.bin").write_bytes(DATA[:ONE_MIB])
    (root / "naïve résumé.txt").write_bytes(TEXT)
    (root / "dir").mkdir()
    www = root / "www"
    (www / "sub" / "deeper").mkdir(parents=True)
    (www / "index.html").write_bytes(b"<h1>index</h1>" * 100)
    (www / "404.html").write_bytes(b"<h1>not here</h1>")
    (www / "page.txt").write_bytes(TEXT)
    (www / "data.bin").write_bytes(DATA)
    (www / "sub" / "index.html").write_bytes(b"<p>sub</p>")
    (www / "sub" / "ünï cödé.txt").write_bytes(TEXT[:5000])
    (root / "more").mkdir()
    (root / "more" / "extra.bin").write_bytes(DATA[:70000])
    (root / "secret.txt").write_bytes(b"outside the static directories")
    # Ways out of www, and names that cannot lead to a file (see DELIBERATE_DIFFERENCES).
    (www / "escape.txt").symlink_to(root / "secret.txt")
    (www / "alias.txt").symlink_to("page.txt")  # stays inside: followed, as Litestar does
    (www / "loop").symlink_to("loop")
    (www / "status").symlink_to("/proc/self/status")
    os.mkfifo(www / "fifo")
    return root


@pytest.fixture(scope="module")
def apps(root: Path) -> tuple[Litestar, Litestar]:
    return build_app(root, zero_copy=False), build_app(root, zero_copy=True)


# --- the same reply as Litestar ------------------------------------------------------------

#: (request, whether zcio_litestar may hand the body to the server).
REQUESTS = [
    *(
        (f"/file/{case}", case not in ("missing", "directory"))
        for case in [
            "whole",
            "str-path",
            "anyio-path",
            "empty",
            "one-byte",
            "one-chunk",
            "small-chunks",
            "filename",
            "inline",
            "non-ascii",
            "gz-name",
            "media-type",
            "etag",
            "stat-result",
            "file-info",
            "headers",
            "status-201",
            "missing",
            "directory",
            "local-subclass",
        ]
    ),
    ("/file/memory-fs", False),
    ("/file/overridden-open", False),
    ("/static/page.txt", True),
    ("/static/data.bin", True),
    ("/static/sub/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.txt", True),
    ("/static/sub", False),  # a directory, not in HTML mode: 404
    ("/static/nothing.txt", False),
    ("/static/../secret.txt", False),
    ("/static/sub/../../secret.txt", False),
    ("/site/", True),
    ("/site/sub", True),  # the directory's index.html
    ("/site/nothing", True),  # 404.html, status 404
    ("/attach/page.txt", True),
    ("/attach/extra.bin", True),  # from the second directory
    ("/mem/page.txt", False),
    ("/mem/nothing.txt", False),
    ("/static/alias.txt", True),  # a symlink that stays inside: followed, as Litestar does
    ("/follow/escape.txt", True),  # follow_symlink=True: out of the directory, as Litestar
    ("/follow/page.txt", True),
]


async def same_reply(
    apps: tuple[Litestar, Litestar], path: str, zero_copy: bool, extensions: tuple[str, ...]
) -> None:
    stock, ours = apps
    expected = await call(stock, path, extensions=extensions)
    got = await call(ours, path, extensions=extensions)
    assert got.same() == expected.same()
    assert got.complete
    # The router's files never go by pathsend (the server would open the path again).
    router = path.startswith(("/static/", "/site/", "/attach/", "/follow/"))
    if zero_copy and (ZC in extensions or (PS in extensions and not router)):
        # The body goes by the best message offered, in one message after the start (an empty
        # file is one empty body message where zerocopysend is offered).
        best = ZC if ZC in extensions else PS
        if best == ZC and not got.body:
            best = BODY
        assert got.kinds == [START, best]
    else:
        assert ZC not in got.kinds and PS not in got.kinds
        assert got.kinds == expected.kinds


# The app's choices do not depend on the event loop: the whole table on asyncio, a few rows on
# every backend (the file is opened and closed there).
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("path", "zero_copy"), REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_same_reply_as_litestar(
    apps: tuple[Litestar, Litestar], path: str, zero_copy: bool
) -> None:
    for extensions in SETS:
        await same_reply(apps, path, zero_copy, extensions)


@pytest.mark.parametrize("path", ["/file/whole", "/static/page.txt", "/site/nothing"])
async def test_same_reply_on_every_backend(apps: tuple[Litestar, Litestar], path: str) -> None:
    for extensions in SETS:
        await same_reply(apps, path, True, extensions)


@pytest.mark.parametrize(
    "path", ["/file/whole", "/file/non-ascii", "/static/page.txt", "/site/sub"]
)
async def test_head_is_litestars(apps: tuple[Litestar, Litestar], path: str) -> None:
    """A client sees the same: status and headers (a server never sends a body for HEAD,
    though Litestar hands it one for a ``File`` from a ``@head`` handler)."""
    stock, ours = apps
    for extensions in SETS:
        expected = await call(stock, path, method="HEAD", extensions=extensions)
        got = await call(ours, path, method="HEAD", extensions=extensions)
        assert got.same()[:2] == expected.same()[:2]
        assert got.header(b"content-length") is not None
        assert ZC not in got.kinds and PS not in got.kinds
        if extensions:
            assert got.kinds == [START, BODY] and not got.body


#: Where zcio_litestar's static files router answers differently from stock Litestar on
#: purpose (issue 21), and why: request -> (stock status, zcio_litestar's, the reason). A
#: stock status of None: not asked of stock here, since stock would hang on it or read it
#: without end (a FIFO with no writer; /dev/zero in tests/test_hostile_static.py). Also
#: different, and not testable as root: a file without read permission is Litestar's 401
#: before anything is sent, where Litestar sends the headers and then fails.
DELIBERATE_DIFFERENCES: dict[str, tuple[int | None, int, str]] = {
    "/static/escape.txt": (200, 404, "a symlink leading out of the directory (opt-in: "
                           "follow_symlink=True)"),
    "/static/status": (200, 404, "a symlink to /proc: leads out; /proc's sizes lie (stock "
                       "sends its text after a Content-Length of 0)"),
    "/follow/status": (200, 404, "even with follow_symlink=True: a /proc file's size lies"),
    "/static/fifo": (None, 404, "a FIFO: never opened to wait, never read (stock waits for "
                     "a writer in a worker thread, forever)"),
    "/follow/fifo": (None, 404, "the same with follow_symlink=True"),
    "/static/loop": (500, 404, "a symlink loop is a name that leads nowhere, not a server error"),
    "/follow/loop": (500, 404, "the same with follow_symlink=True"),
    "/static/" + "x" * 300: (500, 404, "an over-long name: the same"),
    "/static/page.txt/x": (500, 404, "a file used as a folder: the same"),
    "/static/a%00b": (500, 404, "a NUL byte: the same"),
    "/follow/a%00b": (500, 404, "the same with follow_symlink=True"),
}  # fmt: skip


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("path", list(DELIBERATE_DIFFERENCES))
async def test_deliberate_differences(apps: tuple[Litestar, Litestar], path: str) -> None:
    """Each listed request: stock's answer is still the one listed (when it can be asked),
    and zcio_litestar's is a 404, the body of a 404 (nothing of the file), whatever the
    extensions offered."""
    stock_status, ours_status, _ = DELIBERATE_DIFFERENCES[path]
    stock, ours = apps
    not_found = await call(stock, "/static/nothing.txt")
    for extensions in SETS:
        if stock_status is not None:
            expected = await call(stock, path, extensions=extensions)
            assert expected.status == stock_status
        got = await call(ours, path, extensions=extensions)
        assert got.status == ours_status
        assert got.kinds == [START, BODY] and got.body.startswith(b'{"status_code":404')
        assert got.header(b"content-type") == not_found.header(b"content-type")


async def test_range_is_ignored_as_litestar_does(apps: tuple[Litestar, Litestar]) -> None:
    stock, ours = apps
    headers = {"range": "bytes=0-99"}
    expected = await call(stock, "/file/whole", headers=headers)
    got = await call(ours, "/file/whole", headers=headers)
    assert got.same() == expected.same()
    assert got.status == 200 and len(got.body) == len(DATA)
    assert got.kinds == [START, ZC]


async def test_responses_are_the_zcio_classes(apps: tuple[Litestar, Litestar]) -> None:
    seen: list[type] = []
    _, ours = apps
    original = zcio_litestar.ASGIFileResponse.__call__

    async def spy(self: Any, *args: Any) -> None:
        seen.append(type(self))
        await original(self, *args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(zcio_litestar.ASGIFileResponse, "__call__", spy)
        await call(ours, "/file/whole")
        await call(ours, "/static/page.txt")
    assert seen == [zcio_litestar.ASGIFileResponse] * 2


async def test_background_task_runs(apps: tuple[Litestar, Litestar]) -> None:
    BACKGROUND.clear()
    got = await call(apps[1], "/background")
    assert got.kinds == [START, ZC]
    assert BACKGROUND == ["ran"]


# --- middleware -----------------------------------------------------------------------------


def before_send_hook(log: list[str]) -> Callable[[Message, Any], Awaitable[None]]:
    async def hook(message: Message, scope: Any) -> None:
        log.append(message["type"])

    return hook


def body_rewriter(app: ASGIApp) -> ASGIApp:
    """A middleware of one's own that needs the body bytes (upper-cases them)."""

    async def middleware(scope: Any, receive: Any, send: Send) -> None:
        async def upper(message: Message) -> None:
            if message["type"] == BODY:
                message = {**message, "body": message["body"].upper()}
            await send(message)

        await app(scope, receive, upper)

    return middleware


@dataclass(frozen=True)
class Stack:
    name: str
    config: Callable[[], dict[str, Any]]
    headers: dict[str, str]
    zero_copy: bool  # whether the body may still go by zerocopysend


STACKS = [
    Stack("gzip", lambda: {"compression_config": CompressionConfig(backend="gzip")},
          {"accept-encoding": "gzip"}, False),
    Stack("gzip-not-accepted", lambda: {"compression_config": CompressionConfig(backend="gzip")},
          {}, True),
    Stack("logging", lambda: {
        "middleware": [
            LoggingMiddlewareConfig(response_log_fields=["status_code", "body"]).middleware
        ],
        "logging_config": LoggingConfig(log_exceptions="always"),
    }, {}, False),
    Stack("cors", lambda: {"cors_config": CORSConfig(allow_origins=["http://a.example"])},
          {"origin": "http://a.example"}, True),
    Stack("before-send", lambda: {"before_send": [before_send_hook([])]}, {}, True),
    Stack("own-body-rewriter", lambda: {"middleware": [body_rewriter, NoZeroCopyMiddleware]},
          {}, False),
]  # fmt: skip


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
@pytest.mark.parametrize("path", ["/file/non-ascii", "/static/page.txt"])
async def test_middleware_sees_the_same_bytes(root: Path, stack: Stack, path: str) -> None:
    stock = build_app(root, zero_copy=False, **stack.config())
    ours = build_app(root, zero_copy=True, **stack.config())
    expected = await call(stock, path, headers=stack.headers)
    got = await call(ours, path, headers=stack.headers)
    if stack.name == "gzip":  # gzip's header holds the time it was made: compare the content
        assert got.header(b"content-encoding") == b"gzip"
        assert gzip.decompress(got.body) == gzip.decompress(expected.body)
        assert got.same()[:2] == expected.same()[:2]
    else:
        assert got.same() == expected.same()
    assert (ZC in got.kinds) == stack.zero_copy


async def test_response_cache_is_litestars(root: Path) -> None:
    stock, ours = build_app(root, zero_copy=False), build_app(root, zero_copy=True)
    for app in (stock, ours):
        first = await call(app, "/cached/whole")
        again = await call(app, "/cached/whole")
        assert first.kinds != [START, ZC]  # the cache needs the body messages
        assert again.same() == first.same()
        assert sha(bytes(again.body)) == sha(DATA)


def test_why_not_zerocopy() -> None:
    async def server_send(message: Message) -> None:  # pragma: no cover - never awaited
        pass

    def wrap(send: Send) -> Send:
        async def wrapped(message: Message) -> None:  # pragma: no cover - never awaited
            await send(message)

        return wrapped

    scope: dict[str, Any] = {"type": "http", "extensions": {ZC: {}}}
    assert why_not_zerocopy(scope, server_send) is None
    assert why_not_zerocopy(scope, wrap(wrap(server_send))) is None
    assert why_not_zerocopy(scope, functools.partial(wrap(server_send))) is None
    assert "does not advertise" in str(why_not_zerocopy({"type": "http"}, server_send))
    assert why_not_zerocopy({"type": "websocket", "extensions": {ZC: {}}}, server_send)
    config = CompressionConfig(backend="gzip")
    middleware = config.middleware_class(app=server_send, config=config)  # type: ignore[arg-type]
    compressing = middleware.create_compression_send_wrapper(server_send, "gzip", {})  # type: ignore[arg-type]
    reason = why_not_zerocopy(scope, wrap(compressing))
    assert reason is not None and "CompressionMiddleware" in reason
    for cell in compressing.__closure__ or ():
        if type(cell.cell_contents).__name__ == "GzipCompression":
            cell.cell_contents.close()  # the unused gzip stream: closed, not left to the GC

    # A cycle of wrappers is followed once, and ends.
    class Loop:
        def __init__(self) -> None:
            self.send: Any = self

        async def __call__(self, message: Message) -> None:  # pragma: no cover
            pass

    assert why_not_zerocopy(scope, Loop()) is None


# --- errors, cancellation, disconnects: the file is always closed ----------------------------


async def test_send_error_closes_the_file(apps: tuple[Litestar, Litestar]) -> None:
    files: list[Any] = []

    async def fail(message: Message) -> None:
        if message["type"] == ZC:
            files.append(message["file"])
            raise OSError("the client went away")

    with pytest.raises(Exception) as info:  # noqa: PT011 - Litestar wraps it: the cause
        await call(apps[1], "/file/whole", send_hook=fail)
    assert isinstance(info.value.__cause__, OSError)
    assert len(files) == 1 and files[0].closed


async def test_cancelled_while_sending_closes_the_file(apps: tuple[Litestar, Litestar]) -> None:
    files: list[Any] = []

    async def stall(message: Message) -> None:
        if message["type"] == ZC:
            files.append(message["file"])
            await anyio.sleep_forever()

    with anyio.move_on_after(0.2):
        await call(apps[1], "/static/data.bin", send_hook=stall)
    assert len(files) == 1 and files[0].closed


@pytest.mark.parametrize(
    "path", ["/file/whole", "/file/non-ascii", "/static/page.txt", "/attach/page.txt"]
)
async def test_cached_file_needs_no_worker_thread(
    apps: tuple[Litestar, Litestar], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A cached file on a local filesystem: Litestar's lookups (stat and lstat in threads, for
    ``File`` and for the router's search of its directories) and the open are made on the
    loop, from the open file; the same reply as Litestar's."""
    await call(apps[1], path)  # the first open in a thread teaches zcio the filesystem
    calls: list[Any] = []
    original = anyio.to_thread.run_sync

    async def spy(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    got = await call(apps[1], path)
    assert got.kinds == [START, ZC]
    assert calls == []
    monkeypatch.undo()
    expected = await call(apps[0], path)
    assert got.same() == expected.same()


async def test_open_in_a_thread_when_not_cached(
    apps: tuple[Litestar, Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zcio

    monkeypatch.setattr(zcio, "open_cached_stat", lambda path: None)
    got = await call(apps[1], "/file/non-ascii")
    assert got.kinds == [START, ZC] and bytes(got.body) == TEXT
    assert got.files[0].closed


@pytest.mark.parametrize(
    ("error", "status"), [(PermissionError, "NotAuthorizedException"), (OSError, "Internal")]
)
async def test_open_errors_are_litestars(
    apps: tuple[Litestar, Litestar],
    monkeypatch: pytest.MonkeyPatch,
    error: type[OSError],
    status: str,
) -> None:
    """As Litestar: the open fails after the start, with Litestar's exception."""
    import litestar.file_system

    import zcio

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error("refused")

    monkeypatch.setattr(zcio, "open_cached_stat", lambda path: None)
    monkeypatch.setattr(zcio_litestar._response, "_open_regular", refuse)
    monkeypatch.setattr(litestar.file_system, "open_file", refuse)
    raised = []
    for app in apps:
        starts: list[str] = []

        async def record(message: Message, starts: list[str] = starts) -> None:
            starts.append(message["type"])

        with pytest.raises(Exception) as info:  # noqa: PT011 - compared below
            await call(app, "/file/whole", send_hook=record)
        cause = info.value.__cause__
        while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
            cause = cause.exceptions[0]  # Litestar's stream raises it from its task group
        raised.append(type(cause).__name__)
        assert starts[0] == START
    assert raised[0] == raised[1] and status in raised[0]


def test_public_names() -> None:
    assert zcio_litestar.__all__ == [
        "ASGIFileResponse",
        "File",
        "NoZeroCopyMiddleware",
        "StaticFiles",
        "create_static_files_router",
        "why_not_zerocopy",
    ]
    for name in zcio_litestar.__all__:
        assert getattr(zcio_litestar, name).__module__ == "zcio_litestar"
