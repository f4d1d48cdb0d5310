"""The one table of ``zcio bench``: every measured path of every benchmark script, from the
scripts' ``--json`` files.

Pure functions of those files, no I/O. Every script writes one schema (``bench/_common.py``:
``finish``, ``result_section``, ``result_row``): its ``sections`` (what each measures, its
anchor and baseline, the rows that may be missing) and its ``rows`` (figures, medians of
per-round ratios, role, verdict, notes), which this module takes as they are, never decoding a
script's own summaries nor recomputing a figure, so the combined table and each script's own
tables agree. What a row is compared with:

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
    "FIGURES",
    "footnotes",
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
    "http_hypercorn",
    "tornado_files",
    "sanic_files",
    "http_quart",
)
#: Scripts with no rows in the table (their own summary follows it), run only when asked for:
#: ``soak`` takes minutes by design and measures stability over time, not speed.
EXTRA_SCRIPTS = ("soak", "small_files")
#: ``zcio bench GROUP``: which scripts each group runs.
GROUPS: dict[str, tuple[str, ...]] = {
    "primitives": ("send_file", "streams"),
    "relay": ("relay",),
    "http": ("http_files",),
    "soak": ("soak",),
    "small": ("small_files",),
    "aiohttp": ("aiohttp_files",),
    "django": ("django_files",),
    "litestar": ("http_litestar",),
    "hypercorn": ("http_hypercorn",),
    "tornado": ("tornado_files",),
    "sanic": ("sanic_files",),
    "quart": ("http_quart",),
    "all": SCRIPTS,
}

NAN = math.nan
#: The figures of a row, as the scripts' ``rows`` name them (``bench/_common.py``: FIGURES).
FIGURES = (
    "gbps",
    "cpu_s_per_gib",
    "rps_4k",
    "rps_64k",
    "x_anchor",
    "x_anchor_cpu",
    "x_baseline",
    "x_baseline_cpu",
)

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
    sizing: str = "?"


def _num(entry: Mapping[str, Any], key: str) -> float:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else NAN


def _entries(data: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    """``data[key]``: a script's list of sections or rows (``[]`` where it has none)."""
    items = (data or {}).get(key)
    return [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []


def _note(entry: Mapping[str, Any]) -> str:
    """The role (anchor, baseline) or the verdict on the target, then the row's notes."""
    met = entry.get("target_met")
    verdict = "" if met is None else "target met" if met else "target MISSED"
    head = str(entry.get("role") or "") or verdict
    return "; ".join(n for n in (head, *map(str, entry.get("notes") or ())) if n)


def _row(entry: Mapping[str, Any]) -> Row:
    """A row of the results schema (``bench/_common.py``'s ``result_row``), as it is."""
    return Row(
        str(entry.get("section", "?")),
        str(entry.get("path", entry.get("key", "?"))),
        **{name: _num(entry, name) for name in FIGURES},
        note=_note(entry),
    )


def _installed(env: Mapping[str, Any], program: str) -> bool:
    return str(env.get(program, "")) not in ("", "not installed")


def _missing_rows(
    section: Mapping[str, Any], present: Sequence[Mapping[str, Any]], env: Mapping[str, Any]
) -> list[Row]:
    """What stands in for the rows a section may lack: one row for a section whose program
    (``needs``) is missing, else one per optional row without results: "not installed" when
    the script's environment says so."""
    key = str(section.get("key", "?"))
    needs = str(section.get("needs") or "")
    if needs and not present and not _installed(env, needs):
        return [Row(key, f"small files (`{needs}`)", note=f"not installed ({needs})")]
    keys = {e.get("key") for e in present}
    out = []
    for opt in _entries(section, "optional"):
        if opt.get("key") in keys:
            continue
        program = str(opt.get("program", "?"))
        note = "no result (see the script's output)"
        if not _installed(env, program):
            note = f"not installed ({program})"
        out.append(Row(key, str(opt.get("path", opt.get("key"))), note=note))
    return out


def _script_rows(data: Mapping[str, Any]) -> list[Row]:
    """One script's rows, section by section, each followed by its missing rows."""
    env = data.get("environment") or {}
    rows = _entries(data, "rows")
    out: list[Row] = []
    for section in _entries(data, "sections"):
        present = [e for e in rows if e.get("section") == section.get("key")]
        out += [_row(e) for e in present]
        out += _missing_rows(section, present, env)
    return out


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
        rows += _script_rows(data)
    return rows


# --- Text -------------------------------------------------------------------------------------


def _anchor(section: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    """The anchor's name with the version measured, or "not installed"."""
    anchor = str(section.get("anchor") or "-")
    program = str(section.get("anchor_program") or "")
    if not program:
        return anchor
    version = str(env.get(program, "")) or "?"
    return "not installed" if version == "not installed" else f"{anchor} {version}"


def sections(raw: Mapping[str, Mapping[str, Any] | None]) -> list[Section]:
    """What each section of the table compares with, named with the versions measured."""
    out: list[Section] = []
    for script in SCRIPTS:
        data = raw.get(script)
        env = (data or {}).get("environment") or {}
        out += [
            Section(
                str(s.get("key", "?")),
                f"{script}.py",
                str(s.get("what", "")),
                _anchor(s, env),
                str(s.get("baseline", "-")),
                str(s.get("sizing", "?")),
            )
            for s in _entries(data, "sections")
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
            f"- {s.key} ({s.script}, {s.sizing}): {s.what}. Anchor: {s.anchor}. "
            f"Baseline: {s.baseline}."
        )
    return "\n".join(lines)


def footnotes(raw: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The scripts' lines under the table (send_file.py's event-loop lag), or ``""``."""
    lines = [
        str(line)
        for script in SCRIPTS
        for line in (raw.get(script) or {}).get("footnotes") or ()
        if line
    ]
    return "\n".join(lines)


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
