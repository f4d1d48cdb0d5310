"""A Jupyter server extension for zcio_tornado's live test: GET /zcio-stats (token required,
as every API) answers zcio's bytes per method and zcio_tornado's counts, as JSON."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

import zcio
import zcio_tornado


class StatsHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        stats = zcio.stats()
        self.finish(
            json.dumps(
                {
                    "bytes": {k: v.bytes for k, v in stats.methods.items() if v.bytes},
                    "counts": zcio_tornado.counts(),
                    "installed": zcio_tornado.installed(),
                }
            )
        )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_stats"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    app = serverapp.web_app
    app.add_handlers(".*$", [(app.settings["base_url"] + "zcio-stats", StatsHandler)])
