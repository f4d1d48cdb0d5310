"""``chart.png`` of ``zcio bench --out``: the combined table as bar charts, with matplotlib.

matplotlib is the ``zcio[bench]`` extra: :func:`chart_missing` tells before the benchmarks
start whether the chart can be drawn, so that a missing extra costs one line, not a traceback
after half an hour of measuring.
"""

from __future__ import annotations

import importlib.util
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._bench_table import Row, cpu_text, short_path

__all__ = ["chart_missing", "write_chart", "write_soak_chart"]

#: Bar colours: the anchor, the baseline, zcio's paths, and everything else (for context).
_COLOURS = {"anchor": "tab:orange", "baseline": "tab:gray"}
_ZCIO = "tab:blue"
_OTHER = "lightsteelblue"
_LABEL_CHARS = 48


def chart_missing() -> str:
    """``""`` when matplotlib can be imported, else the one line saying how to install it."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return ""
    return (
        "matplotlib is not installed, so no chart.png; install it with: pip install 'zcio[bench]'"
    )


def _colour(row: Row) -> str:
    zcio = "zcio" in row.path or row.note.startswith("target")
    role = row.note.split(";")[0]  # "baseline; x memory 0.07 / 0.05"
    return _COLOURS.get(role) or (_ZCIO if zcio else _OTHER)


def _label(row: Row) -> str:
    """The path, wrapped rather than cut: rows differing only at the end keep distinct labels."""
    return textwrap.fill(short_path(row.path).replace("`", ""), _LABEL_CHARS)


def _speed_panel(ax: Any, name: str, members: Sequence[Row]) -> list[int]:
    """The speed bars of one section (GB/s, or the 4 KiB file's requests/s); the y values."""
    small = any(not math.isnan(r.rps_4k) for r in members)
    speeds = [r.rps_4k if small else r.gbps for r in members]
    ys = list(range(len(members)))
    shown = [v for v in speeds if not math.isnan(v) and v > 0]
    if small and shown and max(shown) > 20 * min(shown):  # nginx dwarfs the others
        ax.set_xscale("log")
    colours = [_colour(r) for r in members]
    ax.barh(ys, [0.0 if math.isnan(v) else v for v in speeds], color=colours)
    ax.set_yticks(ys, [_label(r) for r in members], fontsize=7)
    ax.invert_yaxis()
    unit = "4 KiB file req/s" if small else "GB/s"
    scale = " (log scale)" if ax.get_xscale() == "log" else ""
    ax.set_title(f"{name}: {unit}{scale}", fontsize=9)
    left = ax.get_xlim()[0]  # 0, or the log scale's own left end
    for y, v, r in zip(ys, speeds, members, strict=True):
        text = r.note if math.isnan(v) else (f"{v:.0f}" if small else f"{v:.2f}")
        ax.text(left, y, " " + text, va="center", fontsize=6)
    return ys


def _cpu_panel(ax: Any, name: str, members: Sequence[Row], ys: list[int]) -> None:
    """The CPU s/GiB bars of one section, or nothing when it has no CPU figure."""
    cpus = [r.cpu_s_per_gib for r in members]
    if all(math.isnan(v) for v in cpus):
        ax.axis("off")
        return
    ax.barh(ys, [0.0 if math.isnan(v) else v for v in cpus], color=[_colour(r) for r in members])
    ax.set_yticks(ys, [""] * len(ys))
    ax.invert_yaxis()
    ax.set_title(f"{name}: CPU s/GiB", fontsize=9)
    for y, v in zip(ys, cpus, strict=True):
        if not math.isnan(v):
            ax.text(0, y, f" {cpu_text(v)}", va="center", fontsize=6)


def _legend(fig: Any) -> None:
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Patch(color=_ZCIO, label="zcio"),
            Patch(color=_COLOURS["anchor"], label="anchor (what a user would deploy)"),
            Patch(color=_COLOURS["baseline"], label="baseline (the script's reference)"),
            Patch(color=_OTHER, label="other, for context"),
        ],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )


def write_chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """Draw one pair of panels per section (speed: GB/s or 4 KiB requests/s; CPU s/GiB) into
    ``path`` as PNG. Rows without a figure (an anchor not installed) are listed with no bar.

    Uses the Agg backend (no display needed) and closes its figure, also on error.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections: dict[str, list[Row]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    if not sections:
        sections[""] = []
    heights = [max(len(r), 1) for r in sections.values()]
    inches = 1.7 + 0.36 * sum(heights) + 0.6 * len(sections)
    fig, axes = plt.subplots(
        len(sections),
        2,
        figsize=(15, inches),
        gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]},
        squeeze=False,
    )
    try:
        for (name, members), (speed_ax, cpu_ax) in zip(sections.items(), axes, strict=True):
            ys = _speed_panel(speed_ax, name, members)
            _cpu_panel(cpu_ax, name, members, ys)
        _legend(fig)
        fig.suptitle(title, fontsize=10)
        # Room for the title above and the legend below.
        fig.tight_layout(rect=(0.0, 0.5 / inches, 1.0, 1.0 - 0.4 / inches))
        fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.2)  # long labels
    finally:
        plt.close(fig)


#: The soak chart's panels: (title, unit divisor, the sample keys of serve and proxy).
_SOAK_PANELS = (
    ("requests/s", 1.0, ("serve_requests", "proxy_requests")),
    ("errors (cumulative)", 1.0, ("serve_errors", "proxy_errors")),
    ("open fds", 1.0, ("serve_fds", "proxy_fds")),
    ("RSS MiB", 1024.0, ("serve_rss_kib", "proxy_rss_kib")),
)


def write_soak_chart(
    samples: Sequence[Mapping[str, float]], path: Path, title: str, end: float | None = None
) -> None:
    """Draw ``bench/soak.py``'s samples (one a second: cumulative requests and errors, fds and
    RSS of ``zcio serve`` and ``zcio proxy``) as four panels over time into ``path`` (PNG).
    Requests become a rate between consecutive samples; ``end``: when the load stopped (a
    dotted line; what comes after is the last requests finishing and connections closing).

    Uses the Agg backend (no display needed) and closes its figure, also on error.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [float(s["t"]) for s in samples]
    fig, axes = plt.subplots(len(_SOAK_PANELS), 1, figsize=(10, 9), sharex=True, squeeze=False)
    try:
        for (name, divisor, keys), (ax,) in zip(_SOAK_PANELS, axes, strict=True):
            for key, label in zip(keys, ("zcio serve", "zcio proxy --mirror"), strict=True):
                values = [float(s[key]) / divisor for s in samples]
                if name == "requests/s":
                    values = [
                        (b - a) / (tb - ta) if tb > ta else 0.0
                        for a, b, ta, tb in zip(values, values[1:], times, times[1:], strict=False)
                    ]
                    xs = times[1:]
                else:
                    xs = times
                ax.plot(xs, values, label=label)
            if end is not None:
                ax.axvline(end, color="gray", linestyle=":", linewidth=1)
            ax.set_ylabel(name, fontsize=8)
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="upper left")
        axes[-1][0].set_xlabel("seconds", fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
