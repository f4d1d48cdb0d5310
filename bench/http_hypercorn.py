"""Benchmark hypercorn: ``zcio_starlette`` on stock hypercorn against ``zcio_hypercorn`` on its
asyncio, uvloop and trio workers, and nginx with ``sendfile on``.

The app is ``bench/http_files.py``'s (``bench/http_app.py`` in its zcio flavour:
``zcio_starlette.FileResponse``, and the small files' bytes from memory). Servers, each a
fresh process tree per run (one hypercorn worker process):

- ``hypercorn -k asyncio`` and ``-k trio`` (stock: nothing advertised, so zcio_starlette reads
  64 KiB chunks in a thread and sends body messages): the baselines;
- ``zcio-hypercorn -k asyncio``, ``-k uvloop``, ``-k trio`` (zerocopysend, ``sendfile(2)``);
- nginx (the anchor), when installed.

The measuring is ``bench/http_files.py``'s (same client, tables and options): figure 1 is one
large cached file over one connection (GB/s, server CPU per GiB), figure 2 the 4 and 64 KiB
files with ``wrk -t2 -c32``. Figure 1 also measures, per run, the server's peak RSS growth
(``VmHWM`` of its processes, after warm-up, before and after) and the latency of another
client's tiny request (``GET /f/4k.bin`` on its own kept-alive connection, every 20 ms) while
the large file is sent: its p99 is printed in a table of its own and in ``zcio bench``'s notes.

Targets (issue 22), printed and never asserted: the large file at >= 0.9x nginx's GB/s and
<= 1.3x its server CPU per GiB on every worker; peak RSS growth <= 32 MiB; the other client's
p99 <= 20 ms; small files no slower than on stock hypercorn.

    python bench/http_hypercorn.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                                   [--servers KEY,...] [--figures 1|2|both] [--quick]
                                   [--json PATH]
"""

from __future__ import annotations

import functools
import http.client
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import http_files as hf
from _common import fmt, markdown_table, median, percentile, progress, run_child
from django_files import peak_rss_kib
from http_files import NGINX, Result, Sections, Variant

#: Targets of issue 22 beyond http_files.py's, printed and never asserted.
TARGET_RSS_MIB = 32
TARGET_OTHER_P99_MS = 20.0
#: How often the other client asks for its tiny response while the large file is sent.
PROBE_EVERY_S = 0.02


class HypercornVariant(Variant):
    """A hypercorn server: ``command`` is ``hypercorn`` (stock) or ``zcio-hypercorn``."""

    __slots__ = ()

    @property
    def zcio_sends(self) -> bool:
        """zcio_hypercorn's bodies go by ``zcio.send_file``: the app's counters see them."""
        return self.command == "zcio-hypercorn"


def _variant(key: str, label: str, worker: str, zcio: bool) -> Variant:
    script = "zcio-hypercorn" if zcio else "hypercorn"
    needs = ("hypercorn", "zcio_starlette", *(("zcio_hypercorn",) if zcio else ()))
    needs += (worker,) if worker in ("uvloop", "trio") else ()
    return HypercornVariant(
        key, label, "hypercorn", "zcio", worker=worker, needs=needs, command=script
    )


STOCK = _variant(
    "stock_hypercorn_asyncio",
    "zcio_starlette `FileResponse`, stock `hypercorn -k asyncio`",
    "asyncio",
    zcio=False,
)
VARIANTS: tuple[Variant, ...] = (
    STOCK,
    _variant(
        "stock_hypercorn_trio",
        "zcio_starlette `FileResponse`, stock `hypercorn -k trio`",
        "trio",
        zcio=False,
    ),
    *(
        _variant(
            f"zcio_hypercorn_{worker}",
            f"zcio_starlette `FileResponse`, `zcio-hypercorn -k {worker}` (zerocopysend)",
            worker,
            zcio=True,
        )
        for worker in ("asyncio", "uvloop", "trio")
    ),
    NGINX,
)

SECTIONS = Sections(
    "http_hypercorn",
    "hypercorn",
    "zcio_starlette `FileResponse`, stock hypercorn `-k asyncio`",
    "one large cached file, hypercorn workers; CPU: the server's process tree",
    "4 and 64 KiB files, hypercorn workers, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
    {"nginx": "anchor", STOCK.key: "baseline"},
    (("nginx", "nginx, `sendfile on`", "nginx"),),
)


class HypercornServer(hf.Server):
    """``http_files.Server`` that also runs hypercorn (kind ``hypercorn``): stock hypercorn or
    zcio-hypercorn (``Variant.command``), worker ``Variant.worker``, one worker process."""

    def _argv(self, port: int) -> list[str]:
        v = self.v
        if v.kind != "hypercorn":
            return super()._argv(port)
        return [
            *(hf._venv_script(v.command), v.app, "-k", v.worker),
            *("--bind", f"{hf.HOST}:{port}", "--workers", "1", "--graceful-timeout", "2"),
        ]


class Prober(threading.Thread):
    """Another client: a tiny request on its own kept-alive connection every 20 ms, timed from
    the request to the response's last byte, until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.times_ms: list[float] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(hf.HOST, self.port, timeout=30)
        try:
            while not self.halt.is_set():
                started = time.perf_counter()
                try:
                    conn.request("GET", "/f/4k.bin")
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    self.errors += 1
                    conn.close()
                else:
                    self.times_ms.append((time.perf_counter() - started) * 1000)
                self.halt.wait(PROBE_EVERY_S)
        finally:
            conn.close()

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(30)


#: Per server key: the results of its large-file runs (the warm-up run's too: its round is 0).
EXTRAS: dict[str, list[Result]] = {}


def _extras(key: str) -> list[tuple[float, float]]:
    """(peak RSS growth MiB, other client p99 ms) of the measured runs of server ``key``."""
    return [
        (float(r["rss_growth_mib"]), float(r["other_p99_ms"]))
        for r in EXTRAS.get(key, [])
        if r.get("round", 0) > 0
    ]


def run_with_extras(v: Variant, run: Any) -> Result:
    """``run()`` (the large file's client) with the server's peak RSS and the other client's
    latency measured around it; both kept in :data:`EXTRAS` and in the result."""
    srv: HypercornServer = CURRENT[0]
    rss0 = peak_rss_kib(srv.pid)
    with Prober(srv.port) as probe:
        result: Result = run()
    growth = (peak_rss_kib(srv.pid) - rss0) / 1024
    p99 = percentile(probe.times_ms, 99) if probe.times_ms else math.nan
    result["rss_growth_mib"], result["other_p99_ms"] = growth, p99
    result["other_requests"], result["other_errors"] = len(probe.times_ms), probe.errors
    EXTRAS.setdefault(v.key, []).append(result)  # http_files sets its "round" next
    return result


#: The server of the large-file run in progress (set as it starts).
CURRENT: list[HypercornServer] = []


class MeasuredServer(HypercornServer):
    """The server, remembered while it runs, so the large file's client can be wrapped."""

    def __enter__(self) -> MeasuredServer:
        super().__enter__()
        CURRENT[:] = [self]
        return self


def _run_child(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> Result:
    """``http_files``' ``run_child`` for the large file's client, with the extras around it."""
    if "--worker" in argv and CURRENT:
        return run_with_extras(CURRENT[0].v, lambda: run_child(argv, timeout=timeout, env=env))
    return run_child(argv, timeout=timeout, env=env)


def extras_table() -> str:
    rows = []
    for v in VARIANTS:
        runs = _extras(v.key)
        if runs:
            rss = median([r for r, _ in runs])
            p99 = median([p for _, p in runs if math.isfinite(p)] or [math.nan])
            rows.append([v.label, fmt(rss, 0), fmt(p99, 1), str(len(runs))])
    return markdown_table(["server", "peak RSS growth MiB", "other client p99 ms", "runs"], rows)


def notes(figure: str, key: str, e: Mapping[str, Any]) -> list[str]:
    """``zcio bench``'s notes: the large file's peak RSS growth and the other client's p99."""
    runs = _extras(key)
    if figure != "large" or not runs:
        return hf.memory_notes(figure, key, e)
    rss = median([r for r, _ in runs])
    p99 = median([p for _, p in runs if math.isfinite(p)] or [math.nan])
    return [f"peak RSS +{rss:.0f} MiB", f"other client p99 {fmt(p99, 1)} ms"]


def _write_results(*args: Any, **kwargs: Any) -> int:
    if EXTRAS:
        print("## While the large file is sent: the server's memory, another client's latency")
        print()
        print(extras_table())
        print()
        print(
            f"Targets: peak RSS growth <= {TARGET_RSS_MIB} MiB, the other client's p99 <= "
            f"{TARGET_OTHER_P99_MS:g} ms (a GET of a 4 KiB file every "
            f"{PROBE_EVERY_S * 1000:g} ms on its own connection). Medians over the runs."
        )
        print()
    return ORIGINAL_WRITE_RESULTS(*args, **kwargs)


ORIGINAL_WRITE_RESULTS = functools.partial(hf.write_results, notes=notes)


def main(argv: Sequence[str] | None = None) -> int:
    """``bench/http_files.py``'s main, measuring these servers with issue 22's targets."""
    hf.VARIANTS = VARIANTS
    hf.STOCK = STOCK
    hf.SUBJECT = "zcio_hypercorn"
    hf.STOCK_TEXT = "zcio_starlette's FileResponse on stock hypercorn, asyncio worker"
    hf.VERSIONS_OF = ("hypercorn", "h11", "starlette", "trio", "uvloop")
    hf.TARGET_X_NGINX_CPU = 1.3
    hf.TARGET_X_STOCK_GBPS = 5.0
    hf.SECTIONS = SECTIONS
    hf.Server = MeasuredServer  # type: ignore[misc]
    hf.run_child = _run_child  # type: ignore[attr-defined]
    hf.write_results = _write_results
    progress("http_hypercorn: hypercorn's workers, stock and zcio_hypercorn")
    return hf.main(argv)


if __name__ == "__main__":
    sys.exit(main())
