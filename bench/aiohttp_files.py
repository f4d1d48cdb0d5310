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
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
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
    measure,
    prepare_files,
    select,
    versions,
    write_results,
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


def _large_target(e: dict[str, Any], ok: Sequence[Result], size: int) -> str:
    misses = []
    if not e["x_asyncio_gbps"] >= TARGET_X_ASYNCIO_GBPS:
        misses.append(f"GB/s < {TARGET_X_ASYNCIO_GBPS}x asyncio")
    if not e["x_asyncio_cpu"] <= TARGET_X_ASYNCIO_CPU:
        misses.append(f"CPU > {TARGET_X_ASYNCIO_CPU}x asyncio")
    if not e["x_uvloop_gbps"] >= TARGET_X_UVLOOP_GBPS:
        misses.append(f"GB/s < {TARGET_X_UVLOOP_GBPS}x uvloop")
    short = sum(1 for r in ok if _sendfile_bytes(r) < size)
    if short:
        misses.append(f"not all by sendfile in {short} runs")
    return "met" if not misses else "MISSED: " + ", ".join(misses)


_LARGE_RATIOS = ("asyncio", "uvloop", "nginx")


def _references(results: dict[str, list[Result]]) -> dict[str, list[Result]]:
    """The runs every row is compared with: aiohttp on asyncio and on uvloop, and nginx."""
    refs = zip(_LARGE_RATIOS, (ASYNCIO, UVLOOP, NGINX), strict=True)
    return {name: results.get(v.key) or [] for name, v in refs}


LARGE_HEADERS = [
    "server",
    "GB/s",
    "server CPU s/GiB",
    *(f"x {ref} {what}" for ref in _LARGE_RATIOS for what in ("GB/s", "CPU")),
    "target",
]


def large_table(
    variants: Sequence[Variant], results: dict[str, list[Result]], runs: int, size: int
) -> tuple[str, dict[str, Any]]:
    refs = _references(results)
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    for v in variants:
        ok = results.get(v.key)
        if not ok:
            skipped = v.key not in results
            note = f"({_missing(v)} not installed)" if skipped else ""
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 7, note])
            continue
        e: dict[str, Any] = {
            "label": v.label,
            "runs_ok": len(ok),
            "gbps": median([_gbps(r) for r in ok]),
            "server_cpu_s_per_gib": median([_cpu_per_gib(r) for r in ok]),
        }
        for name, ref in refs.items():
            e[f"x_{name}_gbps"] = by_round(ok, ref, _gbps)
            e[f"x_{name}_cpu"] = by_round(ok, ref, _cpu_per_gib)
        target = _large_target(e, ok, size) if v.zcio else "-"
        if v.zcio:
            e["target_met"] = target == "met"
        ratios = [fmt(e[f"x_{n}_{w}"]) for n in _LARGE_RATIOS for w in ("gbps", "cpu")]
        rows.append([v.label, fmt(e["gbps"]), fmt(e["server_cpu_s_per_gib"], 3), *ratios, target])
        summary[v.key] = e
    return markdown_table(LARGE_HEADERS, rows, "lrrrrrrrrl"), summary


def _small_entry(
    v: Variant, ok: Sequence[Result], refs: dict[str, list[Result]]
) -> tuple[dict[str, Any], list[str]]:
    """One server's small-file summary, and the files that missed the target."""
    entry: dict[str, Any] = {"label": v.label, "runs_ok": len(ok)}
    misses = []
    for name, _size in SMALL:
        path = f"/f/{name}"
        entry[name] = {
            "file_rps": median([_rps(r) for r in _path_runs(ok, path)]),
            "memory_rps": median([_rps(r) for r in _path_runs(ok, f"/m/{name}")]),
            "x_uvloop": by_round(_path_runs(ok, path), _path_runs(refs["uvloop"], path), _rps),
        }
        if v.zcio and not entry[name]["x_uvloop"] >= TARGET_X_UVLOOP_SMALL:
            misses.append(name)
    four = _path_runs(ok, "/f/4k.bin")
    for name in ("asyncio", "nginx"):
        entry[f"x_{name}_4k_file_rps"] = by_round(four, _path_runs(refs[name], "/f/4k.bin"), _rps)
    if v.zcio:
        entry["target_met"] = not misses
    return entry, misses


SMALL_HEADERS = [
    "server",
    "4 KiB file req/s",
    "x uvloop",
    "64 KiB file req/s",
    "x uvloop",
    "x asyncio (4 KiB)",
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
            rows.append([v.label, "skipped" if skipped else "failed", *[""] * 6, note])
            continue
        e, misses = _small_entry(v, ok, refs)
        summary[v.key] = e
        cells = [c for n, _ in SMALL for c in (fmt(e[n]["file_rps"], 0), fmt(e[n]["x_uvloop"]))]
        share = "-"
        if v.zcio:
            share = " / ".join(
                fmt(median([_sendfile_share(r) for r in _path_runs(ok, f"/f/{n}")]))
                for n, _ in SMALL
            )
        target = "-" if not v.zcio else "met" if not misses else f"MISSED ({', '.join(misses)})"
        ratios = [fmt(e["x_asyncio_4k_file_rps"]), fmt(e["x_nginx_4k_file_rps"])]
        rows.append([v.label, *cells, *ratios, share, target])
    return markdown_table(SMALL_HEADERS, rows, "lrrrrrrrl"), summary


#: The two sections of ``zcio bench``'s table.
SECTIONS = Sections(
    "aiohttp_files",
    "aiohttp",
    "aiohttp static route on the default asyncio loop (native `loop.sendfile`)",
    "aiohttp static files, one large cached file; CPU: the server's process tree",
    "aiohttp static files, 4 and 64 KiB, `wrk -t2 -c32`; x columns: 4 KiB req/s",
    {"nginx": "anchor", ASYNCIO.key: "baseline"},
    (("nginx", "nginx, `sendfile on`", "nginx"),),
    ratio_to="asyncio",
)


def uvloop_notes(figure: str, key: str, e: Mapping[str, Any]) -> list[str]:
    """The zcio_uvloop row's ratio to stock uvloop (the issue's second comparison)."""
    if "target_met" not in e:
        return []
    if figure == "large":
        x = e.get("x_uvloop_gbps")
        return [f"x uvloop {x:.2f}"] if isinstance(x, int | float) and math.isfinite(x) else []
    ratios = [e.get(name, {}).get("x_uvloop") for name in ("4k.bin", "64k.bin")]
    ratios = [float(r) if isinstance(r, int | float) else math.nan for r in ratios]
    if not any(math.isfinite(r) for r in ratios):
        return []
    return ["x uvloop " + " / ".join(fmt(r) if math.isfinite(r) else "-" for r in ratios)]


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
    parser = http_parser(
        "Benchmark aiohttp static files on asyncio, uvloop and zcio_uvloop.", HTTP_SIZES
    )
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
            f"Targets (printed, never asserted) for zcio_uvloop: >= {TARGET_X_ASYNCIO_GBPS}x "
            f"aiohttp-on-asyncio's GB/s at <= {TARGET_X_ASYNCIO_CPU}x its server CPU per GiB, "
            f">= {TARGET_X_UVLOOP_GBPS}x stock uvloop's GB/s, every byte by sendfile (zcio's "
            "counters in the server). The x columns are medians of per-round ratios. The client "
            "splices the body into /dev/null; server CPU is the whole process tree's."
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
            f"Target (printed, never asserted) for zcio_uvloop: each small file's requests/s >= "
            f"{TARGET_X_UVLOOP_SMALL}x stock uvloop's (x uvloop: per-round ratios)."
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    size = args.size_mib * MIB
    env = {**environment(), **versions(), **package_versions(("aiohttp", "uvloop"))}
    selected, present = select(VARIANTS, args, env)
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
    results = measure(bench, present, args, wrk_missing)
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {}
    tables: dict[str, str] = {}
    if args.figures in ("1", "both"):
        tables["large"], summary["large"] = large_table(selected, results[0], args.runs, size)
    if args.figures in ("2", "both"):
        tables["small"], summary["small"] = small_table(selected, results[1], wrk_missing)
    _print_figures(args, summary, tables)
    print()
    print(f"Total time: {elapsed:.0f} s (waited {bench.waited:.0f} s for a quiet machine).")
    http_files.SECTIONS = SECTIONS
    return write_results(args, bench.failures, env, summary, results, elapsed, uvloop_notes)


if __name__ == "__main__":
    sys.exit(main())
