"""The Quart app that ``bench/http_quart.py`` measures, stock or with ``zcio_quart.install``.

``ZCIO_BENCH_FLAVOUR`` (read at import): ``stock`` is Quart as it comes, ``zcio`` the same app
after ``zcio_quart.install(app)``. ``ZCIO_BENCH_FILES`` is the folder of files
(``bench/http_files.py`` fills it).

Routes, as ``bench/http_app.py``'s:

- ``GET /f/<name>``: ``send_file(folder / name)`` for the names in :data:`FILES` (a 404
  otherwise);
- ``GET /m/<name>``: a Quart ``Response`` with the same bytes from memory, for the small files:
  the reference a file response is compared with;
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from quart import Quart, Response, send_file

import zcio

__all__ = ["FILES", "FLAVOUR", "app"]

FLAVOUR = os.environ.get("ZCIO_BENCH_FLAVOUR", "stock")
FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-files"))
FILES = ("4k.bin", "64k.bin", "large.bin")
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}
MEDIA_TYPE = "application/octet-stream"

app = Quart(__name__)
# Quart ends a response that takes longer than RESPONSE_TIMEOUT (60 s by default): stock Quart
# moves a large file slower than that on a busy machine.
app.config["RESPONSE_TIMEOUT"] = None


@app.route("/f/<name>")
async def serve_file(name: str) -> Response:
    if name not in FILES:
        return Response("not found", status=404, mimetype="text/plain")
    return await send_file(FOLDER / name, mimetype=MEDIA_TYPE)


@app.route("/m/<name>")
async def serve_memory(name: str) -> Response:
    data = SMALL.get(name)
    if data is None:
        return Response("not found", status=404, mimetype="text/plain")
    return Response(data, mimetype=MEDIA_TYPE)


@app.route("/zcio-stats")
async def zcio_stats() -> dict[str, Any]:
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


if FLAVOUR == "zcio":
    import zcio_quart

    zcio_quart.install(app)
elif FLAVOUR != "stock":
    raise RuntimeError(f"ZCIO_BENCH_FLAVOUR must be stock or zcio, not {FLAVOUR!r}")
