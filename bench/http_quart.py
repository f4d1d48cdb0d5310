"""Benchmark Quart's ``send_file`` over HTTP: stock Quart on stock hypercorn, and
``zcio_quart.install(app)`` on zcio_uvicorn and on zcio_hypercorn, against nginx with
``sendfile on``.

The app (``bench/http_quart_app.py``) serves the folder of ``bench/http_files.py`` with Quart's
``send_file`` (stock, or the same app after ``zcio_quart.install``), and the small files' bytes
from memory with an ordinary Quart ``Response``. Servers, each a fresh process per run:

- stock Quart on stock hypercorn (``-k asyncio``): the baseline (Quart's own path: 8 KiB reads
  through aiofiles, one body message each; hypercorn advertises no file extension);
- ``zcio_quart`` on uvicorn with ``--http zcio_uvicorn:HttpToolsProtocol``, asyncio and uvloop;
- ``zcio_quart`` on zcio_hypercorn (``python -m zcio_hypercorn``, hypercorn's command line),
  ``-k asyncio`` and ``-k uvloop``, when ``zcio_hypercorn`` is installed (skipped, and said so,
  otherwise);
- nginx with ``sendfile on`` (the anchor), when installed.

The measuring is ``bench/http_files.py``'s (same client, same tables, same options): figure 1
is one large cached file over one connection (GB/s, server CPU per GiB), figure 2 the 4 and
64 KiB files with ``wrk -t2 -c32`` against the same server's in-memory ``Response``.

Targets (issue 22), printed and never asserted: the large file at >= 0.9x nginx's GB/s and
<= 1.3x its server CPU per GiB, >= 5x stock Quart on stock hypercorn; small files no slower
than the same app's in-memory response by more than http_files' margin.

    python bench/http_quart.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                               [--servers KEY,...] [--figures 1|2|both] [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import http_files as hf
from http_files import HOST, NGINX, Sections, Variant

APP = "http_quart_app:app"
ZCIO_HTTP = "zcio_uvicorn:HttpToolsProtocol"
#: Stock Quart on stock hypercorn is slow (tens of MB/s): the large file's time limit is
#: http_files' own times this.
TIMEOUT_FACTOR = 6.0


@dataclass(frozen=True, slots=True)
class QuartVariant(Variant):
    """A Variant that may run on hypercorn or zcio_hypercorn (``worker``: its ``-k``)."""

    @property
    def zcio_sends(self) -> bool:
        """zcio_uvicorn and zcio_hypercorn send with zcio: the server's counters see it."""
        return self.zcio and self.kind in ("uvicorn", "zcio_hypercorn")


class Server(hf.Server):
    """http_files' server, which also starts hypercorn and zcio_hypercorn."""

    def _argv(self, port: int) -> list[str]:
        v = self.v
        if v.kind not in ("hypercorn", "zcio_hypercorn"):
            return super()._argv(port)
        return [
            *(sys.executable, "-m", v.kind, v.app, "--bind", f"{HOST}:{port}"),
            *("-k", v.worker, "--graceful-timeout", "2", "--log-level", "warning"),
        ]


class Bench(hf.Bench):
    """http_files' runs, with a longer time limit for the large file (see TIMEOUT_FACTOR)."""

    def __init__(
        self, large: Path, size: int, timeout: float, quiet_timeout: float = hf.QUIET_TIMEOUT
    ) -> None:
        super().__init__(large, size, timeout * TIMEOUT_FACTOR, quiet_timeout)


STOCK = QuartVariant(
    "stock_quart_hypercorn",
    "Quart `send_file`, hypercorn `-k asyncio`",
    "hypercorn",
    "stock",
    worker="asyncio",
    needs=("hypercorn", "quart"),
    app=APP,
)
VARIANTS: tuple[Variant, ...] = (
    STOCK,
    *(
        QuartVariant(
            f"zcio_quart_uvicorn_{loop}",
            f"zcio_quart, uvicorn `--http {ZCIO_HTTP} --loop {loop}`",
            "uvicorn",
            "zcio",
            loop=loop,
            http=ZCIO_HTTP,
            needs=("uvicorn", "httptools", "quart", "zcio_quart", *extra),
            app=APP,
        )
        for loop, extra in (("asyncio", ()), ("uvloop", ("uvloop",)))
    ),
    *(
        QuartVariant(
            f"zcio_quart_zcio_hypercorn_{worker}",
            f"zcio_quart, zcio_hypercorn `-k {worker}`",
            "zcio_hypercorn",
            "zcio",
            worker=worker,
            needs=("hypercorn", "zcio_hypercorn", "quart", "zcio_quart", *extra),
            app=APP,
        )
        for worker, extra in (("asyncio", ()), ("uvloop", ("uvloop",)))
    ),
    NGINX,
)

#: The two sections of ``zcio bench``'s table.
SECTIONS = Sections(
    "http_quart",
    "quart",
    "stock Quart `send_file`, stock hypercorn (asyncio)",
    "one large cached file, Quart `send_file`; CPU: the server's process tree",
    "4 and 64 KiB files, Quart `send_file`, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
    {"nginx": "anchor", STOCK.key: "baseline"},
    (("nginx", "nginx, `sendfile on`", "nginx"),),
)


def main(argv: Sequence[str] | None = None) -> int:
    """``bench/http_files.py``'s main, measuring these servers with issue 22's targets."""
    hf.VARIANTS = VARIANTS
    hf.STOCK = STOCK
    hf.SUBJECT = "zcio_quart"
    hf.STOCK_TEXT = "Quart's send_file on stock hypercorn, asyncio worker"
    hf.IN_MEMORY = "Quart `Response`"
    hf.VERSIONS_OF = ("quart", "hypercorn", "uvicorn", "httptools")
    app = Path(__file__).resolve().with_name("http_quart_app.py")
    hf.APP_MODULES = (*hf.APP_MODULES, app)  # type: ignore[assignment]
    hf.TARGET_X_NGINX_CPU = 1.3
    hf.TARGET_X_STOCK_GBPS = 5.0
    hf.SECTIONS = SECTIONS
    hf.Server = Server  # type: ignore[misc]
    hf.Bench = Bench  # type: ignore[misc]
    return hf.main(argv)


if __name__ == "__main__":
    sys.exit(main())
