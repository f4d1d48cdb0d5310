"""Small files at memory speed? 4 KiB and 64 KiB files with ``wrk -t2 -c32`` through
``zcio_starlette.StaticFiles`` (``/s/``) and ``zcio_starlette.FileResponse`` by path (``/f/``),
against the same server's in-memory ``Response`` of the same bytes (``/m/``), on the four
zcio_uvicorn configurations (httptools and h11, asyncio and uvloop), with the open-file cache
off (the code path before it) and on; servestatic's ``ServeStaticASGI`` on the same server
(``/ss/``); nginx with ``sendfile on``. One run, one fresh server process per row.

Printed: requests/s and the ratios file / in-memory, beside the targets (>= 0.9x at 4 KiB,
>= 1.1x at 64 KiB, ahead of servestatic). Measured, never asserted.

    python bench/small_files.py [--seconds S] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH_DIR, environment, free_port, listening
from http_files import APP_DIR, APP_MODULE, NGINX_CONFIG, wrk

FOLDER = BENCH_DIR / "small-files"
SIZES = (("4k.bin", 4 << 10), ("64k.bin", 64 << 10))
CONFIGS = [(http, loop) for http in ("HttpTools", "H11") for loop in ("asyncio", "uvloop")]
TARGETS = {"4k.bin": 0.9, "64k.bin": 1.1}


def prepare() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, size in SIZES:
        path = FOLDER / name
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))
    APP_DIR.mkdir(parents=True, exist_ok=True)
    link = APP_DIR / "http_app.py"
    if not link.exists():
        link.symlink_to(APP_MODULE)


def start(argv: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"did not start: {' '.join(argv)}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def uvicorn(http: str, loop: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "uvicorn", "http_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--http", f"zcio_uvicorn:{http}Protocol", "--loop", loop,
        "--log-level", "warning", "--no-access-log", "--app-dir", str(APP_DIR),
    ]  # fmt: skip
    base = {"ZCIO_BENCH_FLAVOUR": "zcio", "ZCIO_BENCH_FILES": str(FOLDER)}
    return start(argv, port, {**base, **env})


def measure(port: int, pid: int, paths: list[str], seconds: int) -> dict[str, float]:
    """Requests/s per path, and the server's CPU microseconds per request (``cpu:PATH``):
    on a machine shared with other work, throughput follows the neighbours, CPU per request
    much less."""
    wrk(port, paths[0], 1, pid)  # warm up: threads, caches
    out: dict[str, float] = {}
    for path in paths:
        r = wrk(port, path, seconds, pid)
        out[path] = r["rps"]
        out[f"cpu:{path}"] = (r["server_user_s"] + r["server_system_s"]) / r["requests"] * 1e6
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk's -d per URL (default 5)")
    parser.add_argument("--quick", action="store_true", help="--seconds 2")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 2)
    if shutil.which("wrk") is None:
        print("wrk is not installed: nothing measured")
        return 0
    prepare()
    names = [name for name, _ in SIZES]
    results: dict[str, dict[str, float]] = {}
    for http, loop in CONFIGS:
        for cache in ("off", "on"):
            port = free_port()
            proc = uvicorn(http, loop, port, {"ZCIO_BENCH_CACHE": cache})
            try:
                paths = [f"/{kind}/{name}" for name in names for kind in ("m", "f", "s")]
                results[f"{http.lower()} {loop}, cache {cache}"] = measure(
                    port, proc.pid, paths, args.seconds
                )
            finally:
                stop(proc)
            print(f"measured {http} {loop} cache {cache}", file=sys.stderr, flush=True)
    try:
        import servestatic  # noqa: F401

        port = free_port()
        proc = uvicorn("HttpTools", "asyncio", port, {"ZCIO_BENCH_SERVESTATIC": "1"})
        try:
            paths = [f"/{kind}/{name}" for name in names for kind in ("m", "ss")]
            results["servestatic, httptools asyncio"] = measure(port, proc.pid, paths, args.seconds)
        finally:
            stop(proc)
    except ImportError:
        print("servestatic is not installed: its row is left out")
    if shutil.which("nginx"):
        port = free_port()
        work = BENCH_DIR / "small-nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (work / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        config = NGINX_CONFIG.format(dir=work, host="127.0.0.1", port=port, root=BENCH_DIR)
        (work / "nginx.conf").write_text(config)
        proc = start(["nginx", "-c", str(work / "nginx.conf")], port, {})
        try:
            results["nginx"] = measure(
                port, proc.pid, [f"/small-files/{n}" for n in names], args.seconds
            )
        finally:
            stop(proc)
    else:
        print("nginx is not installed: its row is left out")
    text = table(results)
    print(text)
    if args.json:
        out = {"results": results, "table": text, "environment": environment()}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| server | 4 KiB: memory req/s | FileResponse | StaticFiles | 64 KiB: memory req/s "
        "| FileResponse | StaticFiles |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, got in results.items():
        cells = [row]
        for name, _ in SIZES:
            memory = got.get(f"/m/{name}")
            if row == "nginx":
                cells += [f"{got[f'/small-files/{name}']:,.0f} (file)", "", ""]
                continue
            assert memory is not None
            cells.append(f"{memory:,.0f}")
            if row.startswith("servestatic"):
                cpu = got[f"cpu:/m/{name}"] / got[f"cpu:/ss/{name}"]
                cells += [f"servestatic {got[f'/ss/{name}'] / memory:.2f}x, CPU {cpu:.2f}x", ""]
                continue
            for kind in ("f", "s"):
                ratio = got[f"/{kind}/{name}"] / memory
                cpu = got[f"cpu:/m/{name}"] / got[f"cpu:/{kind}/{name}"]
                mark = "" if ratio >= TARGETS[name] else " (below)"
                cells.append(f"{ratio:.2f}x{mark}, CPU {cpu:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "\nRatios: file requests/s over the same server's in-memory `Response` of the same "
        "bytes; CPU: the in-memory response's server CPU per request over the file's (above "
        "1: the file costs less). Targets (never asserted, on requests/s): >= 0.9x at 4 KiB, "
        ">= 1.1x at 64 KiB, ahead of servestatic."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
