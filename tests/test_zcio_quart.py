"""zcio_quart in process: the same status, headers and bytes as stock Quart for ``send_file``,
``send_from_directory`` and the static folder, with the body handed to the server by
``http.response.zerocopysend`` (or ``pathsend``) where the server and the middleware allow it,
and ``send_from_directory``'s files opened beneath the folder.

A small ASGI "server" here calls the apps of tests/apps/quart_app.py (stock and installed, built
over the same folder) with a scope advertising the extensions under test, and assembles the body
from every message kind: ``zerocopysend`` slices are read back with ``os.pread`` from the file
the app handed over (so a file closed too early fails the read), ``pathsend`` reads the path.
Quart runs on asyncio only: asyncio and uvloop here. tests/test_zcio_quart_live.py does the same
over real servers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from quart import Quart, Response, send_file, send_from_directory
from quart.asgi import ASGIHTTPConnection
from quart.wrappers.response import FileBody as QuartFileBody
from starlette.middleware.gzip import GZipMiddleware

import zcio_quart
import zcio_quart._body as zcio_quart_body
from _support import make_data, sha

pytestmark = pytest.mark.anyio

ZC = "http.response.zerocopysend"
PS = "http.response.pathsend"
START = "http.response.start"
BODY = "http.response.body"
DATA = make_data(300_007, seed=220)
TEXT = b"".join(b"line %d of a text file\n" % i for i in range(2000))
SECRET = b"outside the folder\n"
SETS = [(), (ZC,), (PS,), (ZC, PS)]
Message = Any


def _load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "quart_app_inprocess", Path(__file__).parent / "apps" / "quart_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APP_MODULE = _load_app_module()


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Quart runs on asyncio (and uvloop), not on trio."""
    return request.param


@pytest.fixture(autouse=True)
def _forget_folders() -> Iterator[None]:
    """zcio_quart keeps the folders of send_from_directory open (bounded, per directory); let
    them go after each test, before the fd check."""
    yield
    zcio_quart_body._FOLDERS.clear()


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
        """Status, headers (minus the time-dependent Expires) and the body's hash."""
        headers = sorted((k, v) for k, v in self.headers if k != b"expires")
        return self.status, headers, sha(bytes(self.body))


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
    app: Any,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    extensions: Iterable[str] = (ZC, PS),
    send_hook: Callable[[Message], Awaitable[None]] | None = None,
    disconnect: anyio.Event | None = None,
) -> Reply:
    """Call ``app`` as a server advertising ``extensions`` would, and assemble the reply;
    ``disconnect``: the client goes away once it is set (``receive`` says so)."""
    extensions = tuple(extensions)
    route, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"x")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {name: {} for name in extensions},
    }
    reply = Reply()
    requested = False
    done = anyio.Event()

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # As a server does: the client goes once the response is complete (Quart 0.22 cancels
        # this wait then; 0.23 waits for the disconnect), or when told to.
        await (disconnect or done).wait()
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

    with anyio.fail_after(20):
        await app(scope, receive, send)
    if method == "HEAD":
        reply.body.clear()  # every server drops a HEAD's body
    return reply


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("quart")
    root = base / "root"
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "empty.bin").write_bytes(b"")
    (root / "page.txt").write_bytes(TEXT)
    (www / "data.bin").write_bytes(DATA)
    (www / "page.txt").write_bytes(TEXT)
    (www / "sub" / "ünï cödé.txt").write_bytes(TEXT[:5000])
    (www / "alias.bin").symlink_to("data.bin")  # a symlink that stays inside: served
    (base / "secret.txt").write_bytes(SECRET)
    (www / "out.txt").symlink_to(base / "secret.txt")  # leads out: Quart serves it, zcio 404
    (www / "outdir").symlink_to(base)
    return root


@dataclass
class Apps:
    stock: Quart
    zcio: Quart


@pytest.fixture(scope="module")
def apps(root: Path) -> Apps:
    return Apps(
        APP_MODULE.make_app("stock", root), zcio_quart.install(APP_MODULE.make_app("zcio", root))
    )


async def both(apps: Apps, path: str, **kwargs: Any) -> tuple[Reply, Reply]:
    return await call(apps.stock, path, **kwargs), await call(apps.zcio, path, **kwargs)


# --- install --------------------------------------------------------------------------------


def test_install_replaces_two_classes_of_the_app_only(root: Path) -> None:
    app = APP_MODULE.make_app("a", root)
    other = APP_MODULE.make_app("b", root)
    assert zcio_quart.install(app) is app
    assert app.asgi_http_class is zcio_quart.HTTPConnection
    assert app.response_class.file_body_class is zcio_quart.FileBody
    assert issubclass(app.response_class, Response)
    assert app.response_class.__name__ == "Response"
    classes = (app.asgi_http_class, app.response_class)
    zcio_quart.install(app)  # again: nothing changes
    assert (app.asgi_http_class, app.response_class) == classes
    assert other.asgi_http_class is ASGIHTTPConnection
    assert other.response_class is Response and Response.file_body_class is QuartFileBody


def test_install_keeps_what_the_app_made_its_own(root: Path) -> None:
    class Mine(ASGIHTTPConnection):
        pass

    class Overrides(ASGIHTTPConnection):
        async def _send_response(self, send: Any, response: Any) -> None:
            await super()._send_response(send, response)

    class MyBody(QuartFileBody):
        pass

    class MyResponse(Response):
        file_body_class = MyBody

    app = APP_MODULE.make_app("mine", root)
    app.asgi_http_class = Mine
    zcio_quart.install(app)
    assert issubclass(app.asgi_http_class, Mine)
    assert issubclass(app.asgi_http_class, zcio_quart.HTTPConnection)

    app = APP_MODULE.make_app("overrides", root)
    app.asgi_http_class = Overrides
    app.response_class = MyResponse
    zcio_quart.install(app)
    assert app.asgi_http_class is Overrides
    assert app.response_class is MyResponse


# --- the same as stock, and which message ----------------------------------------------------

LATER = "Fri, 01 Jan 2100 00:00:00 GMT"
EARLIER = "Fri, 01 Jan 2010 00:00:00 GMT"
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/file?name=data.bin", {}),
    ("GET", "/file?name=data.bin&attachment=1", {}),
    ("GET", "/file?name=data.bin", {"Range": "bytes=10-99"}),  # send_file ignores Range
    ("GET", "/file?name=data.bin&conditional=1", {"Range": "bytes=10-99"}),
    ("GET", "/file?name=data.bin&conditional=1", {"Range": "bytes=299000-"}),
    ("GET", "/file?name=data.bin&conditional=1", {"Range": "bytes=0-0"}),
    ("GET", "/file?name=data.bin&conditional=1", {"Range": "bytes=5-9,20-29"}),  # 416
    ("GET", "/file?name=data.bin&conditional=1", {"Range": "bytes=400000-"}),  # 416
    ("GET", "/file?name=data.bin&conditional=1", {"If-Modified-Since": LATER}),
    ("GET", "/file?name=data.bin&conditional=1", {"If-Modified-Since": EARLIER}),
    ("GET", "/file?name=empty.bin", {}),
    ("GET", "/dir/data.bin", {}),
    ("GET", "/dir/data.bin", {"Range": "bytes=100-"}),
    ("GET", "/dir/sub/ünï cödé.txt", {}),
    ("GET", "/dir/alias.bin", {}),
    ("GET", "/dir/missing.txt", {}),
    ("GET", "/dir/sub", {}),
    ("GET", "/dir/../root/data.bin", {}),
    ("GET", "/static/page.txt", {}),
    ("GET", "/static/data.bin", {"If-Range": '"nope"', "Range": "bytes=0-9"}),
    ("GET", "/bytesio", {}),
    ("GET", "/bytesio", {"Range": "bytes=5-1000"}),
    ("GET", "/replaced?name=data.bin", {}),
    ("HEAD", "/file?name=data.bin", {}),
    ("HEAD", "/dir/data.bin", {"Range": "bytes=100-199"}),
    ("HEAD", "/static/page.txt", {}),
]  # fmt: skip


async def test_every_case_same_as_stock(apps: Apps) -> None:
    """Under every set of extensions a server may advertise (both, either, none)."""
    for extensions in SETS:
        for method, path, headers in CASES:
            stock, ours = await both(
                apps, path, method=method, headers=headers, extensions=extensions
            )
            assert ours.same() == stock.same(), (extensions, method, path, headers)
            assert ours.complete
            for file in ours.files:
                assert file.closed  # closed once the message that carried it was sent


async def test_a_suffix_range_fails_as_in_quart(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    """Quart 0.22 answers ``Range: bytes=-N`` with a 500 (werkzeug's ContentRange refuses the
    negative start it passes): the same here, and no file is left open."""
    for path in ("/static/page.txt", "/file?name=page.txt&conditional=1"):
        stock, ours = await both(apps, path, headers={"Range": "bytes=-100"})
        assert ours.same() == stock.same()
        assert ours.status == 500
    caplog.clear()  # the logged tracebacks hold the bodies (and their folder)


async def test_etags_and_304(apps: Apps) -> None:
    for path in ("/static/data.bin", "/dir/data.bin", "/file?name=data.bin&conditional=1"):
        first = await call(apps.stock, path)
        etag = first.header(b"etag")
        assert etag is not None
        for headers in ({"If-None-Match": etag.decode()}, {"If-Match": '"other"'}):
            stock, ours = await both(apps, path, headers=headers)
            assert ours.same() == stock.same(), (path, headers)
            assert ours.status in (304, 412)


SLICES: list[tuple[str, dict[str, str], int, int]] = [
    ("/file?name=data.bin", {}, 0, len(DATA)),
    ("/file?name=data.bin&conditional=1", {"Range": "bytes=10-99"}, 10, 90),
    ("/dir/data.bin", {}, 0, len(DATA)),
    ("/dir/data.bin", {"Range": "bytes=1000-"}, 1000, len(DATA) - 1000),
    ("/static/data.bin", {"Range": "bytes=0-0"}, 0, 1),
]


async def test_zerocopysend_carries_the_file_or_the_range(apps: Apps) -> None:
    for path, headers, offset, count in SLICES:
        seen: list[Message] = []

        async def hook(message: Message, seen: list[Message] = seen) -> None:
            if message["type"] == ZC:
                seen.append(dict(message))

        reply = await call(apps.zcio, path, headers=headers, send_hook=hook)
        assert reply.kinds == [START, ZC], path
        got = [(m["offset"], m["count"], m["more_body"]) for m in seen]
        assert got == [(offset, count, False)], path
        assert bytes(reply.body) == DATA[offset : offset + count]


#: (extensions, path, the messages; None: Quart's body messages).
MESSAGES: list[tuple[tuple[str, ...], str, list[str] | None]] = [
    ((PS,), "/file?name=data.bin", [START, PS]),
    ((PS,), "/file?name=data.bin&conditional=1", [START, PS]),
    ((PS,), "/dir/data.bin", None),  # never pathsend beneath a folder: Quart's reads
    ((PS,), "/static/data.bin", None),
    ((), "/file?name=data.bin", None),
    ((ZC, PS), "/replaced?name=data.bin", None),
    ((ZC, PS), "/bytesio", None),
    ((ZC, PS), "/file?name=empty.bin", None),
]


async def test_which_message(apps: Apps) -> None:
    for extensions, path, kinds in MESSAGES:
        reply = await call(apps.zcio, path, extensions=extensions)
        if kinds is None:
            assert reply.kinds[0] == START and set(reply.kinds[1:]) == {BODY}, path
        else:
            assert reply.kinds == kinds, path


async def test_range_with_pathsend_only_is_quarts_path(apps: Apps) -> None:
    reply = await call(apps.zcio, "/dir/data.bin", headers={"Range": "bytes=5-9"}, extensions=(PS,))
    assert reply.status == 206 and set(reply.kinds[1:]) == {BODY}


async def test_head_sends_an_empty_body(apps: Apps) -> None:
    for extensions in [(ZC,), (PS,)]:
        reply = await call(apps.zcio, "/file?name=data.bin", method="HEAD", extensions=extensions)
        assert reply.kinds == [START, BODY], extensions  # werkzeug's, not the app's
        assert reply.header(b"content-length") == str(len(DATA)).encode()


async def test_behind_gzip_middleware_quarts_path(root: Path) -> None:
    stock = APP_MODULE.make_app("gz-stock", root)
    app = zcio_quart.install(APP_MODULE.make_app("gz", root))
    stock.asgi_app = GZipMiddleware(stock.asgi_app)
    app.asgi_app = GZipMiddleware(app.asgi_app)
    headers = {"Accept-Encoding": "gzip"}
    for path in ("/file?name=page.txt", "/dir/page.txt"):
        expected = await call(stock, path, headers=headers)
        reply = await call(app, path, headers=headers)
        assert reply.same() == expected.same()
        assert reply.header(b"content-encoding") == b"gzip"
        assert ZC not in reply.kinds


# --- beneath the folder --------------------------------------------------------------------


async def test_symlinks_leading_out_are_404s(apps: Apps) -> None:
    """Stock Quart follows them; zcio_quart opens beneath the folder, whatever the server."""
    for path in ("/dir/out.txt", "/dir/outdir/secret.txt", "/static/out.txt"):
        stock = await call(apps.stock, path, extensions=())
        assert stock.status == 200 and bytes(stock.body) == SECRET
        for extensions in SETS:
            reply = await call(apps.zcio, path, extensions=extensions)
            assert reply.status == 404, (path, extensions)
            assert SECRET not in reply.body


async def test_a_name_swapped_out_after_the_check_is_a_404(root: Path) -> None:
    """The name leads out of the folder by the time the body is sent (a symlink swapped in
    after the response was built): werkzeug's 404, before anything else is sent, whatever the
    server offers; stock Quart sends the outside file."""
    www = root / "www"

    def build(name: str) -> Quart:
        app = Quart(name)

        @app.route("/")
        async def swapped() -> Response:
            (www / "swapped").unlink(missing_ok=True)
            (www / "swapped").write_bytes(SECRET[::-1])  # the same size as the secret
            response = await send_from_directory(www, "swapped")
            (www / "swapped.new").symlink_to(root.parent / "secret.txt")
            os.replace(www / "swapped.new", www / "swapped")
            return response

        return app

    stock = await call(build("stock-swap"), "/", extensions=())
    assert bytes(stock.body) == SECRET
    app = zcio_quart.install(build("zcio-swap"))
    for extensions in SETS:
        reply = await call(app, "/", extensions=extensions)
        assert reply.status == 404 and SECRET not in reply.body, extensions
        assert reply.kinds == [START, BODY], extensions  # werkzeug's, not the app's
    (www / "swapped").unlink()


async def test_a_fifo_is_a_404_never_a_wait(apps: Apps, root: Path) -> None:
    fifo = root / "www" / "fifo"
    os.mkfifo(fifo)
    try:
        for extensions in SETS:
            reply = await call(apps.zcio, "/dir/fifo", extensions=extensions)
            assert reply.status == 404
    finally:
        fifo.unlink()


async def test_a_304_opens_no_file_for_sending(apps: Apps, root: Path) -> None:
    """A 304 replaces the body send_from_directory made: nothing is left open (the fd check
    after every test)."""
    etag = (await call(apps.zcio, "/dir/data.bin")).header(b"etag")
    assert etag is not None
    reply = await call(apps.zcio, "/dir/data.bin", headers={"If-None-Match": etag.decode()})
    assert reply.status == 304


# --- errors and cancellation ---------------------------------------------------------------


async def test_send_that_fails_closes_the_file(apps: Apps) -> None:
    for path in ("/file?name=data.bin", "/dir/data.bin"):
        files: list[Any] = []

        async def hook(message: Message, files: list[Any] = files) -> None:
            if message["type"] == ZC:
                files.append(message["file"])
                raise OSError("the client went away")

        # Quart 0.22 raises the OSError; 0.23 a ClientDisconnectedError in an ExceptionGroup.
        with contextlib.suppress(OSError, ExceptionGroup):
            await call(apps.zcio, path, send_hook=hook)
        assert files and files[0].closed


async def test_a_client_leaving_mid_send_closes_the_file(apps: Apps) -> None:
    """The server's send is still moving the file when the client goes: Quart cancels the
    task sending the response, and the file is closed."""
    for path in ("/file?name=data.bin", "/dir/data.bin"):
        files: list[Any] = []
        gone = anyio.Event()

        async def hook(message: Message, files: list[Any] = files, gone: Any = gone) -> None:
            if message["type"] == ZC:
                files.append(message["file"])
                gone.set()
                await anyio.sleep_forever()

        await call(apps.zcio, path, send_hook=hook, disconnect=gone)
        assert files and files[0].closed


async def test_a_file_gone_before_it_is_sent_fails_as_quarts(root: Path) -> None:
    """send_file of a path: the file is opened when it is sent; if it is gone by then, Quart's
    own path runs, and fails as it does for stock."""
    path = root / "gone.bin"

    def build(name: str) -> Quart:
        app = Quart(name)

        @app.route("/")
        async def gone() -> Response:
            path.write_bytes(b"x" * 100)
            response = await send_file(path)
            path.unlink()
            return response

        return app

    errors = []
    for app in (build("stock-gone"), zcio_quart.install(build("zcio-gone"))):
        # Quart 0.23 raises it in an ExceptionGroup (its connection runs a TaskGroup).
        with pytest.raises((FileNotFoundError, ExceptionGroup)) as caught:
            await call(app, "/")
        errors.append(_leaves(caught.value))
    assert errors[0] == errors[1] == [FileNotFoundError]


def _leaves(exc: BaseException) -> list[type[BaseException]]:
    """The types of the exceptions an exception group holds (or the exception's own)."""
    if isinstance(exc, BaseExceptionGroup):
        return [kind for inner in exc.exceptions for kind in _leaves(inner)]
    return [type(exc)]


def test_why_not_zerocopy() -> None:
    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "extensions": {ZC: {}}}
    assert zcio_quart.why_not_zerocopy(scope, send) is None
    assert "advertise" in str(zcio_quart.why_not_zerocopy({"type": "http"}, send))
