"""The one table of ``zcio bench``: every measured path of every benchmark script, from the
scripts' ``--json`` files.

Pure functions of those files, no I/O: what a row says comes from the scripts' own summaries
(their medians and their per-round ratios), never recomputed here, so the combined table and
each script's own tables agree. What a row is compared with:

- the **anchor**: a program a user would otherwise deploy, measured in the same run (nginx for
  HTTP, HAProxy for the relay); a missing one gets a "not installed" row;
- the **baseline**: what the script already measures as its reference (the blocking
  ``os.sendfile`` loop, a backend's copying loop, the asyncio streams relay, ``splice_stream``
  to one receiver, stock Starlette on uvicorn).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "EXTRA_SCRIPTS",
    "GROUPS",
    "SCRIPTS",
    "Row",
    "Section",
    "build_rows",
    "lag_line",
    "legend",
    "cpu_text",
    "markdown",
    "short_path",
    "without_verdicts",
]

#: The benchmark scripts, in the order ``zcio bench all`` runs them.
SCRIPTS = (
    "send_file",
    "streams",
    "relay",
    "http_files",
    "aiohttp_files",
    "django_files",
    "http_litestar",
)
#: Scripts with no rows in the table (their own summary follows it), run only when asked for:
#: ``soak`` takes minutes by design and measures stability over time, not speed.
EXTRA_SCRIPTS = ("soak",)
#: ``zcio bench GROUP``: which scripts each group runs.
GROUPS: dict[str, tuple[str, ...]] = {
    "primitives": ("send_file", "streams"),
    "relay": ("relay",),
    "http": ("http_files",),
    "soak": ("soak",),
    "aiohttp": ("aiohttp_files",),
    "django": ("django_files",),
    "litestar": ("http_litestar",),
    "all": SCRIPTS,
}

NAN = math.nan

HEADERS = (
    "section",
    "path",
    "GB/s",
    "CPU s/GiB",
    "req/s 4 / 64 KiB",
    "x anchor: speed, CPU",
    "x baseline: speed, CPU",
    "note",
)
ALIGN = "llrrrrrl"


@dataclass(frozen=True)
class Row:
    """One measured path (or one anchor that could not be measured).

    ``x_*`` are the scripts' medians of per-round ratios: the speed (GB/s, or the 4 KiB file's
    requests/s in the small-file section) and the CPU per GiB, against the section's anchor and
    baseline. NaN where there is nothing to compare (no anchor, no CPU figure).
    """

    section: str
    path: str
    gbps: float = NAN
    cpu_s_per_gib: float = NAN
    rps_4k: float = NAN
    rps_64k: float = NAN
    x_anchor: float = NAN
    x_anchor_cpu: float = NAN
    x_baseline: float = NAN
    x_baseline_cpu: float = NAN
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """The row for ``results.json``: NaN becomes ``None`` (strict JSON has no NaN)."""
        return {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class Section:
    """A part of the table: which script, what CPU is counted, what rows are compared with."""

    key: str
    script: str
    what: str
    anchor: str
    baseline: str


def _num(entry: Mapping[str, Any], key: str) -> float:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else NAN


def _note(entry: Mapping[str, Any], role: str) -> str:
    if role:
        return role
    if "target_met" in entry:
        return "target met" if entry["target_met"] else "target MISSED"
    return ""


def _small_note(entry: Mapping[str, Any], role: str) -> str:
    """The note of a small-file row, with what its target measures: the file's requests/s over
    those of an in-memory response of the same bytes, on the same server (4 KiB / 64 KiB)."""
    note = _note(entry, role)
    ratios = [_num(_summary(entry, name), "file_x_memory") for name in ("4k.bin", "64k.bin")]
    if any(math.isfinite(r) for r in ratios):
        shown = " / ".join(f"{r:.2f}" if math.isfinite(r) else "-" for r in ratios)
        note = f"{note}; x memory {shown}" if note else f"x memory {shown}"
    return note


def _summary(data: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    """``data[keys[0]][keys[1]]...``, or ``{}`` where a level is missing."""
    node: Any = data or {}
    for key in keys:
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return dict(node) if isinstance(node, Mapping) else {}


def _missing_row(section: str, label: str, program: str, env: Mapping[str, Any]) -> Row:
    """An anchor without results: "not installed" when the script's environment says so."""
    version = str(env.get(program, ""))
    if version == "not installed" or not version:
        return Row(section, label, note=f"not installed ({program})")
    return Row(section, label, note="no result (see the script's output)")


# --- One function per script ------------------------------------------------------------------


def _send_file(data: Mapping[str, Any] | None) -> list[Row]:
    rows = []
    for key, e in _summary(data, "hot", "summary").items():
        baseline = key == "sendfile"
        rows.append(
            Row(
                "send_file",
                str(e.get("label", key)),
                gbps=_num(e, "gbps"),
                cpu_s_per_gib=_num(e, "cpu_s_per_gib"),
                x_baseline=_num(e, "x_ceiling_gbps"),
                x_baseline_cpu=_num(e, "x_ceiling_cpu"),
                note=_note(e, "baseline" if baseline else ""),
            )
        )
    return rows


def _streams(data: Mapping[str, Any] | None) -> list[Row]:
    rows = []
    for setup, section in (("standard", "streams a"), ("rcvlowat", "streams b")):
        for key, e in _summary(data, "setups", setup, "summary").items():
            baseline = key.endswith("_copy")
            rows.append(
                Row(
                    section,
                    f"{e.get('backend', '?')}: {e.get('label', key)}",
                    gbps=_num(e, "gbps"),
                    cpu_s_per_gib=_num(e, "cpu_s_per_gib"),
                    # The copying loop is its own reference: the script leaves its ratio empty.
                    x_baseline=1.0 if baseline else _num(e, "x_copy_gbps"),
                    x_baseline_cpu=1.0 if baseline else _num(e, "x_copy_cpu"),
                    note=_note(e, "baseline" if baseline else ""),
                )
            )
    return rows


def _relay(data: Mapping[str, Any] | None) -> list[Row]:
    env = _summary(data, "environment")
    relays = _summary(data, "relay", "summary")
    rows = []
    for key, e in relays.items():
        role = {"haproxy": "anchor", "asyncio_streams": "baseline"}.get(key, "")
        rows.append(
            Row(
                "relay",
                str(e.get("label", key)),
                gbps=_num(e, "gbps"),
                cpu_s_per_gib=_num(e, "relay_cpu_s_per_gib"),
                x_anchor=_num(e, "x_haproxy_gbps"),
                x_anchor_cpu=_num(e, "x_haproxy_cpu"),
                x_baseline=_num(e, "x_streams_gbps"),
                x_baseline_cpu=_num(e, "x_streams_cpu"),
                note=_note(e, role),
            )
        )
    if data is not None and "haproxy" not in relays:
        rows.append(_missing_row("relay", "HAProxy, TCP mode, splice", "haproxy", env))
    for key, e in _summary(data, "tee", "summary").items():
        rows.append(
            Row(
                "tee",
                str(e.get("label", key)),
                gbps=_num(e, "gbps"),
                cpu_s_per_gib=_num(e, "relay_cpu_s_per_gib"),
                x_baseline=_num(e, "x_splice_stream_gbps"),
                x_baseline_cpu=_num(e, "x_splice_stream_cpu"),
                note=_note(e, ""),
            )
        )
    return rows


#: http_files.py's anchors and other servers a user may lack: key, label, program.
_HTTP_OPTIONAL = (
    ("nginx", "nginx, `sendfile on`", "nginx"),
    ("stock_granian", "Starlette `FileResponse`, granian", "granian"),
    ("zcio_anycorn_trio", "zcio_starlette `FileResponse`, anycorn `-k trio`", "anycorn"),
)
_HTTP_ROLES = {"nginx": "anchor", "stock_uvicorn_asyncio": "baseline"}


def _http(data: Mapping[str, Any] | None) -> list[Row]:
    return _http_rows(data, "http", _HTTP_OPTIONAL, _HTTP_ROLES)


#: django_files.py's anchor and optional server: key, label, program.
_DJANGO_OPTIONAL = (
    ("nginx", "nginx, `sendfile on`", "nginx"),
    ("zcio_django_granian", "zcio_django, granian (pathsend)", "granian"),
)
_DJANGO_ROLES = {"nginx": "anchor", "django_stock_uvicorn": "baseline"}


def _django(data: Mapping[str, Any] | None) -> list[Row]:
    rows = _http_rows(data, "django", _DJANGO_OPTIONAL, _DJANGO_ROLES)
    # The figure zcio_django exists for: how much the server grew during the download.
    large = _summary(data, "summary", "large")
    out = []
    for row in rows:
        entry = next(
            (
                e
                for e in large.values()
                if e.get("label") == row.path and row.section.endswith("large")
            ),
            None,
        )
        rss = _num(entry, "peak_rss_growth_mib") if entry is not None else NAN
        if math.isfinite(rss):
            note = f"peak RSS +{rss:.0f} MiB"
            row = replace(row, note=f"{row.note}; {note}" if row.note else note)
        out.append(row)
    return out


def _http_rows(
    data: Mapping[str, Any] | None,
    prefix: str,
    optional: Sequence[tuple[str, str, str]],
    roles: Mapping[str, str],
) -> list[Row]:
    env = _summary(data, "environment")
    large_section, small_section = f"{prefix} large", f"{prefix} small"
    large = _summary(data, "summary", "large")
    small = _summary(data, "summary", "small")
    rows = []
    for key, e in large.items():
        rows.append(
            Row(
                large_section,
                str(e.get("label", key)),
                gbps=_num(e, "gbps"),
                cpu_s_per_gib=_num(e, "server_cpu_s_per_gib"),
                x_anchor=_num(e, "x_nginx_gbps"),
                x_anchor_cpu=_num(e, "x_nginx_cpu"),
                x_baseline=_num(e, "x_stock_gbps"),
                x_baseline_cpu=_num(e, "x_stock_cpu"),
                note=_note(e, roles.get(key, "")),
            )
        )
    if data is not None:
        rows += [
            _missing_row(large_section, label, program, env)
            for key, label, program in optional
            if key not in large
        ]
    for key, e in small.items():
        rows.append(
            Row(
                small_section,
                str(e.get("label", key)),
                rps_4k=_num(_summary(e, "4k.bin"), "file_rps"),
                rps_64k=_num(_summary(e, "64k.bin"), "file_rps"),
                x_anchor=_num(e, "x_nginx_4k_file_rps"),
                x_baseline=_num(e, "x_stock_4k_file_rps"),
                note=_small_note(e, roles.get(key, "")),
            )
        )
    if data is not None:
        if str(env.get("wrk", "")) in ("", "not installed") and not small:
            rows.append(Row(small_section, "small files (`wrk`)", note="not installed (wrk)"))
        else:
            rows += [
                _missing_row(small_section, label, program, env)
                for key, label, program in optional
                if key not in small
            ]
    return rows


_AIOHTTP_ROLES = {"nginx": "anchor", "aiohttp_asyncio": "baseline"}


def _aiohttp(data: Mapping[str, Any] | None) -> list[Row]:
    """aiohttp_files.py: baseline aiohttp on the default loop; the zcio_uvloop row's note gives
    its ratio to stock uvloop too (the issue's second comparison)."""
    env = _summary(data, "environment")
    rows = []
    for key, e in _summary(data, "summary", "large").items():
        note = _note(e, _AIOHTTP_ROLES.get(key, ""))
        xu = _num(e, "x_uvloop_gbps")
        if "target_met" in e and math.isfinite(xu):  # the zcio_uvloop row
            note = f"{note}; x uvloop {xu:.2f}" if note else f"x uvloop {xu:.2f}"
        rows.append(
            Row(
                "aiohttp large",
                str(e.get("label", key)),
                gbps=_num(e, "gbps"),
                cpu_s_per_gib=_num(e, "server_cpu_s_per_gib"),
                x_anchor=_num(e, "x_nginx_gbps"),
                x_anchor_cpu=_num(e, "x_nginx_cpu"),
                x_baseline=_num(e, "x_asyncio_gbps"),
                x_baseline_cpu=_num(e, "x_asyncio_cpu"),
                note=note,
            )
        )
    small = _summary(data, "summary", "small")
    for key, e in small.items():
        note = _note(e, _AIOHTTP_ROLES.get(key, ""))
        ratios = [_num(_summary(e, name), "x_uvloop") for name in ("4k.bin", "64k.bin")]
        if "target_met" in e and any(math.isfinite(r) for r in ratios):
            shown = " / ".join(f"{r:.2f}" if math.isfinite(r) else "-" for r in ratios)
            note = f"{note}; x uvloop {shown}" if note else f"x uvloop {shown}"
        rows.append(
            Row(
                "aiohttp small",
                str(e.get("label", key)),
                rps_4k=_num(_summary(e, "4k.bin"), "file_rps"),
                rps_64k=_num(_summary(e, "64k.bin"), "file_rps"),
                x_anchor=_num(e, "x_nginx_4k_file_rps"),
                x_baseline=_num(e, "x_asyncio_4k_file_rps"),
                note=note,
            )
        )
    if data is not None and str(env.get("wrk", "")) in ("", "not installed") and not small:
        rows.append(Row("aiohttp small", "small files (`wrk`)", note="not installed (wrk)"))
    return rows


#: http_litestar.py's: the anchor, and the servestatic row (optional: servestatic may be absent).
_LITESTAR_OPTIONAL = (
    ("nginx", "nginx, `sendfile on`", "nginx"),
    ("servestatic_zcio_uvicorn", "servestatic `ServeStaticASGI`, zcio_uvicorn", "servestatic"),
)
_LITESTAR_ROLES = {"nginx": "anchor", "stock_litestar_uvicorn": "baseline"}


def _litestar(data: Mapping[str, Any] | None) -> list[Row]:
    return _http_rows(data, "litestar", _LITESTAR_OPTIONAL, _LITESTAR_ROLES)


_BUILDERS = {
    "send_file": _send_file,
    "streams": _streams,
    "relay": _relay,
    "http_files": _http,
    "aiohttp_files": _aiohttp,
    "django_files": _django,
    "http_litestar": _litestar,
}


def build_rows(raw: Mapping[str, Mapping[str, Any] | None]) -> list[Row]:
    """Every row, in script order, from ``raw``: script name -> its ``--json`` contents, or
    ``None`` for a script that ran but left no results (one "failed" row). Scripts that were
    not run are not keys of ``raw``."""
    rows: list[Row] = []
    for script in SCRIPTS:
        if script not in raw:
            continue
        data = raw[script]
        if data is None:
            rows.append(Row(script, f"{script}.py", note="failed: no results"))
            continue
        rows += _BUILDERS[script](data)
    return rows


# --- Text -------------------------------------------------------------------------------------


def sections(raw: Mapping[str, Mapping[str, Any] | None]) -> list[Section]:
    """What each section of the table compares with, named with the versions measured."""
    out: list[Section] = []
    if "send_file" in raw:
        out.append(
            Section(
                "send_file",
                "send_file.py",
                "a cached file into a TCP socket; CPU: the sender's",
                "-",
                "blocking `os.sendfile` loop (the ceiling for a Python sender)",
            )
        )
    if "streams" in raw:
        what = "the stream integrations; CPU: the sender's; "
        base = "the copying loop of the same backend"
        out += [
            Section("streams a", "streams.py", what + "standard receiver", "-", base),
            Section("streams b", "streams.py", what + "receiver with SO_RCVLOWAT", "-", base),
        ]
    if "relay" in raw:
        version = str(_summary(raw["relay"], "environment").get("haproxy", "")) or "?"
        haproxy = "not installed" if version == "not installed" else f"HAProxy {version}"
        out += [
            Section(
                "relay",
                "relay.py",
                "TCP relay, sender -> relay -> receiver; CPU: the relay's",
                haproxy,
                "asyncio streams relay, 64 KiB reads",
            ),
            Section(
                "tee",
                "relay.py",
                "`zcio.tee_stream` to 2 receivers; CPU: the relay's",
                "-",
                "`zcio.splice_stream` to one receiver, same backend",
            ),
        ]
    if "http_files" in raw:
        version = str(_summary(raw["http_files"], "environment").get("nginx", "")) or "?"
        nginx = "not installed" if version == "not installed" else f"nginx {version}"
        stock = "stock Starlette `FileResponse`, uvicorn (httptools, asyncio)"
        out += [
            Section(
                "http large",
                "http_files.py",
                "one large cached file over HTTP; CPU: the server's process tree",
                nginx,
                stock,
            ),
            Section(
                "http small",
                "http_files.py",
                "4 and 64 KiB files, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
                nginx,
                stock,
            ),
        ]
    if "aiohttp_files" in raw:
        version = str(_summary(raw["aiohttp_files"], "environment").get("nginx", "")) or "?"
        nginx = "not installed" if version == "not installed" else f"nginx {version}"
        base = "aiohttp static route on the default asyncio loop (native `loop.sendfile`)"
        out += [
            Section(
                "aiohttp large",
                "aiohttp_files.py",
                "aiohttp static files, one large cached file; CPU: the server's process tree",
                nginx,
                base,
            ),
            Section(
                "aiohttp small",
                "aiohttp_files.py",
                "aiohttp static files, 4 and 64 KiB, `wrk -t2 -c32`; x columns: 4 KiB req/s",
                nginx,
                base,
            ),
        ]
    if "django_files" in raw:
        version = str(_summary(raw["django_files"], "environment").get("nginx", "")) or "?"
        nginx = "not installed" if version == "not installed" else f"nginx {version}"
        stock = "stock Django `FileResponse`, uvicorn (httptools, asyncio)"
        out += [
            Section(
                "django large",
                "django_files.py",
                "one large cached file from a Django `FileResponse`; CPU: the server's "
                "process tree; ratios of medians",
                nginx,
                stock,
            ),
            Section(
                "django small",
                "django_files.py",
                "4 and 64 KiB Django `FileResponse`s, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
                nginx,
                stock,
            ),
        ]
    if "http_litestar" in raw:
        version = str(_summary(raw["http_litestar"], "environment").get("nginx", "")) or "?"
        nginx = "not installed" if version == "not installed" else f"nginx {version}"
        stock = "stock Litestar `File`, uvicorn (httptools, asyncio)"
        out += [
            Section(
                "litestar large",
                "http_litestar.py",
                "one large cached file, Litestar and servestatic; CPU: the server's process tree",
                nginx,
                stock,
            ),
            Section(
                "litestar small",
                "http_litestar.py",
                "4 and 64 KiB files, Litestar and servestatic, `wrk -t2 -c32`; x columns: 4 KiB "
                "file req/s",
                nginx,
                stock,
            ),
        ]
    return out


def legend(raw: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The lines under the table: what each section measures and compares with."""
    lines = [
        "x anchor / x baseline: the scripts' medians of per-round ratios (each run against the "
        "anchor's or baseline's run in the same round) of the speed (GB/s; 4 KiB req/s in http "
        "small) and of CPU s/GiB, the anchor's in bold. GB/s: 10^9 bytes/s. CPU time is read "
        f"in clock ticks (10 ms): {BELOW_A_TICK!r} is a run too short to measure. Targets are "
        "printed, never asserted.",
        "",
    ]
    for s in sections(raw):
        lines.append(
            f"- {s.key} ({s.script}, {_sizing(s, raw)}): {s.what}. Anchor: {s.anchor}. "
            f"Baseline: {s.baseline}."
        )
    return "\n".join(lines)


def _sizing(section: Section, raw: Mapping[str, Mapping[str, Any] | None]) -> str:
    """How much was measured: "64 MiB x 3 runs", or wrk's duration and runs."""
    data = raw.get(section.script.removesuffix(".py")) or {}
    if section.key.endswith(" small"):
        seconds, runs = data.get("wrk_seconds", "?"), data.get("wrk_runs", "?")
        return f"wrk {seconds} s per URL x {runs} runs"
    size, runs = data.get("size_bytes"), data.get("runs", "?")
    mib = f"{int(size) >> 20} MiB" if isinstance(size, int) else "? MiB"
    return f"{mib} x {runs} runs"


def lag_line(raw: Mapping[str, Mapping[str, Any] | None]) -> str:
    """send_file.py's event-loop lag (p99 over a cold file) in one line, or ``""``."""
    lag = _summary(raw.get("send_file"), "lag", "summary")
    parts = [
        f"{e.get('label', key)} {float(e['p99_ms']):.2f} ms"
        for key, e in lag.items()
        if isinstance(e.get("p99_ms"), int | float)
    ]
    if not parts:
        return ""
    return "Event-loop lag, p99, file not in the page cache (send_file.py): " + "; ".join(parts)


def _fmt(x: float, digits: int) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


#: What a CPU figure of exactly 0 means: the run took less than one clock tick of CPU.
BELOW_A_TICK = "< 1 tick"


def cpu_text(x: float) -> str:
    """CPU s/GiB with three significant digits where three decimals would show 0.000."""
    if math.isnan(x):
        return "-"
    if x == 0:
        return BELOW_A_TICK
    return f"{x:.3f}" if x >= 0.1 else f"{x:.2g}"


def _pair(speed: float, cpu: float, bold: bool) -> str:
    if math.isnan(speed) and math.isnan(cpu):
        return "-"
    text = f"{_fmt(speed, 2)}, {_fmt(cpu, 2)}"
    return f"**{text}**" if bold else text


def without_verdicts(rows: Sequence[Row]) -> list[Row]:
    """The rows of a smoke run: its sizes mean nothing, so no "target met/MISSED" notes."""
    out = []
    for row in rows:
        note = row.note
        for verdict in ("target met; ", "target MISSED; ", "target met", "target MISSED"):
            note = note.replace(verdict, "")
        out.append(replace(row, note=note))
    return out


#: Display-only shortenings of the scripts' path labels (``Row.path`` keeps the full text).
_SHORT = (
    ("`FileResponse`, uvicorn `--http zcio_uvicorn:", "on `zcio_uvicorn:"),
    ("`FileResponse`, uvicorn `--http ", "on uvicorn `"),
    ("`FileResponse`, granian", "on granian"),
    ("`FileResponse`, anycorn", "on anycorn"),
    (" --loop asyncio`", "`, asyncio"),
    (" --loop uvloop`", "`, uvloop"),
    (" `--interface asgi --workers 1` (pathsend; loop auto = uvloop)", " (pathsend)"),
    (" `--interface asgi --workers 1`", ""),
    ("uvicorn `--http zcio_uvicorn:", "`zcio_uvicorn:"),
    ("uvicorn `--http ", "uvicorn `"),
    ("HAProxy, TCP mode, `option splice-request` + `splice-response`", "HAProxy (TCP, splice)"),
)


def short_path(path: str) -> str:
    for long, short in _SHORT:
        path = path.replace(long, short)
    return path


def cells(row: Row) -> list[str]:
    """The row as text cells, one per :data:`HEADERS` (the section included)."""
    rps = "-"
    if not (math.isnan(row.rps_4k) and math.isnan(row.rps_64k)):
        rps = f"{_fmt(row.rps_4k, 0)} / {_fmt(row.rps_64k, 0)}"
    return [
        row.section,
        short_path(row.path),
        _fmt(row.gbps, 2),
        cpu_text(row.cpu_s_per_gib),
        rps,
        # The anchor's ratio is the figure that matters: in bold. A CPU ratio over a run too
        # short to measure (0 ticks) says nothing: "-".
        _pair(row.x_anchor, NAN if row.cpu_s_per_gib == 0 else row.x_anchor_cpu, bold=True),
        _pair(row.x_baseline, NAN if row.cpu_s_per_gib == 0 else row.x_baseline_cpu, bold=False),
        row.note,
    ]


def table(headers: Sequence[str], body: Sequence[Sequence[str]], align: str) -> str:
    """A Markdown table, padded so that it also reads as plain text."""
    widths = [max([len(h), *(len(c[i]) for c in body)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if a == "r" else v.ljust(w)
            for v, w, a in zip(values, widths, align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * (w - 1) + ":" if a == "r" else "-" * w for w, a in zip(widths, align, strict=True)
    ]
    return "\n".join([line(headers), line(rule), *(line(c) for c in body)])


def markdown(rows: Sequence[Row], raw: Mapping[str, Mapping[str, Any] | None] | None = None) -> str:
    """One small table per section, under a ``### section: what it measures`` heading (from
    ``raw``, when given), with only the columns that section has figures for: never more than
    seven, the path short, the units in the headers."""
    what = {s.key: s.what for s in sections(raw)} if raw is not None else {}
    parts: list[str] = []
    order = list(dict.fromkeys(r.section for r in rows))
    for name in order:
        body = [cells(r)[1:] for r in rows if r.section == name]
        note = len(HEADERS) - 2  # body rows have no section cell
        keep = [0] + [i for i in range(1, note) if any(c[i] != "-" for c in body)]
        keep += [note] if any(c[note] for c in body) else []
        heading = f"### {name}" + (f": {what[name]}" if name in what else "")
        parts += [
            heading,
            "",
            table(
                [HEADERS[1:][i] for i in keep],
                [[c[i] for i in keep] for c in body],
                "".join(ALIGN[1:][i] for i in keep),
            ),
            "",
        ]
    return "\n".join(parts).rstrip("\n")
