"""What every upstream-suite test shares: the installed package's sdist, and a run of its own
tests in which a test that fails is retried once, alone.

The sdist of the installed version is fetched from PyPI once into the venv's ``upstream/``
folder (``.venv/upstream/``, ``.venv-3.13/upstream/`` ...: each venv holds the sdists of its
own packages); without network the calling test is skipped with the reason, never failed.
Nothing fetched is committed.

Why a retry: some upstream tests measure time (Django's ASGI tests sleep 0.1 s and expect
silence; Tornado's and hypercorn's have timeouts of their own). On a loaded 2-core CI machine
such a test can fail once for reasons that say nothing about zcio. ``run_suite`` runs the whole
selection; if some tests failed, it runs each failed test again alone, and prints both results
(the whole run's summary and each retry's). The suite counts as passed only if every test that
failed passed alone; a test that fails twice fails the run, so no real failure is hidden. When
more than ``MAX_RETRIES`` tests fail, nothing is retried: that is not timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CACHE = (Path(sys.prefix) if sys.prefix != sys.base_prefix else ROOT / ".venv") / "upstream"

# More failures than this in one run are not a timing flake: they are reported as they are.
MAX_RETRIES = 3

#: For a suite that uses neither: zcio's venv has pytest-asyncio and pytest-trio (hypercorn's
#: suite needs them), and their plugins load in every pytest process unless turned off; under a
#: suite that makes warnings errors, pytest-asyncio's configuration warning alone ends the run.
WITHOUT_ASYNC_PLUGINS = ("-p", "no:asyncio", "-p", "no:trio")


def sdist(name: str, wanted: str | None = None) -> Path:
    """The extracted sdist of ``name`` (its installed version unless ``wanted``), fetched once.

    Skips the calling test, with pip's reason, when it cannot be downloaded.
    """
    wanted = wanted or version(name)
    for tree in (CACHE / f"{name}-{wanted}", CACHE / f"{name.replace('-', '_')}-{wanted}"):
        if tree.is_dir():
            return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        fetched = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--disable-pip-version-check", "--timeout", "20", "--retries", "1"),
                *("--no-binary", ":all:", "--dest", str(CACHE), f"{name}=={wanted}"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip download of the {name} {wanted} sdist timed out (network?)")
    archives = [
        path
        for stem in {name, name.replace("-", "_"), name.replace("_", "-")}
        for path in [CACHE / f"{stem}-{wanted}.tar.gz"]
        if path.exists()
    ]
    if fetched.returncode != 0 or not archives:
        pytest.skip(f"could not fetch the {name} {wanted} sdist: {fetched.stderr.strip()[-200:]}")
    with tarfile.open(archives[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(CACHE, filter="data")
    return CACHE / top


# "FAILED tests/x.py::test_y[a] - AssertionError: ..." / "ERROR tests/x.py::test_z"
_PYTEST_FAILURE = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.MULTILINE)
# unittest (Django's runtests, Tornado's runtests): "FAIL: test_y (mod.Class.test_y)" on 3.11+,
# "FAIL: test_y (mod.Class)" before; "ERROR: setUpClass (mod.Class)" for a class-level error.
_UNITTEST_FAILURE = re.compile(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)", re.MULTILINE)


def pytest_failures(output: str) -> list[str]:
    """The node ids a pytest run reported as FAILED or ERROR (run it with ``-rfE``)."""
    return list(dict.fromkeys(_PYTEST_FAILURE.findall(output)))


def unittest_failures(output: str) -> list[str]:
    """The dotted labels (``module.Class.test``) a unittest run reported as FAIL or ERROR."""
    labels: list[str] = []
    for name, where in _UNITTEST_FAILURE.findall(output):
        if name in {"setUpClass", "tearDownClass", "setUpModule", "tearDownModule"}:
            label = where.rsplit(".", 1)[0] if where.endswith(f".{name}") else where
        else:
            label = where if where.endswith(f".{name}") else f"{where}.{name}"
        labels.append(label)
    return list(dict.fromkeys(labels))


@dataclass
class SuiteRun:
    """A whole run of an upstream selection, and the retry of each test that failed in it."""

    first: subprocess.CompletedProcess[str]
    failed: list[str] = field(default_factory=list)
    retries: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    @property
    def output(self) -> str:
        """The whole run's stdout and stderr."""
        return self.first.stdout + self.first.stderr

    @property
    def passed(self) -> bool:
        """The whole run passed, or every test that failed in it passed when run alone."""
        if self.first.returncode == 0:
            return True
        return (
            bool(self.failed)
            and len(self.retries) == len(self.failed)
            and all(retry.returncode == 0 for retry in self.retries.values())
        )

    def report(self) -> str:
        """What to show when the suite did not pass: the run's tail and every retry's."""
        parts = [self.output[-4000:]]
        for test, retry in self.retries.items():
            parts.append(f"--- {test} alone (exit {retry.returncode}):")
            parts.append((retry.stdout + retry.stderr)[-2000:])
        return "\n".join(parts)


def run_suite(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    failures: Callable[[str], list[str]],
    alone: Callable[[str], Sequence[str]],
    retry_timeout: float = 120,
) -> SuiteRun:
    """Run ``command``; retry each test that ``failures`` finds in its output, alone, once.

    ``alone(test)`` is the command that runs that one test. Both results are printed (the
    captured output pytest shows on failure) and, when a retry passed, also given as a warning
    in the calling run's summary, so a flake that was forgiven is still seen in CI's log.
    """
    first = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    run = SuiteRun(first)
    tail = first.stdout.strip().splitlines()[-1:] or first.stderr.strip().splitlines()[-1:]
    print(f"upstream run: exit {first.returncode}: {' '.join(tail)}")
    if first.returncode == 0:
        return run
    run.failed = failures(run.output)
    if not run.failed or len(run.failed) > MAX_RETRIES:
        return run
    for test in run.failed:
        retry = subprocess.run(
            list(alone(test)),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=retry_timeout,
        )
        run.retries[test] = retry
        said = "passed" if retry.returncode == 0 else f"FAILED again (exit {retry.returncode})"
        print(f"upstream retry of {test} alone: {said}")
    if run.passed:
        warnings.warn(
            f"upstream tests failed in the whole run and passed alone: {', '.join(run.failed)}",
            stacklevel=2,
        )
    return run
