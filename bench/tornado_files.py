"""Benchmark Tornado's ``StaticFileHandler``, stock and with ``zcio_tornado.install()``; nginx
with ``sendfile on`` as the anchor (a "not installed" row when it is missing).

The server is ``bench/tornado_bench_app.py`` (a static route over the same folder and URLs as
``bench/http_files.py``'s app, plus in-memory responses of the small files); the machinery is
``bench/http_files.py``'s: a fresh server process per run, a splice client for the large file
(GB/s from the request to the last byte, server CPU from ``/proc`` over the whole process
tree), ``wrk -t2 -c32`` for the 4 KiB and 64 KiB files. One thing is added: while the large
file goes, another client on its own keep-alive connection GETs the 4 KiB file again and again
(5 ms apart) and times each answer: its p99 is how long a download makes everyone else wait
(stock Tornado reads 64 KiB chunks on the event loop; issue 2997).

Targets (issue 23), printed beside the results, never asserted: the large file under
``zcio_tornado`` at >= 0.9x nginx's GB/s and <= 1.3x its server CPU per GiB (so >= 2x stock
Tornado's GB/s at <= 0.5x its CPU); the other client's p99 <= 20 ms; small files no slower
than stock.

    python bench/tornado_files.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                                  [--servers KEY,...] [--figures 1|2|both] [--quick]
                                  [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import http_files
from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    by_round,
    chosen_servers,
    ensure_file,
    environment,
    fmt,
    markdown_table,
    median,
    package_versions,
    parse_args,
)
from http_files import (
    HOST,
    HTTP_SIZES,
    NGINX,
    SMALL,
    WRK_CONNECTIONS,
    WRK_THREADS,
    Bench,
    Result,
    Sections,
    Variant,
    _cpu_per_gib,
    _gbps,
    _missing,
    _path_runs,
    _rps,
    _sendfile_share,
    http_parser,
    large_get,
    measure,
    prepare_files,
    select,
    versions,
    write_results,
)

#: Targets, printed and never asserted.
TARGET_X_NGINX_GBPS = 0.9
TARGET_X_NGINX_CPU = 1.3
TARGET_X_STOCK_GBPS = 2.0
TARGET_X_STOCK_CPU = 0.5
TARGET_P99_MS = 20.0
TARGET_X_STOCK_SMALL = 1.0

TORNADO_APP = Path(__file__).resolve().with_name("tornado_bench_app.py")
#: The other client: how long it waits between two requests, and which file it asks for.
PROBE_GAP_S = 0.005
PROBE_PATH = "/f/4k.bin"

STOCK = Variant(
    "tornado_stock",
    "Tornado `StaticFileHandler`, stock (asyncio)",
    "tornado",
    "stock",
    loop="asyncio",
    needs=("tornado",),
)
ZCIO = Variant(
    "tornado_zcio",
    "Tornado `StaticFileHandler`, `zcio_tornado.install()` (asyncio)",
    "tornado",
    "zcio",
    loop="asyncio",
    needs=("tornado", "zcio_tornado"),
)
ZCIO_UVLOOP = Variant(
    "tornado_zcio_uvloop",
    "Tornado `StaticFileHandler`, `zcio_tornado.install()` (uvloop)",
    "tornado",
    "zcio",
    loop="uvloop",
    needs=("tornado", "zcio_tornado", "uvloop"),
)
VARIANTS: tuple[Variant, ...] = (STOCK, ZCIO, ZCIO_UVLOOP, NGINX)

_stock_argv = http_files.Server._argv


def _argv(self: http_files.Server, port: int) -> list[str]:
    """http_files' servers, and this script's: Tornado as a script of its own."""
    if self.v.kind == "tornado":
        return [
            *(sys.executable, str(TORNADO_APP), "--host", HOST, "--port", str(port)),
            *("--flavour", self.v.flavour, "--loop", self.v.loop),
        ]
    return _stock_argv(self, port)


http_files.Server._argv = _argv  # type: ignore[method-assign]


# === The other client ===========================================================================


def _probe(port: int, stop: threading.Event, waits: list[float]) -> None:
    """GET the small file on one keep-alive connection until ``stop``; each answer's time."""
    want = dict(SMALL)[PROBE_PATH.rsplit("/", 1)[1]]
    request = f"GET {PROBE_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    with socket.create_connection((HOST, port), timeout=60) as sock:
        while not stop.is_set():
            started = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < want:
                more = sock.recv(65536)
                if not more:
                    return
                data += more
            waits.append(time.perf_counter() - started)
            stop.wait(PROBE_GAP_S)


def large_get_probed(port: int, path: str, size: int, server_pid: int) -> Result:
    """``http_files.large_get`` while the other client runs; its waits in milliseconds."""
    waits: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(port, stop, waits), daemon=True)
    prober.start()
    time.sleep(0.02)  # the other client's connection is up before the download starts
    try:
        result = large_get(port, path, size, server_pid)
    finally:
        stop.set()
        prober.join(timeout=70)
    ordered = sorted(waits)
    result["probe_count"] = len(ordered)
    if ordered:
        result["probe_p50_ms"] = 1e3 * ordered[len(ordered) // 2]
        result["probe_p99_ms"] = 1e3 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        result["probe_max_ms"] = 1e3 * ordered[-1]
    return result


def _p99(r: Result) -> float:
    return float(r.get("probe_p99_ms", math.nan))


# === Tables =====================================================================================


_LARGE_RATIOS = ("nginx", "stock")


def _references(results: dict[str, list[Result]]) -> dict[str, list[Result]]:
    return {"nginx": results.get(NGINX.key) or [], "stock": results.get(STOCK.key) or []}


def _large_target(e: dict[str, Any]) -> str:
    misses = []
    if not e["x_nginx_gbps"] >= TARGET_X_NGINX_GBPS:
        misses.append(f"GB/s < {TARGET_X_NGINX_GBPS}x nginx")
    if not e["x_nginx_cpu"] <= TARGET_X_NGINX_CPU:
        misses.append(f"CPU > {TARGET_X_NGINX_CPU}x nginx")
    if not e["x_stock_gbps"] >= TARGET_X_STOCK_GBPS:
        misses.append(f"GB/s < {TARGET_X_STOCK_GBPS}x stock")
    if not e["x_stock_cpu"] <= TARGET_X_STOCK_CPU:
        misses.append(f"CPU > {TARGET_X_STOCK_CPU}x stock")
    if not e["probe_p99_ms"] <= TARGET_P99_MS:
        misses.append(f"p99 > {TARGET_P99_MS:.0f} ms")
    return "met" if not misses else "MISSED: " + ", ".join(misses)


LARGE_HEADERS = [
    "server",
    "GB/s",
    "server CPU s/GiB",
    *(f"x {ref} {what}" for ref in _LARGE_RATIOS for what in ("GB/s", "CPU")),
    "other client p50 / p99 / max ms",
    "target",
]


def large_table(
    variants: Sequence[Variant], results: dict[str, list[Result]]
) -> tuple[str, dict[str, Any]]:
    refs = _references(results)
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        ok = results.get(v.key)
        if not ok:
            skipped = v.key not in results
            note = f"({_missing(v)} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 6, note])
            continue
        e: dict[str, Any] = {
            "label": v.label,
            "runs_ok": len(ok),
            "gbps": median([_gbps(r) for r in ok]),
            "server_cpu_s_per_gib": median([_cpu_per_gib(r) for r in ok]),
            "probe_p50_ms": median([float(r.get("probe_p50_ms", math.nan)) for r in ok]),
            "probe_p99_ms": median([_p99(r) for r in ok]),
            "probe_max_ms": median([float(r.get("probe_max_ms", math.nan)) for r in ok]),
            "probe_count": median([float(r.get("probe_count", 0)) for r in ok]),
        }
        for name, ref in refs.items():
            e[f"x_{name}_gbps"] = by_round(ok, ref, _gbps)
            e[f"x_{name}_cpu"] = by_round(ok, ref, _cpu_per_gib)
        target = _large_target(e) if v.zcio else "-"
        if v.zcio:
            e["target_met"] = target == "met"
        ratios = [fmt(e[f"x_{n}_{w}"]) for n in _LARGE_RATIOS for w in ("gbps", "cpu")]
        probe = " / ".join(fmt(e[k], 1) for k in ("probe_p50_ms", "probe_p99_ms", "probe_max_ms"))
        rows.append(
            [v.label, fmt(e["gbps"]), fmt(e["server_cpu_s_per_gib"], 3), *ratios, probe, target]
        )
        summary[v.key] = e
    return markdown_table(LARGE_HEADERS, rows, "lrrrrrrrl"), summary


SMALL_HEADERS = [
    "server",
    "4 KiB file req/s",
    "x stock",
    "64 KiB file req/s",
    "x stock",
    "x nginx (4 KiB)",
    "zcio sendfile share 4 / 64 KiB",
    "target",
]


def small_table(
    variants: Sequence[Variant], results: dict[str, list[Result]], wrk_missing: bool
) -> tuple[str, dict[str, Any]]:
    refs = _references(results)
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        ok = results.get(v.key)
        if wrk_missing or not ok:
            skipped = wrk_missing or v.key not in results
            why = "wrk" if wrk_missing else _missing(v)
            note = f"({why} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 5, note])
            continue
        e: dict[str, Any] = {"label": v.label, "runs_ok": len(ok)}
        misses = []
        for name, _size in SMALL:
            path = f"/f/{name}"
            e[name] = {
                "file_rps": median([_rps(r) for r in _path_runs(ok, path)]),
                "x_stock": by_round(_path_runs(ok, path), _path_runs(refs["stock"], path), _rps),
            }
            if v.zcio and not e[name]["x_stock"] >= TARGET_X_STOCK_SMALL:
                misses.append(name)
        four = _path_runs(ok, "/f/4k.bin")
        for name in _LARGE_RATIOS:
            e[f"x_{name}_4k_file_rps"] = by_round(four, _path_runs(refs[name], "/f/4k.bin"), _rps)
        share = "-"
        if v.zcio:
            e["target_met"] = not misses
            share = " / ".join(
                fmt(median([_sendfile_share(r) for r in _path_runs(ok, f"/f/{n}")]))
                for n, _ in SMALL
            )
        summary[v.key] = e
        cells = [c for n, _ in SMALL for c in (fmt(e[n]["file_rps"], 0), fmt(e[n]["x_stock"]))]
        target = "-" if not v.zcio else "met" if not misses else f"MISSED ({', '.join(misses)})"
        rows.append([v.label, *cells, fmt(e["x_nginx_4k_file_rps"]), share, target])
    return markdown_table(SMALL_HEADERS, rows, "lrrrrrrl"), summary


#: The two sections of ``zcio bench``'s table.
SECTIONS = Sections(
    "tornado_files",
    "tornado",
    "Tornado `StaticFileHandler`, stock (asyncio)",
    "Tornado static files, one large cached file; CPU: the server's process tree",
    "Tornado static files, 4 and 64 KiB, `wrk -t2 -c32`; x columns: 4 KiB req/s",
    {"nginx": "anchor", STOCK.key: "baseline"},
    (("nginx", "nginx, `sendfile on`", "nginx"),),
)


def probe_notes(figure: str, key: str, e: Mapping[str, Any]) -> list[str]:
    """The other client's p99 during the large file (the stall)."""
    p99 = e.get("probe_p99_ms")
    if figure != "large" or not isinstance(p99, int | float) or not math.isfinite(p99):
        return []
    return [f"other client p99 {p99:.1f} ms"]


def _own_folders() -> None:
    """Folders of our own under the benchmark folder (see aiohttp_files.py: another HTTP script
    running at the same time relinks its files and rewrites its nginx config)."""
    base = BENCH_DIR / "tornado"
    http_files.BENCH_DIR = base  # type: ignore[attr-defined]
    http_files.ROOT = base / "http-root"
    http_files.FILES = http_files.ROOT / "f"
    http_files.APP_DIR = base / "http-app"
    base.mkdir(parents=True, exist_ok=True)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = http_parser("Benchmark Tornado static files, stock and zcio_tornado.", HTTP_SIZES)
    # Figure 1's client child.
    parser.add_argument("--worker", choices=["get"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parse_args(parser, argv)
    args.chosen = chosen_servers(parser, args, [v.key for v in VARIANTS])
    return args


def _print_figures(
    args: argparse.Namespace, summary: dict[str, Any], tables: dict[str, str]
) -> None:
    if "large" in summary:
        print()
        print(f"## A {args.size_mib} MiB cached file over one connection (medians of {args.runs})")
        print()
        print(tables["large"])
        print()
        print(
            f"Targets (printed, never asserted) for zcio_tornado: >= {TARGET_X_NGINX_GBPS}x "
            f"nginx's GB/s at <= {TARGET_X_NGINX_CPU}x its server CPU per GiB, >= "
            f"{TARGET_X_STOCK_GBPS}x stock Tornado's GB/s at <= {TARGET_X_STOCK_CPU}x its CPU, "
            f"the other client's p99 <= {TARGET_P99_MS:.0f} ms. The other client GETs "
            f"{PROBE_PATH} on its own keep-alive connection every {PROBE_GAP_S * 1e3:.0f} ms "
            "during the download; its figures are medians over runs. The x columns are medians "
            "of per-round ratios. The client splices the body into /dev/null; server CPU is the "
            "whole process tree's."
        )
    if "small" in summary:
        print()
        print(
            f"## Small files: `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` "
            f"(medians of {args.wrk_runs} runs)"
        )
        print()
        print(tables["small"])
        print()
        print(
            f"Target (printed, never asserted) for zcio_tornado: each small file's requests/s "
            f">= {TARGET_X_STOCK_SMALL}x stock Tornado's (x stock: per-round ratios)."
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker == "get":
        print(json.dumps(large_get_probed(args.port, args.path, args.size, args.server_pid)))
        return 0
    started = time.monotonic()
    size = args.size_mib * MIB
    env = {**environment(), **versions(), **package_versions(("tornado", "uvloop"))}
    selected, present = select(VARIANTS, args, env)
    wrk_missing = shutil.which("wrk") is None
    large = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    _own_folders()
    prepare_files(large)
    bench = Bench(large, size, 30.0 + 60.0 * size / GIB, args.quiet_timeout)
    bench.script = str(Path(__file__).resolve())  # the large-file child: with the other client
    print(
        f"# Tornado static files, stock and zcio_tornado: {args.size_mib} MiB file x "
        f"{args.runs} runs; small files `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
        f"-d{args.wrk_seconds}s` x {args.wrk_runs} runs"
    )
    print()
    print(", ".join(f"{k} {val}" for k, val in env.items()))
    results = measure(bench, present, args, wrk_missing)
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {}
    tables: dict[str, str] = {}
    if args.figures in ("1", "both"):
        tables["large"], summary["large"] = large_table(selected, results[0])
    if args.figures in ("2", "both"):
        tables["small"], summary["small"] = small_table(selected, results[1], wrk_missing)
    _print_figures(args, summary, tables)
    print()
    print(f"Total time: {elapsed:.0f} s (waited {bench.waited:.0f} s for a quiet machine).")
    http_files.SECTIONS = SECTIONS
    return write_results(args, bench.failures, env, summary, results, elapsed, probe_notes)


if __name__ == "__main__":
    sys.exit(main())
