"""send_file over loopback: every destination flavour, every backend, native and fallback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import zcio
from _support import (
    FLAVOURS,
    Receiver,
    backend,
    destination,
    evict,
    file_of,
    make_data,
    sha,
    skip_unsupported,
    small_send_buffer,
    tcp_listener,
    tls_contexts,
    write_header,
)

pytestmark = pytest.mark.anyio

DATA = make_data(3 * 1024 * 1024 + 17)


def assert_moved_by(delta: zcio.Stats, mode: str, n: int) -> None:
    """Prove which method moved the bytes, not only that they arrived."""
    if mode == "native":
        assert delta.bytes("sendfile") == n, delta
        assert delta.bytes("userspace") == 0, delta
        assert not delta.fallbacks, delta
    else:
        assert delta.bytes("userspace") == n, delta
        assert delta.bytes("sendfile") == 0, delta
        assert delta.fallbacks.get("disabled") == 1, delta


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_whole_file_after_buffered_header(flavour: str, mode: str, tmp_path: Path) -> None:
    # A header big enough to sit in a transport's buffer when the file starts: it must still
    # arrive first.
    skip_unsupported(flavour)
    header = make_data(2 * 1024 * 1024, seed=1)
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    async with destination(flavour, port) as dst:
        await write_header(flavour, dst, header)
        before = zcio.stats()
        n = await zcio.send_file(dst, path)
        delta = zcio.stats() - before
    assert n == len(DATA)
    assert sha(rx.result()) == sha(header + DATA)
    assert_moved_by(delta, mode, n)


def worker_thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The functions handed to anyio's worker threads from now on (they still run)."""
    calls: list[Any] = []
    real = anyio.to_thread.run_sync

    async def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    return calls


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("size", [4096, 1 << 20])
async def test_to_the_end_without_a_thread(
    flavour: str, mode: str, size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``count=None`` on a cached file: the end is seen on the event loop (a read at the end
    returns at once), not by a last sendfile or read in a worker thread; small files (the
    quick path on asyncio) and large ones."""
    skip_unsupported(flavour)
    path = file_of(tmp_path, DATA[:size])
    Path(path).read_bytes()  # cached, and clean
    to_thread = worker_thread_calls(monkeypatch)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    with open(path, "rb", buffering=0) as f:
        async with destination(flavour, port) as dst:
            before = zcio.stats()
            n = await zcio.send_file(dst, f)
            delta = zcio.stats() - before
    assert n == size
    assert sha(rx.result()) == sha(DATA[:size])
    assert_moved_by(delta, mode, n)
    assert [fn for fn in to_thread if fn in (os.sendfile, os.preadv)] == []


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("size", [4096, 1 << 20])
async def test_cached_path_opened_without_a_thread(
    flavour: str, mode: str, size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path whose file the kernel has cached, on a filesystem zcio has learnt, is opened on
    the event loop (zcio.open_cached) and closed after: no worker thread, no fd left."""
    skip_unsupported(flavour)
    path = file_of(tmp_path, DATA[:size])
    with open(path, "rb") as f:  # as the first send of a path on this mount would
        zcio.learn_filesystem(f.fileno())
    cached = zcio.open_cached(path)
    if cached is None:
        pytest.skip("this kernel or filesystem cannot open from the caches")
    cached.close()
    to_thread = worker_thread_calls(monkeypatch)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    async with destination(flavour, port) as dst:
        before = zcio.stats()
        n = await zcio.send_file(dst, path, offset=1)
        delta = zcio.stats() - before
        assert open_on(path) == []  # the receiver's sockets come and go: count the file's
    assert n == size - 1
    assert sha(rx.result()) == sha(DATA[1:size])
    assert_moved_by(delta, mode, n)
    assert to_thread == []


@pytest.mark.parametrize("flavour", ["writer", "transport"])
async def test_to_the_end_follows_a_file_that_grows(
    flavour: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``count=None``: a file that grows after the quick path's one sendfile is followed to
    its new end by the general path, every byte counted once."""
    from zcio import _small_send, _syscalls

    skip_unsupported(flavour)
    path = file_of(tmp_path, DATA[:4096])
    extra = DATA[4096:10_000]
    real = _syscalls.at_end
    grown: list[int] = []

    def grow(offset: int) -> None:
        if not grown:
            with open(path, "ab") as out:
                out.write(extra)
            grown.append(offset)

    def growing(fd: int, offset: int) -> bool:
        grow(offset)
        return real(fd, offset)

    monkeypatch.setattr(_small_send, "at_end", growing)
    if mode == "fallback":  # no quick path without sendfile: the file grows before the call
        grow(0)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    with open(path, "rb", buffering=0) as f:
        async with destination(flavour, port) as dst:
            before = zcio.stats()
            n = await zcio.send_file(dst, f)
            delta = zcio.stats() - before
        assert f.tell() == 10_000
    assert n == 10_000
    assert sha(rx.result()) == sha(DATA[:10_000])
    assert_moved_by(delta, mode, n)
    if mode == "native":
        assert grown == [4096]  # the quick path sent the first 4096 bytes
        assert delta.methods["sendfile"].transfers == 1


@pytest.mark.parametrize("flavour", ["socket", "anyio"])
async def test_file_object_position_and_range(flavour: str, mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    with open(path, "rb") as f:
        f.read(5)  # a buffered reader with its own idea of the position
        async with destination(flavour, port) as dst:
            n = await zcio.send_file(dst, f, offset=4097, count=1_000_000)
        assert f.tell() == 4097 + 1_000_000
        assert f.read(3) == DATA[4097 + 1_000_000 : 4097 + 1_000_003]
    assert n == 1_000_000
    assert sha(rx.result()) == sha(DATA[4097 : 4097 + 1_000_000])


async def test_fd_source_position_untouched(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    fd = os.open(path, os.O_RDONLY)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        os.lseek(fd, 123, os.SEEK_SET)
        n = await zcio.send_file(a, fd, offset=10, count=100_000)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 123
    finally:
        os.close(fd)
        a.close()
    assert n == 100_000
    assert rx.result() == DATA[10:100_010]


async def test_pipe_and_char_device_destinations(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    reader = os.fdopen(r, "rb", buffering=0)
    os.set_blocking(r, True)
    got = bytearray()
    thread = threading.Thread(target=lambda: got.extend(reader.read()), daemon=True)
    thread.start()
    try:
        before = zcio.stats()
        n = await zcio.send_file(w, path)
        delta = zcio.stats() - before
    finally:
        os.close(w)
    thread.join(10)
    reader.close()
    assert n == len(DATA)
    assert sha(bytes(got)) == sha(DATA)
    assert_moved_by(delta, mode, n)

    null = os.open("/dev/null", os.O_WRONLY)
    try:
        assert await zcio.send_file(null, path, offset=1) == len(DATA) - 1
    finally:
        os.close(null)


async def test_into_regular_file(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        f.write(b"prefix")  # still in the file object's buffer: must land first
        before = zcio.stats()
        n = await zcio.send_file(f, path, offset=3, count=len(DATA) - 3)
        delta = zcio.stats() - before
        assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == 6 + n
    assert out.read_bytes() == b"prefix" + DATA[3:]
    method = "copy_file_range" if mode == "native" else "userspace"
    assert delta.bytes(method) == n


async def test_append_destination_uses_userspace(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    out = tmp_path / "log.bin"
    out.write_bytes(b"old")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    try:
        before = zcio.stats()
        assert await zcio.send_file(fd, path) == len(DATA)
        delta = zcio.stats() - before
    finally:
        os.close(fd)
    assert out.read_bytes() == b"old" + DATA
    assert delta.bytes("userspace") == len(DATA)
    assert delta.fallbacks == {"append": 1}
    with pytest.raises(zcio.ZeroCopyUnavailable, match="O_APPEND"):
        fd = os.open(out, os.O_WRONLY | os.O_APPEND)
        try:
            await zcio.send_file(fd, path, fallback=False)
        finally:
            os.close(fd)


async def test_cold_file_is_sent_from_a_worker_thread(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    if not evict(path):
        pytest.skip("this filesystem would not drop the file from the page cache")
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        before = zcio.stats()
        n = await zcio.send_file(a, path)
        delta = zcio.stats() - before
    finally:
        a.close()
    assert sha(rx.result()) == sha(DATA)
    assert delta.bytes("sendfile") == n
    assert delta.methods["sendfile"].offloaded >= 1


async def test_hot_file_stays_on_the_loop(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    Path(path).read_bytes()  # into the page cache
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        before = zcio.stats()
        await zcio.send_file(a, path)
        delta = zcio.stats() - before
    finally:
        a.close()
    assert sha(rx.result()) == sha(DATA)
    assert delta.methods["sendfile"].offloaded == 0


async def test_unix_datagram_destination(tmp_path: Path) -> None:
    data = DATA[:300_000]
    path = file_of(tmp_path, data)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.settimeout(10)
    got = bytearray()

    def drain() -> None:
        while len(got) < len(data):
            got.extend(b.recv(1 << 17))

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        before = zcio.stats()
        assert await zcio.send_file(a, path) == len(data)
        delta = zcio.stats() - before
        thread.join(10)
    finally:
        a.close()
        b.close()
    assert bytes(got) == data
    assert delta.bytes("userspace") == len(data)
    assert delta.fallbacks == {"not_supported": 1}


@pytest.mark.parametrize("flavour", ["socket", "anyio", "trio", "writer"])
async def test_tls_always_goes_through_user_space(flavour: str, tmp_path: Path) -> None:
    skip_unsupported(flavour)
    tls = tls_contexts()
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock, tls=tls.server).start()
    async with destination(flavour, port, tls=tls.client) as dst:
        assert zcio.probe(dst).kind is zcio.Kind.TLS
        with pytest.raises(zcio.ZeroCopyUnavailable):
            await zcio.send_file(dst, path, fallback=False)
        before = zcio.stats()
        n = await zcio.send_file(dst, path)
        delta = zcio.stats() - before
    got = rx.result()
    assert sha(got) == sha(DATA), (repr(rx.error), len(got), len(DATA), n)
    assert delta.bytes("userspace") == n
    assert delta.bytes("sendfile") == 0
    assert delta.fallbacks == {"user_space_tls": 1}


async def test_empty_and_zero_count(mode: str, tmp_path: Path) -> None:
    empty = file_of(tmp_path, b"", "empty")
    path = file_of(tmp_path, DATA)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        assert await zcio.send_file(a, empty) == 0
        assert await zcio.send_file(a, path, count=0) == 0
        assert await zcio.send_file(a, path, offset=len(DATA)) == 0
        assert await zcio.send_file(a, path, offset=len(DATA) + 5) == 0
    finally:
        a.close()
    assert rx.result() == b""


async def test_procfs_file_is_read_to_its_end(mode: str, tmp_path: Path) -> None:
    # /proc files report size 0 and copy nothing with copy_file_range; they must still arrive.
    out = tmp_path / "out"
    with open(out, "wb") as f:
        n = await zcio.send_file(f, "/proc/self/mountinfo")
    assert n > 0
    assert out.read_bytes()[:20] == Path("/proc/self/mountinfo").read_bytes()[:20]


async def test_backend_is_what_the_fixture_says(anyio_backend: Any) -> None:
    name, options = anyio_backend
    expected = "uvloop" if options.get("use_uvloop") else name
    assert backend() == expected


async def test_no_event_loop_stall_sending_many_small_files(tmp_path: Path) -> None:
    # Many tiny files back to back: exercised for correctness of the EOF fast path.
    path = file_of(tmp_path, b"x" * 100)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        for _ in range(200):
            assert await zcio.send_file(a, path) == 100
    finally:
        a.close()
    assert rx.result() == b"x" * 20_000


async def test_concurrent_transfers_to_different_sockets(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    receivers = []
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            lsock, port = tcp_listener()
            receivers.append(Receiver(lsock).start())

            async def one(port: int = port) -> None:
                async with destination("anyio", port) as dst:
                    await zcio.send_file(dst, path)

            tg.start_soon(one)
    for rx in receivers:
        assert sha(rx.result()) == sha(DATA)


SMALL_FLAVOURS = ["socket", "fd", "anyio", "trio", "writer", "transport"]


@pytest.fixture
def small_sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """What each ``send_small`` call of ``send_file`` returned: proof of which path ran. A test
    may append a callable to the list to run right after each call."""
    from zcio import _small_send, _transfer

    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> tuple[int, bool]:
        result = _small_send.send_small(*args, **kwargs)
        for hook in [item for item in seen if callable(item)]:
            hook()
        seen.append(result)
        return result

    monkeypatch.setattr(_transfer, "send_small", spy)
    return seen


def results(seen: list[Any]) -> list[tuple[int, bool]]:
    return [item for item in seen if not callable(item)]


@contextlib.asynccontextmanager
async def small_destination(flavour: str, port: int) -> Any:
    """:func:`destination`, plus ``fd``: a plain socket's fd."""
    async with destination("socket" if flavour == "fd" else flavour, port) as dst:
        yield dst.fileno() if flavour == "fd" else dst


@pytest.mark.parametrize("flavour", SMALL_FLAVOURS)
@pytest.mark.parametrize("size", [1, 4096, 64 * 1024 + 3])
async def test_small_send_into_idle_destination(
    flavour: str, size: int, mode: str, tmp_path: Path, small_sends: list[Any]
) -> None:
    # The shortcut for small sends into an idle plaintext stream socket (bare, as an fd, under
    # a trio stream or an asyncio transport): same bytes, same file position, counted as what
    # moved them (one sendfile natively, made by the shortcut).
    skip_unsupported("socket" if flavour == "fd" else flavour)
    path = file_of(tmp_path, DATA[: size + 10])
    Path(path).read_bytes()  # cached: the shortcut only sends from the page cache
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    with open(path, "rb", buffering=0) as f:
        async with small_destination(flavour, port) as dst:
            before = zcio.stats()
            n = await zcio.send_file(dst, f, offset=7, count=size)
            delta = zcio.stats() - before
        assert f.tell() == 7 + size
    assert n == size
    assert sha(rx.result()) == sha(DATA[7 : 7 + size])
    assert_moved_by(delta, mode, n)
    assert results(small_sends) == [(size, True) if mode == "native" else (0, False)]
    if mode == "native":
        assert delta.methods["sendfile"].transfers == 1, delta


async def test_small_sends_are_schedule_points_on_trio(
    tmp_path: Path, small_sends: list[Any]
) -> None:
    # On trio every call is a schedule point: a loop of small sends the shortcut completes
    # still lets other tasks run (on asyncio the shortcut never yields, as a transport write).
    if backend() != "trio":
        pytest.skip("trio's rule")
    path = file_of(tmp_path, DATA[:4096])
    Path(path).read_bytes()
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    with open(path, "rb", buffering=0) as f:
        async with destination("socket", port) as dst, anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await anyio.lowlevel.checkpoint()
            before = ticks
            for _ in range(20):
                await zcio.send_file(dst, f, offset=0, count=4096)
            during = ticks - before
            tg.cancel_scope.cancel()
    assert rx.result() == DATA[:4096] * 20
    assert results(small_sends) == [(4096, True)] * 20
    assert during > 0


@pytest.mark.parametrize("flavour", ["trio", "anyio"])
async def test_small_send_declines_a_stream_mid_send(
    flavour: str, mode: str, tmp_path: Path, small_sends: list[Any]
) -> None:
    # Another task is inside send_all/send (its bytes do not fit the buffers yet): the
    # shortcut must not write between them; the general path refuses the stream as busy, as a
    # second send would be, and nothing of the file reaches the peer.
    skip_unsupported(flavour)
    import trio

    busy = trio.BusyResourceError if flavour == "trio" else anyio.BusyResourceError
    path = file_of(tmp_path, DATA[:4096])
    Path(path).read_bytes()
    big = make_data(4 * 1024 * 1024, seed=3)
    gate = threading.Event()
    lsock, port = tcp_listener(rcvbuf=64 * 1024)
    rx = Receiver(lsock, start_gate=gate).start()
    try:
        async with destination(flavour, port) as stream, anyio.create_task_group() as tg:
            small_send_buffer(stream.socket if flavour == "trio" else stream)
            tg.start_soon(stream.send_all if flavour == "trio" else stream.send, big)
            await anyio.wait_all_tasks_blocked()  # the send waits for room, holding the stream
            with pytest.raises(busy):
                await zcio.send_file(stream, path)
            gate.set()
    finally:
        gate.set()
    assert results(small_sends) == [(0, False)]
    assert sha(rx.result()) == sha(big)


@pytest.mark.parametrize("flavour", ["socket", "fd", "anyio", "trio"])
@pytest.mark.parametrize("cancel", [False, True], ids=["whole", "cancelled"])
async def test_small_send_into_a_full_socket(
    flavour: str, cancel: bool, mode: str, tmp_path: Path, small_sends: list[Any]
) -> None:
    # The socket's buffer is full (sendfile says EAGAIN): the shortcut sends nothing and the
    # general path waits, then sends everything after what was queued; or, cancelled right
    # after the shortcut, exactly nothing of the file was sent.
    skip_unsupported("socket" if flavour == "fd" else flavour)
    path = file_of(tmp_path, DATA[:4096])
    Path(path).read_bytes()
    gate = threading.Event()
    lsock, port = tcp_listener(rcvbuf=64 * 1024)
    rx = Receiver(lsock, start_gate=gate).start()
    progress = zcio.Progress()
    queued = bytearray()
    try:
        async with small_destination(flavour, port) as dst:
            fd = zcio.probe(dst).fd
            sock = socket.socket(fileno=fd)
            try:
                small_send_buffer(sock)
            finally:
                sock.detach()
            chunk = make_data(64 * 1024, seed=4)
            with contextlib.suppress(BlockingIOError):
                while len(queued) < 64 * 1024 * 1024:  # bounded: buffers are far smaller
                    queued += chunk[: os.write(fd, chunk)]
            with anyio.CancelScope() as scope:
                small_sends.append(scope.cancel if cancel else gate.set)
                await zcio.send_file(dst, path, progress=progress)
            gate.set()
    finally:
        gate.set()
    # Nothing, as a rule; but on a loaded machine the kernel may process the loopback's ACKs
    # late and make room between the fill and the call: then some or all went at once.
    [(early, done)] = results(small_sends)
    assert done == (early == 4096)
    assert scope.cancelled_caught == (cancel and not done)
    assert progress.sent == (early if cancel else 4096)
    assert sha(rx.result()) == sha(bytes(queued) + DATA[: progress.sent])


@pytest.mark.parametrize("flavour", ["socket", "anyio", "trio", "writer"])
async def test_small_send_in_a_cancelled_scope_is_exact(
    flavour: str, mode: str, tmp_path: Path, small_sends: list[Any]
) -> None:
    # A send the shortcut completes never waits, so it finishes before noticing the
    # cancellation; otherwise the general path raises before sending. Either way the count
    # is exact: the peer received exactly progress.sent bytes.
    skip_unsupported(flavour)
    path = file_of(tmp_path, DATA[:4096])
    Path(path).read_bytes()
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    progress = zcio.Progress()
    async with destination(flavour, port) as dst:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await zcio.send_file(dst, path, progress=progress)
    assert scope.cancelled_caught == (mode != "native")
    assert progress.sent == (4096 if mode == "native" else 0)
    assert rx.result() == DATA[: progress.sent]


@pytest.mark.parametrize("flavour", ["writer", "transport"])
async def test_small_send_past_end_of_file(flavour: str, mode: str, tmp_path: Path) -> None:
    # A count beyond the file's end: the shortcut sends what is there, the general path then
    # reports the shortfall with the total sent.
    skip_unsupported(flavour)
    path = file_of(tmp_path, DATA[:1000])
    Path(path).read_bytes()
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    with open(path, "rb") as f:
        async with destination(flavour, port) as dst:
            with pytest.raises(zcio.IncompleteTransfer) as info:
                await zcio.send_file(dst, f, offset=0, count=4096)
        assert f.tell() == 1000
    assert (info.value.sent, info.value.expected) == (1000, 4096)
    assert rx.result() == DATA[:1000]


def open_on(path: str | Path) -> list[str]:
    """This process's fds open on ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd listdir itself used, gone by now
            if os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(path):
                found.append(fd)
    return found


def _other_mount() -> Path | None:
    """A writable folder on a local mount other than the root's (tmpfs /dev/shm), if any."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != os.stat("/").st_dev:
        return shm
    return None


@pytest.mark.parametrize("where", ["root-mount", "general", "other-mount"])
def test_open_cached(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way open_cached can take: one openat2 on the root's mount, the O_PATH way when the
    root is not known local, and the O_PATH way after EXDEV for a path into another mount."""
    from zcio import _open

    folder = tmp_path
    if where == "other-mount":
        other = _other_mount()
        if other is None:
            pytest.skip("no writable local mount besides the root's")
        folder = Path(tempfile.mkdtemp(dir=other))
        monkeypatch.setattr(_open, "_mounts", {})  # so that the other mount is learnt anew
    elif os.stat(tmp_path).st_dev != os.stat("/").st_dev:
        pytest.skip("the temporary folder is not on the root's mount")
    try:
        check_open_cached(folder, where, monkeypatch)
    finally:
        if folder is not tmp_path:
            shutil.rmtree(folder)


def check_open_cached(folder: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from zcio import _open

    path = file_of(folder, DATA[:5000])
    with open(path, "rb") as f:  # opened the ordinary way, as a worker thread would
        zcio.learn_filesystem(f.fileno())
    if where == "general":
        monkeypatch.setattr(_open, "_root_local", False)
    routes: list[str] = []
    real_open = os.open

    def spy(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(name).startswith("/proc/self/fd/"):
            routes.append("reopen")
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    file = zcio.open_cached(path)
    if file is None:  # no openat2 with RESOLVE_CACHED, or an unlisted filesystem
        pytest.skip("this kernel or filesystem cannot open from the caches")
    with file:
        assert file.read() == DATA[:5000]
        assert os.get_blocking(file.fileno())
        assert not os.get_inheritable(file.fileno())
    opened = zcio.open_cached_stat(path)
    assert opened is not None
    with opened[0] as file:
        assert os.path.samestat(opened[1], os.stat(path))
        assert os.path.samestat(opened[1], os.fstat(file.fileno()))
    del routes[1:]
    # One openat2 on the root's mount; the O_PATH handle reopened through /proc otherwise.
    on_root = where == "root-mount" and _open._root_local
    assert routes == ([] if on_root else ["reopen"])
    # Everything but an existing regular file gives None, with nothing left open.
    os.mkfifo(folder / "fifo")
    fds = len(os.listdir("/proc/self/fd"))
    for other in (folder / "missing", folder, folder / "fifo", b"a\0b"):
        assert zcio.open_cached(other) is None
    assert len(os.listdir("/proc/self/fd")) == fds
    os.chmod(path, 0)
    if os.geteuid() != 0:  # root reads anything
        assert zcio.open_cached(path) is None


def test_learn_filesystem_without_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root that cannot be looked at (a sandbox refusing O_PATH on /) only costs the fast
    way: learn_filesystem raises nothing, and open_cached takes the general way."""
    from zcio import _open

    real_open = os.open

    def refuse_root(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if name == "/":
            raise PermissionError(13, "refused", "/")
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_root)
    monkeypatch.setattr(_open, "_root_local", None)
    path = file_of(tmp_path, DATA[:100])
    with open(path, "rb") as f:
        zcio.learn_filesystem(f.fileno())
    assert _open._root_local is False
    file = zcio.open_cached(path)
    if file is not None:  # the general way, when this kernel and filesystem allow it
        with file:
            assert file.read() == DATA[:100]
