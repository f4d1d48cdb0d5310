"""The "lowest versions" install: every dependency zcio declares, at its floor.

``python .ci/lowest.py constraints`` prints one ``name==floor`` pip constraint for each
``name>=floor`` in ``[project] dependencies`` and in every extra but ``dev`` (environment
markers kept). A runtime requirement without a ``>=`` floor is an error: it would claim every
version ever released.

``python .ci/lowest.py requirements`` prints what to install with them: zcio with the extras
``dev`` names, and the ``dev`` tools except those in ``LEFT_OUT``, which cannot be installed
beside the floors (their tests skip, saying the package is not installed).

``make test-lowest`` installs both into ``.venv-lowest`` and runs the suite there, so every
floor zcio declares is one the suite has passed on.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")

# Test tools that require more than zcio's floors, and what the lowest run loses without them.
LEFT_OUT = {
    "anycorn": "needs anyio>=4.10; the anycorn interop tests skip",
    "httpx2": "needs anyio>=4.10; Starlette's own tests (tests/starlette_upstream) skip",
}


def _parse(requirement: str) -> tuple[str, str, str, str]:
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"cannot read the requirement {requirement!r}")
    name, extras, specifiers, marker = match.groups()
    return name, extras or "", specifiers, marker or ""


def constraints(project: dict[str, Any]) -> list[str]:
    wanted: list[str] = list(project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra != "dev":
            wanted.extend(requirements)
    lines: list[str] = []
    for requirement in wanted:
        name, _extras, specifiers, marker = _parse(requirement)
        if name == project["name"]:  # zcio[starlette,uvicorn]: those extras are listed too
            continue
        floor = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip()[:2] == ">="]
        if len(floor) != 1:
            raise SystemExit(f"{requirement!r} declares no single >= floor")
        lines.append(f"{name}=={floor[0]} {marker}".strip())
    return lines


def requirements(project: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for requirement in project["optional-dependencies"]["dev"]:
        name, extras, _specifiers, _marker = _parse(requirement)
        if name == project["name"]:
            lines.insert(0, f"-e .{extras}")
        elif name not in LEFT_OUT:
            lines.append(requirement)
    return lines


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    pyproject = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("pyproject.toml")
    project = tomllib.loads(pyproject.read_text())["project"]
    if what == "constraints":
        print("\n".join(constraints(project)))
    elif what == "requirements":
        print("\n".join(requirements(project)))
    else:
        raise SystemExit("usage: lowest.py constraints|requirements [pyproject.toml]")


if __name__ == "__main__":
    main()
