"""The docs cannot drift: every code block of README.md and docs/*.md runs here.

Blocks are extracted from the Markdown (tests/_docs.py, which states the convention; so does
CONTRIBUTING.md), with only ports and paths substituted, and run in a fresh folder:

- ``python``: the program runs in its own interpreter and must exit 0; a program that serves
  (``serve_tcp(..., PORT)``, ``start_server(..., PORT)``) is started, asked for ``/big.iso``,
  and stopped;
- ``pycon``: each ``>>>`` runs (top-level ``await`` allowed) and its output must be the one shown;
- ``sh`` and ``console``: each command runs; servers (``zcio serve``, ``zcio proxy``,
  ``uvicorn``) are started, probed over loopback and stopped with SIGINT; ``console`` output
  must contain the lines shown (numbers and the kernel's release compared as "a number");
  ``pip install`` lines are checked against pyproject's extras, ``make T`` with ``make -n T``,
  ``zcio bench`` (minutes long) with its real argument parser, and synopses (``[--opt X]``)
  against ``--help``'s options;
- fragments (``<!-- docs-test: fragment -->``) are compiled and every zcio name in them must
  exist; signatures (``<!-- docs-test: signature -->``) must match ``inspect.signature``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import re
import shlex
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from _docs import (
    LANGUAGES,
    ROOT,
    Block,
    all_blocks,
    blocks,
    commands,
    console_steps,
    matches,
    ports,
    pycon_examples,
    substitute,
)

BIN = Path(sys.executable).parent
BIG = 4 << 20  # big.iso in the fixture folder: big enough for sendfile, quick to send
#: Paths the docs use for "your folder", replaced by the fixture folder.
PATHS = {"/srv/files": "{folder}"}
#: Commands that run until stopped, and how to ask them something.
SERVERS = {"zcio serve": "http", "zcio proxy": "echo", "uvicorn": "http"}
SERVERS["zcio-hypercorn"] = "hypercorn"  # an HTTP server, probed once it accepts
#: Servers asked for app.py's big.iso (not /): with zcio's protocols, /metrics must then show
#: that it went by sendfile.
BIG_ISO = ("uvicorn", "zcio-hypercorn")
START_S = 30.0
BLOCKS = all_blocks()


def _of(*languages: str, marker: str = "") -> list[Any]:
    return [
        pytest.param(b, id=b.id)
        for b in BLOCKS
        if b.language in languages and b.marker == marker and not b.include
    ]


# --- The convention itself ---------------------------------------------------------------------


def test_every_block_says_what_it_is() -> None:
    for b in BLOCKS:
        assert b.language in LANGUAGES, f"{b.id}: a fence needs one of {LANGUAGES}"
        if b.marker == "skip":
            assert b.reason, f"{b.id}: docs-test: skip needs a reason"
        if b.marker in ("fragment", "signature"):
            assert b.language == "python", f"{b.id}: {b.marker} is for python blocks"


def test_skips_are_rare() -> None:
    skipped = [b.id for b in BLOCKS if b.marker == "skip"]
    assert len(skipped) <= max(3, len(BLOCKS) // 10), skipped


def test_the_extractor_reads_markers_commands_and_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n<!-- docs-test: skip needs a GPU\n   and a moon -->\n\n```sh\n"
        "zcio serve \\\n  --port 8000   # a comment\nmake test\n```\n\n"
        "```console\n$ zcio probe big.iso\nzcio 0.1.0, Linux 6.1.2-x, Python 3.13.0\n...\n"
        "big.iso: regular file, 42 bytes\n```\n\n````pycon\n>>> 1 +\\\n... 1\n2\n````\n"
    )
    sh, console, pycon = blocks(page)
    assert (sh.marker, sh.reason, sh.line) == ("skip", "needs a GPU and a moon", 6)
    assert commands(sh.text) == ["zcio serve --port 8000", "make test"]
    assert ports(sh.text) == ({8000}, set())
    assert substitute(sh.text, {8000: 9999}, {}).startswith("zcio serve \\\n  --port 9999")
    (step,) = console_steps(console.text)
    assert step.command == "zcio probe big.iso"
    real = ["zcio 0.1.0, Linux 6.9.0-generic, Python 3.11.7", "", "Kernel:", "x",
            "big.iso: regular file, 4194304 bytes"]  # fmt: skip
    assert matches(step.output, real) is None
    assert matches(step.output, real[:-1]) is not None  # a shown line that is not printed
    assert matches(["Kernel:", "big.iso: regular file, 1 bytes"], real) is not None  # no "..."
    (example,) = pycon_examples(pycon.text)
    assert (example.source, example.want) == ("1 +\\\n1", ["2"])


@pytest.mark.parametrize("name", ["proxy_trio.py", "proxy_asyncio.py"])
def test_readme_shows_the_tested_example(name: str) -> None:
    assert (ROOT / "examples" / name).read_text() in (ROOT / "README.md").read_text()


def test_docs_snippet_includes_point_at_files() -> None:
    """Every ``--8<--`` include in docs/ names a file that exists (and survived formatting)."""
    for page in (ROOT / "docs").glob("*.md"):
        text = page.read_text()
        assert "--8 <" not in text, page
        for target in re.findall(r'^--8<-- "([^"]+)"$', text, re.MULTILINE):
            assert (ROOT / target).is_file(), (page, target)


# --- The fixture folder, echo servers, ports ---------------------------------------------------

APP = """\
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from zcio_starlette import StaticFiles, ZcioStats

app = Starlette(
    routes=[
        Route("/metrics", ZcioStats()),
        Mount("/", StaticFiles(directory=Path(__file__).parent)),
    ]
)
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """What the docs assume is around: ``big.iso``, ``app.py`` and ``examples/``."""
    (tmp_path / "big.iso").write_bytes(os.urandom(BIG))
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            while data := sock.recv(1 << 16):
                sock.sendall(data)


class _Drain(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            while sock.recv(1 << 16):
                pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def _echo_servers(
    block_ports: set[int], mapping: dict[int, int], echo: bool = False
) -> Iterator[None]:
    """A server on the substitute of each port the block only connects to: one that reads
    and discards (a client that sends a file and never reads), or with ``echo`` one that sends
    everything back (the target of a proxy)."""
    handler = _Echo if echo else _Drain
    servers = [_Server(("127.0.0.1", mapping[p]), handler) for p in block_ports]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


# --- Python programs ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("python"))
def test_python_program_runs(block: Block, folder: Path) -> None:
    listen, connect = ports(block.text)
    mapping = {p: _free_port() for p in listen | connect}
    program = folder / "program.py"
    program.write_text(substitute(block.text, mapping, _paths(folder)))
    cmd = f"{shlex.quote(sys.executable)} program.py"
    with _echo_servers(connect, mapping):
        if listen:
            (port,) = (mapping[p] for p in listen)
            output = _serve_and_probe(cmd, folder, port, "http", ["/big.iso"], {})[1]
            # Stopped by SIGINT: a KeyboardInterrupt traceback is how such a program ends.
            output = output if "KeyboardInterrupt" not in output else ""
        else:
            output = _run(cmd, folder)
    assert "Traceback" not in output, output


# --- Sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("pycon"))
def test_pycon_session_shows_real_output(block: Block, folder: Path) -> None:
    examples = pycon_examples(block.text)
    listen, connect = ports(block.text)
    mapping = {p: _free_port() for p in listen | connect}
    sources = [substitute(e.source, mapping, _paths(folder)) for e in examples]
    (folder / "session.json").write_text(json.dumps(sources))
    runner = Path(__file__).parent / "_pycon.py"
    with _echo_servers(connect, mapping):
        done = subprocess.run(
            [sys.executable, str(runner), "session.json"],
            cwd=folder,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    for example, real in zip(examples, outputs, strict=True):
        real_lines = _unsubstitute(real, mapping, folder).splitlines()
        where = f"{block.id}, >>> {example.source}"
        if not example.want:
            assert not real.strip(), f"{where}: the docs show no output, but it printed:\n{real}"
            continue
        problem = matches(example.want, real_lines)
        assert problem is None, f"{where}: {problem}\nreal output:\n{real}"
        assert (
            len([w for w in example.want if w.strip()]) >= len([r for r in real_lines if r.strip()])
            or "..." in example.want
        ), f"{where}: the docs show less than it prints:\n{real}"


# --- Fragments and signatures ------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("python", marker="fragment"))
def test_fragment_compiles_and_names_exist(block: Block) -> None:
    tree = compile(
        block.text, block.id, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = node.value.id
            if module == "zcio" or module.startswith("zcio_"):
                assert hasattr(import_module(module), node.attr), (
                    f"{block.id}: {module}.{node.attr}"
                )


@pytest.mark.parametrize("block", _of("python", marker="signature"))
def test_signature_is_the_real_one(block: Block) -> None:
    m = re.fullmatch(r"\s*(?:\w+(?:, \w+)* = )?(?:await )?([\w.]+)\((.*)\)\s*", block.text, re.S)
    assert m, f"{block.id}: a signature block is `name = await module.function(params)`"
    module, _, name = m.group(1).rpartition(".")
    func = getattr(import_module(module), name)
    shown = ast.parse(f"def f({m.group(2)}): pass").body[0]
    assert isinstance(shown, ast.FunctionDef)
    real = inspect.signature(func)
    args = shown.args
    named = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(named) - len(args.defaults)) + list(args.defaults)
    expected = [(a.arg, "positional", d) for a, d in zip(named, defaults, strict=True)]
    expected += [
        (a.arg, "keyword", d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.vararg:
        expected.insert(len(named), (args.vararg.arg, "var", None))
    got = []
    for p in real.parameters.values():
        kind = (
            "keyword"
            if p.kind is p.KEYWORD_ONLY
            else "var"
            if p.kind is p.VAR_POSITIONAL
            else "positional"
        )
        got.append((p.name, kind, p.default))
    assert [(n, k) for n, k, _ in expected] == [(n, k) for n, k, _ in got], block.id
    for (n, _, shown_default), (_, _, real_default) in zip(expected, got, strict=True):
        if shown_default is None:
            assert real_default is inspect.Parameter.empty, f"{block.id}: {n} has a default"
        else:
            assert ast.literal_eval(shown_default) == real_default, f"{block.id}: {n}"


# --- Commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("sh"))
def test_shell_commands_run(block: Block, folder: Path) -> None:
    for command in commands(block.text):
        for part in command.split(" && "):
            _check_command(part.strip(), folder, [])


@pytest.mark.parametrize("block", _of("console"))
def test_console_shows_real_output(block: Block, folder: Path) -> None:
    for step in console_steps(block.text):
        output = _check_command(step.command, folder, step.output)
        problem = matches(step.output, output.splitlines())
        assert problem is None, f"{block.id}, $ {step.command}: {problem}\nreal output:\n{output}"


def _paths(folder: Path) -> dict[str, str]:
    return {k: v.format(folder=folder) for k, v in PATHS.items()}


def _unsubstitute(text: str, mapping: dict[int, int], folder: Path) -> str:
    """Real output in the docs' terms: the fixture folder back to the docs' path."""
    for doc_path, real in _paths(folder).items():
        text = text.replace(real, doc_path)
    return text


def _check_command(command: str, folder: Path, shown: list[str]) -> str:
    """Run (or check) one documented command; its output, in the docs' terms."""
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        _check_pip(words[2:])
        return ""
    if words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        return ""
    if words[0] == "zcio" and _is_synopsis(command):
        _check_synopsis(command)
        return ""
    if words[:2] == ["zcio", "bench"]:
        _check_bench(words[2:])
        return ""
    listen, connect = ports(command)
    mapping = {p: _free_port() for p in listen | connect}
    real = substitute(command, mapping, _paths(folder))
    server = next((kind for prefix, kind in SERVERS.items() if command.startswith(prefix)), None)
    with _echo_servers(connect, mapping, echo=server == "echo"):
        if server is None:
            output = _run(real, folder)
        else:
            env: dict[str, str] = {}
            if listen:
                (port,) = (mapping[p] for p in listen)
            else:  # the command's default port, replaced
                port = _free_port()
                if command.startswith("uvicorn"):
                    env["UVICORN_PORT"] = str(port)
                else:
                    real += f" --port {port}"
            paths = ["/", *re.findall(r'"GET (\S+) HTTP', "\n".join(shown))]
            if command.startswith(BIG_ISO):
                paths = ["/big.iso"]
            zero_copy = "zcio_uvicorn" in command or command.startswith("zcio-hypercorn")
            check = _zero_copy_counted if zero_copy else None
            status, output = _serve_and_probe(real, folder, port, server, paths, env, check)
            if command.startswith("zcio"):
                assert status == 0, f"{command}: exit status {status} after SIGINT\n{output}"
    assert "Traceback" not in output, f"{command}:\n{output}"
    return _unsubstitute(output, mapping, folder)


def _run(command: str, folder: Path) -> str:
    """Run ``command`` to its end (two minutes at most). In a session of its own, so that a
    command still running then is killed with everything it started (a server's workers)."""
    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=folder,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{command}: still running after 120 s\n{out}") from None
    assert proc.returncode == 0, f"{command}: exit status {proc.returncode}\n{out}"
    return out


def _serve_and_probe(
    command: str,
    folder: Path,
    port: int,
    kind: str,
    paths: list[str],
    env: dict[str, str],
    check: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Start ``command``, wait for ``port``, ask it, stop it with SIGINT: (status, output)."""
    proc = subprocess.Popen(
        shlex.split(command),  # no shell between: SIGINT must reach the server itself
        cwd=folder,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, b"")))  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, f"{command} exited early:\n{b''.join(chunks).decode()}"
            # hypercorn binds in its parent process and listens in the worker it spawns.
            if _listening(port) and (kind != "hypercorn" or _accepting(port)):
                break
            assert time.monotonic() < deadline, f"{command} never listened on {port}"
            time.sleep(0.1)
        if kind == "echo":
            _echo_through(port)
        else:
            for path in paths:
                _http_get(port, path)
        if check is not None:
            check(port)
    finally:
        status = _stop(proc)
        reader.join(10)
        proc.stdout.close()
    return status, b"".join(chunks).decode(errors="replace")


def _listening(port: int) -> bool:
    """Whether something listens on ``port``, found without connecting: a connection that
    closes at once could end a small example server whose handler does not expect it."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _zero_copy_counted(port: int) -> None:
    """app.py's ``/metrics`` (``zcio_starlette.ZcioStats``): big.iso went by sendfile."""
    metrics = _http_get(port, "/metrics")
    assert "zero-copy file responses here: on" in metrics, metrics
    sent = re.search(r'zcio_bytes_total\{method="sendfile"\} (\d+)', metrics)
    assert sent and int(sent[1]) >= BIG, metrics


def _stop(proc: subprocess.Popen[bytes]) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -9


def _http_get(port: int, path: str) -> str:
    """``GET path`` (``Connection: close``); the whole response must arrive, status 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1:2] == [b"200"], head
    if path.endswith("big.iso"):
        assert len(body) == BIG, len(body)
    return body.decode(errors="replace")


def _echo_through(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"ping through the proxy")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    assert data == b"ping through the proxy"


# --- Checked, not run --------------------------------------------------------------------------


def _check_pip(requirements: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    for req in requirements:
        m = re.fullmatch(r"(\w[\w.-]*)(?:\[([\w,-]+)\])?", req)
        assert m, f"pip install {req}: not a requirement the docs should show"
        assert m[1] == project["name"], f"pip install {req}: not this project"
        for extra in (m[2] or "").split(","):
            assert not extra or extra in extras, f"pip install {req}: no extra {extra!r}"


def _parser_for(sub: str) -> Any:
    from zcio_cli import _parser

    parser = _parser()
    commands_action = next(a for a in parser._actions if a.dest == "command")
    return commands_action.choices[sub]  # type: ignore[index]


def _is_synopsis(command: str) -> bool:
    return bool(re.search(r"\[|\||\b[A-Z]{2,}\b", command))


def _check_synopsis(command: str) -> None:
    """Every option of the subcommand is in the synopsis, and nothing else; choices too."""
    words = command.split()
    parser = _parser_for(words[1])
    real = {
        opt: action
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", command))
    assert shown == set(real), (
        f"{command}\n  missing: {set(real) - shown}, unknown: {shown - set(real)}"
    )
    for opt, action in real.items():
        if action.choices:
            m = re.search(rf"{opt}[ =]([\w|]+)", command)
            if m and "|" in m[1]:
                assert set(m[1].split("|")) == set(action.choices), f"{command}: {opt}"


def _check_bench(argv: list[str]) -> None:
    """``zcio bench`` takes minutes: its arguments go through the real parser and checks."""
    from zcio_cli._bench_table import GROUPS

    args = _parser_for("bench").parse_args(argv)
    assert all(g in GROUPS for g in args.groups), argv
