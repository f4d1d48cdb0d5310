"""The aiohttp server that ``bench/aiohttp_files.py`` measures, on the loop it is told to use.

    python aiohttp_app.py --host H --port P --loop asyncio|uvloop|zcio_uvloop

``asyncio``: the default loop, whose ``loop.sendfile`` is native; ``uvloop``: stock uvloop,
whose ``loop.sendfile`` raises ``NotImplementedError`` so aiohttp reads the file in a worker
thread; ``zcio_uvloop``: uvloop with zcio's ``loop.sendfile``. Nothing else differs.
``ZCIO_BENCH_FILES`` is the folder of files (``bench/http_files.py``'s ``prepare_files``).

Routes, the same URLs as ``bench/http_app.py``:

- ``GET /f/{name}``: aiohttp's static route over the folder (``web.FileResponse`` inside; the
  large file is a link out of the folder, hence ``follow_symlinks``);
- ``GET /m/{name}``: an in-memory ``web.Response`` with the bytes of the small file ``name``;
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON on ``zcio_uvloop`` (``{}`` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import web

FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-root/f"))
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}
MEDIA_TYPE = "application/octet-stream"


def make_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "zcio_uvloop":
        import zcio_uvloop

        return zcio_uvloop.new_event_loop()
    raise SystemExit(f"--loop must be asyncio, uvloop or zcio_uvloop, not {name!r}")


async def memory(request: web.Request) -> web.Response:
    data = SMALL.get(request.match_info["name"])
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type=MEDIA_TYPE)


async def zcio_stats(request: web.Request) -> web.Response:
    out: dict[str, Any] = {"loop": type(asyncio.get_running_loop()).__module__, "pid": os.getpid()}
    if out["loop"] == "zcio_uvloop":
        import zcio

        snap = zcio.stats()
        out["methods"] = {
            name: {"transfers": m.transfers, "calls": m.calls, "bytes": m.bytes}
            for name, m in snap.methods.items()
        }
        out["fallbacks"] = dict(snap.fallbacks)
    return web.json_response(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="asyncio")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/m/{name}", memory)
    app.router.add_get("/zcio-stats", zcio_stats)
    app.router.add_static("/f/", FOLDER, follow_symlinks=True)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        loop=make_loop(args.loop),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
