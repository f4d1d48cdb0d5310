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
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    add_quiet_timeout,
    ensure_file,
    environment,
    finish,
    markdown_table,
    median,
    process_group,
    progress,
    run_child,
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
    Server,
    Variant,
    _available,
    _check_wrk,
    _missing,
    _stats_delta,
    _zcio_stats,
    http_get,
    prepare_files,
    versions,
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


def _warm_up(srv: Server) -> None:
    paths = ["/f/64k.bin", "/f/4k.bin"]
    if srv.v.has_app:
        paths += ["/m/4k.bin", "/m/64k.bin"]
    for path in paths:
        head = http_get(srv.port, path)
        if head.status != 200 or len(head.rest) != dict(SMALL)[path.rsplit("/", 1)[1]]:
            raise ChildFailed(f"warm-up GET {path}: status {head.status}, {len(head.rest)} bytes")


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
        result["zcio"] = _stats_delta(before, _zcio_stats(srv)) if v.zcio else {}
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


def _gbps(r: Result) -> float:
    return float(r["body"]) / float(r["wall_s"]) / 1e9


def _cpu_gib(r: Result) -> float:
    return (float(r["server_user_s"]) + float(r["server_system_s"])) / (float(r["body"]) / GIB)


def _med(rs: Sequence[Result], fn: Callable[[Result], float]) -> float:
    return median([fn(r) for r in rs]) if rs else float("nan")


def _num(x: float) -> float | None:
    """A figure for the JSON summary: ``None`` for NaN (strict JSON has no NaN)."""
    return None if x != x else x


def _f(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "-" if not (a == a and b == b) or b == 0 else f"{a / b:.2f}x"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Django file responses over ASGI.")
    parser.add_argument("--size-mib", type=int, default=None, help="large file (default 1024)")
    parser.add_argument("--runs", type=int, default=None, help="large-file runs (default 3)")
    parser.add_argument("--wrk-runs", type=int, default=None, help="small-file runs (default 1)")
    parser.add_argument("--wrk-seconds", type=int, default=None, help="each wrk run (default 5)")
    parser.add_argument("--servers", default="", help="comma-separated server keys (default: all)")
    parser.add_argument("--figures", choices=["1", "2", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smoke test: 64 MiB, one run")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    add_quiet_timeout(parser, 15.0)
    args = parser.parse_args(argv)
    args.size_mib = args.size_mib or (64 if args.quick else 1024)
    args.runs = args.runs or (1 if args.quick else 3)
    args.wrk_runs = args.wrk_runs or 1
    args.wrk_seconds = args.wrk_seconds or (2 if args.quick else 5)
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

    with contextlib.suppress(metadata.PackageNotFoundError):
        env["django"] = metadata.version("django")
    selected = [v for v in VARIANTS if not args.chosen or v.key in args.chosen]
    present = [v for v in selected if _available(v)]
    for v in selected:
        if v not in present:
            progress(f"skipping {v.key}: {_missing(v)} not installed")
    large = ensure_file(BENCH_DIR / f"send_file-{args.size_mib}MiB.bin", size)
    prepare_files(large)
    APP_LINK.unlink(missing_ok=True)
    APP_LINK.symlink_to(APP_MODULE)
    # Stock Django holds the whole file in memory and sends it at about 0.3 GB/s.
    timeout = 60.0 + 30.0 * size / GIB
    failures: list[str] = []
    print(
        f"# zcio Django benchmark: {args.size_mib} MiB file x {args.runs} runs; small files "
        f"`wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds}s` x {args.wrk_runs}"
    )
    print()
    print(", ".join(f"{k} {val}" for k, val in env.items()))
    print()
    summary_large: dict[str, Result] = {}
    summary_small: dict[str, Result] = {}
    large_results: dict[str, list[Result]] = {v.key: [] for v in present}
    small_results: dict[str, list[dict[str, Result]]] = {v.key: [] for v in present}
    if args.figures in ("1", "both"):
        warm(large)
        for i in range(1, args.runs + 1):
            for v in present if i % 2 else list(reversed(present)):
                try:
                    r = large_run(v, size, timeout, args.quiet_timeout)
                except (ChildFailed, OSError, KeyError, ValueError) as exc:
                    failures.append(f"large {i} {v.key}: {exc}")
                    progress(f"  [large {i}] {v.key}: FAILED: {exc}")
                    continue
                large_results[v.key].append(r)
                progress(
                    f"  [large {i}/{args.runs}] {v.key}: {_gbps(r):.2f} GB/s, "
                    f"{_cpu_gib(r):.3f} s/GiB, peak RSS +{r['rss_growth_mib']:.0f} MiB"
                )
        stock = _med(large_results.get(STOCK.key, []), _gbps)
        nginx = _med(large_results.get(NGINX.key, []), _gbps)
        stock_cpu = _med(large_results.get(STOCK.key, []), _cpu_gib)
        nginx_cpu = _med(large_results.get(NGINX.key, []), _cpu_gib)
        rows = []
        for v in present:
            rs = large_results[v.key]
            gbps = _med(rs, _gbps)
            cpu = _med(rs, _cpu_gib)
            rss = _med(rs, lambda r: float(r["rss_growth_mib"]))
            methods = sorted({m for r in rs for m in r.get("zcio", {}).get("methods", {})})
            summary_large[v.key] = {
                "label": v.label,
                "runs_ok": len(rs),
                "gbps": _num(gbps),
                "server_cpu_s_per_gib": _num(cpu),
                "peak_rss_growth_mib": _num(rss),
                "x_nginx_gbps": _num(gbps / nginx if nginx else float("nan")),
                "x_nginx_cpu": _num(cpu / nginx_cpu if nginx_cpu else float("nan")),
                "x_stock_gbps": _num(gbps / stock if stock else float("nan")),
                "x_stock_cpu": _num(cpu / stock_cpu if stock_cpu else float("nan")),
            }
            if v is ZCIO:
                summary_large[v.key]["target_met"] = bool(
                    rss <= TARGET_RSS_MIB
                    and gbps >= TARGET_X_NGINX_GBPS * nginx
                    and gbps >= TARGET_X_STOCK_GBPS * stock
                )
            rows.append(
                [
                    v.label,
                    _f(gbps),
                    _f(_med(rs, _cpu_gib), 3),
                    _f(_med(rs, lambda r: float(r["rss_growth_mib"])), 0),
                    _ratio(gbps, nginx),
                    _ratio(gbps, stock),
                    ", ".join(methods) or "-",
                ]
            )
        print(f"## Figure 1: one {args.size_mib} MiB cached file, one connection")
        print()
        print(
            markdown_table(
                [
                    "server",
                    "GB/s",
                    "server CPU s/GiB",
                    "peak RSS growth MiB",
                    "x nginx",
                    "x stock Django",
                    "zcio method",
                ],
                rows,
            )
        )
        print()
        print(
            f"Targets (zcio_django on zcio_uvicorn): peak RSS growth <= {TARGET_RSS_MIB} MiB, "
            f">= {TARGET_X_NGINX_GBPS}x nginx, >= {TARGET_X_STOCK_GBPS}x stock Django."
        )
        print()
    if args.figures in ("2", "both") and shutil.which("wrk") is None:
        progress("skipping figure 2: wrk is not installed")
    elif args.figures in ("2", "both"):
        for _ in range(args.wrk_runs):
            for v in present:
                try:
                    small_results[v.key].append(small_run(v, args.wrk_seconds, args.quiet_timeout))
                except (ChildFailed, OSError, KeyError, ValueError) as exc:
                    failures.append(f"small {v.key}: {exc}")
                    progress(f"  [small] {v.key}: FAILED: {exc}")
        stock_rps = {
            p: _med([r[p] for r in small_results.get(STOCK.key, []) if p in r], lambda r: r["rps"])
            for p in ("/f/4k.bin", "/f/64k.bin")
        }
        nginx_4k = _med(
            [r["/f/4k.bin"] for r in small_results.get(NGINX.key, []) if "/f/4k.bin" in r],
            lambda r: r["rps"],
        )
        rows = []
        for v in present:
            runs = small_results[v.key]
            if not runs:
                continue
            cells = [v.label]
            entry: Result = {"label": v.label}
            for name, _ in SMALL:
                f = _med([r[f"/f/{name}"] for r in runs if f"/f/{name}" in r], lambda r: r["rps"])
                m = _med([r[f"/m/{name}"] for r in runs if f"/m/{name}" in r], lambda r: r["rps"])
                cells += [_f(f, 0), _f(m, 0), _ratio(f, stock_rps[f"/f/{name}"])]
                entry[name] = {
                    "file_rps": _num(f),
                    "memory_rps": _num(m),
                    "file_x_memory": _num(f / m if m else float("nan")),
                }
            f4 = entry["4k.bin"]["file_rps"] or float("nan")
            entry["x_stock_4k_file_rps"] = _num(f4 / stock_rps["/f/4k.bin"])
            entry["x_nginx_4k_file_rps"] = _num(f4 / nginx_4k if nginx_4k else float("nan"))
            summary_small[v.key] = entry
            rows.append(cells)
        print(f"## Figure 2: small files, `wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}` requests/s")
        print()
        print(
            markdown_table(
                [
                    "server",
                    "4 KiB file",
                    "4 KiB memory",
                    "file x stock",
                    "64 KiB file",
                    "64 KiB memory",
                    "file x stock",
                ],
                rows,
            )
        )
        print()
        print(f"Target: zcio_django's file responses >= {TARGET_SMALL_X_STOCK}x stock Django's.")
        print()
    print(f"({time.monotonic() - started:.0f} s)")
    return finish(
        failures,
        args.json,
        {
            "environment": env,
            "size_bytes": size,
            "runs": args.runs,
            "wrk_seconds": args.wrk_seconds,
            "wrk_runs": args.wrk_runs,
            "summary": {"large": summary_large, "small": summary_small},
            "large": large_results,
            "small": small_results,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
