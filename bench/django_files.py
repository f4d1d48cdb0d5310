"""Benchmark Django file responses over ASGI: stock Django against ``zcio_django``, and nginx.

The app (``bench/django_bench_app.py``) serves a folder of files with Django's ``FileResponse``
(``/f/{name}``) and the small files' bytes from memory with an ``HttpResponse`` (``/m/{name}``),
under Django's own ``get_asgi_application()`` or ``zcio_django.get_asgi_application()``. The
servers, each a fresh process (tree) per run, measured from ``/proc``:

- stock Django on uvicorn (``--http httptools --loop asyncio``): the whole file read into
  memory, then 64 KiB messages;
- ``zcio_django`` on uvicorn with ``--http zcio_uvicorn:HttpToolsProtocol`` (zerocopysend,
  ``sendfile(2)``);
- ``zcio_django`` on stock uvicorn (no extension: 256 KiB reads, off the loop when not cached);
- ``zcio_django`` on granian (pathsend), when installed;
- nginx with ``sendfile on``, when installed.

Figure 1: one large cached file over one connection, received by a splice client
(``http_files.py --worker get``): GB/s, server CPU seconds per GiB, and the server's peak RSS
growth during the download (``VmHWM`` of its processes, after warm-up, before and after).
Figure 2: small files (4 KiB, 64 KiB) with ``wrk -t2 -c32``: requests/s of the file and of
the same bytes from memory. Targets are printed beside the results, never asserted.

    python bench/django_files.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                                 [--servers KEY,...] [--figures 1|2|both] [--quick]
                                 [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import http_files
from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    Sizes,
    chosen_servers,
    ensure_file,
    environment,
    fmt,
    json_number,
    markdown_table,
    median,
    package_versions,
    parse_args,
    process_group,
    progress,
    ratio_text,
    run_child,
    run_gbps,
    stats_json_delta,
    wait_quiet,
    warm,
)
from http_files import (
    APP_DIR,
    LARGE,
    NGINX,
    SMALL,
    WRK_CONNECTIONS,
    WRK_THREADS,
    Result,
    Sections,
    Server,
    Variant,
    _available,
    _check_wrk,
    _cpu_per_gib,
    _missing,
    _warm_up,
    _zcio_stats,
    http_parser,
    memory_notes,
    prepare_files,
    versions,
    write_results,
    wrk,
)

APP_MODULE = Path(__file__).resolve().with_name("django_bench_app.py")
APP_LINK = APP_DIR / "django_bench_app.py"
HTTP_FILES = Path(__file__).resolve().with_name("http_files.py")

#: Targets from issue 13, printed and never asserted.
TARGET_RSS_MIB = 32
TARGET_X_NGINX_GBPS = 0.9
TARGET_X_STOCK_GBPS = 5.0
TARGET_SMALL_X_STOCK = 1.0

STOCK = Variant(
    "django_stock_uvicorn",
    "stock Django `FileResponse`, uvicorn `--http httptools --loop asyncio`",
    "uvicorn",
    "stock",
    loop="asyncio",
    http="httptools",
    needs=("django", "uvicorn", "httptools"),
)
ZCIO = Variant(
    "zcio_django_zcio_uvicorn",
    "zcio_django, uvicorn `--http zcio_uvicorn:HttpToolsProtocol --loop asyncio` (zerocopysend)",
    "uvicorn",
    "zcio",
    loop="asyncio",
    http="zcio_uvicorn:HttpToolsProtocol",
    needs=("django", "uvicorn", "httptools", "zcio_django", "zcio_uvicorn"),
)
VARIANTS: tuple[Variant, ...] = (
    STOCK,
    ZCIO,
    Variant(
        "zcio_django_uvicorn",
        "zcio_django, stock uvicorn `--http httptools --loop asyncio` (chunks)",
        "uvicorn",
        "zcio",
        loop="asyncio",
        http="httptools",
        needs=("django", "uvicorn", "httptools", "zcio_django"),
    ),
    Variant(
        "zcio_django_granian",
        "zcio_django, granian `--interface asgi --workers 1` (pathsend)",
        "granian",
        "zcio",
        needs=("django", "granian", "zcio_django"),
        command="granian",
    ),
    NGINX,
)


class DjangoServer(Server):
    """``http_files.Server`` running the Django app instead of the Starlette one."""

    def __init__(self, v: Variant) -> None:
        super().__init__(v)
        self.log = BENCH_DIR / f"django-{v.key}.log"

    def _argv(self, port: int) -> list[str]:
        return [
            "django_bench_app:application" if arg == "http_app:app" else arg
            for arg in super()._argv(port)
        ]


def peak_rss_kib(pid: int) -> int:
    """The sum of ``VmHWM`` (peak resident set) over the server's process group."""
    total = 0
    for member in process_group(pid) or [pid]:
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def large_run(v: Variant, size: int, timeout: float, quiet: float) -> Result:
    wait_quiet(timeout=quiet)
    with DjangoServer(v) as srv:
        _warm_up(srv)
        before = _zcio_stats(srv)
        rss0 = peak_rss_kib(srv.pid)
        argv = [
            *(sys.executable, str(HTTP_FILES), "--worker", "get", "--port", str(srv.port)),
            *("--path", f"/f/{LARGE}", "--size", str(size), "--server-pid", str(srv.pid)),
        ]
        result = run_child(argv, timeout=timeout)
        result["rss_growth_mib"] = (peak_rss_kib(srv.pid) - rss0) / 1024
        result["zcio"] = stats_json_delta(before, _zcio_stats(srv)) if v.zcio else {}
    if result["status"] != 200 or result["body"] != size:
        raise ChildFailed(f"status {result['status']}, {result['body']} of {size} bytes")
    return result


def small_run(v: Variant, seconds: int, quiet: float) -> dict[str, Result]:
    wait_quiet(timeout=quiet)
    out: dict[str, Result] = {}
    with DjangoServer(v) as srv:
        _warm_up(srv)
        wrk(srv.port, "/f/4k.bin", 1, srv.pid)
        targets = [f"/f/{name}" for name, _ in SMALL]
        if v.has_app:
            targets += [f"/m/{name}" for name, _ in SMALL]
        for path in targets:
            r = wrk(srv.port, path, seconds, srv.pid)
            problem = _check_wrk(r, dict(SMALL)[path.rsplit("/", 1)[1]])
            if problem:
                raise ChildFailed(f"{path}: {problem}")
            out[path] = r
    return out


def _med(rs: Sequence[Result], fn: Callable[[Result], float]) -> float:
    return median([fn(r) for r in rs]) if rs else math.nan


def _over(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is NaN or 0 (a ratio of medians)."""
    return a / b if b and not math.isnan(b) else math.nan


def _rss(r: Result) -> float:
    return float(r["rss_growth_mib"])


def _large_runs(
    present: Sequence[Variant], args: argparse.Namespace, timeout: float, failures: list[str]
) -> dict[str, list[Result]]:
    """Figure 1's runs, the servers in turn (reversed every other round)."""
    size = args.size_mib * MIB
    results: dict[str, list[Result]] = {v.key: [] for v in present}
    for i in range(1, args.runs + 1):
        for v in present if i % 2 else list(reversed(present)):
            try:
                r = large_run(v, size, timeout, args.quiet_timeout)
            except (ChildFailed, OSError, KeyError, ValueError) as exc:
                failures.append(f"large {i} {v.key}: {exc}")
                progress(f"  [large {i}] {v.key}: FAILED: {exc}")
                continue
            results[v.key].append(r)
            progress(
                f"  [large {i}/{args.runs}] {v.key}: {run_gbps(r):.2f} GB/s, "
                f"{_cpu_per_gib(r):.3f} s/GiB, peak RSS +{r['rss_growth_mib']:.0f} MiB"
            )
    return results


def _large_entry(v: Variant, rs: Sequence[Result], refs: dict[str, float]) -> Result:
    """One server's medians and ratios of medians to nginx and stock Django."""
    gbps, cpu, rss = _med(rs, run_gbps), _med(rs, _cpu_per_gib), _med(rs, _rss)
    entry: Result = {
        "label": v.label,
        "runs_ok": len(rs),
        "gbps": json_number(gbps),
        "server_cpu_s_per_gib": json_number(cpu),
        "peak_rss_growth_mib": json_number(rss),
        "x_nginx_gbps": json_number(_over(gbps, refs["nginx"])),
        "x_nginx_cpu": json_number(_over(cpu, refs["nginx_cpu"])),
        "x_stock_gbps": json_number(_over(gbps, refs["stock"])),
        "x_stock_cpu": json_number(_over(cpu, refs["stock_cpu"])),
    }
    if v is ZCIO:
        entry["target_met"] = bool(
            rss <= TARGET_RSS_MIB
            and gbps >= TARGET_X_NGINX_GBPS * refs["nginx"]
            and gbps >= TARGET_X_STOCK_GBPS * refs["stock"]
        )
    return entry


LARGE_HEADERS = [
    "server",
    "GB/s",
    "server CPU s/GiB",
    "peak RSS growth MiB",
    "x nginx",
    "x stock Django",
    "zcio method",
]


def large_figure(
    present: Sequence[Variant], results: dict[str, list[Result]], size_mib: int
) -> dict[str, Result]:
    """Figure 1's table, printed; its summary."""
    stock, nginx = results.get(STOCK.key, []), results.get(NGINX.key, [])
    refs = {
        "stock": _med(stock, run_gbps),
        "nginx": _med(nginx, run_gbps),
        "stock_cpu": _med(stock, _cpu_per_gib),
        "nginx_cpu": _med(nginx, _cpu_per_gib),
    }
    summary: dict[str, Result] = {}
    rows = []
    for v in present:
        rs = results[v.key]
        gbps = _med(rs, run_gbps)
        summary[v.key] = _large_entry(v, rs, refs)
        methods = sorted({m for r in rs for m in r.get("zcio", {}).get("methods", {})})
        figures = [fmt(gbps), fmt(_med(rs, _cpu_per_gib), 3), fmt(_med(rs, _rss), 0)]
        ratios = [ratio_text(gbps, refs["nginx"]), ratio_text(gbps, refs["stock"])]
        rows.append([v.label, *figures, *ratios, ", ".join(methods) or "-"])
    print(f"## Figure 1: one {size_mib} MiB cached file, one connection")
    print()
    print(markdown_table(LARGE_HEADERS, rows))
    print()
    print(
        f"Targets (zcio_django on zcio_uvicorn): peak RSS growth <= {TARGET_RSS_MIB} MiB, "
        f">= {TARGET_X_NGINX_GBPS}x nginx, >= {TARGET_X_STOCK_GBPS}x stock Django."
    )
    print()
    return summary


def _small_runs(
    present: Sequence[Variant], args: argparse.Namespace, failures: list[str]
) -> dict[str, list[dict[str, Result]]]:
    results: dict[str, list[dict[str, Result]]] = {v.key: [] for v in present}
    for _ in range(args.wrk_runs):
        for v in present:
            try:
                results[v.key].append(small_run(v, args.wrk_seconds, args.quiet_timeout))
            except (ChildFailed, OSError, KeyError, ValueError) as exc:
                failures.append(f"small {v.key}: {exc}")
                progress(f"  [small] {v.key}: FAILED: {exc}")
    return results


def _rps_of(runs: Sequence[dict[str, Result]], path: str) -> float:
    return _med([r[path] for r in runs if path in r], lambda r: float(r["rps"]))


def _small_entry(
    v: Variant, runs: Sequence[dict[str, Result]], stock_rps: dict[str, float], nginx_4k: float
) -> tuple[Result, list[str]]:
    """One server's small-file summary (ratios of medians), and its table cells."""
    cells = [v.label]
    entry: Result = {"label": v.label}
    for name, _ in SMALL:
        f, m = _rps_of(runs, f"/f/{name}"), _rps_of(runs, f"/m/{name}")
        cells += [fmt(f, 0), fmt(m, 0), ratio_text(f, stock_rps[f"/f/{name}"])]
        entry[name] = {
            "file_rps": json_number(f),
            "memory_rps": json_number(m),
            "file_x_memory": json_number(_over(f, m)),
        }
    f4 = entry["4k.bin"]["file_rps"] or math.nan
    entry["x_stock_4k_file_rps"] = json_number(f4 / stock_rps["/f/4k.bin"])
    entry["x_nginx_4k_file_rps"] = json_number(_over(f4, nginx_4k))
    return entry, cells


SMALL_HEADERS = [
    "server",
    "4 KiB file",
    "4 KiB memory",
    "file x stock",
    "64 KiB file",
    "64 KiB memory",
    "file x stock",
]


def small_figure(
    present: Sequence[Variant], results: dict[str, list[dict[str, Result]]]
) -> dict[str, Result]:
    """Figure 2's table, printed; its summary."""
    stock = results.get(STOCK.key, [])
    stock_rps = {p: _rps_of(stock, p) for p in ("/f/4k.bin", "/f/64k.bin")}
    nginx_4k = _rps_of(results.get(NGINX.key, []), "/f/4k.bin")
    summary: dict[str, Result] = {}
    rows = []
    for v in present:
        if results[v.key]:
            summary[v.key], cells = _small_entry(v, results[v.key], stock_rps, nginx_4k)
            rows.append(cells)
    print(f"## Figure 2: small files, `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}` requests/s")
    print()
    print(markdown_table(SMALL_HEADERS, rows))
    print()
    print(f"Target: zcio_django's file responses >= {TARGET_SMALL_X_STOCK}x stock Django's.")
    print()
    return summary


#: The two sections of ``zcio bench``'s table.
SECTIONS = Sections(
    "django_files",
    "django",
    "stock Django `FileResponse`, uvicorn (httptools, asyncio)",
    "one large cached file from a Django `FileResponse`; CPU: the server's process tree; "
    "ratios of medians",
    "4 and 64 KiB Django `FileResponse`s, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
    {"nginx": "anchor", STOCK.key: "baseline"},
    (
        ("nginx", "nginx, `sendfile on`", "nginx"),
        ("zcio_django_granian", "zcio_django, granian (pathsend)", "granian"),
    ),
)


def rss_notes(figure: str, key: str, e: Mapping[str, Any]) -> list[str]:
    """What zcio_django exists for: how much the server grew during the download; and the
    small files' file / memory ratio."""
    rss = e.get("peak_rss_growth_mib")
    if figure == "large" and isinstance(rss, int | float) and math.isfinite(rss):
        return [f"peak RSS +{rss:.0f} MiB"]
    return memory_notes(figure, key, e)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = http_parser(
        "Benchmark Django file responses over ASGI.",
        Sizes(
            size_mib=(1024, 64),
            runs=(3, 1),
            wrk_runs=(1, 1),
            wrk_seconds=(5, 2),
            quiet_timeout=15.0,
        ),
    )
    args = parse_args(parser, argv)
    args.chosen = chosen_servers(parser, args, [v.key for v in VARIANTS])
    return args


def _present(args: argparse.Namespace) -> list[Variant]:
    """The servers ``--servers`` chose that are installed (labels without versions)."""
    present = []
    for v in VARIANTS:
        if args.chosen and v.key not in args.chosen:
            continue
        if _available(v):
            present.append(v)
        else:
            progress(f"skipping {v.key}: {_missing(v)} not installed")
    return present


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    size = args.size_mib * MIB
    env = {**environment(), **versions(), **package_versions(("django",))}
    present = _present(args)
    large = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    prepare_files(large)
    APP_LINK.unlink(missing_ok=True)
    APP_LINK.symlink_to(APP_MODULE)
    failures: list[str] = []
    print(
        f"# zcio Django benchmark: {args.size_mib} MiB file x {args.runs} runs; small files "
        f"`wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` x {args.wrk_runs}"
    )
    print()
    print(", ".join(f"{k} {val}" for k, val in env.items()))
    print()
    summary: dict[str, Any] = {"large": {}, "small": {}}
    large_results: dict[str, list[Result]] = {v.key: [] for v in present}
    small_results: dict[str, list[dict[str, Result]]] = {v.key: [] for v in present}
    if args.figures in ("1", "both"):
        warm(large)
        # Stock Django holds the whole file in memory and sends it at about 0.3 GB/s.
        large_results = _large_runs(present, args, 60.0 + 30.0 * size / GIB, failures)
        summary["large"] = large_figure(present, large_results, args.size_mib)
    if args.figures in ("2", "both") and shutil.which("wrk") is None:
        progress("skipping figure 2: wrk is not installed")
    elif args.figures in ("2", "both"):
        small_results = _small_runs(present, args, failures)
        summary["small"] = small_figure(present, small_results)
    elapsed = time.monotonic() - started
    print(f"({elapsed:.0f} s)")
    http_files.SECTIONS = SECTIONS
    results = (large_results, small_results)
    return write_results(args, failures, env, summary, results, elapsed, rss_notes)


if __name__ == "__main__":
    raise SystemExit(main())
