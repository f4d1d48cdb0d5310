"""The open-file cache (``zcio.asgi.FileCache``) on its own and behind ``zcio_starlette``'s
``StaticFiles`` and ``FileResponse``, called as a server that implements zerocopysend would
call them (the fake server of ``test_zcio_starlette.py``), on asyncio, uvloop and trio.

Staleness: every way a served file can change, on both paths, for files kept in memory and
files sent from the cached fd. At every request the body must be whole and the one its own
headers describe (Content-Length, and the ETag Starlette computes for that content's stat);
once ``ttl`` has passed, the new state. Bounds: entries and fds LRU-capped across 100,000
distinct names; an fd is closed only when no response holds it; ``EMFILE`` flushes and retries.
Waiting past ``ttl`` is a sleep of twice ``ttl``: a precondition, never a timed assertion.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

import zcio
import zcio._open
import zcio.asgi
from test_zcio_starlette import ZC, Reply, call
from zcio.asgi import FileCache
from zcio_starlette import FileResponse, StaticFiles

pytestmark = pytest.mark.anyio

TTL = 0.05
SMALL, LARGE = 300, 40_000  # kept in memory / sent from the cached fd (max_body 16 KiB)


def etag_of(st: os.stat_result) -> bytes:
    """Starlette's ETag for a file of this stat."""
    base = f"{st.st_mtime}-{st.st_size}".encode()
    return f'"{hashlib.md5(base, usedforsecurity=False).hexdigest()}"'.encode()


class Versions:
    """Every state a file has been in: its bytes under Starlette's ETag for it."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size, self.n = path, size, 0
        self.by_etag: dict[bytes, bytes] = {}
        self.latest = b""
        self.replace()

    def content(self, size: int | None = None) -> bytes:
        self.n += 1
        size = self.size + self.n % 7 if size is None else size
        head = f"version {self.n}\n".encode()
        return (head * (size // len(head) + 1))[:size]

    def _record(self, data: bytes, st: os.stat_result) -> None:
        assert st.st_size == len(data)
        self.by_etag[etag_of(st)] = data
        self.latest = data

    def replace(self) -> None:
        """A new file renamed over the name (how deployments and editors save)."""
        data = self.content()
        part = self.path.with_name(self.path.name + ".part")
        part.write_bytes(data)
        self._record(data, os.stat(part))
        os.replace(part, self.path)

    def rewrite(self, data: bytes) -> None:
        """The same inode written over in place."""
        with open(self.path, "r+b") as f:
            f.truncate(len(data))
            f.seek(0)
            f.write(data)
        self._record(data, os.stat(self.path))

    def check(self, reply: Reply) -> None:
        """The body is whole and the one its own headers describe."""
        assert reply.status == 200, reply.status
        assert reply.complete and not reply.short
        assert int(reply.header(b"content-length") or -1) == len(reply.body)
        etag = reply.header(b"etag")
        assert etag in self.by_etag, "an ETag of no state the file was ever in"
        assert bytes(reply.body) == self.by_etag[etag], "a body that is not its ETag's"


def make_app(root: Path, cache: FileCache | bool) -> Starlette:
    static = StaticFiles(directory=root)
    static.cache = cache

    async def by_path(request: Request) -> Response:
        response = FileResponse(root / request.path_params["name"])
        response.cache = cache
        return response

    return Starlette(routes=[Mount("/s", app=static), Route("/f/{name:path}", by_path)])


async def get(app: Any, url: str, **kwargs: Any) -> Reply | BaseException:
    try:
        return await call(app, path=url, extensions=(ZC,), **kwargs)
    except Exception as exc:  # FileResponse by path raises for a file gone (as Starlette)
        return exc


CHANGES = ["rename", "same-size", "truncate", "grow", "delete", "unreadable", "folder-renamed"]


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["memory", "fd"])
@pytest.mark.parametrize("way", ["/s/", "/f/"], ids=["StaticFiles", "FileResponse"])
@pytest.mark.parametrize("change", CHANGES)
async def test_after_a_change_never_a_mix_and_after_ttl_the_new_state(
    tmp_path: Path, change: str, way: str, size: int
) -> None:
    if change == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    root = tmp_path / "root"
    root.mkdir()
    versions = Versions(root / "page.bin", size)
    cache = FileCache(ttl=TTL)
    app = make_app(root, cache)
    url = way + "page.bin"
    try:
        for _ in range(2):  # a miss, then a hit
            first = await get(app, url)
            assert isinstance(first, Reply)
            versions.check(first)
        assert isinstance(first, Reply) and bytes(first.body) == versions.latest
        if change == "rename":
            versions.replace()
        elif change == "same-size":
            versions.rewrite(versions.content(len(versions.latest)))
        elif change == "truncate":
            versions.rewrite(versions.latest[: len(versions.latest) // 3])
        elif change == "grow":
            versions.rewrite(versions.latest + versions.content(size))
        elif change == "delete":
            os.unlink(versions.path)
        elif change == "unreadable":
            os.chmod(versions.path, 0)
        else:
            os.rename(root, tmp_path / "moved")
        during = await get(app, url)  # within ttl: old whole or new whole
        if isinstance(during, Reply) and during.status == 200:
            versions.check(during)
        await anyio.sleep(2 * TTL)
        after = await get(app, url)
        if change in ("delete", "unreadable", "folder-renamed"):
            assert not isinstance(after, Reply) or after.status != 200, "a file gone, served"
        else:
            assert isinstance(after, Reply)
            versions.check(after)
            assert bytes(after.body) == versions.latest, "not the new state after ttl"
    finally:
        cache.clear()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["memory", "fd"])
async def test_rewrites_in_place_are_seen_at_once_from_an_fd(tmp_path: Path, size: int) -> None:
    """An fd entry is fstat-ed at every hit: a file rewritten in place is never served under
    its old headers, even within ttl. A memory entry serves its snapshot (old whole)."""
    versions = Versions(tmp_path / "page.bin", size)
    cache = FileCache(ttl=3600)
    app = make_app(tmp_path, cache)
    try:
        for _ in range(5):
            reply = await get(app, "/s/page.bin")
            assert isinstance(reply, Reply)
            versions.check(reply)
            if size == LARGE:
                assert bytes(reply.body) == versions.latest
            versions.rewrite(versions.content(len(versions.latest)))
    finally:
        cache.clear()


async def test_hits_need_no_thread_and_no_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once cached, a file is served without a worker thread, an open, or a path walk; its
    headers are built once."""
    Versions(tmp_path / "small.bin", SMALL)
    Versions(tmp_path / "large.bin", LARGE)
    cache = FileCache(ttl=3600)
    app = make_app(tmp_path, cache)
    urls = ("/s/small.bin", "/s/large.bin", "/f/small.bin", "/f/large.bin")
    try:
        for url in urls:
            for _ in range(2):  # StaticFiles' first request opens its folders in a thread
                assert isinstance(await get(app, url), Reply)

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a hit opened something")

        monkeypatch.setattr(zcio.asgi, "open_in_thread", forbidden)
        monkeypatch.setattr(zcio._open, "open_cached_stat", forbidden)
        monkeypatch.setattr(zcio.Folder, "open_cached", forbidden)
        monkeypatch.setattr(anyio.to_thread, "run_sync", forbidden)
        hits = cache.hits
        for url in urls:
            reply = await get(app, url)
            assert isinstance(reply, Reply) and reply.status == 200
            # The large file by zerocopysend from the cached fd; the small one from memory.
            assert reply.count(ZC) == (1 if "large" in url else 0)
        assert cache.hits == hits + 4
    finally:
        cache.clear()


async def test_same_reply_as_uncached(tmp_path: Path) -> None:
    """Cached or not, the same status, headers and bytes: 200, HEAD, 304s, ranges, 404s."""
    Versions(tmp_path / "small.txt", SMALL)
    Versions(tmp_path / "large.css", LARGE)
    (tmp_path / "sub").mkdir()
    cache = FileCache(ttl=3600)
    cached, plain = make_app(tmp_path, cache), make_app(tmp_path, False)
    try:
        probe = await get(plain, "/s/large.css")
        assert isinstance(probe, Reply)
        etag = (probe.header(b"etag") or b"").decode()
        modified = (probe.header(b"last-modified") or b"").decode()
        requests: list[dict[str, Any]] = [
            {"method": method, "headers": headers}
            for method in ("GET", "HEAD")
            for headers in (
                {},
                {"if-none-match": etag},
                {"if-modified-since": modified},
                {"range": "bytes=5-20"},
                {"range": "bytes=0-3,10-20"},
            )
        ]
        for url in ("/s/small.txt", "/s/large.css", "/s/missing", "/s/sub", "/f/large.css"):
            for request in requests:
                results = []
                for app in (cached, plain, cached):  # cached: a miss, then a hit
                    reply = await get(app, url, **request)
                    results.append(reply if isinstance(reply, Reply) else type(reply))
                if isinstance(results[1], Reply):
                    want = results[1].normalised()
                    for got in (results[0], results[2]):
                        assert isinstance(got, Reply) and got.normalised() == want, (url, request)
                else:
                    assert results[0] == results[1] == results[2]
    finally:
        cache.clear()


# --- the cache on its own ------------------------------------------------------------------


async def test_an_fd_is_closed_only_when_no_response_holds_it(tmp_path: Path) -> None:
    Versions(tmp_path / "a.bin", LARGE)
    Versions(tmp_path / "b.bin", LARGE)
    cache = FileCache(ttl=3600, max_files=1)
    folder = zcio.Folder(tmp_path)
    try:
        entry = await cache.get("a.bin", folder=folder)
        assert entry is not None and entry.file is not None
        with entry:
            assert await cache.get("b.bin", folder=folder) is not None  # evicts a.bin
            assert len(cache) == 1
            assert not entry.file.closed, "closed under a response still sending from it"
            assert os.pread(entry.file.fileno(), 9, 0) == b"version 1"
        assert entry.file.closed
    finally:
        cache.clear()
        folder.close()


async def test_another_thread_is_not_answered(tmp_path: Path) -> None:
    Versions(tmp_path / "a.bin", SMALL)
    cache = FileCache()
    folder = zcio.Folder(tmp_path)
    try:
        assert await cache.get("a.bin", folder=folder) is not None
        answers: list[Any] = []

        async def ask() -> Any:
            return await cache.get("a.bin", folder=folder)

        thread = threading.Thread(target=lambda: answers.append(anyio.run(ask)))
        thread.start()
        thread.join(30)
        assert answers == [None]
    finally:
        cache.clear()
        folder.close()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fds_bounded_across_100000_distinct_names(tmp_path: Path) -> None:
    """100,000 distinct names (1,000 files, each spelled 100 ways: ``./`` repeated), each a
    key of its own with an fd of its own: never more than ``max_files`` cached fds. On asyncio
    only (CI time): a miss opens on the loop the same way on every backend."""
    anyio.run(_fds_bounded, tmp_path, backend="asyncio")


async def _fds_bounded(tmp_path: Path) -> None:
    for i in range(1000):
        (tmp_path / f"f{i}").write_bytes(b"x" * 64)
    cache = FileCache(ttl=3600, max_files=64, max_body=0)
    folder = zcio.Folder(tmp_path)
    before, most = fd_count(), 0
    try:
        for spelling in range(100):
            prefix = "./" * spelling
            for i in range(1000):
                entry = await cache.get(f"{prefix}f{i}", folder=folder)
                assert entry is not None and entry.size == 64
            most = max(most, fd_count() - before)
        assert cache.misses == 100_000
        assert len(cache) == 64 and cache.open_fds == 64
        assert most <= 64
    finally:
        cache.clear()
        folder.close()
    assert fd_count() < before


async def test_emfile_flushes_the_cached_fds_and_retries(tmp_path: Path) -> None:
    """With the process out of fds, a miss closes every cached fd no response uses, and
    opens again; the fd a response still holds stays open."""
    for i in range(40):
        (tmp_path / f"f{i}").write_bytes(b"y" * 64)
    cache = FileCache(ttl=3600, max_body=0)
    folder = zcio.Folder(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        entries = [await cache.get(f"f{i}", folder=folder) for i in range(30)]
        held = entries[0]
        assert held is not None and held.file is not None
        held.acquire()  # a response still sends from this one: it must stay open
        lowest = min(e.file.fileno() for e in entries[1:] if e is not None and e.file is not None)
        # Every fd number up to the lowest idle cached one in use, and the limit just above
        # it: every open fails with EMFILE until the cache closes its idle fds.
        fillers: list[int] = []
        while (fd := os.open(os.devnull, os.O_RDONLY)) < lowest:
            fillers.append(fd)
        os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + 1, hard))
        try:
            with pytest.raises(OSError, match="Too many open files") as no_fd:
                os.close(os.open(tmp_path / "f39", os.O_RDONLY))
            assert no_fd.value.errno == errno.EMFILE
            entry = await cache.get("f39", folder=folder)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
        assert entry is not None and entry.size == 64
        assert cache.open_fds == 2  # the held one, and the new one
        assert not held.file.closed
        held.release()
    finally:
        cache.clear()
        folder.close()
