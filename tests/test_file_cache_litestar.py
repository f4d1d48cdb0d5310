"""The open-file cache behind ``zcio_litestar``'s static files router, called as a server that
implements zerocopysend would call it (the fake server of ``test_zcio_litestar.py``), on
asyncio, uvloop and trio: the same replies cached and uncached, every body whole and the one
its own headers describe while the file changes, the new state after ``ttl``, hits without an
open or a worker thread, and the cached fd held until the response is done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from litestar import Litestar
from litestar.response.file import create_etag_for_file

import zcio
import zcio.asgi
from test_zcio_litestar import ZC, Reply, call
from zcio.asgi import FileCache
from zcio_litestar import create_static_files_router

pytestmark = pytest.mark.anyio

TTL = 0.05
SIZE = 40_000


class Versions:
    """Every state of one file: its bytes and the stat Litestar's headers come from."""

    def __init__(self, path: Path) -> None:
        self.path, self.n = path, 0
        self.stats: dict[bytes, os.stat_result] = {}
        self.latest = b""
        self.replace()

    def content(self, size: int | None = None) -> bytes:
        self.n += 1
        size = SIZE + self.n % 7 if size is None else size
        head = f"version {self.n}\n".encode()
        return (head * (size // len(head) + 1))[:size]

    def replace(self) -> None:
        data = self.content()
        part = self.path.with_name(self.path.name + ".part")
        part.write_bytes(data)
        self.stats[data], self.latest = os.stat(part), data
        os.replace(part, self.path)

    def rewrite(self, data: bytes) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(len(data))
            f.write(data)
        self.stats[data], self.latest = os.stat(self.path), data

    def check(self, reply: Reply) -> None:
        """Whole, and the state its Content-Length, Last-Modified and ETag describe."""
        assert reply.status == 200 and reply.complete
        body = bytes(reply.body)
        assert body in self.stats, "a body that is no state the file was ever in"
        st = self.stats[body]
        assert reply.header(b"content-length") == str(len(body)).encode()
        etag = create_etag_for_file(self.path, st.st_mtime, st.st_size)
        assert reply.header(b"etag") == etag.encode()


def make_app(root: Path, cache: FileCache | bool) -> Litestar:
    router = create_static_files_router(path="/static", directories=[root], cache=cache)
    return Litestar(route_handlers=[router])


@pytest.mark.parametrize("change", ["rename", "same-size", "truncate", "delete"])
async def test_after_a_change_never_a_mix_and_after_ttl_the_new_state(
    tmp_path: Path, change: str
) -> None:
    versions = Versions(tmp_path / "page.bin")
    cache = FileCache(ttl=TTL, max_body=0)
    app = make_app(tmp_path, cache)
    try:
        for _ in range(2):  # a miss, then a hit
            versions.check(await call(app, "/static/page.bin", extensions=(ZC,)))
        assert cache.hits >= 1
        if change == "rename":
            versions.replace()
        elif change == "same-size":
            versions.rewrite(versions.content(len(versions.latest)))
        elif change == "truncate":
            versions.rewrite(versions.latest[:1000])
        else:
            os.unlink(versions.path)
        during = await call(app, "/static/page.bin", extensions=(ZC,))
        if during.status == 200:
            versions.check(during)
        await anyio.sleep(2 * TTL)
        after = await call(app, "/static/page.bin", extensions=(ZC,))
        if change == "delete":
            assert after.status == 404
        else:
            versions.check(after)
            assert bytes(after.body) == versions.latest
    finally:
        cache.clear()


async def test_same_reply_as_uncached(tmp_path: Path) -> None:
    Versions(tmp_path / "a.txt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "empty.css").write_bytes(b"")
    cache = FileCache(ttl=3600, max_body=0)
    cached, plain = make_app(tmp_path, cache), make_app(tmp_path, False)
    try:
        probe = await call(plain, "/static/a.txt")
        etag = (probe.header(b"etag") or b"").decode()
        for url in ("/static/a.txt", "/static/empty.css", "/static/missing", "/static/sub"):
            for method in ("GET", "HEAD"):
                for headers in ({}, {"if-none-match": etag}):
                    for extensions in ((ZC,), ()):
                        want = await call(plain, url, method=method, headers=headers,
                                          extensions=extensions)  # fmt: skip
                        for _ in range(2):  # a miss, then a hit
                            got = await call(cached, url, method=method, headers=headers,
                                             extensions=extensions)  # fmt: skip
                            assert got.same() == want.same(), (url, method, headers)
    finally:
        cache.clear()


async def test_hits_need_no_open_and_hold_the_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit opens nothing and needs no worker thread; the fd it sends from is held by the
    response until its last message, even when the entry leaves the cache meanwhile."""
    versions = Versions(tmp_path / "a.bin")
    cache = FileCache(ttl=3600, max_body=0)
    app = make_app(tmp_path, cache)
    try:
        versions.check(await call(app, "/static/a.bin"))

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a hit opened something")

        monkeypatch.setattr(zcio.asgi, "open_in_thread", forbidden)
        monkeypatch.setattr(zcio.Folder, "open_cached", forbidden)
        monkeypatch.setattr(anyio.to_thread, "run_sync", forbidden)

        async def evict_meanwhile(message: dict[str, Any]) -> None:
            if message["type"] == ZC:
                cache.clear()  # the entry leaves the cache while its fd is being sent
                assert not message["file"].closed

        reply = await call(app, "/static/a.bin", send_hook=evict_meanwhile)
        versions.check(reply)
        assert reply.files and reply.files[0].closed  # released after its message
    finally:
        cache.clear()
