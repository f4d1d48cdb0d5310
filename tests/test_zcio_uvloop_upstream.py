"""Upstream suites on zcio_uvloop's loop: aiohttp's own sendfile and static-route tests (from
the sdist of the installed aiohttp, fetched into .venv/upstream/ like uvicorn's, skipped with
the reason when offline), and CPython's ``test.test_asyncio.test_sendfile`` for the running
interpreter (skipped with the reason when it ships no ``test`` package).

Each runs in its own process; zcio's counters, reported from there, prove that ``sendfile(2)``
moved the bytes the loop's ``sendfile`` reported, not aiohttp's thread fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _upstream import WITHOUT_ASYNC_PLUGINS, sdist

HERE = Path(__file__).parent / "uvloop_upstream"

#: The one part of asyncio's contract uvloop's transports cannot keep (their types are
#: immutable, so ``transport.write`` cannot be refused while ``sendfile`` runs); see
#: docs/uvloop.md. Must fail: if it ever passes, the docs are wrong.
CANNOT_HOLD_ON_UVLOOP = {"test_sendfile_prevents_bare_write"}


def _env(**extra: str) -> dict[str, str]:
    paths = [str(HERE), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), **extra)


def test_cpython_test_sendfile_on_zcio_uvloop() -> None:
    run = subprocess.run(
        [sys.executable, str(HERE / "cpython_test_sendfile.py")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    if "missing" in report:
        pytest.skip(f"this interpreter ships no test.test_asyncio: {report['missing']}")
    outcomes: dict[str, str] = report["outcomes"]
    assert len(outcomes) >= 20, outcomes
    failed = {name for name, outcome in outcomes.items() if outcome != "passed"}
    assert failed == CANNOT_HOLD_ON_UVLOOP, run.stderr[-4000:]
    assert report["sendfile_bytes"] > 0 and report["userspace_bytes"] > 0  # plain and TLS cases


def _aiohttp_suite(tree: Path, tmp: Path) -> tuple[subprocess.CompletedProcess[str], Any]:
    report = tmp / "report.json"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *WITHOUT_ASYNC_PLUGINS,
            "tests/test_web_sendfile_functional.py",
            *("tests/test_web_urldispatcher.py", "-k", "not test_web_urldispatcher or static"),
            *("-c", str(HERE / "aiohttp_pytest.ini"), "--rootdir", str(tree)),
            *("-p", "zcio_aiohttp_plugin", "--aiohttp-loop=pyloop,uvloop"),
        ],
        cwd=tree,
        env=_env(ZCIO_AIOHTTP_REPORT=str(report)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), run.stdout[-4000:] + run.stderr[-2000:]
    return run, json.loads(report.read_text())


@pytest.mark.timeout(300)  # two upstream files, each case on two loops, in one subprocess
def test_aiohttp_sendfile_and_static_suites_on_zcio_uvloop(tmp_path: Path) -> None:
    tree = sdist("aiohttp")
    run, report = _aiohttp_suite(tree, tmp_path)
    ours = {k: v for k, v in report.items() if "uvloop" in k}
    assert len(ours) > 100, run.stdout[-2000:]
    # Every case ends on zcio_uvloop exactly as it ends on the default loop (the few that fail
    # on both are upstream's own: permission tests that assume a non-root user).
    for nodeid, entry in ours.items():
        twin = report.get(nodeid.replace("uvloop", "pyloop"))
        assert twin is not None, nodeid
        assert entry.get("outcome") == twin.get("outcome"), (nodeid, entry, twin)
    passed = sum(1 for e in ours.values() if e.get("outcome") == "passed")
    assert passed > 100, run.stdout[-2000:]
    # The bytes the loop's sendfile reported went out by sendfile(2) (TLS: by the user-space
    # copy, as asyncio's fallback), never by aiohttp's own read loop.
    counters = ("zcio_sendfile", "zcio_userspace", "returned_plain", "returned_tls", "raised")
    for entry in ours.values():  # skipped cases never ran the fixture that counts
        for name in counters:
            entry.setdefault(name, 0)
    for nodeid, entry in ours.items():
        assert entry["zcio_userspace"] == entry["returned_tls"], (nodeid, entry)
        if entry["raised"] == 0:
            assert entry["zcio_sendfile"] == entry["returned_plain"], (nodeid, entry)
        else:  # a cancelled or failed call reports nothing; zcio counted what went out
            assert entry["zcio_sendfile"] >= entry["returned_plain"], (nodeid, entry)
    assert sum(e["returned_plain"] for e in ours.values()) > 10_000_000
    assert sum(1 for e in ours.values() if e["returned_plain"]) > 30
    # On the default loop, asyncio's own sendfile runs: zcio is not involved.
    assert not any(e.get("zcio_sendfile") for k, e in report.items() if "pyloop" in k)
