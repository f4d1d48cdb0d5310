"""uvicorn's own HTTP protocol test suite, from the sdist of the installed uvicorn, run against
zcio_uvicorn's protocols (tests/uvicorn_upstream/zcio_uvicorn_plugin.py swaps them in).

The sdist is fetched from PyPI once into the venv's upstream/ folder (.venv/upstream/, or
.venv-3.13/upstream/ ...: each venv holds the sdist of its own uvicorn); without network the
test is skipped with the reason, never failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CACHE = (Path(sys.prefix) if sys.prefix != sys.base_prefix else ROOT / ".venv") / "upstream"


def sdist(name: str) -> Path:
    wanted = version(name)
    tree = CACHE / f"{name}-{wanted}"
    if tree.is_dir():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--no-binary", ":all:", "--dest", str(CACHE), f"{name}=={wanted}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    archive = CACHE / f"{name}-{wanted}.tar.gz"
    if fetched.returncode != 0 or not archive.exists():
        pytest.skip(f"could not fetch the {name} {wanted} sdist: {fetched.stderr.strip()[-200:]}")
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return tree


@pytest.mark.timeout(420)  # one pip download and a subprocess of its own (timeout=300)
def test_uvicorn_protocol_suite_passes_against_zcio_uvicorn() -> None:
    tree = sdist("uvicorn")
    # uvicorn's sdists ship their tests from 0.31.0 on; zcio_uvicorn's floor is such a release.
    assert (tree / "tests" / "protocols" / "test_http.py").is_file(), f"no tests in {tree}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent / "uvicorn_upstream"))
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "tests/protocols/test_http.py", "-q"),
            *("-p", "zcio_uvicorn_plugin", "-p", "no:cacheprovider", "-o", "addopts=-rs"),
            # Upstream turns warnings into errors against the test tools it pinned; with the
            # floor's uvicorn (make test-lowest) today's websockets warns about its legacy API.
            # A deprecation in a test tool says nothing about the responses tested here.
            *("-W", "ignore::DeprecationWarning"),
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " failed" not in summary and " passed" in summary, summary
    # Every skip is upstream's own: a protocol zcio does not wrap (zttp), or a case upstream
    # declares impossible for httptools. None may come from zcio's classes.
    allowed = ("zttp not installed", "httptools never upgrades with the keep-alive timer armed")
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(any(reason in line for reason in allowed) for line in skipped), skipped
