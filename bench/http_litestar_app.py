"""The Litestar app that ``bench/http_litestar.py`` measures, in three flavours with the same
routes.

``ZCIO_BENCH_FLAVOUR`` (read at import): ``stock`` serves files with
``litestar.response.File``, ``zcio`` with ``zcio_litestar.File``, ``servestatic`` puts
servestatic's ``ServeStaticASGI`` over the folder in front of the stock app (``/f/`` is then
servestatic's). ``ZCIO_BENCH_FILES`` is the folder of files (``bench/http_files.py`` fills it).

Routes, as ``bench/http_app.py``'s:

- ``GET /f/{name}``: the file ``folder / name`` for the names in :data:`FILES` (a 404 otherwise);
- ``GET /m/{name}``: a Litestar ``Response`` with the same bytes from memory, for the small
  files: the reference a file response is compared with;
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Response, get
from litestar.response import File as LitestarFile

import zcio

__all__ = ["FILES", "FLAVOUR", "app"]

FLAVOUR = os.environ.get("ZCIO_BENCH_FLAVOUR", "stock")
FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-files"))
FILES = ("4k.bin", "64k.bin", "large.bin")
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}
MEDIA_TYPE = "application/octet-stream"

file_class: type[LitestarFile]
if FLAVOUR == "zcio":
    import zcio_litestar

    file_class = zcio_litestar.File
elif FLAVOUR in ("stock", "servestatic"):
    file_class = LitestarFile
else:
    raise RuntimeError(f"ZCIO_BENCH_FLAVOUR must be stock, zcio or servestatic, not {FLAVOUR!r}")


@get("/f/{name:str}", sync_to_thread=False)
def serve_file(name: str) -> LitestarFile | Response[str]:
    if name not in FILES:
        return Response("not found", status_code=404, media_type=MediaType.TEXT)
    return file_class(FOLDER / name, media_type=MEDIA_TYPE)


@get("/m/{name:str}", sync_to_thread=False)
def serve_memory(name: str) -> Response[bytes] | Response[str]:
    data = SMALL.get(name)
    if data is None:
        return Response("not found", status_code=404, media_type=MediaType.TEXT)
    return Response(data, media_type=MEDIA_TYPE)


@get("/zcio-stats", sync_to_thread=False)
def zcio_stats() -> dict[str, Any]:
    snap = zcio.stats()
    return {
        "flavour": FLAVOUR,
        "pid": os.getpid(),
        "methods": {
            name: {"transfers": m.transfers, "calls": m.calls, "bytes": m.bytes}
            for name, m in snap.methods.items()
        },
        "fallbacks": dict(snap.fallbacks),
    }


app: Any = Litestar(route_handlers=[serve_file, serve_memory, zcio_stats])
if FLAVOUR == "servestatic":
    from servestatic import ServeStaticASGI

    # max_age=None: no Cache-Control, as the other flavours; the same bytes and statuses.
    # large.bin is a link out of the folder (to the shared test file): allowed on purpose.
    app = ServeStaticASGI(
        app, root=str(FOLDER), prefix="f", max_age=None, allow_unsafe_symlinks=True
    )
