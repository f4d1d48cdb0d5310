"""Starlette's own FileResponse and StaticFiles tests, unchanged, against zcio_starlette.

The tests come from the sdist of the installed Starlette version, fetched with
``pip download`` into a cache (``$ZCIO_STARLETTE_SDIST_DIR``, else ``starlette-sdist/`` in the
virtualenv, else the temp dir) the first time, and never committed here. Without the network
(or without the packages the upstream tests import) the tests here skip, saying why.

They run in a separate pytest process with the upstream ``tests/`` package, ``conftest.py`` and
``pyproject.toml`` settings (warnings are errors), and with ``zcio_upstream_plugin`` loaded
first (its docstring says how the classes are replaced). Three runs: Starlette's own classes
(the baseline), ours with Starlette's TestClient as it is (no file extension advertised), and
ours with the TestClient serving ``http.response.zerocopysend``. A test that passes in the
baseline must pass in the other two.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import starlette

HERE = Path(__file__).parent
VERSION = starlette.__version__

# What is FileResponse's or StaticFiles': every test whose name says so in the files below
# (StaticFiles, GZip and BaseHTTPMiddleware with file responses, WebSocket denial by file).
FILES = [
    "tests/test_responses.py",
    "tests/test_staticfiles.py",
    "tests/middleware/test_gzip.py",
    "tests/middleware/test_base.py",
    "tests/test_websockets.py",
]
SELECT = "file_response or staticfiles or pathsend or range_responses"
RUN_TIMEOUT = 240.0  # seconds for one run of the upstream selection (it takes a few)


def _cache_dir() -> Path:
    if "ZCIO_STARLETTE_SDIST_DIR" in os.environ:
        return Path(os.environ["ZCIO_STARLETTE_SDIST_DIR"])
    if sys.prefix != sys.base_prefix:  # a virtualenv: keep it with the packages it matches
        return Path(sys.prefix) / "starlette-sdist"
    return Path(tempfile.gettempdir()) / f"zcio-starlette-sdist-{os.getuid()}"


def _fetch() -> Path:
    """The extracted upstream tests of the installed Starlette, downloaded if missing."""
    cache = _cache_dir()
    root = cache / f"starlette-{VERSION}"
    if (root / "tests" / "test_responses.py").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "--timeout",
            "20",
            "--retries",
            "1",
            "--dest",
            tmp,
            f"starlette=={VERSION}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip(f"pip download of the starlette {VERSION} sdist timed out (network?)")
        tarballs = list(Path(tmp).glob("starlette-*.tar.gz"))
        if done.returncode != 0 or not tarballs:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(
                f"could not download the starlette {VERSION} sdist (network?): {' | '.join(said)}"
            )
        prefix = f"starlette-{VERSION}/"
        with tarfile.open(tarballs[0]) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(prefix + "tests/") or m.name == prefix + "pyproject.toml"
            ]
            tar.extractall(Path(tmp) / "x", members=members, filter="data")
        try:
            os.replace(Path(tmp) / "x" / f"starlette-{VERSION}", root)
        except OSError:  # another run got there first
            if not (root / "tests" / "test_responses.py").is_file():
                raise
    return root


def _run(root: Path, mode: str, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the selection (or ``only`` these node ids) in ``mode``; the plugin's report:
    nodeid -> outcome, zerocopysend."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "ZCIO_UPSTREAM_MODE": mode,
            "ZCIO_UPSTREAM_REPORT": str(report),
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "zcio_upstream_plugin",
            "-p",
            "no:cacheprovider",
            # pytest-asyncio (for hypercorn's suite) would end this warnings-as-errors run.
            *("-p", "no:asyncio", "-p", "no:trio"),
            "-c",
            str(root / "pyproject.toml"),
            "--rootdir",
            str(root),
            "-q",
            "-o",
            "timeout=60",
            *(only or ("-k", SELECT, *FILES)),
        ]
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        if not report.is_file():
            raise AssertionError(f"the upstream run crashed:\n{done.stdout}\n{done.stderr}")
        results: dict[str, dict[str, Any]] = json.loads(report.read_text())
        return results


@pytest.fixture(scope="module")
def upstream() -> Path:
    missing = [
        name for name in ("httpx2", "python_multipart") if not importlib.util.find_spec(name)
    ]
    if missing:
        pytest.skip(f"Starlette's tests import {', '.join(missing)}: not installed")
    return _fetch()


@pytest.fixture(scope="module")
def baseline(upstream: Path) -> dict[str, dict[str, Any]]:
    return _run(upstream, "stock")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["ours", "zerocopysend"])
def test_starlette_own_tests(
    upstream: Path, baseline: dict[str, dict[str, Any]], mode: str
) -> None:
    results = _run(upstream, mode)
    assert set(results) == set(baseline), "the two runs selected different tests"
    assert len(results) >= 150, f"only {len(results)} upstream tests selected"
    regressions = [
        f"{nodeid}: {result['outcome']}"
        for nodeid, result in sorted(results.items())
        if baseline[nodeid]["outcome"] == "passed" and result["outcome"] != "passed"
    ]
    # As tests/_upstream.py does: a test that failed in the whole run is run again alone,
    # both results printed; only one that fails twice counts (a few at most: more is no flake).
    if 0 < len(regressions) <= 3:
        print("failed in the whole run:", *regressions, sep="\n  ")
        again = _run(upstream, mode, only=[line.split(": ")[0] for line in regressions])
        print("alone:", *(f"{k}: {v['outcome']}" for k, v in sorted(again.items())), sep="\n  ")
        regressions = [
            line
            for line in regressions
            if again.get(line.split(": ")[0], {}).get("outcome") != "passed"
        ]
    assert not regressions, "fail with zcio_starlette, pass with Starlette:\n" + "\n".join(
        regressions
    )
    used = [nodeid for nodeid, result in results.items() if result["zerocopysend"]]
    if mode == "zerocopysend":
        # Every TestClient-driven FileResponse/StaticFiles test that gets file bytes.
        assert len(used) >= 80, f"zerocopysend used by only {len(used)} upstream tests"
    else:
        assert used == []
    failing_anyway = sorted(n for n, r in baseline.items() if r["outcome"] != "passed")
    print(
        f"starlette {VERSION}, mode {mode}: {len(results)} tests,"
        f" {sum(r['outcome'] == 'passed' for r in results.values())} passed,"
        f" {len(used)} through zerocopysend; not passing with stock Starlette either:"
        f" {failing_anyway}"
    )
