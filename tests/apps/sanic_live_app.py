"""A Sanic app serving the same files with stock Sanic and with zcio_sanic, run by Sanic's own
server as a subprocess: ``python sanic_live_app.py PORT`` (one process, no worker manager).

Environment: ZCIO_TEST_ROOT (the files), ZCIO_SANIC_INSTALL=1 (``zcio_sanic.install(app)``:
the static routes serve with zcio_sanic), ZCIO_SANIC_LOOP=asyncio (the default loop instead of
uvloop), ZCIO_SANIC_SIGNAL=1 (an ``http.lifecycle.send`` handler that counts what it sees),
ZCIO_SANIC_CERT and ZCIO_SANIC_KEY (PEM files: serve HTTPS).

GET|HEAD /{stock,zcio}/file/NAME[?filename=F]     sanic.response.file / zcio_sanic.file (the
         request's Range and If-Modified-Since honoured, as the static handler does)
GET|HEAD /{stock,zcio}/stream/NAME[?chunk=N]      file_stream, likewise
GET|HEAD /static/PATH                             app.static over $ROOT/www, ranges on
GET /shrink/NAME    zcio_sanic.file of NAME, which is then cut to 1 MiB while it is sent
GET /stats          zcio's bytes per method, open fds, RSS (VmRSS, VmHWM) in KiB, signal bytes
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from sanic import Sanic, json
from sanic.exceptions import HeaderNotFound
from sanic.handlers import ContentRangeHandler
from sanic.response import file as stock_file, file_stream as stock_file_stream

import zcio
import zcio_sanic

ROOT = Path(os.environ.get("ZCIO_TEST_ROOT", "/nonexistent"))
SIGNAL_BYTES = [0]

app = Sanic("zcio_sanic_test", configure_logging=False)
app.config.USE_UVLOOP = os.environ.get("ZCIO_SANIC_LOOP") != "asyncio"
app.config.ACCESS_LOG = False
app.config.RESPONSE_TIMEOUT = 120


def _range(request: Any, path: Path) -> Any:
    try:
        return ContentRangeHandler(request, os.stat(path))
    except HeaderNotFound:
        return None


@app.route("/<side:stock|zcio>/file/<name:path>", methods=["GET", "HEAD"])
async def file_route(request: Any, side: str, name: str) -> Any:
    path = ROOT / name
    use = stock_file if side == "stock" else zcio_sanic.file
    exists = path.is_file()
    return await use(
        path,
        request_headers=request.headers,
        filename=request.args.get("filename"),
        _range=_range(request, path) if exists else None,
    )


@app.route("/<side:stock|zcio>/stream/<name:path>", methods=["GET", "HEAD"])
async def stream_route(request: Any, side: str, name: str) -> Any:
    path = ROOT / name
    use = stock_file_stream if side == "stock" else zcio_sanic.file_stream
    return await use(
        path,
        chunk_size=int(request.args.get("chunk", 4096)),
        filename=request.args.get("filename"),
        _range=_range(request, path) if path.is_file() else None,
    )


@app.get("/shrink/<name:path>")
async def shrink_route(request: Any, name: str) -> Any:
    path = ROOT / name
    response = await zcio_sanic.file(path)

    async def cut() -> None:
        await asyncio.sleep(0.2)
        os.truncate(path, 1 << 20)

    request.app.add_task(cut())
    return response


app.static("/static", ROOT / "www", use_content_range=True, name="www")
app.static("/big", ROOT / "www", stream_large_files=True, use_content_range=True, name="big")
if os.environ.get("ZCIO_SANIC_INSTALL") == "1":
    zcio_sanic.install(app)

if os.environ.get("ZCIO_SANIC_SIGNAL") == "1":

    @app.signal("http.lifecycle.send")
    async def seen(data: bytes, **_: Any) -> None:
        SIGNAL_BYTES[0] += len(data)


def _status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


@app.get("/stats")
async def stats(request: Any) -> Any:
    methods = zcio.stats().methods
    return json(
        {
            "bytes": {name: m.bytes for name, m in methods.items()},
            "fds": len(os.listdir("/proc/self/fd")),
            "signal": SIGNAL_BYTES[0],
            **_status(),
        }
    )


if __name__ == "__main__":
    cert = os.environ.get("ZCIO_SANIC_CERT")
    app.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        single_process=True,
        motd=False,
        access_log=False,
        ssl={"cert": cert, "key": os.environ["ZCIO_SANIC_KEY"]} if cert else None,
    )
