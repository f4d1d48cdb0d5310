"""The open-file cache behind ``zcio serve`` (zcio_starlette.StaticFiles on zcio_uvicorn), over
real loopback HTTP, a server subprocess per test: files replaced while many clients read them,
fds bounded while distinct files are asked for, ``EMFILE`` recovered from under a low
``RLIMIT_NOFILE``, and the symlink-swap race with the default ``ttl``.

Load is scaled to the CI budget: 200 connections at once, 5 requests each (1,000 requests),
while a thread renames new versions over the files in a loop. Bounded loops; loopback only.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path

import pytest

from _cli import TIMEOUT, Command
from _support import INSIDE, SECRET, Swapper, make_root
from test_file_cache import Versions, etag_of

CONNECTIONS, REQUESTS = 200, 5


def serve(root: Path, *args: str, max_fds: int | None = None) -> tuple[Command, int]:
    command = Command(["serve", str(root), "--port", "0", *args], max_fds=max_fds)
    port = command.port()
    command.wait_for("Application startup complete")
    return command, port


async def fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, dict[bytes, bytes], bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


def no_traceback(command: Command) -> None:
    output = command.output
    at = output.find("Traceback")
    assert at < 0, output[at : at + 3000]


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize(
    ("loop", "cache"), [("asyncio", "on"), ("uvloop", "on"), ("asyncio", "off")]
)
def test_files_replaced_under_load_every_body_whole_and_its_own(
    tmp_path: Path, loop: str, cache: str
) -> None:
    """Every reply is whole and the version its own ETag and Content-Length describe, while
    versions are renamed over the names as fast as a thread can: old whole or new whole.
    Cache off too: the uncached StaticFiles compared only the inode of the file it looked up
    with the file it opened, and a new version can get the old one's freed inode number."""
    root = tmp_path / "root"
    root.mkdir()
    files = {f"/s{i}.txt": Versions(root / f"s{i}.txt", 1000 + 97 * i) for i in range(12)}
    files.update({f"/l{i}.bin": Versions(root / f"l{i}.bin", 40_000 + i) for i in range(4)})
    command, port = serve(
        root,
        "--cache-ttl",
        "0.02",
        "--loop",
        loop,
        *(["--cache-files", "0"] if cache == "off" else []),
    )
    stop = threading.Event()
    replaced = [0]

    def replace_in_a_loop() -> None:
        chooser = random.Random(5)
        names = sorted(files)
        while not stop.is_set():
            files[chooser.choice(names)].replace()
            replaced[0] += 1
            time.sleep(0.001)

    async def client(n: int) -> list[str]:
        problems = []
        chooser = random.Random(n)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(REQUESTS):
                path = chooser.choice(sorted(files))
                try:
                    status, headers, body = await fetch(reader, writer, path)
                except asyncio.IncompleteReadError as exc:
                    problems.append(
                        f"{path}: short, {len(exc.partial)} of {exc.expected} bytes"
                        f" {exc.partial[:12]!r}"
                    )
                    break
                versions = files[path]
                if status != 200:
                    problems.append(f"{path}: {status}")
                elif headers.get(b"etag") not in versions.by_etag:
                    problems.append(f"{path}: an ETag of no version")
                elif versions.by_etag[headers[b"etag"]] != body:
                    want = versions.by_etag[headers[b"etag"]]
                    problems.append(
                        f"{path}: a body not its ETag's ({len(body)} bytes: {body[:12]!r}"
                        f" for {want[:12]!r}, {len(want)})"
                    )
        finally:
            writer.close()
        return problems

    async def everyone() -> list[str]:
        results = await asyncio.wait_for(
            asyncio.gather(*(client(n) for n in range(CONNECTIONS))), 120
        )
        return [problem for problems in results for problem in problems]

    replacer = threading.Thread(target=replace_in_a_loop, daemon=True)
    replacer.start()
    try:
        problems = asyncio.run(everyone())
    finally:
        stop.set()
        replacer.join(TIMEOUT)
        command.stop()
    assert replaced[0] > 0
    assert problems == [], (problems[:10], command.output[-5000:])
    no_traceback(command)


def test_fds_bounded_while_distinct_files_are_asked_for(tmp_path: Path) -> None:
    """600 distinct files sent from their fds, a cache of 32: the server's fds stay bounded."""
    root = tmp_path / "root"
    root.mkdir()
    for i in range(600):
        (root / f"f{i}.bin").write_bytes(i.to_bytes(2, "big") * 10_000)
    command, port = serve(root, "--cache-files", "32", "--cache-ttl", "60")
    try:
        pid = command.proc.pid

        async def ask_all() -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            most = 0
            try:
                await fetch(reader, writer, "/f0.bin")  # the folders' fds, the first thread
                base = fds_of(pid)
                for i in range(600):
                    status, _, body = await fetch(reader, writer, f"/f{i}.bin")
                    assert status == 200 and body == i.to_bytes(2, "big") * 10_000
                    most = max(most, fds_of(pid) - base)
            finally:
                writer.close()
            return most

        most = asyncio.run(ask_all())
        assert most <= 32 + 4, most  # the cache's 32, and a few of the server's own
    finally:
        command.stop()
    no_traceback(command)


def test_emfile_is_recovered_from(tmp_path: Path) -> None:
    """A cache allowed more files than the process has fds (RLIMIT_NOFILE 256): when opens
    fail with EMFILE it closes its idle fds and opens again; every file is served whole."""
    root = tmp_path / "root"
    root.mkdir()
    for i in range(400):
        (root / f"f{i}.bin").write_bytes(i.to_bytes(2, "big") * 10_000)
    command, port = serve(
        root, "--cache-files", "100000", "--cache-ttl", "60", "--max-connections", "16",
        max_fds=256,
    )  # fmt: skip
    try:

        async def ask_all() -> list[int]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            statuses = []
            try:
                for _round in range(2):
                    for i in range(400):
                        status, _, body = await fetch(reader, writer, f"/f{i}.bin")
                        assert body == (i.to_bytes(2, "big") * 10_000 if status == 200 else body)
                        statuses.append(status)
            finally:
                writer.close()
            return statuses

        statuses = asyncio.run(ask_all())
        assert set(statuses) == {200}
    finally:
        command.stop()
    no_traceback(command)


def test_symlink_swap_race_with_the_default_ttl_never_serves_outside(tmp_path: Path) -> None:
    """tests/test_hostile_serve.py's race, with the cache at its default ttl: files are opened
    beneath the folder's descriptor whether cached or not, so zero bytes from outside."""
    root = make_root(tmp_path)
    command, port = serve(root)
    counts = {"inside": 0, "leaked": 0, "other": 0}
    try:

        async def hammer() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            deadline = time.monotonic() + 3.0
            try:
                while time.monotonic() < deadline:
                    status, _, body = await fetch(reader, writer, "/swap")
                    if SECRET in body:
                        counts["leaked"] += 1
                    elif status == 200 and body == INSIDE:
                        counts["inside"] += 1
                    else:
                        counts["other" if status != 404 else "inside"] += 0 if status == 404 else 1
            finally:
                writer.close()

        with Swapper(root, "swap", "symlink"):
            asyncio.run(hammer())
    finally:
        command.stop()
    assert counts["leaked"] == 0, counts
    assert counts["inside"] > 0 and counts["other"] == 0, counts
    no_traceback(command)


def test_etag_helper_is_starlettes(tmp_path: Path) -> None:
    """The check above relies on etag_of computing Starlette's ETag."""
    from starlette.responses import FileResponse

    path = tmp_path / "x"
    path.write_bytes(b"abc")
    st = os.stat(path)
    assert FileResponse(path, stat_result=st).headers["etag"].encode() == etag_of(st)
