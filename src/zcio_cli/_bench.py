"""``zcio bench``: run the benchmark scripts of ``bench/`` and print one table of them all.

Each script runs as a child process (``python SCRIPT --json FILE``), one after the other, since
they measure CPU time and would disturb each other. While one runs, a status line on stderr
says which it is, ``i/n``, the time taken so far and the script's latest progress line;
``--verbose`` streams the scripts' whole output to stderr instead. stdout gets only the result:
the combined table (:mod:`._bench_table`), the same that ``--out DIR`` writes to
``results.md``, beside ``results.json`` (every script's raw results and the table) and
``chart.png`` (:mod:`._bench_chart`).

The exit status is the first non-zero exit status of a script (a run broke: a child crashed
or timed out, bytes went missing); a missed target never fails a benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zcio

from ._bench_chart import chart_missing, write_chart, write_soak_chart
from ._bench_table import (
    EXTRA_SCRIPTS,
    GROUPS,
    SCRIPTS,
    build_rows,
    footnotes,
    legend,
    markdown,
    without_verdicts,
)
from ._errors import CliError

__all__ = ["locate_scripts", "register", "report", "run", "script_argv"]

#: Where the scripts are: inside the installed package (the wheel force-includes ``bench/``
#: there), else the ``bench/`` folder of a source checkout (``src/zcio_cli/`` -> the repo).
HERE = Path(__file__).resolve().parent
CANDIDATES = (HERE / "_bench_scripts", HERE.parent.parent / "bench")
#: Every file the scripts need: themselves, their shared module and the HTTP benchmark's app.
NEEDED = (
    *(f"{s}.py" for s in (*SCRIPTS, *EXTRA_SCRIPTS)),
    "_common.py",
    "http_app.py",
    "aiohttp_app.py",
    "django_bench_app.py",
    "http_litestar_app.py",
    "tornado_bench_app.py",
    "sanic_app.py",
    "http_quart_app.py",
)

#: The scripts' sizing options per mode (no options: the scripts' full defaults).
QUICK = ("--quick",)
SMOKE: dict[str, tuple[str, ...]] = {
    "send_file": ("--size-mib", "8", "--runs", "1"),
    "streams": ("--size-mib", "8", "--runs", "1", "--quiet-timeout", "0"),
    "relay": ("--size-mib", "8", "--runs", "1"),
    "http_files": (
        "--size-mib",
        "8",
        "--runs",
        "1",
        "--wrk-runs",
        "1",
        "--wrk-seconds",
        "1",
        "--quiet-timeout",
        "0",
    ),
    "aiohttp_files": (
        "--size-mib",
        "8",
        "--runs",
        "1",
        "--wrk-runs",
        "1",
        "--wrk-seconds",
        "1",
        "--quiet-timeout",
        "0",
    ),
    "django_files": (
        *("--size-mib", "8", "--runs", "1", "--wrk-runs", "1", "--wrk-seconds", "1"),
        *("--quiet-timeout", "0"),
    ),
    "soak": ("--smoke",),
    "small_files": ("--seconds", "1"),
}
SMOKE["http_litestar"] = SMOKE["http_files"]
SMOKE["http_hypercorn"] = SMOKE["http_files"]
SMOKE["tornado_files"] = SMOKE["aiohttp_files"]
SMOKE["sanic_files"] = ("--smoke",)
SMOKE["http_quart"] = SMOKE["http_files"]
#: Rough minutes per script and mode on the 2-core development VM, for the announcement.
MINUTES = {
    "full": {
        "send_file": 2.0,
        "streams": 4.0,
        "relay": 1.5,
        "http_files": 11.0,
        "aiohttp_files": 5.0,
        "django_files": 11.0,
        "http_litestar": 7.0,
        "http_hypercorn": 9.0,
        "tornado_files": 5.0,
        "sanic_files": 6.0,
        "http_quart": 8.0,
        "soak": 3.3,
        "small_files": 6.0,
    },
    "quick": {
        "send_file": 0.3,
        "streams": 0.7,
        "relay": 0.3,
        "http_files": 2.0,
        "aiohttp_files": 1.0,
        "django_files": 1.0,
        "http_litestar": 1.5,
        "http_hypercorn": 2.0,
        "tornado_files": 1.0,
        "sanic_files": 2.0,
        "http_quart": 2.0,
        "soak": 0.7,
        "small_files": 2.5,
    },
    "smoke": {
        "send_file": 0.1,
        "streams": 0.1,
        "relay": 0.1,
        "http_files": 1.0,
        "aiohttp_files": 0.7,
        "django_files": 0.5,
        "http_litestar": 0.6,
        "http_hypercorn": 0.8,
        "tornado_files": 0.7,
        "sanic_files": 1.0,
        "http_quart": 0.8,
        "soak": 0.3,
        "small_files": 1.5,
    },
}
#: Without a terminal, a line every this many seconds says the benchmark is still running.
HEARTBEAT_S = 60.0
#: After a script exits, how long its output may still take to arrive (a straggling child).
DRAIN_S = 5.0
#: On Ctrl-C: how long a script gets to stop its own children before it is killed.
STOP_S = 15.0
#: Without --out, how much of a failed script's output is shown.
TAIL_LINES = 20


#: The groups whose scripts give rows of the table (``all`` runs them), in GROUPS' order, and
#: those run only when asked for (``soak``, ``small``).
_ROW_GROUPS = [g for g in GROUPS if g != "all" and set(GROUPS[g]) <= set(SCRIPTS)]
_EXTRA_GROUPS = [g for g in GROUPS if set(GROUPS[g]) <= set(EXTRA_SCRIPTS)]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "bench",
        help="run the benchmarks against nginx, HAProxy, granian, anycorn and the baselines",
        description="Run the benchmark scripts (bench/ in a checkout, shipped in the wheel) one "
        "after the other and print one table combining them: GB/s, CPU s/GiB, requests/s, "
        "and ratios against the anchors installed here (nginx, HAProxy, granian, anycorn) "
        "and the baselines the scripts measure. Groups: "
        + ", ".join(f"{g} ({', '.join(f'{s}.py' for s in GROUPS[g])})" for g in _ROW_GROUPS)
        + f", all (default: these {len(SCRIPTS)} scripts). "
        "A full run takes about 40 minutes; --quick about 8, --smoke about 4. soak (soak.py, "
        "not part of all): 3 minutes of mixed load against zcio serve and zcio proxy "
        "--mirror, printing requests/s, errors, fds and RSS over time (--quick 30 s, --smoke "
        "5 s); with --out, soak.png charts them. small (small_files.py, not part of all): 4 "
        "and 64 KiB files through zcio_starlette with the open-file cache off and on, against "
        "the same server's in-memory response, servestatic and nginx (about 6 minutes).",
    )
    # No ``choices=`` here: on Python 3.11 argparse checks an empty ``nargs="*"`` list
    # against the choices and rejects ``zcio bench`` with no group; run() checks the names.
    parser.add_argument(
        "groups",
        nargs="*",
        metavar="GROUP",
        help=f"{', '.join(_ROW_GROUPS)}, all (default), {' or '.join(_EXTRA_GROUPS)}",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="the scripts' --quick: 64 MiB, fewer runs"
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest real run (8 MiB, 1 run, wrk 1 s, no waiting for a quiet machine): "
        "checks that everything works, measures nothing worth comparing",
    )
    parser.add_argument(
        "--size-mib", type=int, metavar="N", help="override every script's --size-mib"
    )
    parser.add_argument("--runs", type=int, metavar="N", help="override every script's --runs")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        metavar="S",
        help="streams.py and http_files.py wait before each run, at most S seconds (default "
        "60 and 15; 0 with --smoke), for the machine to be quiet: bound it on a busy machine",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write results.md, results.json, chart.png and each script's JSON and log here",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="stream the scripts' own output to stderr"
    )
    parser.set_defaults(run=run)


# --- Finding and starting the scripts ---------------------------------------------------------


def locate_scripts(candidates: Sequence[Path] | None = None) -> Path:
    """The first folder of ``candidates`` (default :data:`CANDIDATES`) that holds every
    script, or :class:`CliError`."""
    candidates = CANDIDATES if candidates is None else candidates
    for folder in candidates:
        if all((folder / name).is_file() for name in NEEDED):
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise CliError(
        f"cannot find the benchmark scripts (looked in {tried}); run zcio bench from a source "
        "checkout or a wheel built by the project (it ships them in zcio_cli/_bench_scripts)"
    )


def _mode(args: argparse.Namespace) -> str:
    return "smoke" if args.smoke else "quick" if args.quick else "full"


#: The scripts that wait for a quiet machine before each run (``--quiet-timeout``).
WAITING = (
    *("streams", "http_files", "aiohttp_files", "django_files", "http_litestar"),
    "http_hypercorn",
    "streams",
    "http_files",
    "aiohttp_files",
    "django_files",
    "http_litestar",
    "tornado_files",
    "http_quart",
)


def script_argv(
    script: str,
    mode: str,
    size_mib: int | None = None,
    runs: int | None = None,
    quiet_timeout: float | None = None,
) -> list[str]:
    """The options ``zcio bench`` passes to ``script`` (all but ``--json``)."""
    argv = list(QUICK if mode == "quick" else SMOKE[script] if mode == "smoke" else ())
    # argparse keeps the last of a repeated option, so these override the mode's.
    if size_mib is not None:
        argv += ["--size-mib", str(size_mib)]
    if runs is not None:
        argv += ["--runs", str(runs)]
    if quiet_timeout is not None and script in WAITING:
        argv += ["--quiet-timeout", f"{quiet_timeout:g}"]
    return argv


def _scripts(groups: Sequence[str]) -> list[str]:
    chosen = {s for g in (groups or ["all"]) for s in GROUPS[g]}
    return [s for s in (*SCRIPTS, *EXTRA_SCRIPTS) if s in chosen]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


@dataclass
class Outcome:
    """How one script ended."""

    status: int
    elapsed_s: float
    argv: list[str]
    tail: list[str]


class _Status:
    """The progress display on stderr: one rewritten line on a terminal, else a line when a
    script starts and ends and a heartbeat every :data:`HEARTBEAT_S` seconds."""

    def __init__(self, total: int, verbose: bool, started: float) -> None:
        self.total = total
        self.verbose = verbose
        self.live = sys.stderr.isatty() and not verbose
        self.started = started
        self.shown = False
        self.index = 0
        self.name = ""
        self.begun = started
        self.next_beat = 0.0
        self.next_draw = 0.0

    def begin(self, index: int, name: str) -> None:
        self.index, self.name, self.begun = index, name, time.monotonic()
        self.next_beat = self.begun + HEARTBEAT_S
        if not self.live:
            self._line(f"started ({_clock(self.begun - self.started)} in total so far)")

    def update(self, last: str) -> None:
        now = time.monotonic()
        head = (
            f"[{self.index}/{self.total}] {self.name} {_clock(now - self.begun)} "
            f"(total {_clock(now - self.started)})"
        )
        if self.live and now >= self.next_draw:
            self.next_draw = now + 0.25  # a few redraws a second are enough to read
            width = shutil.get_terminal_size().columns - 1
            sys.stderr.write("\r\x1b[K" + f"{head}  {last.strip()}"[:width])
            sys.stderr.flush()
            self.shown = True
        elif not self.verbose and now >= self.next_beat:
            self.next_beat = now + HEARTBEAT_S
            print(f"{head}: {last.strip()}", file=sys.stderr, flush=True)

    def end(self, status: int) -> None:
        took = _clock(time.monotonic() - self.begun)
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
        self._line(
            f"done in {took}" if status == 0 else f"FAILED (exit status {status}) after {took}"
        )

    def _line(self, text: str) -> None:
        print(f"[{self.index}/{self.total}] {self.name}: {text}", file=sys.stderr, flush=True)


def _run_script(
    path: Path, argv: list[str], json_path: Path, log: IO[bytes], status: _Status, verbose: bool
) -> Outcome:
    """Run one script to its end, its output into ``log`` (and stderr with ``verbose``)."""
    cmd = [sys.executable, str(path), *argv, "--json", str(json_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    last = ""
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    ) as proc:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        pending = b""
        exited_at: float | None = None
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                while True:
                    if sel.select(timeout=0.5):
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            break
                        log.write(chunk)
                        if verbose:
                            sys.stderr.buffer.write(chunk)
                            sys.stderr.flush()
                        *lines, pending = (pending + chunk).split(b"\n")
                        for raw in lines:
                            text = raw.decode(errors="replace").rstrip()
                            if text:
                                last = text
                                tail = [*tail[-(TAIL_LINES - 1) :], text]
                    status.update(last)
                    # A grandchild that kept our pipe open must not hold us after the script.
                    if exited_at is None and proc.poll() is not None:
                        exited_at = time.monotonic()
                    if exited_at is not None and time.monotonic() - exited_at > DRAIN_S:
                        break
        except BaseException:
            _stop(proc)
            raise
        code = proc.wait()
    if text := pending.decode(errors="replace").rstrip():  # a last line without a newline
        tail = [*tail[-(TAIL_LINES - 1) :], text]
    return Outcome(code, time.monotonic() - started, cmd[1:], tail)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C (or an error here): let the script stop its own children, then kill it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)  # the terminal may have sent it already: harmless
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- Results ----------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _strict(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _environment(raw: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One line: the machine and the versions, merged from every script's environment."""
    env: dict[str, Any] = {}
    for data in raw.values():
        env.update((data or {}).get("environment", {}))
    env.pop("date", None)
    return ", ".join(f"{k} {v}" for k, v in env.items())


def report(
    raw: Mapping[str, Mapping[str, Any] | None], title: str, *, smoke: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The Markdown report (title, environment, the table, its legend, the scripts' footnotes)
    and the table's rows as JSON objects. A ``smoke`` run's rows carry no target verdicts."""
    rows = build_rows(raw)
    parts = [f"# {title}", "", _environment(raw)]
    if smoke:
        rows = without_verdicts(rows)
        parts += [
            "",
            "SMOKE RUN: the smallest sizes, one run each, to check that everything works; "
            "the figures are not worth comparing and no target is judged.",
        ]
    if any(script in raw for script in SCRIPTS):
        parts += ["", markdown(rows, raw), "", legend(raw)]
    if notes := footnotes(raw):
        parts += ["", notes]
    if "soak" in raw:
        parts += ["", soak_section(raw["soak"])]
    if "small_files" in raw:
        small = raw["small_files"] or {}
        parts += ["", "## Small files", "", small.get("table") or "small_files.py: no results"]
    return "\n".join(parts) + "\n", [r.as_json() for r in rows]


def soak_section(data: Mapping[str, Any] | None) -> str:
    """soak.py's own table (it has no rows in the combined one), with what it measured."""
    if not data or not isinstance(data.get("markdown"), str):
        return "## Soak\n\nsoak.py: failed, no results"
    clients = data.get("clients", {})
    return (
        f"## Soak: {data.get('seconds', '?')} s of mixed load\n\n{data['markdown']}\n\n"
        f"{clients.get('http', '?')} HTTP clients ({clients.get('slow', '?')} slow) against "
        f"zcio serve and {clients.get('proxy', '?')} clients through zcio proxy --mirror, at "
        "once. x first third: the last third's req/s over the first third's (1.00: steady); "
        "faults: clients that vanished on purpose; keep-alive closed: requests that met a "
        "connection the server had just closed as idle (retried on a new one, not errors); "
        "fds and RSS: the server process, sampled every second. Measured, never asserted."
    )


@contextlib.contextmanager
def _workdir(out: Path | None) -> Iterator[Path]:
    """Where the scripts' JSON and logs go: ``OUT/scripts``, or a temporary folder."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="zcio-bench-") as tmp:
            yield Path(tmp)
        return
    folder = out / "scripts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {out}: {exc.strerror or exc}") from exc
    yield folder


def run(args: argparse.Namespace) -> int:
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        choices = ", ".join(sorted(GROUPS))
        raise CliError(f"unknown group {unknown[0]!r} (choose from {choices})")
    for name in ("size_mib", "runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    if args.quiet_timeout is not None and not args.quiet_timeout >= 0:
        raise CliError("--quiet-timeout must be 0 or more")
    folder = locate_scripts()
    scripts = _scripts(args.groups)
    mode = _mode(args)
    no_chart = chart_missing() if args.out is not None else ""
    if no_chart:
        print(f"zcio bench: {no_chart}", file=sys.stderr)
    minutes = sum(MINUTES[mode][s] for s in scripts)
    print(
        f"zcio bench: {len(scripts)} benchmark(s) from {folder}, {mode} sizes, about "
        f"{max(1, round(minutes))} minute(s) on a 2-core machine",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    status = _Status(len(scripts), args.verbose, started)
    outcomes: dict[str, Outcome] = {}
    raw: dict[str, dict[str, Any] | None] = {}
    with _workdir(args.out) as work:
        for i, script in enumerate(scripts, 1):
            argv = script_argv(script, mode, args.size_mib, args.runs, args.quiet_timeout)
            json_path = work / f"{script}.json"
            json_path.unlink(missing_ok=True)  # never report an earlier run's results
            status.begin(i, f"{script}.py")
            with open(work / f"{script}.log", "wb") as log:
                outcome = _run_script(
                    folder / f"{script}.py", argv, json_path, log, status, args.verbose
                )
            status.end(outcome.status)
            outcomes[script] = outcome
            raw[script] = _load(json_path)
            if outcome.status != 0:
                _explain_failure(script, outcome, work / f"{script}.log", args.out is not None)
    elapsed = time.monotonic() - started

    groups = ", ".join(args.groups or ["all"])
    title = f"zcio bench {groups} ({mode} sizes, {_clock(elapsed)})"
    text, table = report(raw, title, smoke=mode == "smoke")
    print(text, end="", flush=True)
    if args.out is not None:
        _write_out(args.out, text, table, raw, outcomes, mode, elapsed, no_chart, title)
    return next((o.status for o in outcomes.values() if o.status != 0), 0)


def _explain_failure(script: str, outcome: Outcome, log: Path, kept: bool) -> None:
    print(
        f"zcio bench: {script}.py exited with status {outcome.status}"
        + (f"; its output is in {log}" if kept else "; the end of its output:"),
        file=sys.stderr,
    )
    if not kept:
        for line in outcome.tail:
            print(f"  {line}", file=sys.stderr)


def _write_out(
    out: Path,
    text: str,
    table: list[dict[str, Any]],
    raw: Mapping[str, Mapping[str, Any] | None],
    outcomes: Mapping[str, Outcome],
    mode: str,
    elapsed: float,
    no_chart: str,
    title: str,
) -> None:
    (out / "results.md").write_text(text)
    results = {
        "zcio_bench": {"zcio": zcio.__version__, "mode": mode, "elapsed_s": elapsed},
        "scripts": {
            name: {"status": o.status, "elapsed_s": o.elapsed_s, "argv": o.argv}
            for name, o in outcomes.items()
        },
        "table": table,
        "markdown": text,
        "raw": raw,
    }
    (out / "results.json").write_text(json.dumps(_strict(results), indent=1, allow_nan=False))
    written = ["results.md", "results.json"]
    if not no_chart and any(script in raw for script in SCRIPTS):
        write_chart(
            build_rows(raw), out / "chart.png", title + (" SMOKE" if mode == "smoke" else "")
        )
        written.append("chart.png")
    soak = raw.get("soak")
    if not no_chart and soak and soak.get("samples"):
        end = soak.get("seconds")
        write_soak_chart(soak["samples"], out / "soak.png", title, end)
        written.append("soak.png")
    print(f"zcio bench: wrote {', '.join(written)} in {out}", file=sys.stderr)
