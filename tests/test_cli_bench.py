"""``zcio bench``: the combined table, the scripts' location and options, and real runs.

The table tests read ``data/bench_results.json``: what the five scripts wrote with ``--json``
in one ``--smoke`` run (aiohttp_files.py: its one full run; their summaries and environments;
the per-run lists left out), in the results schema every script writes (its ``sections`` and
``rows`` made from those summaries by the scripts' own ``schema`` functions), so they
are fast and deterministic. The run tests start fake scripts (small Python files that write a
given JSON and exit with a given status) in place of the real ones; one test runs the real
scripts end to end, in the smallest mode, as a user would.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zcio_cli import _bench, _bench_chart, main
from zcio_cli._bench_table import GROUPS, HEADERS, SCRIPTS, Row, build_rows, markdown
from zcio_cli._errors import CliError

RECORDED = Path(__file__).parent / "data" / "bench_results.json"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _matplotlib_fonts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """matplotlib keeps the font files it has drawn with open for the life of the process:
    draw once now, so that the fd leak check does not blame the test that draws first."""
    rows = build_rows(json.loads(RECORDED.read_text()))  # every kind of panel: every font
    _bench_chart.write_chart(rows, tmp_path_factory.mktemp("chart") / "chart.png", "warm-up")


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED.read_text())
    return data


def _rows(raw: dict[str, Any], section: str) -> list[Row]:
    return [r for r in build_rows(raw) if r.section == section]


def _drop_rows(raw: dict[str, Any], script: str, section: str, key: str = "") -> None:
    """Take rows out of a script's results (every row of ``section``, or the one of ``key``),
    as a run that measured nothing there would have written them."""
    raw[script]["rows"] = [
        r
        for r in raw[script]["rows"]
        if not (r["section"] == section and (not key or r["key"] == key))
    ]


def _only(rows: list[Row], text: str) -> Row:
    found = [r for r in rows if text in r.path]
    assert len(found) == 1, (text, [r.path for r in rows])
    return found[0]


# --- The table --------------------------------------------------------------------------------


def test_every_summary_becomes_a_row_in_script_order(raw: dict[str, Any]) -> None:
    rows = build_rows(raw)
    sections = list(dict.fromkeys(r.section for r in rows))
    assert sections == [
        "send_file",
        "streams a",
        "streams b",
        "relay",
        "tee",
        "http large",
        "http small",
        "aiohttp large",
        "aiohttp small",
        "django large",
        "django small",
    ]
    expected = (
        len(raw["send_file"]["hot"]["summary"])
        + sum(len(s["summary"]) for s in raw["streams"]["setups"].values())
        + len(raw["relay"]["relay"]["summary"])
        + len(raw["relay"]["tee"]["summary"])
        + len(raw["http_files"]["summary"]["large"])
        + len(raw["http_files"]["summary"]["small"])
        + len(raw["aiohttp_files"]["summary"]["large"])
        + len(raw["aiohttp_files"]["summary"]["small"])
        + len(raw["django_files"]["summary"]["large"])
        + len(raw["django_files"]["summary"]["small"])
    )
    assert len(rows) == expected  # every anchor was installed: no extra rows


def test_rows_carry_the_scripts_figures_and_ratios(raw: dict[str, Any]) -> None:
    ceiling = _only(_rows(raw, "send_file"), "ceiling")
    assert ceiling.note == "baseline"
    assert ceiling.gbps == raw["send_file"]["hot"]["summary"]["sendfile"]["gbps"]
    trio = raw["send_file"]["hot"]["summary"]["zcio_trio"]
    row = _only(_rows(raw, "send_file"), "`zcio.send_file`, trio")
    assert (row.gbps, row.cpu_s_per_gib) == (trio["gbps"], trio["cpu_s_per_gib"])
    assert (row.x_baseline, row.x_baseline_cpu) == (trio["x_ceiling_gbps"], trio["x_ceiling_cpu"])
    assert row.note == ("target met" if trio["target_met"] else "target MISSED")

    # A copying loop is its own baseline: the script leaves the ratio empty, the table says 1.
    copy_loop = _only(_rows(raw, "streams b"), "trio: `SocketStream.send_all`")
    assert (copy_loop.x_baseline, copy_loop.x_baseline_cpu, copy_loop.note) == (
        1.0,
        1.0,
        "baseline",
    )

    relay = _rows(raw, "relay")
    assert _only(relay, "HAProxy").note == "anchor"
    assert _only(relay, "asyncio StreamReader").note == "baseline"
    zcio_trio = raw["relay"]["relay"]["summary"]["zcio_trio"]
    assert _only(relay, "splice_stream` relay, trio").x_anchor == zcio_trio["x_haproxy_gbps"]

    small = _rows(raw, "http small")
    nginx = _only(small, "nginx")
    assert nginx.note == "anchor"
    assert nginx.rps_4k == raw["http_files"]["summary"]["small"]["nginx"]["4k.bin"]["file_rps"]
    assert all(r.gbps != r.gbps for r in small)  # NaN: small files have no GB/s
    # The small-file target is file req/s over in-memory req/s on the same server: shown.
    key, entry = next(
        (k, e) for k, e in raw["http_files"]["summary"]["small"].items() if "zcio" in k
    )
    row = _only(small, entry["label"])
    ratios = [entry[name]["file_x_memory"] for name in ("4k.bin", "64k.bin")]
    assert row.note.endswith(f"x memory {ratios[0]:.2f} / {ratios[1]:.2f}"), (key, row.note)

    # aiohttp: nginx is the anchor, aiohttp on the default loop the baseline; the zcio_uvloop
    # row carries its ratio to stock uvloop (issue 12's other comparison) in the note.
    aio = raw["aiohttp_files"]["summary"]
    large = _rows(raw, "aiohttp large")
    assert _only(large, "nginx").note == "anchor"
    assert _only(large, "default asyncio loop").note == "baseline"
    zcio_uvloop = aio["large"]["aiohttp_zcio_uvloop"]
    row = _only(large, "`zcio_uvloop`")
    assert (row.gbps, row.x_baseline) == (zcio_uvloop["gbps"], zcio_uvloop["x_asyncio_gbps"])
    assert f"x uvloop {zcio_uvloop['x_uvloop_gbps']:.2f}" in row.note
    small_row = _only(_rows(raw, "aiohttp small"), "`zcio_uvloop`")
    assert small_row.rps_4k == aio["small"]["aiohttp_zcio_uvloop"]["4k.bin"]["file_rps"]


def test_markdown_is_a_small_table_per_section(raw: dict[str, Any]) -> None:
    rows = build_rows(raw)
    text = markdown(rows, raw)
    tables = text.split("### ")[1:]
    assert [t.split(":")[0] for t in tables] == list(dict.fromkeys(r.section for r in rows))
    for part in tables:
        lines = [line for line in part.splitlines() if line.startswith("| ")]
        section = part.split(":")[0]
        assert len(lines) == 2 + len([r for r in rows if r.section == section])
        headers = [c.strip() for c in lines[0].strip("|").split(" | ")]
        assert headers[0] == "path" and 3 <= len(headers) <= 7, headers
        assert set(headers) <= set(HEADERS)
        assert all(len(line) == len(lines[0]) for line in lines)  # padded: reads as plain text
        assert "`--http " not in part and "--loop" not in part  # paths shortened
    small = tables[-1]
    assert "req/s 4 / 64 KiB" in small and "GB/s |" not in small  # only columns with figures
    nginx_small = next(line for line in small.splitlines() if "nginx" in line)
    assert " / " in nginx_small  # req/s of the 4 KiB and 64 KiB files
    relay = next(t for t in tables if t.startswith("relay"))
    assert "**" in next(line for line in relay.splitlines() if "splice_stream` relay, trio" in line)
    # NaN is shown as "-", never as "nan"; a CPU time under one tick is said so, not 0.000.
    assert "nan" not in text.lower()
    assert "0.000" not in text and "< 1 tick" in text


def test_smoke_report_is_labelled_and_judges_nothing(raw: dict[str, Any]) -> None:
    full, _ = _bench.report(raw, "t")
    smoke, _ = _bench.report(raw, "t", smoke=True)
    assert "target" in full.split("x anchor / x baseline")[0]
    assert "SMOKE RUN" in smoke and "SMOKE RUN" not in full
    assert "target met" not in smoke and "target MISSED" not in smoke


def test_rows_as_json_have_no_nan(raw: dict[str, Any]) -> None:
    text = json.dumps([r.as_json() for r in build_rows(raw)], allow_nan=False)
    assert json.loads(text)


def test_missing_anchors_get_a_not_installed_row(raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(raw)
    del raw["relay"]["relay"]["summary"]["haproxy"]
    _drop_rows(raw, "relay", "relay", "haproxy")
    raw["relay"]["environment"]["haproxy"] = "not installed"
    http = raw["http_files"]
    for figure in ("large", "small"):
        for key in ("nginx", "stock_granian"):
            del http["summary"][figure][key]
            _drop_rows(raw, "http_files", f"http {figure}", key)
    http["environment"]["nginx"] = "not installed"
    http["environment"]["granian"] = "not installed"

    relay = _rows(raw, "relay")
    assert _only(relay, "HAProxy").note == "not installed (haproxy)"
    for figure in ("http large", "http small"):
        rows = _rows(raw, figure)
        assert _only(rows, "nginx").note == "not installed (nginx)"
        assert _only(rows, "granian").note == "not installed (granian)"
        assert _only(rows, "anycorn").note != "not installed (anycorn)"
    text = markdown(build_rows(raw))
    assert text.count("not installed (nginx)") == 2
    report, _ = _bench.report(raw, "t")
    assert "Anchor: not installed." in report


def test_an_installed_anchor_without_results_is_not_called_missing(raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(raw)
    del raw["relay"]["relay"]["summary"]["haproxy"]  # every HAProxy run failed
    _drop_rows(raw, "relay", "relay", "haproxy")
    assert _only(_rows(raw, "relay"), "HAProxy").note == "no result (see the script's output)"


def test_without_wrk_the_small_file_figure_is_one_row(raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(raw)
    raw["http_files"]["summary"]["small"] = {}
    _drop_rows(raw, "http_files", "http small")
    raw["http_files"]["environment"]["wrk"] = "not installed"
    # as_json: NaN fields compare as None (3.13's dataclass __eq__ compares NaN field by field)
    assert [r.as_json() for r in _rows(raw, "http small")] == [
        Row("http small", "small files (`wrk`)", note="not installed (wrk)").as_json()
    ]


def test_a_script_without_results_is_one_failed_row(raw: dict[str, Any]) -> None:
    rows = build_rows({"send_file": raw["send_file"], "relay": None})
    assert rows[-1].as_json() == Row("relay", "relay.py", note="failed: no results").as_json()
    assert {r.section for r in rows} == {"send_file", "relay"}


def test_report_names_the_anchors_and_the_lag(raw: dict[str, Any]) -> None:
    text, table = _bench.report(raw, "zcio bench all (smoke sizes, 1:00)")
    assert text.startswith("# zcio bench all (smoke sizes, 1:00)\n")
    assert f"HAProxy {raw['relay']['environment']['haproxy']}" in text
    assert f"nginx {raw['http_files']['environment']['nginx']}" in text
    assert "8 MiB x 1 runs" in text
    assert "Event-loop lag, p99" in text
    assert len(table) == len(build_rows(raw))


# --- Options and scripts ----------------------------------------------------------------------


def test_groups_cover_every_script() -> None:
    groups = _bench._ROW_GROUPS
    assert {"primitives", "relay", "http", "aiohttp", "django", "litestar"} <= set(groups)
    assert {"hypercorn", "quart", "tornado", "sanic"} <= set(groups)
    assert _bench._EXTRA_GROUPS == ["soak", "small"]
    assert {s for g in groups for s in GROUPS[g]} == set(SCRIPTS)
    assert GROUPS["all"] == SCRIPTS
    assert _bench._scripts(["http", "primitives"]) == ["send_file", "streams", "http_files"]
    assert _bench._scripts([]) == list(SCRIPTS)


def test_script_options_per_mode() -> None:
    assert _bench.script_argv("relay", "full", None, None) == []
    assert _bench.script_argv("http_files", "quick", None, None) == ["--quick"]
    smoke = _bench.script_argv("streams", "smoke", None, None)
    assert smoke[smoke.index("--quiet-timeout") + 1] == "0"
    assert "--wrk-seconds" in _bench.script_argv("http_files", "smoke", None, None)
    # Overrides come last: the scripts' argparse keeps the last of a repeated option.
    assert _bench.script_argv("relay", "smoke", 16, 2)[-4:] == ["--size-mib", "16", "--runs", "2"]
    # Only the scripts that wait for a quiet machine take --quiet-timeout.
    assert _bench.script_argv("http_files", "full", quiet_timeout=5) == ["--quiet-timeout", "5"]
    assert _bench.script_argv("send_file", "full", quiet_timeout=5) == []


def test_scripts_are_found_in_the_checkout(tmp_path: Path) -> None:
    assert _bench.locate_scripts() in (
        REPO / "bench",
        Path(_bench.__file__).parent / "_bench_scripts",
    )
    with pytest.raises(CliError, match="cannot find the benchmark scripts"):
        _bench.locate_scripts([tmp_path])
    for name in _bench.NEEDED:
        (tmp_path / name).write_text("")
    assert _bench.locate_scripts([tmp_path / "nothing", tmp_path]) == tmp_path


def test_the_wheel_configuration_ships_the_scripts() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"bench" = "zcio_cli/_bench_scripts"' in pyproject


def test_chart_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _bench_chart.chart_missing() == ""  # matplotlib is in the dev extras
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # now it cannot be imported
    assert "pip install 'zcio[bench]'" in _bench_chart.chart_missing()


# --- Runs with fake scripts -------------------------------------------------------------------

FAKE = """\
import json, sys
argv = sys.argv[1:]
with open(__file__ + ".argv", "w") as f:
    json.dump(argv, f)
print("fake {name}: measuring", flush=True)
data = {data!r}
if data is not None:
    with open(argv[argv.index("--json") + 1], "w") as f:
        f.write(data)
sys.exit({status})
"""


def _fake_scripts(
    folder: Path, raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch, **status: int
) -> Path:
    """Fake scripts that write their part of ``raw`` and exit with ``status[name]`` (0); a
    script with a non-zero status writes nothing."""
    folder.mkdir()
    for name in _bench.NEEDED:
        (folder / name).write_text("")
    for name in SCRIPTS:
        code = status.get(name, 0)
        # A script the recorded results do not hold (a newer one) writes nothing.
        data = json.dumps(raw[name]) if code == 0 and name in raw else None
        (folder / f"{name}.py").write_text(FAKE.format(name=name, data=data, status=code))
    monkeypatch.setattr(_bench, "CANDIDATES", (folder,))
    return folder


def test_run_writes_the_table_and_the_files(
    tmp_path: Path,
    raw: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripts = _fake_scripts(tmp_path / "bench", raw, monkeypatch)
    out = tmp_path / "out"
    assert main(["bench", "relay", "primitives", "--smoke", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# zcio bench relay, primitives (smoke sizes, ")
    assert "### send_file" in captured.out and "### relay" in captured.out
    assert "SMOKE RUN" in captured.out and "target MISSED" not in captured.out
    assert "http large" not in captured.out  # http was not asked for
    assert "[3/3] relay.py: done in" in captured.err
    assert "fake relay: measuring" not in captured.err  # only with --verbose
    argv = json.loads((scripts / "streams.py.argv").read_text())
    assert argv[: len(_bench.SMOKE["streams"])] == list(_bench.SMOKE["streams"])
    assert (out / "results.md").read_text() == captured.out
    results = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert set(results["raw"]) == {"send_file", "streams", "relay"}
    assert results["scripts"]["relay"]["status"] == 0
    table_lines = [line for line in captured.out.splitlines() if line.startswith("| ")]
    tables = captured.out.count("### ")
    assert len(results["table"]) == len(table_lines) - 2 * tables  # headers and rules
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "scripts" / "relay.log").read_text() == "fake relay: measuring\n"


def test_a_failed_script_gives_its_exit_status(
    tmp_path: Path,
    raw: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fake_scripts(tmp_path / "bench", raw, monkeypatch, send_file=3)
    assert main(["bench", "primitives", "-v"]) == 3
    captured = capsys.readouterr()
    assert "send_file.py: FAILED (exit status 3)" in captured.err
    assert "send_file.py exited with status 3; the end of its output:" in captured.err
    assert "fake streams: measuring" in captured.err  # --verbose streams the output
    assert "### send_file" in captured.out and "| send_file.py " in captured.out
    assert "failed: no results" in captured.out
    assert "### streams a" in captured.out  # the next script still ran


def test_without_matplotlib_the_chart_is_one_line(
    tmp_path: Path,
    raw: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fake_scripts(tmp_path / "bench", raw, monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    assert main(["bench", "relay", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "matplotlib is not installed, so no chart.png; install it with: " in err
    assert "pip install 'zcio[bench]'" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "scripts"]


def test_scripts_not_found_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_bench, "CANDIDATES", (tmp_path,))
    assert main(["bench", "relay"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zcio bench: error: cannot find the benchmark scripts")
    assert err.count("\n") == 1


# --- A real run -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_real_smoke_run_without_haproxy(tmp_path: Path) -> None:
    """The real scripts, smallest mode, as a user starts them; PATH holds only this Python's
    folder, so HAProxy is missing on every machine and gets its "not installed" row."""
    out = tmp_path / "out"
    # A folder of its own: another run of the suite on this machine (CI runs three at once)
    # must not share the benchmark's files.
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),
        "ZCIO_BENCH_DIR": str(tmp_path / "bench-files"),
    }
    command = ["bench", "primitives", "relay", "--smoke", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "zcio", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[3/3] relay.py: done in" in done.stderr
    table = done.stdout
    for section in ("send_file", "streams a", "streams b", "relay", "tee"):
        assert f"### {section}:" in table
    haproxy = next(line for line in table.splitlines() if line.startswith("| HAProxy"))
    assert "not installed (haproxy)" in haproxy
    assert "SMOKE RUN" in table and "target MISSED" not in table
    assert "Anchor: not installed." in table
    results = json.loads((out / "results.json").read_text())
    assert {name: s["status"] for name, s in results["scripts"].items()} == {
        "send_file": 0,
        "streams": 0,
        "relay": 0,
    }
    zcio_rows = [r for r in results["table"] if "`zcio.splice_stream` relay" in r["path"]]
    assert zcio_rows and all(r["gbps"] > 0 for r in zcio_rows)
    assert (out / "results.md").read_text() == table
    assert (out / "chart.png").stat().st_size > 1000


def test_chart_labels_are_distinct_and_there_is_a_legend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The four zcio HTTP rows were cut to one label once; a legend says what colours mean."""
    import matplotlib.pyplot as plt

    rows = build_rows(json.loads(RECORDED.read_text()))
    for section in {r.section for r in rows}:
        labels = [_bench_chart._label(r) for r in rows if r.section == section]
        assert len(set(labels)) == len(labels), labels
    figures: list[Any] = []
    close = plt.close

    def keep(fig: Any) -> None:
        figures.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    _bench_chart.write_chart(rows, tmp_path / "chart.png", "t")
    (fig,) = figures
    (legend,) = fig.legends
    assert {t.get_text().split(" ")[0] for t in legend.get_texts()} == {
        "zcio",
        "anchor",
        "baseline",
        "other,",
    }
