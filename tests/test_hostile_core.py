"""Hostile and odd input to the library: TCP urgent data, a file sent into itself, a pipe
spliced into itself, unequal pipes under ``tee_stream``, offsets past any file.

Every transfer here runs on asyncio, uvloop and trio (the ``anyio_backend`` fixture), native
and forced-fallback where a method is involved (``mode``), and checks the bytes.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

import zcio
from _support import make_data, sha, tcp_listener
from test_cli_proxy import BACKENDS, echo, proxy, server
from zcio import _pipes

pytestmark = pytest.mark.anyio


def _connected_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection: (the client's end, the server's end)."""
    listener, port = tcp_listener()
    with listener:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
    return client, accepted


def _send_with_urgent_byte(sock: socket.socket, before: bytes, after: bytes) -> None:
    sock.sendall(before)
    sock.send(b"!", socket.MSG_OOB)  # not part of the stream: recv(2) steps over it
    sock.sendall(after)
    sock.shutdown(socket.SHUT_WR)


async def _read_to_end(sock: socket.socket) -> bytes:
    got = bytearray()
    sock.setblocking(False)
    while True:
        await anyio.wait_readable(sock)
        chunk = sock.recv(1 << 16)
        if not chunk:
            return bytes(got)
        got += chunk


async def _tee_to_peers(
    src: socket.socket,
    count: int,
    pool: zcio.PipePool | None = None,
    progress: zcio.TeeProgress | None = None,
) -> list[bytes]:
    """tee_stream from ``src`` to ``count`` fresh loopback connections; what each peer got."""
    pairs = [_connected_pair() for _ in range(count)]
    got: dict[int, bytes] = {}
    try:
        async with anyio.create_task_group() as tg:
            for i, (out, peer) in enumerate(pairs):
                out.setblocking(False)

                async def read(i: int = i, peer: socket.socket = peer) -> None:
                    got[i] = await _read_to_end(peer)

                tg.start_soon(read)
            await zcio.tee_stream(src, *(out for out, _ in pairs), pool=pool, progress=progress)
            for out, _ in pairs:
                out.shutdown(socket.SHUT_WR)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    return [got[i] for i in range(count)]


@pytest.mark.parametrize("into", ["socket", "pipe"])
async def test_urgent_data_does_not_end_a_splice(mode: str, into: str) -> None:
    """splice(2) returns 0 at an urgent mark: that 0 is not the end, the bytes after it come."""
    before, after = make_data(100_000, 1), make_data(300_000, 2)
    client, src = _connected_pair()
    src.setblocking(False)
    with client, src:
        if into == "socket":
            out_client, out_server = _connected_pair()
            out_client.setblocking(False)
            with out_client, out_server:
                _send_with_urgent_byte(client, before, after)
                async with anyio.create_task_group() as tg:
                    got: list[bytes] = []

                    async def read() -> None:
                        got.append(await _read_to_end(out_server))

                    tg.start_soon(read)
                    sent = await zcio.splice_stream(src, out_client)
                    out_client.shutdown(socket.SHUT_WR)
                received = got[0]
        else:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                _send_with_urgent_byte(client, before, after)
                chunks = bytearray()
                async with anyio.create_task_group() as tg:

                    async def drain() -> None:
                        while True:
                            await anyio.wait_readable(r)
                            chunk = os.read(r, 1 << 16)
                            if not chunk:
                                return
                            chunks.extend(chunk)

                    tg.start_soon(drain)
                    sent = await zcio.splice_stream(src, w)
                    os.close(w)
                    w = -1
                received = bytes(chunks)
            finally:
                os.close(r)
                if w >= 0:
                    os.close(w)
    assert sha(received) == sha(before + after)
    assert sent == len(before + after)


async def test_urgent_data_does_not_end_a_tee(mode: str) -> None:
    before, after = make_data(50_000, 3), make_data(80_000, 4)
    client, src = _connected_pair()
    src.setblocking(False)
    with client, src:
        _send_with_urgent_byte(client, before, after)
        got = await _tee_to_peers(src, 2)
    assert [sha(g) for g in got] == [sha(before + after)] * 2


async def test_urgent_data_while_the_peer_stays_open(mode: str) -> None:
    """Before the peer closes, splice(2) says EAGAIN at the mark (and FIONREAD says 0), however
    much follows: the bytes after the mark must come without the peer closing, and no spin."""
    before, after = make_data(1000, 6), make_data(5000, 7)
    client, src = _connected_pair()
    out_client, out_server = _connected_pair()
    src.setblocking(False)
    out_client.setblocking(False)
    out_server.setblocking(False)
    with client, src, out_client, out_server:
        client.sendall(before)
        client.send(b"!", socket.MSG_OOB)
        client.sendall(after)
        got = bytearray()
        async with anyio.create_task_group() as tg:
            progress = zcio.Progress()
            tg.start_soon(lambda: zcio.splice_stream(src, out_client, progress=progress))
            with anyio.fail_after(10):
                while len(got) < len(before + after):
                    await anyio.wait_readable(out_server)
                    got += out_server.recv(1 << 16)
            client.shutdown(socket.SHUT_WR)  # only now: the relay then ends by itself
    assert sha(bytes(got)) == sha(before + after)
    assert progress.sent == len(before + after)


@pytest.mark.anyio(False)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_proxy_relays_past_urgent_data(backend: str) -> None:
    with (
        server(echo) as target,
        proxy("--target", f"127.0.0.1:{target.port}", "--backend", backend) as (command, port),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            _send_with_urgent_byte(sock, b"hello", b"world")
            got = bytearray()
            while chunk := sock.recv(1 << 16):
                got += chunk
        assert bytes(got) == b"helloworld"
        command.stop()
    assert "Traceback" not in command.output


# -- the same object on both sides -------------------------------------------------------------


@pytest.mark.parametrize("position", ["start", "end"])
async def test_a_file_is_never_sent_into_itself(tmp_path: Path, position: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    with open(path, "r+b") as f:
        if position == "end":
            f.seek(0, os.SEEK_END)
        with pytest.raises(ValueError, match="same regular file"):
            await zcio.send_file(f, f)
        with pytest.raises(ValueError, match="same regular file"):
            await zcio.copy(f, f, count=10)
    assert path.stat().st_size == 1000


async def test_one_odd_call_teaches_zcio_nothing(tmp_path: Path) -> None:
    """A pipe spliced into itself and a file copied into itself are those calls' errors:
    afterwards pipe-to-pipe still splices and file-to-file still uses copy_file_range."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(w, b"abc")
        with pytest.raises(ValueError, match="same pipe"):
            await zcio.splice_stream(r, w, count=3)
    finally:
        os.close(r)
        os.close(w)
    path = tmp_path / "f"
    path.write_bytes(make_data(4096))
    with open(path, "r+b") as f, pytest.raises(ValueError, match="same regular file"):
        await zcio.copy(f, f, count=100)

    before = zcio.stats()
    r1, w1 = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    r2, w2 = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(w1, b"hello")
        os.close(w1)
        w1 = -1
        assert await zcio.splice_stream(r1, w2) == 5
        assert os.read(r2, 10) == b"hello"
    finally:
        for fd in (r1, w1, r2, w2):
            if fd >= 0:
                os.close(fd)
    out = tmp_path / "out"
    with open(path, "rb") as src, open(out, "wb") as dst:
        assert await zcio.copy(src, dst) == 4096
    moved = zcio.stats() - before
    assert moved.bytes("splice") == 5
    assert moved.bytes("copy_file_range") == 4096
    assert moved.bytes("userspace") == 0
    assert out.read_bytes() == path.read_bytes()


# -- tee_stream with pipes of different sizes --------------------------------------------------


async def test_tee_with_unequal_pipes(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the per-user pipe limit a new pipe gets one or two pages beside the pool's idle
    1 MiB ones; tee(2) copies pipe buffers, not bytes, so every pipe of a tee is made the
    smallest size, and the bytes all arrive."""
    pool = zcio.PipePool(limit=8, size=1 << 20)
    warm = pool.acquire()
    assert warm is not None and warm.size == 1 << 20
    pool.release(warm)
    assert pool.idle == 1

    class Small(_pipes.Pipe):
        def __init__(self, size: int) -> None:
            super().__init__(8192)  # what F_SETPIPE_SZ leaves past pipe-user-pages-soft

    monkeypatch.setattr(_pipes, "Pipe", Small)
    data = make_data(3 << 20, 5)
    client, src = _connected_pair()
    src.setblocking(False)
    progress = zcio.TeeProgress()
    try:
        with client, src:
            async with anyio.create_task_group() as tg:

                def feed() -> None:
                    client.sendall(data)
                    client.shutdown(socket.SHUT_WR)

                tg.start_soon(anyio.to_thread.run_sync, feed)
                got = await _tee_to_peers(src, 2, pool=pool, progress=progress)
    finally:
        pool.clear()
    assert [sha(g) for g in got] == [sha(data)] * 2
    assert progress.sent_to == [len(data)] * 2


# -- arguments past any file ---------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "count"), [(2**63, None), (2**64, None), (2**63 - 10, 100)])
async def test_offsets_past_any_file_are_value_errors(
    tmp_path: Path, offset: int, count: int | None
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        with pytest.raises(ValueError, match="2\\*\\*63"):
            await zcio.send_file(a, path, offset=offset, count=count)
