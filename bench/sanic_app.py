"""The Sanic app that ``bench/sanic_files.py`` measures, on Sanic's own server (one process,
uvloop, Sanic's default): ``python sanic_app.py --port N --flavour F``.

Flavours, one per process: ``file`` (``sanic.response.file``), ``file_stream``
(``sanic.response.file_stream``) and ``zcio`` (``zcio_sanic.file``). ``ZCIO_BENCH_FILES`` is the
folder (``bench/http_files.py`` fills it). Routes:

- ``GET /f/{name}``: the flavour's response of the file ``name`` (only the known names;
  ``file_stream`` is given the Content-Length, as ``app.static`` gives it);
- ``GET /m/{name}``: the small files' bytes from memory (``sanic.response.raw``);
- ``GET /zcio-stats``: ``zcio.stats()`` bytes per method, and the process's VmRSS/VmHWM (KiB).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from sanic import Sanic, json, raw
from sanic.exceptions import NotFound
from sanic.response import file as stock_file, file_stream as stock_file_stream

import zcio
import zcio_sanic

FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-root/f"))
FILES = ("4k.bin", "64k.bin", "large.bin")
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}


def _status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def build(flavour: str) -> Sanic[Any, Any]:
    app = Sanic("zcio_bench", configure_logging=False)
    app.config.ACCESS_LOG = False
    app.config.RESPONSE_TIMEOUT = 600
    serve: Any = {"file": stock_file, "file_stream": stock_file_stream, "zcio": zcio_sanic.file}[
        flavour
    ]

    @app.get("/f/<name>")
    async def serve_file(request: Any, name: str) -> Any:
        if name not in FILES:
            raise NotFound("no such file")
        path = FOLDER / name
        if flavour == "file_stream":
            # As app.static does with use_content_range: a length, so no chunked encoding.
            size = os.stat(path).st_size
            return await serve(path, headers={"Content-Length": str(size)})
        return await serve(path)

    @app.get("/m/<name>")
    async def memory(request: Any, name: str) -> Any:
        if name not in SMALL:
            raise NotFound("no such file")
        return raw(SMALL[name])

    @app.get("/zcio-stats")
    async def stats(request: Any) -> Any:
        status = _status()
        methods = zcio.stats().methods
        return json({"bytes": {k: m.bytes for k, m in methods.items()}, **status})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--flavour", choices=["file", "file_stream", "zcio"], required=True)
    args = parser.parse_args()
    build(args.flavour).run(
        host="127.0.0.1", port=args.port, single_process=True, motd=False, access_log=False
    )
