"""The Starlette app that ``bench/http_files.py`` measures, in two flavours with the same routes.

The flavour comes from the environment, read at import: ``ZCIO_BENCH_FLAVOUR=stock`` serves
files with ``starlette.responses.FileResponse``, ``ZCIO_BENCH_FLAVOUR=zcio`` with
``zcio_starlette.FileResponse``; nothing else differs. ``ZCIO_BENCH_FILES`` is the folder of
files (``bench/http_files.py`` fills it).

Routes:

- ``GET /f/{name}``: ``FileResponse(folder / name)`` for the names in :data:`FILES` (anything
  else is a 404, so no path from a request reaches the file system);
- ``GET /m/{name}``: an in-memory ``Response`` with the same bytes as the file ``name``, for
  the small files: the reference a file response is compared with;
- ``GET /s/{name}``: ``StaticFiles`` over the folder (Starlette's, or ``zcio_starlette``'s
  with its open-file cache; ``ZCIO_BENCH_CACHE=off`` turns the cache off for both routes);
- ``GET /ss/{name}``: servestatic's ``ServeStaticASGI`` in front of the app, when
  ``ZCIO_BENCH_SERVESTATIC`` is set (``bench/small_files.py``);
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON in the zcio flavour (``{}`` in the stock one),
  so the benchmark can see which method moved the bytes.

The benchmark imports the app from a folder that holds only a link to this module (never from
``bench/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse as StarletteFileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles as StarletteStaticFiles

__all__ = ["FILES", "FLAVOUR", "SMALL", "app"]

FLAVOUR = os.environ.get("ZCIO_BENCH_FLAVOUR", "stock")
FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-files"))
#: The files the app serves; ``large.bin`` is a link to the big test file.
FILES = ("4k.bin", "64k.bin", "large.bin")
#: The small files, read once: the in-memory responses send exactly these bytes.
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}
MEDIA_TYPE = "application/octet-stream"

file_response: type[StarletteFileResponse]
static_files: type[StarletteStaticFiles]
if FLAVOUR == "zcio":
    import zcio
    import zcio_starlette

    file_response = zcio_starlette.FileResponse
    static_files = zcio_starlette.StaticFiles
    if os.environ.get("ZCIO_BENCH_CACHE") == "off":  # the open-file cache (on by default)
        zcio_starlette.FileResponse.cache = False
        zcio_starlette.StaticFiles.cache = False
elif FLAVOUR == "stock":
    file_response = StarletteFileResponse
    static_files = StarletteStaticFiles
else:
    raise RuntimeError(f"ZCIO_BENCH_FLAVOUR must be 'stock' or 'zcio', not {FLAVOUR!r}")


async def serve_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:
        return PlainTextResponse("not found", status_code=404)
    return file_response(FOLDER / name, media_type=MEDIA_TYPE)


async def serve_memory(request: Request) -> Response:
    data = SMALL.get(request.path_params["name"])
    if data is None:
        return PlainTextResponse("not found", status_code=404)
    return Response(data, media_type=MEDIA_TYPE)


async def zcio_stats(request: Request) -> Response:
    out: dict[str, Any] = {"flavour": FLAVOUR, "pid": os.getpid()}
    if FLAVOUR == "zcio":
        snap = zcio.stats()
        out["methods"] = {
            name: {"transfers": m.transfers, "calls": m.calls, "bytes": m.bytes}
            for name, m in snap.methods.items()
        }
        out["fallbacks"] = dict(snap.fallbacks)
    return JSONResponse(out)


app: Any = Starlette(
    routes=[
        Route("/f/{name}", serve_file),
        Route("/m/{name}", serve_memory),
        Route("/zcio-stats", zcio_stats),
        Mount("/s", app=static_files(directory=FOLDER)),
    ]
)
if os.environ.get("ZCIO_BENCH_SERVESTATIC"):  # servestatic in front: /ss/NAME is its
    from servestatic import ServeStaticASGI

    app = ServeStaticASGI(app, root=str(FOLDER), prefix="ss")
