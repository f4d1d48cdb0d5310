"""The Tornado server that ``bench/tornado_files.py`` measures: stock, or after
``zcio_tornado.install()``.

    python tornado_bench_app.py --host H --port P --flavour stock|zcio [--loop asyncio|uvloop]

``ZCIO_BENCH_FILES`` is the folder of files (``bench/http_files.py``'s ``prepare_files``).
Routes, the same URLs as ``bench/http_app.py``:

- ``GET /f/{name}``: ``tornado.web.StaticFileHandler`` over the folder (the large file is a
  link out of the folder: its target's folder is allowed as a symlink directory);
- ``GET /m/{name}``: the bytes of the small file ``name`` from memory;
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON (``{}`` on stock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import tornado.web

FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-root/f"))
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}


class Memory(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        data = SMALL.get(name)
        if data is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.write(data)


class Stats(tornado.web.RequestHandler):
    def initialize(self, zcio: bool) -> None:
        self.zcio = zcio

    def get(self) -> None:
        out: dict[str, Any] = {"pid": os.getpid()}
        if self.zcio:
            import zcio

            snap = zcio.stats()
            out["methods"] = {
                name: {"transfers": m.transfers, "calls": m.calls, "bytes": m.bytes}
                for name, m in snap.methods.items()
            }
            out["fallbacks"] = dict(snap.fallbacks)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(out))


def static_options() -> dict[str, Any]:
    """The folder, and the folders its links lead to (the large file's)."""
    links = {str(Path(os.path.realpath(p)).parent) for p in FOLDER.iterdir() if p.is_symlink()}
    return {"path": str(FOLDER), "allowed_symlink_directory": [str(FOLDER), *sorted(links)]}


async def serve(args: argparse.Namespace) -> None:
    zcio = args.flavour == "zcio"
    if zcio:
        import zcio_tornado

        zcio_tornado.install()
    app = tornado.web.Application(
        [
            (r"/f/(.*)", tornado.web.StaticFileHandler, static_options()),
            (r"/m/(.*)", Memory),
            (r"/zcio-stats", Stats, {"zcio": zcio}),
        ]
    )
    app.listen(args.port, args.host)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--flavour", choices=["stock", "zcio"], default="stock")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
