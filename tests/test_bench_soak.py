"""``zcio bench soak``: its place among the groups, its section of the report, its chart, and
one real (short) run of ``bench/soak.py`` against ``zcio serve`` and ``zcio proxy --mirror``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zcio_cli import _bench, _bench_chart
from zcio_cli._bench_table import GROUPS, SCRIPTS

REPO = Path(__file__).resolve().parent.parent

SAMPLE = {
    "t": 0.0,
    "serve_requests": 0,
    "proxy_requests": 0,
    "serve_errors": 0,
    "proxy_errors": 0,
    "serve_fds": 10,
    "proxy_fds": 7,
    "serve_rss_kib": 30000,
    "proxy_rss_kib": 25000,
}


@pytest.fixture(scope="module", autouse=True)
def _matplotlib_fonts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """matplotlib keeps the font files it drew with open: draw once before the fd checks."""
    path = tmp_path_factory.mktemp("chart") / "soak.png"
    _bench_chart.write_soak_chart([SAMPLE, {**SAMPLE, "t": 1.0}], path, "warm-up")


def test_soak_is_a_group_of_its_own() -> None:
    assert GROUPS["soak"] == ("soak",)
    assert "soak" not in SCRIPTS and "soak" not in GROUPS["all"]
    assert _bench._scripts([]) == list(SCRIPTS)
    assert _bench._scripts(["soak", "relay"]) == ["relay", "soak"]
    assert "soak.py" in _bench.NEEDED
    assert _bench.script_argv("soak", "smoke") == ["--smoke"]
    assert _bench.script_argv("soak", "quick") == ["--quick"]
    assert _bench.script_argv("soak", "full") == []


def test_the_report_has_a_soak_section() -> None:
    raw: dict[str, Any] = {
        "soak": {"seconds": 5.0, "markdown": "| service |\n| --- |", "clients": {"http": 40}}
    }
    text, rows = _bench.report(raw, "zcio bench soak")
    assert rows == []
    assert "## Soak: 5.0 s of mixed load" in text and "| service |" in text
    assert "x anchor" not in text  # no empty combined table
    text, _ = _bench.report({"soak": None}, "zcio bench soak")
    assert "soak.py: failed, no results" in text


def test_the_soak_chart(tmp_path: Path) -> None:
    samples = [
        {**SAMPLE, "t": float(t), "serve_requests": 100 * t, "proxy_requests": 10 * t}
        for t in range(6)
    ]
    path = tmp_path / "soak.png"
    _bench_chart.write_soak_chart(samples, path, "a soak", end=4.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.load
@pytest.mark.timeout(300)
def test_a_short_real_soak(tmp_path: Path) -> None:
    """Three seconds of the real thing: both servers start, serve, stop cleanly; no client saw
    an error or a wrong byte; the series and the summary are in the JSON and the chart."""
    out, chart = tmp_path / "soak.json", tmp_path / "soak.png"
    options = ["--seconds", "3", "--json", str(out), "--chart", str(chart)]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), *options],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["failures"] == []
    for name in ("serve", "proxy"):
        summary = data["summary"][name]
        assert summary["requests"] > 0 and summary["errors"] == 0 and summary["wrong"] == 0
        assert summary["exit_status"] == 0
    assert "sendfile" in data["summary"]["serve"]["moved"]
    assert data["summary"]["proxy"]["mirrored_bytes"] > 0
    assert len(data["samples"]) >= 3
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| `zcio serve` (HTTP)" in done.stdout
