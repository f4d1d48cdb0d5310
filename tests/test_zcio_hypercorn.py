"""zcio_hypercorn in this process: ``install()`` with hypercorn's own ``hypercorn.asyncio.serve``
and ``hypercorn.trio.serve`` (what Quart's ``run_task`` uses), on asyncio, uvloop and trio,
native and with zcio's methods forced off; what it replaces and puts back; the version check.

A raw ASGI app sends ``zerocopysend`` (a slice, with a body message before it in a chunked
response) and ``pathsend``; the hashes of what arrived and zcio's counters in this process show
what moved the bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import hypercorn.asyncio
import hypercorn.protocol
import hypercorn.trio
import pytest
import sniffio
from hypercorn.config import Config

import zcio
import zcio_hypercorn
from _support import free_port, make_data, sha
from zcio_hypercorn._supported import UnsupportedHypercorn, check

pytestmark = pytest.mark.anyio

DATA = make_data(3 * 1024 * 1024 + 5, seed=230)


def app_for(path: Path) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # hypercorn's trio worker needs it answered
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        extensions = sorted(scope.get("extensions") or {})
        if scope["path"] == "/ext":
            body = ",".join(extensions).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif scope["path"] == "/bad":
            with open(path, "rb") as file:
                five = [(b"content-length", b"5")]
                await send({"type": "http.response.start", "status": 200, "headers": five})
                try:
                    message = {"file": file, "offset": -1, "count": 5}
                    await send({"type": "http.response.zerocopysend", **message})
                except ValueError:  # refused before a byte: the body can still be sent
                    await send({"type": "http.response.body", "body": b"fine."})
        elif scope["path"] == "/zc":
            with open(path, "rb") as file:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"<", "more_body": True})
                message = {"file": file, "offset": 9, "count": 2_000_000, "more_body": True}
                await send({"type": "http.response.zerocopysend", **message})
                await send({"type": "http.response.body", "body": b">"})
        else:
            size = b"%d" % os.path.getsize(path)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", size)],
                }
            )
            await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """hypercorn's in-process ``serve`` (trio's or asyncio's, as the backend) on a free port."""
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    stop = anyio.Event()
    trio = sniffio.current_async_library() == "trio"
    serve: Any = hypercorn.trio.serve if trio else hypercorn.asyncio.serve
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait))
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(200):  # bounded: at most a few seconds
                try:
                    await client.get(url + "/ext")
                    break
                except httpx.TransportError:
                    await anyio.sleep(0.05)
        try:
            yield url
        finally:
            stop.set()


@pytest.fixture
def installed() -> Any:
    zcio_hypercorn.install()
    yield
    zcio_hypercorn.uninstall()


async def test_install_serves_both_messages_in_process(
    installed: None, mode: str, tmp_path: Path, anyio_backend: Any
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    before = zcio.stats()
    async with serving(app_for(path)) as url, httpx.AsyncClient(base_url=url, timeout=60) as c:
        ext = (await c.get("/ext")).text
        assert ext == "http.response.pathsend,http.response.zerocopysend"
        zc = await c.get("/zc")
        assert sha(zc.content) == sha(b"<" + DATA[9:2_000_009] + b">")
        assert zc.headers["transfer-encoding"] == "chunked"
        whole = await c.get("/path")
        assert sha(whole.content) == sha(DATA)
        assert (await c.get("/bad")).content == b"fine."
        head = await c.head("/path")
        assert head.content == b"" and head.headers["content-length"] == str(len(DATA))
    moved = zcio.stats() - before
    method = "sendfile" if mode == "native" else "userspace"
    assert moved.bytes(method) == 2_000_000 + len(DATA)


def test_install_replaces_hypercorns_names_and_uninstall_puts_them_back() -> None:
    stock = hypercorn.protocol.H11Protocol  # type: ignore[attr-defined]
    stock_serve = hypercorn.trio.worker_serve  # type: ignore[attr-defined]
    zcio_hypercorn.install()
    zcio_hypercorn.install()  # idempotent
    try:
        assert zcio_hypercorn.installed()
        assert hypercorn.protocol.H11Protocol is not stock  # type: ignore[attr-defined]
        assert issubclass(hypercorn.protocol.H11Protocol, stock)  # type: ignore[attr-defined]
        assert hypercorn.trio.worker_serve is not stock_serve  # type: ignore[attr-defined]
    finally:
        zcio_hypercorn.uninstall()
    assert not zcio_hypercorn.installed()
    assert hypercorn.protocol.H11Protocol is stock  # type: ignore[attr-defined]
    assert hypercorn.trio.worker_serve is stock_serve  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["0.17.3", "0.19.0", "1.0", "x"])
def test_untested_hypercorn_versions_are_refused(version: str) -> None:
    with pytest.raises(UnsupportedHypercorn, match=r"hypercorn>=0\.18,<0\.19"):
        check(version)
    check("0.18.0")
