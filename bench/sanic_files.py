"""Benchmark Sanic's file responses on Sanic's own server: stock ``file()``, stock
``file_stream()`` and ``zcio_sanic.file``, against nginx with ``sendfile on``.

Each server is a fresh process per figure (``bench/sanic_app.py``, Sanic's own server, one
process, uvloop); the files and the client are ``bench/http_files.py``'s:

- figure 1: one large cached file over one connection (a splice client): GB/s, the server's
  CPU per GiB, the server's peak RSS growth (``VmHWM`` after minus ``VmRSS`` before), and the
  latency of another client's tiny request (``GET /m/4k.bin`` on a fresh connection every
  20 ms) while the file is sent (p99 and max);
- figure 2: the 4 and 64 KiB files with ``wrk -t2 -c32`` (req/s).

Targets (issue 24), printed and never asserted: the large file at >= 0.9x nginx's GB/s and
<= 1.3x its server CPU per GiB, RSS growth <= 32 MiB, the other client's p99 <= 20 ms; small
files no slower than stock ``file()``.

    python bench/sanic_files.py [--size-mib N] [--runs N] [--wrk-seconds S] [--servers K,...]
                                [--quick] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import http_files as hf
from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    ChildFailed,
    ensure_file,
    environment,
    finish,
    fmt,
    free_port,
    listening,
    markdown_table,
    median,
    package_versions,
    percentile,
    progress,
    result_row,
    result_section,
)

APP = Path(__file__).resolve().with_name("sanic_app.py")
#: key -> (the app's flavour, the label)
SANIC = {
    "sanic_file": ("file", "stock `sanic.response.file`"),
    "sanic_file_stream": ("file_stream", "stock `sanic.response.file_stream`"),
    "zcio_sanic": ("zcio", "`zcio_sanic.file`"),
}
KEYS = (*SANIC, "nginx")
BASELINE = "sanic_file"
START_TIMEOUT = 60.0


class SanicServer:
    """``bench/sanic_app.py`` in its own process group, for one flavour."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.port = 0
        self.log = BENCH_DIR / f"sanic-{key}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> SanicServer:
        env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
        env["ZCIO_BENCH_FILES"] = str(hf.FILES)
        self.port = free_port()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "--port", str(self.port), "--flavour",
                 SANIC[self.key][0]],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if listening(self.port):
                return self
            time.sleep(0.05)
        self.__exit__()
        raise ChildFailed(f"{self.key} did not start: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                return
            except ProcessLookupError:
                proc.wait()
                return
            except subprocess.TimeoutExpired:
                continue

    def stats(self) -> dict[str, Any]:
        head = hf.http_get(self.port, "/zcio-stats")
        return dict(json.loads(head.rest))


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Prober(threading.Thread):
    """Another client: a tiny GET on a fresh connection every 20 ms until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.ms: list[float] = []
        self.errors = 0

    def run(self) -> None:
        request = b"GET /m/4k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        while not self.stop.wait(0.02):
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                    sock.sendall(request)
                    while sock.recv(65536):
                        pass
                self.ms.append((time.perf_counter() - t0) * 1e3)
            except OSError:
                self.errors += 1


def large(key: str, size: int) -> dict[str, Any]:
    """One large-file run: GB/s, server CPU/GiB, RSS growth, the other client's latency."""
    server: Any = SanicServer(key) if key in SANIC else hf.Server(hf.NGINX)
    with server as srv:
        hf.http_get(srv.port, "/f/4k.bin")  # warm up
        before = _status(srv.pid)
        prober = Prober(srv.port) if key in SANIC else None
        if prober:
            prober.start()
        r = hf.large_get(srv.port, f"/f/{hf.LARGE}", size, srv.pid)
        if prober:
            prober.stop.set()
            prober.join(60)
        after = _status(srv.pid)
        moved = srv.stats()["bytes"] if key == "zcio_sanic" else {}
    if r["status"] != 200 or r["body"] != size:
        raise ChildFailed(f"{key}: status {r['status']}, {r['body']} of {size} bytes")
    cpu = r["server_user_s"] + r["server_system_s"]
    return {
        "gbps": size / r["wall_s"] / 1e9,
        "cpu_s_per_gib": cpu / (size / GIB),
        "rss_growth_mib": (after["VmHWM"] - before["VmRSS"]) / 1024,
        "other_p99_ms": percentile(prober.ms, 99) if prober and prober.ms else float("nan"),
        "other_max_ms": max(prober.ms) if prober and prober.ms else float("nan"),
        "other_requests": len(prober.ms) if prober else 0,
        "zcio_bytes": moved,
        "run": r,
    }


def small(key: str, seconds: int) -> dict[str, Any]:
    """wrk on the 4 and 64 KiB files: req/s and p99 latency each."""
    server: Any = SanicServer(key) if key in SANIC else hf.Server(hf.NGINX)
    out: dict[str, Any] = {}
    with server as srv:
        for name, _ in hf.SMALL:
            hf.wrk(srv.port, f"/f/{name}", 1, srv.pid)  # warm up
            r = hf.wrk(srv.port, f"/f/{name}", seconds, srv.pid)
            out[name] = {"rps": r["rps"], "p99_ms": r["latency_ms"].get("p99"), "run": r}
    return out


def _ratio(a: float, b: float) -> float:
    """a / b; NaN when b is zero (a run below one clock tick of CPU) or NaN."""
    return a / b if b and b == b else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--wrk-seconds", type=int, default=None)
    parser.add_argument("--servers", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    size_mib = args.size_mib or (16 if args.smoke else 256 if args.quick else 1024)
    seconds = args.wrk_seconds or (1 if args.smoke else 3 if args.quick else 5)
    keys = [k for k in args.servers.split(",") if k] or list(KEYS)
    size = size_mib * MIB
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    big = ensure_file(BENCH_DIR / f"large-{size_mib}m.bin", size)
    hf.prepare_files(big)
    with open(big, "rb") as f:  # cached: read it once
        while f.read(16 * MIB):
            pass
    missing = {
        "nginx": shutil.which("nginx") is None,
        "wrk": shutil.which("wrk") is None,
    }
    failures: list[str] = []
    results: dict[str, Any] = {"large": {}, "small": {}}
    for round_no in range(args.runs):
        for key in keys:
            if key == "nginx" and missing["nginx"]:
                continue
            progress(f"round {round_no + 1}: {key}, {size_mib} MiB file")
            try:
                results["large"].setdefault(key, []).append(large(key, size))
            except (ChildFailed, OSError, ValueError) as exc:
                failures.append(f"{key} large: {exc}")
            if missing["wrk"]:
                continue
            progress(f"round {round_no + 1}: {key}, wrk {seconds} s per file")
            try:
                results["small"].setdefault(key, []).append(small(key, seconds))
            except (ChildFailed, OSError, ValueError) as exc:
                failures.append(f"{key} small: {exc}")

    def med(key: str, figure: str) -> float:
        return median([r[figure] for r in results["large"].get(key, [])])

    def rps(key: str, name: str) -> float:
        return median([r[name]["rps"] for r in results["small"].get(key, [])])

    labels = {**{k: v[1] for k, v in SANIC.items()}, "nginx": "nginx, `sendfile on`"}
    nginx_gbps, nginx_cpu = med("nginx", "gbps"), med("nginx", "cpu_s_per_gib")
    base_4k = rps(BASELINE, "4k.bin")
    table = []
    rows = []
    for key in keys:
        gbps, cpu = med(key, "gbps"), med(key, "cpu_s_per_gib")
        r4, r64 = rps(key, "4k.bin"), rps(key, "64k.bin")
        table.append([
            labels[key], fmt(gbps, 2), fmt(cpu, 2), fmt(med(key, "rss_growth_mib"), 0),
            fmt(med(key, "other_p99_ms"), 1), fmt(med(key, "other_max_ms"), 1),
            fmt(r4, 0), fmt(r64, 0),
            fmt(_ratio(gbps, nginx_gbps), 2), fmt(_ratio(cpu, nginx_cpu), 2),
            fmt(_ratio(r4, base_4k), 2),
        ])  # fmt: skip
        met = None
        if key == "zcio_sanic":
            met = bool(
                gbps >= 0.9 * nginx_gbps
                and cpu <= 1.3 * nginx_cpu
                and med(key, "rss_growth_mib") <= 32
                and med(key, "other_p99_ms") <= 20
                and r4 >= rps(BASELINE, "4k.bin")
            )
        rows.append(
            result_row(
                "sanic",
                key,
                labels[key],
                role="anchor" if key == "nginx" else "baseline" if key == BASELINE else "",
                target_met=met,
                gbps=gbps,
                cpu_s_per_gib=cpu,
                rps_4k=r4,
                rps_64k=r64,
                x_anchor=_ratio(gbps, nginx_gbps),
                x_anchor_cpu=_ratio(cpu, nginx_cpu),
                x_baseline=_ratio(gbps, med(BASELINE, "gbps")),
                x_baseline_cpu=_ratio(cpu, med(BASELINE, "cpu_s_per_gib")),
                notes=[f"RSS +{fmt(med(key, 'rss_growth_mib'), 0)} MiB, other client's p99 "
                       f"{fmt(med(key, 'other_p99_ms'), 1)} ms"] if key in SANIC else [],
            )
        )  # fmt: skip
    print()
    print(f"Sanic file responses, {size_mib} MiB cached file (one connection) and 4/64 KiB "
          f"files (wrk -t2 -c32, {seconds} s), {args.runs} run(s):")  # fmt: skip
    print()
    print(markdown_table(
        ["server", "GB/s", "CPU s/GiB", "RSS +MiB", "other p99 ms", "other max ms",
         "4 KiB req/s", "64 KiB req/s", "x nginx GB/s", "x nginx CPU", "x file() 4 KiB"],
        table,
    ))  # fmt: skip
    print()
    print(
        "Targets (issue 24, never asserted): zcio_sanic >= 0.9x nginx GB/s, <= 1.3x its CPU, "
        "RSS +32 MiB at most, other client's p99 <= 20 ms, 4 KiB no slower than file()."
    )
    env = environment()
    env.update(package_versions(["sanic", "uvloop"]))
    results["environment"] = env
    section = result_section(
        "sanic",
        "one large cached file and 4/64 KiB files (wrk -t2 -c32), Sanic's own server (uvloop)",
        baseline="stock `sanic.response.file`",
        sizing=f"{size_mib} MiB x {args.runs} runs; wrk {seconds} s per URL",
        anchor="nginx",
        anchor_program="nginx",
        optional=(("nginx", "nginx, `sendfile on`", "nginx"),),
    )
    return finish(failures, args.json, results, script="sanic_files", sections=[section], rows=rows)


if __name__ == "__main__":
    sys.exit(main())
