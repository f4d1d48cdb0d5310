"""A Tornado server for zcio_tornado's live tests and benchmark, run as a subprocess.

    python tornado_app.py PORT ROOT [--stock] [--loop uvloop] [--tls-port P --cert C --key K]

Serves ROOT at /static/ with ``tornado.web.StaticFileHandler``: after
``zcio_tornado.install()``, or Tornado's own with ``--stock``. ``--tls-port`` also serves the
same app over TLS (Tornado's path: the body must go through ``SSLIOStream``).

GET /static/<path>   the file, as StaticFileHandler serves it
GET /tiny            a few bytes (the other client of the stall measurement)
GET /stats           zcio's bytes per method, zcio_tornado's counts, the process's open fds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
from typing import Any

import tornado.httpserver
import tornado.web

import zcio
import zcio_tornado


class Tiny(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(b"ok")


class Stats(tornado.web.RequestHandler):
    def get(self) -> None:
        stats = zcio.stats()
        self.write(
            json.dumps(
                {
                    "bytes": {k: v.bytes for k, v in stats.methods.items() if v.bytes},
                    "counts": zcio_tornado.counts(),
                    "fds": len(os.listdir("/proc/self/fd")),
                    "installed": zcio_tornado.installed(),
                }
            )
        )


async def serve(args: argparse.Namespace) -> None:
    if not args.stock:
        zcio_tornado.install()
    app = tornado.web.Application(
        [
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": args.root}),
            (r"/tiny", Tiny),
            (r"/stats", Stats),
        ]
    )
    servers: list[Any] = [app.listen(args.port, "127.0.0.1")]
    if args.tls_port:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        servers.append(app.listen(args.tls_port, "127.0.0.1", ssl_options=context))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("root")
    parser.add_argument("--stock", action="store_true")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
