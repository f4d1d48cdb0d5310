"""Benchmark aiohttp's static files on three loops: the default asyncio loop (aiohttp's native
``loop.sendfile``), stock uvloop (no ``loop.sendfile``: aiohttp reads the file in a worker
thread) and ``zcio_uvloop`` (uvloop with zcio's ``loop.sendfile``); nginx with ``sendfile on``
as the anchor (a "not installed" row when it is missing).

The server is ``bench/aiohttp_app.py`` (a static route over the same folder and URLs as
``bench/http_files.py``'s app, plus in-memory responses of the small files); the machinery is
``bench/http_files.py``'s: a fresh server process per run, a splice client for the large file
(GB/s from the request to the last byte, server CPU from ``/proc`` over the whole process
tree), ``wrk -t2 -c32`` for the 4 KiB and 64 KiB files.

Targets (issue 12), printed beside the results, never asserted: the large file on
``zcio_uvloop`` at >= 0.95x aiohttp-on-asyncio's GB/s and <= 1.05x its server CPU per GiB, and
>= 2.5x stock uvloop's GB/s; small files no slower than on stock uvloop.

    python bench/aiohttp_files.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                                  [--servers KEY,...] [--figures 1|2|both] [--quick]
                                  [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import http_files
from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    add_quiet_timeout,
    ensure_file,
    environment,
    finish,
    markdown_table,
    median,
    progress,
    warm,
)
from http_files import (
    NGINX,
    QUIET_TIMEOUT,
    SMALL,
    WRK_CONNECTIONS,
    WRK_THREADS,
    Bench,
    Result,
    Variant,
    _available,
    _by_round,
    _cpu_per_gib,
    _fmt,
    _gbps,
    _missing,
    _order,
    _path_runs,
    _rps,
    _sendfile_share,
    _with_version,
    prepare_files,
    versions,
)

#: Targets, printed and never asserted.
TARGET_X_ASYNCIO_GBPS = 0.95
TARGET_X_ASYNCIO_CPU = 1.05
TARGET_X_UVLOOP_GBPS = 2.5
TARGET_X_UVLOOP_SMALL = 1.0

ASYNCIO = Variant(
    "aiohttp_asyncio",
    "aiohttp static route, default asyncio loop (native `loop.sendfile`)",
    "aiohttp",
    "stock",
    loop="asyncio",
    needs=("aiohttp",),
)
UVLOOP = Variant(
    "aiohttp_uvloop",
    "aiohttp static route, stock uvloop (thread reads)",
    "aiohttp",
    "stock",
    loop="uvloop",
    needs=("aiohttp", "uvloop"),
)
ZCIO = Variant(
    "aiohttp_zcio_uvloop",
    "aiohttp static route, `zcio_uvloop`",
    "aiohttp",
    "zcio",
    loop="zcio_uvloop",
    needs=("aiohttp", "uvloop", "zcio_uvloop"),
)
VARIANTS: tuple[Variant, ...] = (ASYNCIO, UVLOOP, ZCIO, NGINX)


def _sendfile_bytes(r: Result) -> int:
    return int(r.get("zcio", {}).get("methods", {}).get("sendfile", {}).get("bytes", 0))


def large_table(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, size: int
) -> tuple[str, dict[str, Any]]:
    asyncio_runs = results.get(ASYNCIO.key) or []
    uvloop_runs = results.get(UVLOOP.key) or []
    nginx = results.get(NGINX.key) or []
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        if v.key not in results:
            rows.append([v.label, "skipped", *[""] * 7, f"({_missing(v)} not installed)"])
            continue
        ok = results[v.key]
        if not ok:
            rows.append([v.label, "failed", *[""] * 8])
            continue
        gbps, cpu = median([_gbps(r) for r in ok]), median([_cpu_per_gib(r) for r in ok])
        xa_gbps, xa_cpu = (
            _by_round(ok, asyncio_runs, _gbps),
            _by_round(ok, asyncio_runs, _cpu_per_gib),
        )
        xu_gbps, xu_cpu = (
            _by_round(ok, uvloop_runs, _gbps),
            _by_round(ok, uvloop_runs, _cpu_per_gib),
        )
        xn_gbps, xn_cpu = _by_round(ok, nginx, _gbps), _by_round(ok, nginx, _cpu_per_gib)
        target = "-"
        entry: dict[str, Any] = {}
        if v.zcio:
            misses = []
            if not xa_gbps >= TARGET_X_ASYNCIO_GBPS:
                misses.append(f"GB/s < {TARGET_X_ASYNCIO_GBPS}x asyncio")
            if not xa_cpu <= TARGET_X_ASYNCIO_CPU:
                misses.append(f"CPU > {TARGET_X_ASYNCIO_CPU}x asyncio")
            if not xu_gbps >= TARGET_X_UVLOOP_GBPS:
                misses.append(f"GB/s < {TARGET_X_UVLOOP_GBPS}x uvloop")
            short = sum(1 for r in ok if _sendfile_bytes(r) < size)
            if short:
                misses.append(f"not all by sendfile in {short} runs")
            target = "met" if not misses else "MISSED: " + ", ".join(misses)
            entry["target_met"] = not misses
        rows.append(
            [
                v.label,
                _fmt(gbps),
                _fmt(cpu, 3),
                _fmt(xa_gbps),
                _fmt(xa_cpu),
                _fmt(xu_gbps),
                _fmt(xu_cpu),
                _fmt(xn_gbps),
                _fmt(xn_cpu),
                target,
            ]
        )
        summary[v.key] = {
            "label": v.label,
            "runs_ok": len(ok),
            "gbps": gbps,
            "server_cpu_s_per_gib": cpu,
            "x_asyncio_gbps": xa_gbps,
            "x_asyncio_cpu": xa_cpu,
            "x_uvloop_gbps": xu_gbps,
            "x_uvloop_cpu": xu_cpu,
            "x_nginx_gbps": xn_gbps,
            "x_nginx_cpu": xn_cpu,
            **entry,
        }
    table = markdown_table(
        [
            "server",
            "GB/s",
            "server CPU s/GiB",
            "x asyncio GB/s",
            "x asyncio CPU",
            "x uvloop GB/s",
            "x uvloop CPU",
            "x nginx GB/s",
            "x nginx CPU",
            "target",
        ],
        rows,
        "lrrrrrrrrl",
    )
    return table, summary


def small_table(
    variants: Sequence[Variant], results: dict[str, list[Result]], wrk_missing: bool
) -> tuple[str, dict[str, Any]]:
    asyncio_runs = results.get(ASYNCIO.key) or []
    uvloop_runs = results.get(UVLOOP.key) or []
    nginx = results.get(NGINX.key) or []
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        if wrk_missing or v.key not in results:
            why = "wrk" if wrk_missing else _missing(v)
            rows.append([v.label, "skipped", *[""] * 6, f"({why} not installed)"])
            continue
        ok = results[v.key]
        if not ok:
            rows.append([v.label, "failed", *[""] * 7])
            continue
        entry: dict[str, Any] = {"label": v.label, "runs_ok": len(ok)}
        cells = [v.label]
        misses = []
        for name, _size in SMALL:
            path = f"/f/{name}"
            file_rps = median([_rps(r) for r in _path_runs(ok, path)])
            mem_rps = median([_rps(r) for r in _path_runs(ok, f"/m/{name}")])
            xu = _by_round(_path_runs(ok, path), _path_runs(uvloop_runs, path), _rps)
            entry[name] = {"file_rps": file_rps, "memory_rps": mem_rps, "x_uvloop": xu}
            cells += [_fmt(file_rps, 0), _fmt(xu)]
            if v.zcio and not xu >= TARGET_X_UVLOOP_SMALL:
                misses.append(name)
        xa = _by_round(_path_runs(ok, "/f/4k.bin"), _path_runs(asyncio_runs, "/f/4k.bin"), _rps)
        xn = _by_round(_path_runs(ok, "/f/4k.bin"), _path_runs(nginx, "/f/4k.bin"), _rps)
        entry.update(x_asyncio_4k_file_rps=xa, x_nginx_4k_file_rps=xn)
        share = "-"
        if v.zcio:
            share = " / ".join(
                _fmt(median([_sendfile_share(r) for r in _path_runs(ok, f"/f/{n}")]))
                for n, _ in SMALL
            )
            entry["target_met"] = not misses
        target = "-" if not v.zcio else "met" if not misses else f"MISSED ({', '.join(misses)})"
        rows.append([*cells, _fmt(xa), _fmt(xn), share, target])
        summary[v.key] = entry
    table = markdown_table(
        [
            "server",
            "4 KiB file req/s",
            "x uvloop",
            "64 KiB file req/s",
            "x uvloop",
            "x asyncio (4 KiB)",
            "x nginx (4 KiB)",
            "zcio sendfile share 4 / 64 KiB",
            "target",
        ],
        rows,
        "lrrrrrrrl",
    )
    return table, summary


def _own_folders() -> None:
    """Run in folders of our own under the benchmark folder: http_files.py (run by someone
    else at the same time, say) relinks its ``large.bin`` to the file of its own size, and
    writes its nginx config, logs and pid file where it likes. http_files' functions read these
    module globals when they run."""
    base = BENCH_DIR / "aiohttp"
    http_files.BENCH_DIR = base  # type: ignore[attr-defined]
    http_files.ROOT = base / "http-root"
    http_files.FILES = http_files.ROOT / "f"
    http_files.APP_DIR = base / "http-app"
    base.mkdir(parents=True, exist_ok=True)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark aiohttp static files on asyncio, uvloop and zcio_uvloop."
    )
    parser.add_argument("--size-mib", type=int, default=None, help="large file (default 1024)")
    parser.add_argument("--runs", type=int, default=None, help="large-file runs (default 5)")
    parser.add_argument("--wrk-runs", type=int, default=None, help="small-file runs (default 3)")
    parser.add_argument("--wrk-seconds", type=int, default=None, help="each wrk run (default 5)")
    parser.add_argument("--servers", default="", help="comma-separated server keys (default: all)")
    parser.add_argument("--figures", choices=["1", "2", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64 MiB, fewer runs")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    add_quiet_timeout(parser, QUIET_TIMEOUT)
    args = parser.parse_args(argv)
    args.size_mib = args.size_mib or (64 if args.quick else 1024)
    args.runs = args.runs or (3 if args.quick else 5)
    args.wrk_runs = args.wrk_runs or (1 if args.quick else 3)
    args.wrk_seconds = args.wrk_seconds or (2 if args.quick else 5)
    if min(args.size_mib, args.runs, args.wrk_runs, args.wrk_seconds) < 1:
        parser.error("--size-mib, --runs, --wrk-runs and --wrk-seconds must be at least 1")
    known = {v.key for v in VARIANTS}
    args.chosen = [k for k in args.servers.split(",") if k]
    if unknown := [k for k in args.chosen if k not in known]:
        parser.error(f"unknown servers {unknown}; known: {sorted(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    size = args.size_mib * MIB
    env = environment()
    env.update(versions())
    from importlib import metadata

    for name in ("aiohttp", "uvloop"):
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    selected = [_with_version(v, env) for v in VARIANTS if not args.chosen or v.key in args.chosen]
    present = [v for v in selected if _available(v)]
    for v in selected:
        if v not in present:
            progress(f"skipping {v.key}: {_missing(v)} not installed")
    wrk_missing = shutil.which("wrk") is None
    large = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    _own_folders()
    prepare_files(large)
    bench = Bench(large, size, 30.0 + 60.0 * size / GIB, args.quiet_timeout)

    print(
        f"# aiohttp static files on asyncio, uvloop and zcio_uvloop: {args.size_mib} MiB file "
        f"x {args.runs} runs; small files `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
        f"-d{args.wrk_seconds}s` x {args.wrk_runs} runs"
    )
    print()
    print(", ".join(f"{k} {val}" for k, val in env.items()))
    large_results: dict[str, list[Result]] = {}
    small_results: dict[str, list[Result]] = {}
    try:
        if args.figures in ("1", "both") and present:
            warm(large)
            bench.large_run(present[0], 0, "[warm-up]")  # discarded
            large_results = {v.key: [] for v in present}
            for i in range(1, args.runs + 1):
                for v in _order(present, i):
                    label = f"[large {i}/{args.runs}]"
                    r = bench.large_run(v, i, label)
                    if r is not None:
                        large_results[v.key].append(r)
                        progress(
                            f"  {label} {v.key}: {_gbps(r):.2f} GB/s, {_cpu_per_gib(r):.3f} s/GiB"
                        )
        if args.figures in ("2", "both") and present and not wrk_missing:
            small_results = {v.key: [] for v in present}
            for i in range(1, args.wrk_runs + 1):
                for v in _order(present, i):
                    label = f"[small {i}/{args.wrk_runs}]"
                    r = bench.small_run(v, i, args.wrk_seconds, label)
                    if r is not None:
                        small_results[v.key].append(r)
                        rps = ", ".join(
                            f"{p} {float(x['rps']):.0f}/s" for p, x in sorted(r["paths"].items())
                        )
                        progress(f"  {label} {v.key}: {rps}")
    except KeyboardInterrupt:
        progress("interrupted: printing what was measured")
    elapsed = time.monotonic() - started

    summary: dict[str, Any] = {}
    if args.figures in ("1", "both"):
        table, summary["large"] = large_table(selected, large_results, args.runs, size)
        print()
        print(f"## A {args.size_mib} MiB cached file over one connection (medians of {args.runs})")
        print()
        print(table)
        print()
        print(
            f"Targets (printed, never asserted) for zcio_uvloop: >= {TARGET_X_ASYNCIO_GBPS}x "
            f"aiohttp-on-asyncio's GB/s at <= {TARGET_X_ASYNCIO_CPU}x its server CPU per GiB, "
            f">= {TARGET_X_UVLOOP_GBPS}x stock uvloop's GB/s, every byte by sendfile (zcio's "
            "counters in the server). The x columns are medians of per-round ratios. The client "
            "splices the body into /dev/null; server CPU is the whole process tree's."
        )
    if args.figures in ("2", "both"):
        table, summary["small"] = small_table(selected, small_results, wrk_missing)
        print()
        print(
            f"## Small files: `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` "
            f"(medians of {args.wrk_runs} runs)"
        )
        print()
        print(table)
        print()
        print(
            f"Target (printed, never asserted) for zcio_uvloop: each small file's requests/s >= "
            f"{TARGET_X_UVLOOP_SMALL}x stock uvloop's (x uvloop: per-round ratios)."
        )
    print()
    print(f"Total time: {elapsed:.0f} s (waited {bench.waited:.0f} s for a quiet machine).")
    return finish(
        bench.failures,
        args.json,
        {
            "environment": env,
            "size_bytes": size,
            "runs": args.runs,
            "wrk_runs": args.wrk_runs,
            "wrk_seconds": args.wrk_seconds,
            "elapsed_s": elapsed,
            "summary": summary,
            "large": large_results,
            "small": small_results,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
