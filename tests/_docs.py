"""Every code block of README.md and docs/*.md, extracted, so that tests/test_docs.py can run it.

The convention (CONTRIBUTING.md says it for writers):

- Every fence has a language: ``python``, ``pycon``, ``sh``, ``console``, or ``text`` (a
  diagram, a listing: never run).
- ``python``: a program, run in a fresh interpreter; ``pycon``: ``>>>`` sessions, run in a
  fresh interpreter (top-level ``await`` allowed), each output compared with the one shown;
  ``sh``: one command a line; ``console``: ``$ command`` lines followed by their output, compared.
- An HTML comment just before the fence changes that: ``<!-- docs-test: skip REASON -->``
  (not run; the reason is required), ``<!-- docs-test: fragment -->`` (a piece of a program:
  compiled, and every ``zcio``/``zcio_*`` attribute it names must exist), ``<!-- docs-test:
  signature -->`` (``name = await module.function(params)``: compared with the real
  signature).
- Only ports and paths are substituted: each port a block uses gets a free one (a port the
  block only connects to gets an echo server), and the block runs in a folder holding
  ``big.iso``, ``app.py`` (a Starlette app on ``zcio_starlette``) and ``examples/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("python", "pycon", "sh", "console", "text")
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|fragment|signature)\b\s*(.*?)\s*-->", re.DOTALL)
FENCE = re.compile(r"^(`{3,})(\S*)[^\n]*$")


def pages() -> list[Path]:
    """README.md and every docs/*.md: a new page is covered without being listed anywhere."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: str = ""  # "", "skip", "fragment" or "signature"
    reason: str = ""
    include: str = field(default="")  # the file of a ``--8<--`` include, if it is one

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the marker in the comment just before each."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, language = m.group(1), m.group(2)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), len(lines))
        text = "\n".join(lines[i + 1 : end]) + "\n"
        before = _comment_before(lines, i)
        marker = MARKER.search(before) if before else None
        include = re.fullmatch(r'--8<-- "([^"]+)"\n', text) or _copy_of_example(text)
        found.append(
            Block(
                page,
                i + 1,
                language,
                text,
                marker.group(1) if marker else "",
                " ".join(marker.group(2).split()) if marker else "",
                include.group(1) if include else "",
            )
        )
        i = end + 1
    return found


def _copy_of_example(text: str) -> re.Match[str] | None:
    """A block that is an examples/ file word for word counts as an include of it: the
    example's own tests run it (the README cannot include files, so it copies them)."""
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.read_text() == text:
            return re.fullmatch(r"(.*)", f"examples/{example.name}")
    return None


def _comment_before(lines: list[str], fence: int) -> str:
    """The HTML comment ending on the line just before ``fence`` (blank lines allowed)."""
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("-->"):
        return ""
    start = j
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    return "\n".join(lines[max(start, 0) : j + 1])


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]


# --- Commands ----------------------------------------------------------------------------------


def commands(text: str) -> list[str]:
    """The commands of an ``sh`` block: one a line, ``\\`` continues, ``#`` comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = pending + line
        pending = ""
        if line:
            out.append(line)
    return out


@dataclass
class Step:
    """One ``$ command`` of a ``console`` block and the output shown under it."""

    command: str
    output: list[str]


def console_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:].strip(), []))
        elif steps:
            steps[-1].output.append(line)
    return steps


# --- Sessions ----------------------------------------------------------------------------------


@dataclass
class Example:
    """One ``>>>`` statement of a ``pycon`` block (with its ``...`` lines) and its output."""

    source: str
    want: list[str]
    line: int


def pycon_examples(text: str) -> list[Example]:
    examples: list[Example] = []
    for n, line in enumerate(text.splitlines()):
        if line.startswith(">>> ") or line == ">>>":
            examples.append(Example(line[4:], [], n))
        elif (line.startswith("... ") or line == "...") and examples and not examples[-1].want:
            examples[-1].source += "\n" + line[4:]
        elif examples:
            examples[-1].want.append(line)
    for ex in examples:
        while ex.want and not ex.want[-1].strip():
            ex.want.pop()
    return examples


# --- Ports and paths ---------------------------------------------------------------------------

#: Where a port number sits in a command or a program, and whether the block listens there.
_LISTEN = [
    re.compile(r"--listen\s+(?:127\.0\.0\.1|localhost|\[::1\]):(\d{2,5})\b"),
    re.compile(r"--port\s+(\d{2,5})\b"),
    re.compile(r"--bind\s+(?:127\.0\.0\.1|localhost):(\d{2,5})\b"),  # hypercorn's
    re.compile(r"serve_tcp\b[^)\n]*?,\s*(\d{2,5})\b"),
    re.compile(r"start_server\([^)]*?\"127\.0\.0\.1\",\s*(\d{2,5})\b"),
]
_ANY = [
    re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d{2,5})\b"),
    re.compile(r"\"127\.0\.0\.1\",\s*(\d{2,5})\b"),
    *_LISTEN,
]


def ports(text: str) -> tuple[set[int], set[int]]:
    """The ports ``text`` uses: (those it listens on, those it only connects to)."""
    listen = {int(m) for rx in _LISTEN for m in rx.findall(text)}
    used = {int(m) for rx in _ANY for m in rx.findall(text)}
    return listen, used - listen


def substitute(text: str, mapping: dict[int, int], paths: dict[str, str]) -> str:
    """``text`` with each port of ``mapping`` and each path of ``paths`` replaced."""
    for old, new in paths.items():
        text = text.replace(old, new)
    if not mapping:
        return text
    pattern = "|".join(rx.pattern for rx in _ANY)

    def port_in(m: re.Match[str]) -> str:
        whole = m.group(0)
        number = next(g for g in m.groups() if g)
        start = m.start(m.groups().index(number) + 1) - m.start()
        new = str(mapping.get(int(number), int(number)))
        return whole[:start] + new + whole[start + len(number) :]

    return re.sub(pattern, port_in, text)


# --- Comparing output --------------------------------------------------------------------------

_VOLATILE = [
    (re.compile(r"Linux [^,\s]+"), "Linux N"),  # the kernel's release string
    (re.compile(r"\d+(?:[,._]\d+)*"), "N"),  # sizes, counts, ports, fds, pids, versions, times
    (re.compile(r"[ \t]+"), " "),  # column alignment
]


def normalize(line: str) -> str:
    """A line of output with what varies from run to run made equal: every number, the
    kernel's release, runs of blanks."""
    for rx, new in _VOLATILE:
        line = rx.sub(new, line)
    return line.strip()


def matches(shown: list[str], real: list[str]) -> str | None:
    """``None`` if the ``shown`` lines are in ``real``: consecutive, in order, after
    :func:`normalize`; a ``...`` line stands for any number of lines. Else what is missing."""
    want = [normalize(s) for s in shown]
    have = [normalize(r) for r in real]
    pos = 0
    gap = True  # the first line may be anywhere
    for line in want:
        if line == "...":
            gap = True
            continue
        if not line:
            continue
        try:
            found = have.index(line, pos) if gap else (pos if have[pos : pos + 1] == [line] else -1)
        except ValueError:
            found = -1
        if found < 0:
            # Blank lines in the real output do not count as lines between two shown ones.
            while not gap and pos < len(have) and not have[pos]:
                pos += 1
            if not gap and have[pos : pos + 1] == [line]:
                found = pos
            else:
                return f"not in the real output (or not at this place): {line!r}"
        pos = found + 1
        gap = False
    return None
