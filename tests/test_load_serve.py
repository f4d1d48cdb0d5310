"""``zcio serve`` under load: 300 connections at once, with faults among them.

The clients are asyncio streams on one loop of this process. All 300 connect first, and send
their requests only once every one of them is connected (the server then holds 300
connections); then, by a seeded draw:

- ``full``: a GET of a whole file, its body checked by hash;
- ``slow``: the same with a 16 KiB receive window, read 16 KiB every 10 ms;
- ``vanish``: a GET of the largest file, reset (RST) after part of the body;
- ``abort``: a GET of the largest file, reset as soon as it is sent (before any answer);
- ``pipelined``: three requests in one write on a keep-alive connection (a whole file, a
  Range, another whole file), three answers read in order;
- ``range``: a single Range (``a-b`` or a suffix ``-n``), 206 and the exact slice.

Afterwards: the server's sockets are back to the listener's, its RSS growth is bounded
(generous), it still serves, and its exit summary counts at least every complete body's bytes
as sent by ``sendfile`` (none copied through user space).
"""

from __future__ import annotations

import asyncio
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from _cli import Command, moved
from _load import TIMEOUT, Watch, close, connect, fd_targets, reset, sha, snapshot

# Each wait inside is bounded; on a busy shared machine a test may take a minute or two.
pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]

CLIENTS = 300
FILES = {"large.bin": 3 << 20, "medium.bin": 512 << 10, "small.bin": 64 << 10, "tiny.txt": 4096}
ROLES = (
    ["full"] * 110
    + ["abort"] * 10
    + ["slow"] * 40
    + ["vanish"] * 50
    + ["pipelined"] * 50
    + ["range"] * 40
)


class Gate:
    """Clients wait at it until every one has arrived (connected) and the server's sockets were
    counted; only then does any of them send (an aborting one must not close too early)."""

    def __init__(self, parties: int) -> None:
        self.parties, self.arrived = parties, 0
        self.full, self.go = asyncio.Event(), asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.full.set()
        await asyncio.wait_for(self.go.wait(), TIMEOUT)


@dataclass
class Request:
    path: str
    range: tuple[int | None, int | None] | None = None  # (first, last) or (None, suffix)

    def head(self) -> bytes:
        lines = [f"GET /{self.path} HTTP/1.1", "Host: 127.0.0.1"]
        if self.range is not None:
            first, last = self.range
            lines.append(f"Range: bytes={'' if first is None else first}-{last}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def expected(self, files: dict[str, bytes]) -> tuple[int, bytes]:
        body = files[self.path]
        if self.range is None:
            return 200, body
        first, last = self.range
        assert last is not None
        if first is None:
            return 206, body[-last:]
        return 206, body[first : last + 1]


@dataclass
class Client:
    role: str
    requests: list[Request]
    vanish_after: int = 0
    complete_bytes: int = 0  # bytes of bodies received whole and checked
    outcome: str = ""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), body


async def run_client(client: Client, port: int, files: dict[str, bytes], barrier: Gate) -> None:
    slow = client.role == "slow"
    reader, writer = await connect(port, rcvbuf=16 << 10 if slow else None)
    try:
        await barrier.wait()
        writer.write(b"".join(r.head() for r in client.requests))  # pipelined: all at once
        if client.role == "abort":
            reset(writer)
            client.outcome = "vanished"
            return
        if client.role == "vanish":
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            got = 0
            while got < client.vanish_after:
                got += len(await reader.read(client.vanish_after - got))
            reset(writer)
            client.outcome = "vanished"
            return
        for request in client.requests:
            if slow:  # read the head, then the body 16 KiB at a time, pausing
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = bytearray()
                while len(body) < length:
                    body += await reader.read(min(16 << 10, length - len(body)))
                    await asyncio.sleep(0.01)
                status = int(head.split()[1])
            else:
                status, whole = await read_response(reader)
                body = bytearray(whole)
            want_status, want = request.expected(files)
            assert status == want_status and sha(body) == sha(want), (client.role, request)
            client.complete_bytes += len(body)
        client.outcome = "whole"
    finally:
        if client.outcome != "vanished":
            await close(writer)


def make_clients(seed: str, files: dict[str, bytes]) -> list[Client]:
    rng = random.Random(seed)
    roles = ROLES[:]
    rng.shuffle(roles)
    names = list(FILES)

    def a_range() -> Request:
        name = rng.choice(names[:3])
        size = len(files[name])
        if rng.random() < 0.25:
            return Request(name, (None, rng.randrange(1, size)))
        first = rng.randrange(0, size - 1)
        return Request(name, (first, rng.randrange(first, size)))

    clients = []
    for role in roles:
        if role in ("vanish", "abort"):
            client = Client(role, [Request("large.bin")], rng.randrange(1, 1 << 20))
        elif role == "pipelined":
            three = [Request(rng.choice(names)), a_range(), Request(rng.choice(names))]
            client = Client(role, three)
        elif role == "range":
            client = Client(role, [a_range()])
        elif role == "slow":
            client = Client(role, [Request(rng.choice(names[:2]))])
        else:
            client = Client(role, [Request(rng.choice(names))])
        clients.append(client)
    return clients


VARIANTS = {
    "uvloop-httptools": ["--loop", "uvloop", "--http", "httptools"],
    "asyncio-h11": ["--loop", "asyncio", "--http", "h11"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_three_hundred_downloads_at_once_with_faults(
    variant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"serve-{variant}")
    files = {name: rng.randbytes(size) for name, size in FILES.items()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    clients = make_clients(f"serve-{variant}", files)
    # The clients connect, then wait until all 300 are connected before sending a head: more
    # than the default --head-timeout (10 s) may pass on a busy machine.
    options = [*VARIANTS[variant], "--head-timeout", "60"]
    command = Command(["serve", str(tmp_path), "--port", "0", *options])
    try:
        port = command.port()
        command.wait_for("Application startup complete")
        pid = command.proc.pid

        first = fd_targets(pid)

        async def main() -> tuple[Watch, int]:
            barrier = Gate(len(clients))
            with Watch(pid) as watch:
                before = watch.before
                assert before is not None
                clients_done = asyncio.gather(
                    *(run_client(c, port, files, barrier) for c in clients)
                )
                # Every client connected: the server holds them all at once.
                await asyncio.wait_for(barrier.full.wait(), TIMEOUT)
                while (at_once := snapshot(pid).sockets) < len(clients) + before.sockets:
                    await asyncio.sleep(0.05)  # accepted a moment later, bounded by TIMEOUT
                barrier.go.set()
                await asyncio.wait_for(clients_done, TIMEOUT)
                await asyncio.to_thread(watch.settle, lambda s: s.sockets <= before.sockets)
            # Still serving after the storm.
            reader, writer = await connect(port)
            writer.write(b"GET /medium.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await read_response(reader))[1] == files["medium.bin"]
            await close(writer)
            return watch, at_once - before.sockets

        watch, at_once = asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))
        new = {fd: what for fd, what in fd_targets(pid).items() if first.get(fd) != what}
        assert command.stop(signal.SIGINT) == 0
    finally:
        command.kill()
    out = command.output
    before, peak, after = watch.before, watch.peak, watch.after
    assert before is not None and after is not None
    assert at_once >= len(clients)
    assert after.sockets == before.sockets, watch.line("serve")
    # No transfer leaves a file open: what stays is the open-file cache's one fd per file
    # (zcio.asgi.FileCache keeps it for the next request), the root's own descriptor (opened
    # once) and, on uvloop, the one /dev/null its listener opens for itself.
    held = [what for what in new.values() if what.startswith(f"{tmp_path}/")]
    assert len(held) == len(set(held)) and set(held) <= {f"{tmp_path}/{n}" for n in files}, new
    assert len(new) - len(held) <= 2, new
    assert peak.rss_kib - before.rss_kib < 512 << 10, watch.line("serve")
    assert after.rss_kib - before.rss_kib < 256 << 10, watch.line("serve")
    assert "Traceback" not in out, out[-5000:]
    complete = sum(c.complete_bytes for c in clients) + len(files["medium.bin"])
    assert moved(out, "sendfile") >= complete, out[-2000:]
    assert moved(out, "userspace") == 0, out[-2000:]
    whole = sum(c.outcome == "whole" for c in clients)
    assert whole + sum(c.outcome == "vanished" for c in clients) == len(clients)
    with capsys.disabled():
        print(
            f"\n[load] serve {variant}: {at_once} connections at once, {whole} whole "
            f"({complete:,} B checked), {len(clients) - whole} vanished mid-body; "
            f"{watch.line('serve')}; sendfile {moved(out, 'sendfile'):,} B"
        )
