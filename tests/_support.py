"""Loopback peers for transfer tests: receivers in threads, destinations of every flavour.

Receivers run in plain threads with blocking sockets, so they work the same whichever event
loop the sender runs on, and every wait they do is bounded.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
import sniffio
import trustme

TIMEOUT = 20.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_data(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes (no two 4 KiB pages alike)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 128  # 4 KiB
    out = bytearray()
    page = 0
    while len(out) < size:
        out += hashlib.sha256(page.to_bytes(8, "little")).digest()[:8] + block[8:]
        page += 1
    return bytes(out[:size])


@dataclass
class Receiver:
    """Accepts one connection (or takes one socket) in a thread and reads it to EOF.

    ``start_gate``: the thread waits for it before reading (to fill the sender's buffers).
    ``stop_after``: close after this many bytes (a peer that vanishes), with an RST.
    """

    sock: socket.socket
    accept: bool = True
    start_gate: threading.Event | None = None
    stop_after: int | None = None
    rcvbuf: int | None = None
    tls: ssl.SSLContext | None = None
    data: bytearray = field(default_factory=bytearray)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn: socket.socket | None = None
        try:
            self.sock.settimeout(TIMEOUT)
            if self.accept:
                conn, _ = self.sock.accept()
            else:
                conn = self.sock
            conn.settimeout(TIMEOUT)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            if self.start_gate is not None:
                self.start_gate.wait(TIMEOUT)
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                self.data += chunk
                if self.stop_after is not None and len(self.data) >= self.stop_after:
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    break
            else_unwrap = isinstance(conn, ssl.SSLSocket) and self.stop_after is None
            if else_unwrap:
                with suppress(OSError):
                    conn = cast(ssl.SSLSocket, conn).unwrap()  # answer the close_notify
        except BaseException as exc:  # reported by result()
            self.error = exc
        finally:
            if conn is not None and conn is not self.sock:
                conn.close()
            self.sock.close()

    def result(self) -> bytes:
        assert self._thread is not None
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "receiver did not finish"
        if self.error is not None and not isinstance(self.error, ssl.SSLError | OSError):
            raise self.error
        return bytes(self.data)


def tcp_listener(rcvbuf: int | None = None) -> tuple[socket.socket, int]:
    """A listening socket on 127.0.0.1; ``rcvbuf`` caps what accepted connections buffer (set
    before accept, so the window is sized for it), for tests that must not fit in buffers."""
    lsock = socket.socket()
    if rcvbuf is not None:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    return lsock, lsock.getsockname()[1]


def small_send_buffer(obj: Any) -> None:
    """Cap the kernel send buffer of a destination (a socket or a stream with one)."""
    sock = obj if hasattr(obj, "setsockopt") else None
    if sock is None:
        from anyio.abc import SocketAttribute

        sock = obj.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)


@dataclass
class TlsPair:
    server: ssl.SSLContext
    client: ssl.SSLContext


def tls_contexts() -> TlsPair:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TlsPair(server, client)


def backend() -> str:
    name = sniffio.current_async_library()
    if name == "asyncio":
        loop = asyncio.get_running_loop()
        if type(loop).__module__.startswith("uvloop"):
            return "uvloop"
    return name


FLAVOURS = ["socket", "anyio", "trio", "writer", "transport"]


def skip_unsupported(flavour: str) -> None:
    """Skip (before any socket exists) flavours the running backend does not have."""
    name = backend()
    if flavour == "trio" and name != "trio":
        pytest.skip("trio streams need the trio backend")
    if flavour in ("writer", "transport") and name == "trio":
        pytest.skip("asyncio streams need an asyncio loop")


@asynccontextmanager
async def destination(
    flavour: str, port: int, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Any]:
    """Connect to 127.0.0.1:port and yield a destination object of ``flavour``; closing it
    on exit sends EOF to the receiver. Call :func:`skip_unsupported` first."""
    if flavour == "socket":
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls is not None:
            sock.setblocking(True)
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        sock.setblocking(False)
        try:
            yield sock
        finally:
            if isinstance(sock, ssl.SSLSocket):
                await close_tls(sock)
            else:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()
    elif flavour == "anyio":
        if tls is None:
            stream: Any = await anyio.connect_tcp("127.0.0.1", port)
        else:
            stream = await anyio.connect_tcp(
                "127.0.0.1", port, ssl_context=tls, tls_hostname="localhost"
            )
        async with stream:
            yield stream
    elif flavour == "trio":
        import trio

        tstream: Any = await trio.open_tcp_stream("127.0.0.1", port)
        if tls is None:
            async with tstream:
                yield tstream
            return
        raw, tstream = tstream, trio.SSLStream(tstream, tls, server_hostname="localhost")
        try:
            await tstream.do_handshake()
            yield tstream
        finally:
            # As close_tls: trio's aclose() sends close_notify but reads nothing, so a session
            # ticket still unread makes the close an RST that drops the stream's last bytes.
            with anyio.move_on_after(TIMEOUT):
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await tstream.unwrap()
            await raw.aclose()
    elif flavour in ("writer", "transport"):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        try:
            yield writer if flavour == "writer" else writer.transport
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
    else:
        raise AssertionError(flavour)


async def close_tls(sock: ssl.SSLSocket) -> None:
    """Close TLS on a non-blocking ``SSLSocket``: send close_notify and wait for the peer's.

    One ``unwrap()`` is not enough: it gives up when the socket is full (a slow receiver), and
    a session ticket that arrives after it stays unread, so ``close()`` would send an RST and
    the kernel would drop every byte still in the send buffer; the receiver then sees an early
    end of stream. Bounded by ``TIMEOUT``; a peer that closes without answering ends it too.
    """
    with anyio.move_on_after(TIMEOUT):
        while True:
            try:
                sock.unwrap()
                return
            except ssl.SSLWantReadError:
                await anyio.wait_readable(sock.fileno())
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(sock.fileno())
            except OSError:
                return


async def write_header(flavour: str, dst: Any, header: bytes) -> None:
    """Write ``header`` through the destination's own API, leaving it buffered if it buffers."""
    if flavour == "socket":
        view = memoryview(header)
        while view:
            try:
                view = view[dst.send(view) :]
            except (BlockingIOError, ssl.SSLWantWriteError):
                await anyio.sleep(0.001)
    elif flavour == "anyio":
        await dst.send(header)
    elif flavour == "trio":
        await dst.send_all(header)
    else:
        dst.write(header)  # StreamWriter or transport: stays in the transport's buffer


def file_of(tmp: os.PathLike[str] | str, data: bytes, name: str = "src.bin") -> str:
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def evict(path: str) -> bool:
    """Drop ``path`` from the page cache; True if the first page is really gone."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


@dataclass
class Sender:
    """Accepts one connection in a thread, writes ``data`` to it, then half-closes it.

    ``hold``: keep the connection open (no EOF) until the event is set, after writing.
    ``reset_after``: reset the connection (RST) after this many bytes instead.
    """

    sock: socket.socket
    data: bytes
    hold: threading.Event | None = None
    reset_after: int | None = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Sender:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.sock.settimeout(TIMEOUT)
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                if self.reset_after is not None:
                    conn.sendall(self.data[: self.reset_after])
                    time.sleep(0.05)
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    return
                conn.sendall(self.data)
                if self.hold is not None:
                    self.hold.wait(TIMEOUT)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(TIMEOUT)
                while conn.recv(1 << 16):  # until the other side closes
                    pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.sock.close()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "sender did not finish"


SOURCES = ["socket", "anyio", "trio", "reader", "pipe"]


def skip_unsupported_source(flavour: str) -> None:
    name = backend()
    if flavour == "trio" and name != "trio":
        pytest.skip("trio streams need the trio backend")
    if flavour == "reader" and name == "trio":
        pytest.skip("asyncio streams need an asyncio loop")


@asynccontextmanager
async def source(flavour: str, data: bytes, *, read_ahead: int = 0) -> AsyncIterator[Any]:
    """A readable object of ``flavour`` that yields ``data`` then EOF.

    ``read_ahead``: first consume that many bytes through the wrapper's own API, so that a
    wrapper that buffers holds more than it returned (what splice_stream must hand over).
    """
    if flavour == "pipe":
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(w, True)

        def feed() -> None:
            with suppress(OSError):
                os.write(w, data)
            os.close(w)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        try:
            assert read_ahead == 0
            yield r
        finally:
            os.close(r)
            thread.join(TIMEOUT)
        return
    lsock, port = tcp_listener()
    sender = Sender(lsock, data).start()
    try:
        if flavour == "socket":
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            sock.setblocking(False)
            try:
                yield sock
            finally:
                sock.close()
        elif flavour == "anyio":
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                got = b""
                while len(got) < read_ahead:
                    got += await stream.receive(read_ahead - len(got))
                assert got == data[:read_ahead]
                yield stream
        elif flavour == "trio":
            import trio

            async with await trio.open_tcp_stream("127.0.0.1", port) as tstream:
                got = b""
                while len(got) < read_ahead:
                    got += await tstream.receive_some(read_ahead - len(got))
                yield tstream
        elif flavour == "reader":
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if read_ahead:
                    assert await reader.readexactly(read_ahead) == data[:read_ahead]
                yield reader
            finally:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()
        else:
            raise AssertionError(flavour)
    finally:
        sender.join()


@asynccontextmanager
async def pipe_destination() -> AsyncIterator[tuple[int, Callable[[], bytes]]]:
    """A non-blocking pipe's write end, and a function giving all that came out of it."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(r, True)
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    closed = False

    def result() -> bytes:
        nonlocal closed
        if not closed:
            os.close(w)
            closed = True
        thread.join(TIMEOUT)
        return bytes(got)

    try:
        yield w, result
    finally:
        result()
        os.close(r)


def answer_after_eof(lsock: socket.socket, response: bytes, seen: dict[str, bytes]) -> None:
    """In a thread: accept one connection, read the request to its EOF into ``seen["request"]``,
    then send ``response``. Works only if a half-close crossed whatever sits in between."""

    def serve() -> None:
        conn, _ = lsock.accept()
        with conn, lsock:
            conn.settimeout(TIMEOUT)
            got = bytearray()
            while chunk := conn.recv(1 << 16):
                got += chunk
            seen["request"] = bytes(got)
            conn.sendall(response)

    threading.Thread(target=serve, daemon=True).start()


BIG = os.urandom(1 << 20) * 3 + b"tail"  # three MiB and a bit: several sendfile calls
SECRET = b"outside the root\n"


def make_root(base: Path) -> Path:
    """A folder to serve under ``base``, with ways out of it: hidden entries, symlinks to a
    file and a folder outside, and ``base/secret.txt`` (:data:`SECRET`) to be reached."""
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(BIG)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / ".hidden").write_bytes(b"hidden\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"hidden too\n")
    (base / "secret.txt").write_bytes(SECRET)
    (root / "escape.txt").symlink_to(base / "secret.txt")  # a file outside the root
    (root / "up").symlink_to(base)  # a folder above the root
    (root / "alias.txt").symlink_to("hello.txt")  # inside the root: allowed
    return root


INSIDE = b"inside the root\n" * 64  # what a Swapper's name holds when it is not the intruder
_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (``renameat2(RENAME_EXCHANGE)``): an attacker's best tool."""
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Swapper(threading.Thread):
    """Swaps, again and again, ``root/name`` (a regular file, or a folder holding one, of
    :data:`INSIDE`) with an intruder: a symlink to the file (or the folder) outside the root
    that holds :data:`SECRET`, or a FIFO. What a local process with write access to the
    folder can do."""

    def __init__(self, root: Path, name: str, intruder: str) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.swaps = 0
        self.target, self.other = root / name, root / f"{name}.other"
        for path in (self.target, self.other):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if intruder == "symlink-dir":
            self.target.mkdir()
            (self.target / "secret.txt").write_bytes(INSIDE)
            self.other.symlink_to(root.parent)  # where secret.txt holds SECRET
        else:
            self.target.write_bytes(INSIDE)
            if intruder == "symlink":
                self.other.symlink_to(root.parent / "secret.txt")
            else:
                os.mkfifo(self.other)

    def run(self) -> None:
        while not self.stop.is_set():
            exchange(self.target, self.other)
            self.swaps += 1

    def __enter__(self) -> Swapper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(TIMEOUT)


# -- servers in subprocesses -------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a server subprocess to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_server(
    proc: subprocess.Popen[str],
    url: str,
    *,
    name: str = "server",
    timeout: float = 20.0,
    interval: float = 0.05,
    verify: Any = False,
) -> None:
    """Poll ``url`` with GETs until the server answers. If ``proc`` (started with
    ``stderr=PIPE``) exits first, or ``timeout`` seconds pass, kill it and raise
    ``RuntimeError("{name} did not start: ...")`` with the end of its stderr."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1, verify=verify)
            return
        except httpx.TransportError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.communicate()[1][-2000:]
                raise RuntimeError(f"{name} did not start: {err}") from exc
            time.sleep(interval)


def stop_server(proc: subprocess.Popen[str]) -> str:
    """Terminate a server subprocess (killed if it has not exited 10 s later); its stderr."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err
