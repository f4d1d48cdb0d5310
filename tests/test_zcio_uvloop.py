"""zcio_uvloop: uvloop's loop with loop.sendfile / loop.sock_sendfile, live under aiohttp.

Each test runs its own ``zcio_uvloop.run(...)``; servers and clients share that loop, on
127.0.0.1. Bytes are checked by hash, and ``zcio.stats()`` proves which method moved them.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import ssl
import struct
import subprocess
import sys
import termios
import time
import warnings
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from aiohttp import web

import zcio
import zcio_uvloop
from _support import TIMEOUT, file_of, free_port, make_data, sha, tls_contexts
from zcio._knowledge import ENV, KNOWLEDGE

BIG = make_data(6 * 1024 * 1024 + 5, seed=121)
SMALL = make_data(256 * 1024 - 7, seed=122)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            return await asyncio.wait_for(coro, TIMEOUT * 2)

    return zcio_uvloop.run(main())


async def arrived(fd: int, nbytes: int) -> None:
    """Wait (bounded) until at least ``nbytes`` wait unread in the socket ``fd``."""
    for _ in range(int(TIMEOUT / 0.005)):
        if struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0] >= nbytes:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"fewer than {nbytes} bytes arrived")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- the module surface ---------------------------------------------------------------------


def test_mirrors_uvloop() -> None:
    loop = zcio_uvloop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop) and isinstance(loop, zcio_uvloop.Loop)
        # Every method but the two is uvloop's own.
        assert zcio_uvloop.Loop.create_server is uvloop.Loop.create_server
        assert zcio_uvloop.Loop.sendfile is not uvloop.Loop.sendfile
    finally:
        loop.close()

    async def which() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert zcio_uvloop.run(which()) is zcio_uvloop.Loop
    with asyncio.Runner(loop_factory=zcio_uvloop.new_event_loop) as runner:
        assert runner.run(which()) is zcio_uvloop.Loop


def test_install_and_policy() -> None:
    old = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            zcio_uvloop.install()
        assert isinstance(asyncio.get_event_loop_policy(), zcio_uvloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        try:
            assert type(loop) is zcio_uvloop.Loop
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_uvicorn_loop_option_is_the_factory() -> None:
    """uvicorn 0.54 imports a ``--loop module:function`` string and uses it as the factory."""
    from uvicorn.config import Config

    config = Config(app="x:y", loop="zcio_uvloop:new_event_loop")
    assert config.get_loop_factory() is zcio_uvloop.new_event_loop


# --- the contract, on bare transports ------------------------------------------------------


class Sink(asyncio.Protocol):
    """Server side: collects everything until EOF."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.done = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0
        self.received = bytearray()

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def data_received(self, data: bytes) -> None:
        self.received += data


@asynccontextmanager
async def connection(
    tls: bool = False, rcvbuf: int | None = None, hold: bool = False
) -> AsyncIterator[tuple[asyncio.Transport, Client, Sink, Any]]:
    """A client transport on the running loop, to a server on the same loop."""
    loop = asyncio.get_running_loop()
    sinks: list[Sink] = []
    ctx = tls_contexts() if tls else None

    def make() -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    lsock = socket.socket()
    if rcvbuf:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    lsock.bind(("127.0.0.1", 0))
    server = await loop.create_server(make, sock=lsock, ssl=ctx.server if ctx else None)
    port = lsock.getsockname()[1]
    transport, client = await loop.create_connection(
        Client,
        "127.0.0.1",
        port,
        ssl=ctx.client if ctx else None,
        server_hostname="localhost" if ctx else None,
    )
    while not sinks:
        await asyncio.sleep(0.001)
    if hold:  # the server reads nothing until told to (uvloop starts reading after connection_made)
        sinks[0].transport.pause_reading()
    try:
        yield transport, client, sinks[0], server
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)


def test_sendfile_plain_tls_and_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = file_of(tmp_path, BIG)

    async def one(tls: bool, *, fallback: bool = True) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        async with connection(tls=tls) as (transport, _client, sink, _):
            transport.write(b"HEAD")
            with open(path, "rb") as f:
                sent = await loop.sendfile(transport, f, 3, len(BIG) - 5, fallback=fallback)
                assert f.tell() == len(BIG) - 2
            transport.write(b"TAIL")
            transport.close()
            return sent, await sink.done

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = zcio.stats()
        assert await one(False) == (len(BIG) - 5, b"HEAD" + BIG[3:-2] + b"TAIL")
        delta = zcio.stats() - before
        assert delta.bytes("sendfile") == len(BIG) - 5 and delta.bytes("userspace") == 0

        before = zcio.stats()
        assert await one(True) == (len(BIG) - 5, b"HEAD" + BIG[3:-2] + b"TAIL")
        assert (zcio.stats() - before).bytes("userspace") == len(BIG) - 5
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await one(True, fallback=False)

        monkeypatch.setenv(ENV, "sendfile")
        KNOWLEDGE.reset()
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await one(False, fallback=False)
        before = zcio.stats()
        assert await one(False) == (len(BIG) - 5, b"HEAD" + BIG[3:-2] + b"TAIL")
        assert (zcio.stats() - before).bytes("userspace") == len(BIG) - 5

        udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        try:
            with open(path, "rb") as f, pytest.raises(RuntimeError, match="not supported"):
                await loop.sendfile(udp, f)  # type: ignore[arg-type]
        finally:
            udp.close()

    run(main())


def test_sendfile_into_a_pipe_transport(tmp_path: Path) -> None:
    path = file_of(tmp_path, SMALL)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        reader = open(r, "rb", buffering=0)  # noqa: SIM115 (closed below, after the read)
        pipe = open(w, "wb")  # noqa: SIM115 (the transport owns and closes it)
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, pipe)
        try:
            before = zcio.stats()
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(transport, f))
                got = bytearray()
                while len(got) < len(SMALL):
                    got += await asyncio.to_thread(reader.read, 1 << 16)
                assert await task == len(SMALL)
            assert sha(bytes(got)) == sha(SMALL)
            assert (zcio.stats() - before).bytes("sendfile") == len(SMALL)
        finally:
            transport.close()
            await asyncio.sleep(0)
            reader.close()

    run(main())


def test_paused_protocol_reading_and_order(tmp_path: Path) -> None:
    """Bytes written before the call go first, even when they paused the protocol; reading is
    paused while the file goes out and restored after."""
    path = file_of(tmp_path, BIG)
    prefix = make_data(2 * 1024 * 1024, seed=123)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with connection(rcvbuf=64 * 1024) as (transport, client, sink, _):
            sink_transport: Any = None
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024
            )
            transport.set_write_buffer_limits(high=64 * 1024)
            transport.write(prefix)
            assert client.paused == 1  # the peer has not read: the buffer is over the mark
            seen_reading: list[bool] = []

            async def watch() -> None:
                while not task.done():
                    seen_reading.append(transport.is_reading())
                    await asyncio.sleep(0.001)

            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(transport, f))
                watcher = asyncio.ensure_future(watch())
                assert await task == len(BIG)
                await watcher
            assert transport.is_reading()
            assert seen_reading and not any(seen_reading)
            assert client.resumed == 1
            sink_transport = sink
            transport.close()
            assert sha(await sink_transport.done) == sha(prefix + BIG)

    run(main())


def test_closing_transport_and_bad_arguments_match_asyncio(tmp_path: Path) -> None:
    path = file_of(tmp_path, SMALL)
    cases: list[tuple[int | Any, int | Any, str]] = [
        (0, 0, "rb"),
        (0, -1, "rb"),
        (0, "1", "rb"),
        (-1, None, "rb"),
        (1.5, None, "rb"),
        (0, None, "r"),
    ]

    async def errors() -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        out = []
        async with connection() as (transport, _, _, _):
            for offset, count, mode in cases:
                with open(path, mode) as f:
                    try:
                        await loop.sendfile(transport, f, offset, count)
                    except (TypeError, ValueError) as exc:
                        out.append((type(exc).__name__, str(exc)))
            transport.close()
            with open(path, "rb") as f:
                try:
                    await loop.sendfile(transport, f)
                except RuntimeError as exc:
                    out.append(("RuntimeError", str(exc)))
                assert f.tell() == 0
        return out

    ours = run(errors())
    assert len(ours) == len(cases) + 1
    assert ours == asyncio.run(errors())  # the default loop's own answers


def test_sock_sendfile(tmp_path: Path) -> None:
    path = file_of(tmp_path, BIG)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with connection() as (_, _, _, server):
            port = server.sockets[0].getsockname()[1]
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            try:
                before = zcio.stats()
                with open(path, "rb") as f:
                    assert await loop.sock_sendfile(sock, f, 10, 1000) == 1000
                    assert f.tell() == 1010
                    assert await loop.sock_sendfile(sock, f) == len(BIG)
                    assert f.tell() == len(BIG)
                assert (zcio.stats() - before).bytes("sendfile") == len(BIG) + 1000
            finally:
                sock.close()

    run(main())


def test_shrinking_file_aborts_the_transport(tmp_path: Path) -> None:
    path = file_of(tmp_path, BIG)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with connection(rcvbuf=64 * 1024, hold=True) as (transport, _, sink, _):
            sink_transport: Any = None
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024
            )
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(transport, f, 0, len(BIG)))
                # The peer does not read: once bytes wait at its end, the call is under way.
                await arrived(sink.transport.get_extra_info("socket").fileno(), 16 * 1024)
                os.truncate(path, 1024 * 1024)
                sink.transport.resume_reading()
                sent = await task
            assert sent < len(BIG)
            assert transport.is_closing()
            sink_transport = sink
            assert len(await sink_transport.done) <= sent

    run(main())


# --- live: aiohttp ---------------------------------------------------------------------------


@asynccontextmanager
async def aiohttp_server(
    root: Path, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    async def one(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / request.match_info["name"])

    app = web.Application()
    app.router.add_get("/one/{name}", one)
    app.router.add_static("/static/", root)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server: Any = site._server
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


def test_aiohttp_whole_files_and_ranges_to_curl_and_httpx(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    file_of(root, BIG, "big.bin")
    file_of(root, SMALL, "small.bin")
    file_of(root, b"", "empty.bin")

    async def curl(url: str, *extra: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail", *extra, url, stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    async def main() -> None:
        async with aiohttp_server(root) as port:
            base = f"http://127.0.0.1:{port}"
            before = zcio.stats()
            expected = 0
            async with httpx.AsyncClient(base_url=base) as client:
                for url in ("/static/big.bin", "/one/big.bin", "/static/small.bin"):
                    body = BIG if "big" in url else SMALL
                    got = await client.get(url)
                    assert got.status_code == 200 and sha(got.content) == sha(body)
                    expected += len(body)
                    if HAVE_CURL:
                        assert sha(await curl(base + url)) == sha(body)
                        expected += len(body)
                for lo, hi in ((0, 0), (5, 70_000), (len(BIG) - 3, len(BIG) - 1)):
                    got = await client.get("/static/big.bin", headers={"Range": f"bytes={lo}-{hi}"})
                    assert got.status_code == 206 and got.content == BIG[lo : hi + 1]
                    expected += hi + 1 - lo
                    if HAVE_CURL:
                        assert (
                            await curl(base + "/one/big.bin", "-r", f"{lo}-{hi}")
                            == BIG[lo : hi + 1]
                        )
                        expected += hi + 1 - lo
                got = await client.get("/static/empty.bin")
                assert got.status_code == 200 and got.content == b""
            delta = zcio.stats() - before
            assert delta.bytes("sendfile") == expected
            assert delta.bytes("userspace") == 0

    run(main())


HAVE_CURL = subprocess.run(["which", "curl"], capture_output=True).returncode == 0


async def raw_get(port: int, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    return sock


async def read_all(sock: socket.socket, *, pause: float = 0.0, chunk: int = 1 << 16) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while True:
        data = await loop.sock_recv(sock, chunk)
        if not data:
            return bytes(out)
        out += data
        if pause:
            await asyncio.sleep(pause)


def split(response: bytes) -> tuple[bytes, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


def test_aiohttp_slow_reader_and_disconnect_mid_body(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    file_of(root, BIG, "big.bin")

    async def main() -> None:
        async with aiohttp_server(root) as port:
            baseline = fd_count()
            # A slow reader: small window, a pause after every 16 KiB read.
            sock = await raw_get(port, "/static/big.bin", rcvbuf=16 * 1024)
            try:
                head, body = split(await read_all(sock, pause=0.0005, chunk=16 * 1024))
            finally:
                sock.close()
            assert head.startswith(b"HTTP/1.1 200") and sha(body) == sha(BIG)

            # Peers that vanish mid-body, with a reset.
            for _ in range(3):
                sock = await raw_get(port, "/static/big.bin", rcvbuf=32 * 1024)
                got = 0
                while got < 256 * 1024:
                    got += len(await asyncio.get_running_loop().sock_recv(sock, 1 << 16))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                sock.close()
            for _ in range(int(TIMEOUT / 0.01)):
                if fd_count() <= baseline:
                    break
                await asyncio.sleep(0.01)
            assert fd_count() <= baseline

    run(main())


def test_aiohttp_shrinking_file_aborts_never_a_short_body_then_a_response(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    path = file_of(root, BIG, "big.bin")
    file_of(root, b"next response body", "next.txt")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with aiohttp_server(root) as port:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            try:
                # Two pipelined keep-alive requests; the file shrinks while the first is sent.
                requests = b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                requests += b"GET /static/next.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                await loop.sock_sendall(sock, requests)
                # Nobody reads: once the body waits here, the server is sending it.
                await arrived(sock.fileno(), 16 * 1024)
                os.truncate(path, 512 * 1024)
                with suppress(ConnectionResetError):
                    response = await read_all(sock)
            finally:
                sock.close()
        head, body = split(response)
        assert head.startswith(b"HTTP/1.1 200")
        assert f"Content-Length: {len(BIG)}".encode() in head
        assert len(body) < len(BIG)
        assert b"next response body" not in body

    run(main())


def test_aiohttp_200_concurrent_downloads_with_faults(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    file_of(root, SMALL, "small.bin")

    async def good(port: int) -> bytes:
        sock = await raw_get(port, "/static/small.bin")
        try:
            return split(await read_all(sock))[1]
        finally:
            sock.close()

    async def vanishing(port: int, n: int) -> None:
        sock = await raw_get(port, "/static/small.bin", rcvbuf=16 * 1024)
        if n % 2:
            with suppress(OSError):
                await asyncio.get_running_loop().sock_recv(sock, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()

    async def main() -> None:
        async with aiohttp_server(root) as port:
            baseline = fd_count()
            before = zcio.stats()
            jobs: list[Awaitable[Any]] = []
            for n in range(200):
                jobs.append(vanishing(port, n) if n % 10 == 3 else good(port))
            results = await asyncio.gather(*jobs)
            bodies = [r for r in results if r is not None]
            assert len(bodies) == 180
            assert all(sha(b) == sha(SMALL) for b in bodies)
            delta = zcio.stats() - before
            assert delta.bytes("sendfile") >= 180 * len(SMALL)
            assert delta.bytes("userspace") == 0
            for _ in range(int(TIMEOUT / 0.01)):
                if fd_count() <= baseline:
                    break
                await asyncio.sleep(0.01)
            assert fd_count() <= baseline

    run(main())


def test_aiohttp_over_tls_takes_the_user_space_copy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    file_of(root, BIG, "big.bin")
    ctx = tls_contexts()

    async def main() -> None:
        async with aiohttp_server(root, ssl_context=ctx.server) as port:
            before = zcio.stats()
            async with httpx.AsyncClient(verify=ctx.client) as client:
                got = await client.get(f"https://localhost:{port}/static/big.bin")
            assert got.status_code == 200 and sha(got.content) == sha(BIG)
            delta = zcio.stats() - before
            assert delta.bytes("userspace") == len(BIG) and delta.bytes("sendfile") == 0

    run(main())


# --- servers started the documented ways -----------------------------------------------------

RUN_APP = """
import sys, asyncio
from aiohttp import web
import zcio_uvloop

async def which(request):
    return web.Response(text=type(asyncio.get_running_loop()).__module__)

app = web.Application()
app.router.add_get("/", which)
app.router.add_static("/static/", sys.argv[2])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), loop=zcio_uvloop.new_event_loop(),
            print=None)
"""

ASGI_APP = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = type(asyncio.get_running_loop()).__module__.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""


def http_get(port: int, path: str) -> bytes:
    """A whole ``Connection: close`` response body, with a blocking socket (no event loop)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = bytearray()
        while chunk := sock.recv(1 << 16):
            out += chunk
    head, body = split(bytes(out))
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def serve_and_get(cmd: list[str], port: int, paths: list[str], cwd: Path) -> list[bytes]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(int(TIMEOUT / 0.05)):
            try:
                return [http_get(port, path) for path in paths]
            except ConnectionRefusedError:
                if proc.poll() is not None:
                    stderr = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(stderr) from None
                time.sleep(0.05)
        raise AssertionError("the server did not answer")
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        if proc.stderr:
            proc.stderr.close()


def test_web_run_app_and_uvicorn_run_on_zcio_uvloop(tmp_path: Path) -> None:
    (tmp_path / "run_app.py").write_text(RUN_APP)
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    file_of(tmp_path, SMALL, "small.bin")
    port = free_port()
    cmd = [sys.executable, "run_app.py", str(port), str(tmp_path)]
    which, body = serve_and_get(cmd, port, ["/", "/static/small.bin"], tmp_path)
    assert which == b"zcio_uvloop" and sha(body) == sha(SMALL)
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "asgi_app:app", "--port", str(port)]
    uvicorn += ["--loop", "zcio_uvloop:new_event_loop", "--log-level", "warning"]
    assert serve_and_get(uvicorn, port, ["/"], tmp_path) == [b"zcio_uvloop"]


GUNICORN_APP = """
import asyncio, os
from aiohttp import web

async def which(request):
    return web.Response(text=type(asyncio.get_running_loop()).__module__)

async def app():
    application = web.Application()
    application.router.add_get("/", which)
    application.router.add_static("/static/", os.environ["ZCIO_TEST_ROOT"])
    return application
"""


def docs_worker_snippet() -> str:
    """The gunicorn worker class exactly as docs/uvloop.md shows it."""
    text = (Path(__file__).parent.parent / "docs" / "uvloop.md").read_text()
    blocks = text.split("```python\n")[1:]
    return next(b.split("```")[0] for b in blocks if "class ZcioUVLoopWebWorker" in b)


def test_gunicorn_worker_from_the_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if subprocess.run([sys.executable, "-c", "import gunicorn"]).returncode != 0:
        pytest.skip("gunicorn is not installed")
    (tmp_path / "workers.py").write_text(docs_worker_snippet())
    (tmp_path / "gunicorn_app.py").write_text(GUNICORN_APP)
    file_of(tmp_path, SMALL, "small.bin")
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "gunicorn_app:app", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--worker-class", "workers.ZcioUVLoopWebWorker", "--workers", "1"]
    cmd += ["--graceful-timeout", "1"]
    monkeypatch.setenv("ZCIO_TEST_ROOT", str(tmp_path))
    which, body = serve_and_get(cmd, port, ["/", "/static/small.bin"], tmp_path)
    assert which == b"zcio_uvloop" and sha(body) == sha(SMALL)
