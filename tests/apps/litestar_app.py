"""A Litestar app serving the same files with stock Litestar and with zcio_litestar, for tests
against real servers (run as a subprocess).

GET|HEAD /stock/file?name=N[&filename=F&inline=1]   litestar.response.File of $ZCIO_TEST_ROOT/N
GET|HEAD /zcio/file?...                             zcio_litestar.File, the same arguments
GET|HEAD /stock/static/PATH, /zcio/static/PATH      the static files routers over $ROOT/www
GET /zcio/shrink?name=N     the file's size goes into the headers, then the file shrinks
GET /stats                  zcio's bytes per method, the ASGI body messages per side, open fds
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from litestar import Litestar, get, head
from litestar.response import File as StockFile
from litestar.static_files import create_static_files_router as stock_router

import zcio
from zcio_litestar import File, create_static_files_router

ROOT = Path(os.environ.get("ZCIO_TEST_ROOT", "/nonexistent"))
SENT: Counter[str] = Counter()


def _file(cls: type[StockFile], name: str, filename: str | None, inline: bool) -> StockFile:
    return cls(
        ROOT / name,
        filename=filename,
        content_disposition_type="inline" if inline else "attachment",
    )


@get("/stock/file", sync_to_thread=False)
def stock_file(name: str, filename: str | None = None, inline: bool = False) -> StockFile:
    return _file(StockFile, name, filename, inline)


@head("/stock/file", sync_to_thread=False)
def stock_file_head(name: str, filename: str | None = None, inline: bool = False) -> StockFile:
    return _file(StockFile, name, filename, inline)


@get("/zcio/file", sync_to_thread=False)
def zcio_file(name: str, filename: str | None = None, inline: bool = False) -> StockFile:
    return _file(File, name, filename, inline)


@head("/zcio/file", sync_to_thread=False)
def zcio_file_head(name: str, filename: str | None = None, inline: bool = False) -> StockFile:
    return _file(File, name, filename, inline)


@get("/zcio/shrink", sync_to_thread=False)
def shrink(name: str) -> StockFile:
    path = ROOT / name
    st = os.stat(path)
    os.truncate(path, st.st_size // 2)
    return File(path, stat_result=st)


@get("/stats", sync_to_thread=False)
def stats() -> dict[str, Any]:
    methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
    return {"bytes": methods, "sent": dict(SENT), "fds": len(os.listdir("/proc/self/fd"))}


litestar_app = Litestar(
    route_handlers=[
        stock_file,
        stock_file_head,
        zcio_file,
        zcio_file_head,
        shrink,
        stats,
        stock_router("/stock/static", directories=[ROOT / "www"], name="stock"),
        create_static_files_router("/zcio/static", directories=[ROOT / "www"], name="zcio"),
    ]
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Litestar, wrapped in a pure ASGI middleware that counts the body message types per side
    (a send wrapper zcio_litestar trusts: it passes every message on)."""
    side = scope.get("path", "/").split("/")[1] if scope["type"] == "http" else ""

    async def counted(message: Any) -> None:
        kind = message["type"]
        if kind.startswith("http.response.") and kind != "http.response.start":
            SENT[f"{side} {kind}"] += 1
        await send(message)

    await litestar_app(scope, receive, counted)
