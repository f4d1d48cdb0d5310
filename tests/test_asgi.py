"""zcio.asgi: the extension names, the file opener (on the loop and in a worker thread, its
errors and its cancellation) and the send-chain checker, on asyncio, uvloop and trio."""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import pytest

import zcio
import zcio.asgi
from zcio.asgi import (
    PATHSEND,
    ZEROCOPYSEND,
    NotARegularFileError,
    Offender,
    Opened,
    SendChainChecker,
    open_file,
    open_in_thread,
    open_regular,
    without_extensions,
)

pytestmark = pytest.mark.anyio

DATA = b"zcio.asgi\n" * 1000


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


# --- the names -------------------------------------------------------------------------------


def test_extension_names() -> None:
    assert ZEROCOPYSEND == "http.response.zerocopysend"
    assert PATHSEND == "http.response.pathsend"
    assert zcio.asgi.EXTENSIONS == (ZEROCOPYSEND, PATHSEND)


def test_without_extensions_copies_only_when_needed() -> None:
    assert without_extensions(None) is None
    assert without_extensions({}) is None
    assert without_extensions({"http.response.trailers": {}}) is None
    given: dict[str, Any] = {ZEROCOPYSEND: {}, PATHSEND: {}, "http.response.trailers": {}}
    assert without_extensions(given) == {"http.response.trailers": {}}
    assert without_extensions(given, (PATHSEND,)) == {
        ZEROCOPYSEND: {},
        "http.response.trailers": {},
    }
    assert list(given) == [ZEROCOPYSEND, PATHSEND, "http.response.trailers"]  # untouched


# --- open_regular: the worker thread's half -------------------------------------------------


def test_open_regular_gives_an_ordinary_fd(data: Path) -> None:
    with open_regular(data) as opened:
        assert isinstance(opened, Opened)
        fd = opened.file.fileno()
        assert os.get_blocking(fd)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert opened.stat.st_size == len(DATA)
        file, st = opened  # a pair, as zcio.open_cached_stat gives
        assert (st.st_dev, st.st_ino) == (os.stat(data).st_dev, os.stat(data).st_ino)
        assert file.read() == DATA
    assert opened.closed


def test_open_regular_errors(tmp_path: Path, fifo: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")
    with pytest.raises(NotARegularFileError, match=r"not a regular file \(a directory\)") as folder:
        open_regular(tmp_path)
    assert isinstance(folder.value, IsADirectoryError)
    assert folder.value.errno == errno.EISDIR and folder.value.filename == str(tmp_path)
    # A FIFO without a writer: an ordinary open would wait forever; this one is refused at once.
    with pytest.raises(NotARegularFileError, match=r"not a regular file \(a FIFO\)") as pipe:
        open_regular(fifo)
    assert pipe.value.errno == errno.EINVAL and not isinstance(pipe.value, IsADirectoryError)
    with pytest.raises(NotARegularFileError, match="character device"):
        open_regular("/dev/null")


def test_open_regular_leaves_nothing_open(tmp_path: Path, fifo: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for path in (tmp_path, fifo, tmp_path / "missing", "/dev/null"):
        with pytest.raises(OSError):  # noqa: PT011 - each kind checked above
            open_regular(path)
    assert set(os.listdir("/proc/self/fd")) <= before


# --- open_file: on the loop when cached, else in a worker thread ------------------------------


def counting(calls: list[str]) -> Callable[[Any], Opened]:
    def opener(path: Any) -> Opened:
        calls.append(threading.current_thread().name)
        return open_regular(path)

    return opener


async def test_open_file_in_a_thread(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zcio, "open_cached_stat", lambda path: None)  # never cached
    calls: list[str] = []
    async with anyio.create_task_group():  # a task of the backend under test
        opened = await open_file(data, opener=counting(calls))
    with opened:
        assert opened.file.read() == DATA
    assert len(calls) == 1 and calls[0] != threading.current_thread().name


async def test_open_file_on_the_loop_once_learnt(data: Path) -> None:
    with await open_file(data) as first:  # perhaps in a thread: it learns the filesystem
        assert first.file.read() == DATA
    if zcio.open_cached(data) is None:
        pytest.skip("this kernel or filesystem cannot open from the caches")
    calls: list[str] = []
    with await open_file(data, opener=counting(calls)) as again:
        assert again.file.read() == DATA
        assert os.get_blocking(again.file.fileno())
        assert again.stat.st_size == len(DATA)
    assert calls == []


@pytest.mark.parametrize("cached", [True, False], ids=["try-cached", "thread-only"])
async def test_open_file_errors(
    tmp_path: Path, fifo: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """Whatever the cached attempt says, the errors are the worker thread's open's."""
    if not cached:
        monkeypatch.setattr(zcio, "open_cached_stat", lambda path: None)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        await open_file(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        await open_file(tmp_path)
    with anyio.fail_after(10):  # the FIFO has no writer: it must not be waited on
        with pytest.raises(NotARegularFileError, match="FIFO"):
            await open_file(fifo)
    assert set(os.listdir("/proc/self/fd")) <= before


# --- open_in_thread: errors and cancellation ------------------------------------------------


class Slow:
    """An opener that waits for ``release`` before opening, and keeps what it opened."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.opened: list[Opened] = []
        self.done = threading.Event()

    def __call__(self, path: Any) -> Opened:
        self.started.set()
        self.release.wait(10)
        opened = open_regular(path)
        self.opened.append(opened)
        self.done.set()
        return opened


async def wait_for(event: threading.Event) -> None:
    with anyio.fail_after(10):
        while not event.is_set():
            await anyio.sleep(0.005)


async def test_open_in_thread_passes_errors_and_opens_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await open_in_thread(open_regular, tmp_path / "missing")

    def find_nothing() -> Opened | None:  # an opener may find nothing to open
        return None

    assert await open_in_thread(find_nothing) is None


async def test_cancelled_open_waits_then_closes(data: Path) -> None:
    """The default: the open finishes, the cancellation is taken right after it, and the file
    it opened is closed before the call ends."""
    slow, scope, returned = Slow(), anyio.CancelScope(), anyio.Event()

    async def cancel_once_started() -> None:
        await wait_for(slow.started)
        scope.cancel()
        await anyio.sleep(0.05)
        assert not returned.is_set()  # the thread is still held: the call waits for it
        slow.release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_once_started)
        with scope:
            await open_in_thread(slow, data)
            pytest.fail("not cancelled")  # pragma: no cover
        returned.set()
    assert scope.cancelled_caught
    assert len(slow.opened) == 1 and slow.opened[0].closed


async def test_cancelled_open_abandoned_is_closed_by_the_thread(data: Path) -> None:
    """``abandon_on_cancel=True``: the cancellation is raised at once, while the thread is
    still held; the file the thread opens afterwards is closed, not left to the GC."""
    slow, scope = Slow(), anyio.CancelScope()

    async def cancel_once_started() -> None:
        await wait_for(slow.started)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_once_started)
        with scope:
            await open_in_thread(slow, data, abandon_on_cancel=True)
            pytest.fail("not cancelled")  # pragma: no cover
    assert scope.cancelled_caught
    assert slow.opened == []  # the call did not wait for the thread
    slow.release.set()
    await wait_for(slow.done)
    with anyio.fail_after(10):
        while not slow.opened[0].closed:
            await anyio.sleep(0.005)


async def test_open_in_thread_not_cancelled_delivers(data: Path) -> None:
    for abandon in (False, True):
        slow = Slow()
        slow.release.set()
        with await open_in_thread(slow, data, abandon_on_cancel=abandon) as opened:
            assert opened.file.read() == DATA
        assert slow.opened == [opened] and opened.closed


# --- SendChainChecker ------------------------------------------------------------------------


def offending_wrapper(send: Callable[..., Any]) -> Callable[..., Any]:
    async def offending(message: Any) -> None:  # pragma: no cover - never awaited
        await send(message)

    return offending


class OffendingResponder:
    def __init__(self, send: Callable[..., Any]) -> None:
        self.send = send

    async def forward(self, message: Any) -> None:  # pragma: no cover - never awaited
        await self.send(message)


class Subclassed(OffendingResponder):
    pass


CHECKER = SendChainChecker(
    [
        Offender(__name__, "offending_wrapper.<locals>.", "the closure loses messages"),
        Offender(__name__, "OffendingResponder", "the responder loses messages"),
    ]
)
HTTP: dict[str, Any] = {"type": "http", "extensions": {ZEROCOPYSEND: {}}}


async def server_send(message: Any) -> None:  # pragma: no cover - never awaited
    pass


def wrap(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    async def wrapper(message: Any) -> None:  # pragma: no cover - never awaited
        await send(message)

    return wrapper


class Forwarder:
    def __init__(self, send: Callable[..., Any]) -> None:
        self.app_send = send

    async def __call__(self, message: Any) -> None:  # pragma: no cover - never awaited
        await self.app_send(message)


def test_checker_scope() -> None:
    assert CHECKER.why_not(HTTP, server_send) is None
    assert CHECKER.why_not({"type": "websocket"}, server_send) == "not an HTTP request"
    assert CHECKER.why_not({"type": "http"}, server_send) == (
        "the server does not advertise http.response.zerocopysend"
    )
    assert CHECKER.why_not(HTTP, server_send, PATHSEND) == (
        "the server does not advertise http.response.pathsend"
    )


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        pytest.param(wrap(wrap(server_send)), None, id="unknown-wrappers-are-trusted"),
        pytest.param(offending_wrapper(server_send), "closure", id="function"),
        pytest.param(wrap(offending_wrapper(server_send)), "closure", id="in-a-closure"),
        pytest.param(functools.partial(offending_wrapper(server_send)), "closure", id="partial"),
        pytest.param(OffendingResponder(server_send).forward, "responder", id="bound-method"),
        pytest.param(Subclassed(server_send).forward, "responder", id="subclass"),
        pytest.param(Forwarder(offending_wrapper(server_send)), "closure", id="send-attribute"),
        pytest.param(Forwarder(server_send), None, id="trusted-object"),
    ],
)
def test_checker_follows_the_chain(send: Callable[..., Any], reason: str | None) -> None:
    for _ in range(2):  # the second time from the remembered verdicts
        got = CHECKER.offender_on(send)
        assert got is None if reason is None else (got is not None and reason in got)


def test_checker_stops_at_the_server_and_ends() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.app_send = offending_wrapper(server_send)  # an offender, if it were followed

        async def send(self, message: Any) -> None:  # pragma: no cover - never awaited
            pass

    assert CHECKER.offender_on(wrap(Cycle().send)) is not None
    Cycle.__module__ = "zcio_uvicorn._fake"
    assert SendChainChecker(CHECKER.offenders).offender_on(wrap(Cycle().send)) is None
    ours = SendChainChecker(CHECKER.offenders, servers=("tests.",))
    assert ours.offender_on(wrap(Cycle().send)) is not None

    forwarder = Forwarder(server_send)
    forwarder.app_send = forwarder  # a cycle: followed once
    assert CHECKER.offender_on(forwarder) is None
    send: Callable[..., Any] = server_send
    for _ in range(300):
        send = wrap(send)
    assert "longer than 256" in (CHECKER.offender_on(send) or "")


def test_checkers_keep_their_own_tables() -> None:
    assert SendChainChecker([]).offender_on(offending_wrapper(server_send)) is None
    assert CHECKER.offender_on(offending_wrapper(server_send)) == "the closure loses messages"


# --- Stats.summary: the "bytes moved" line ------------------------------------------------------


def test_stats_summary() -> None:
    assert zcio.Stats().summary() == "bytes moved: none"
    delta = zcio.Stats(
        MappingProxyType(
            {
                "splice": zcio.MethodStats(1, 2, 2048, 0),
                "sendfile": zcio.MethodStats(1, 1, 1234567, 0),
                "userspace": zcio.MethodStats(1, 1, 0, 0),
            }
        ),
        MappingProxyType({"not_cached": 2, "busy": 1}),
    )
    assert delta.summary() == (
        "bytes moved: sendfile 1,234,567 B, splice 2,048 B; fallbacks: busy x1, not_cached x2"
    )
