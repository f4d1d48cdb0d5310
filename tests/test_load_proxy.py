"""``zcio proxy`` under load, with faults among the connections: 100 clients at once through
one proxy (asyncio, uvloop, trio), with and without ``--mirror``.

The clients, the echoing target and the mirror are asyncio streams on one loop of this process.
Each client opens with a 16-byte header naming its role and number, which the target and the
mirror read (the mirror gets the same bytes) to decide how to behave:

- ``normal``: echoed whole; the mirror keeps every byte;
- ``empty``: the header alone, then the half-close: the echo is the header;
- ``mdie``: the mirror resets its connection after 64 KiB (dies mid-stream);
- ``mstall``: the mirror reads nothing until every client is done (6 MiB, more than buffers
  hold): dropped after ``--mirror-lag``;
- ``treset``: the target resets after 64 KiB: that client ends early, with a prefix;
- ``vanish``: the client itself resets after sending half.

The target holds every echo until all the clients' connections reached it, so the 100 are
really relayed at once. Every client that is not ``treset`` or ``vanish`` must get its bytes
back whole (hash), every mirror stream that stayed must be whole, and a mirror that refuses
every connection (nothing listening) must change nothing for the clients. The proxy's sockets
go back to the listener alone, its pipes to at most the pool's idle ones; its RSS is sampled
before, at the peak and after, with generous bounds.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
from contextlib import suppress
from dataclasses import dataclass, field

import pytest

from _cli import Command, moved
from _load import TIMEOUT, Snapshot, Watch, close, connect, reset, sha, snapshot

# Each wait inside is bounded; on a busy shared machine a test may take a minute or two.
pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]

CLIENTS = 100
HEADER = 16
BLOB = os.urandom(8 << 20)
MIRROR_LAG = 1.0
POOL_PIPE_FDS = 2 * 64  # the default pipe pool keeps up to 64 idle pipes, two fds each
ROLES = (
    ["normal"] * 66
    + ["empty"] * 4
    + ["mdie"] * 8
    + ["mstall"] * 6
    + ["treset"] * 8
    + ["vanish"] * 8
)


@dataclass
class Client:
    index: int
    role: str
    data: bytes
    port: int = 0  # its local port: the proxy logs it
    got: bytes = b""
    error: str = ""


@dataclass
class Peers:
    """The target (echo) and the mirror (records), behaving as each client's role says."""

    clients: int
    pid: int
    at_gate: Snapshot | None = None  # the proxy when every connection reached the target
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    at_target: int = 0
    mirrored: dict[int, bytes] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def track(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def target(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.track()
        try:
            header = await reader.readexactly(HEADER)
            self.at_target += 1
            if self.at_target == self.clients:
                self.at_gate = snapshot(self.pid)
                self.reached.set()
            await asyncio.wait_for(self.reached.wait(), TIMEOUT)
            writer.write(header)
            seen = 0
            while chunk := await reader.read(1 << 18):
                writer.write(chunk)
                await writer.drain()
                seen += len(chunk)
                if header.startswith(b"treset") and seen >= 64 << 10:
                    reset(writer)
                    return
            writer.write_eof()
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # a client that vanished
        await close(writer)

    async def mirror(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.track()
        try:
            writer.write(b"the mirror's answer, discarded by the proxy")
            header = await reader.readexactly(HEADER)
            if header.startswith(b"mstall"):
                await asyncio.wait_for(self.finished.wait(), TIMEOUT)
            got = bytearray(header)
            while chunk := await reader.read(1 << 18):
                got += chunk
                if header.startswith(b"mdie") and len(got) >= 64 << 10:
                    reset(writer)
                    return
            self.mirrored[int(header[8:15])] = bytes(got)
        except (OSError, asyncio.IncompleteReadError):
            pass
        await close(writer)


async def run_client(client: Client, port: int) -> None:
    reader, writer = await connect(port)
    client.port = writer.get_extra_info("sockname")[1]

    async def send() -> None:
        if client.role == "vanish":
            writer.write(client.data[: len(client.data) // 2])
            await writer.drain()
            await asyncio.sleep(0.05)
            reset(writer)
            return
        writer.write(client.data)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = bytearray()
    try:
        while chunk := await reader.read(1 << 18):
            got += chunk
    except OSError as exc:
        client.error = type(exc).__name__
    finally:
        client.got = bytes(got)
        with suppress(OSError):
            await sender
        await close(writer)


def make_clients(seed: str) -> list[Client]:
    rng = random.Random(seed)
    roles = ROLES[:]
    rng.shuffle(roles)
    clients = []
    for i, role in enumerate(roles):
        size = (6 << 20) if role == "mstall" else rng.randrange(96 << 10, 512 << 10)
        size = 0 if role == "empty" else size
        start = rng.randrange(0, len(BLOB) - size)
        header = f"{role:<8}{i:07d}\n".encode()
        clients.append(Client(i, role, header + BLOB[start : start + size]))
    return clients


async def load(clients: list[Client], proxy_port: int, peers: Peers) -> None:
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(run_client(c, proxy_port) for c in clients))
        peers.finished.set()
        while peers.tasks:  # the target and the mirror see their ends
            await asyncio.sleep(0.05)


def check_clients(clients: list[Client], output: str) -> dict[str, int]:
    """Every byte accounted for; returns what happened, by outcome."""
    counts = {"whole": 0, "cut short (target reset)": 0, "of which saw a reset": 0, "vanished": 0}
    for c in clients:
        if c.role in ("treset", "vanish"):
            # A prefix of what was sent, never a byte that was not.
            assert c.data.startswith(c.got), (c.index, c.role, len(c.got))
            counts["vanished" if c.role == "vanish" else "cut short (target reset)"] += 1
            # The proxy passes the target's reset on as a reset, but not always: when the
            # other direction's write consumed the error first, the next read of the target
            # returns 0, an end of stream like a FIN, and the client may get its FIN first.
            counts["of which saw a reset"] += c.error == "ConnectionResetError"
        else:
            assert not c.error and sha(c.got) == sha(c.data), (
                f"client {c.index} ({c.role}): {c.error or 'no error'}, {len(c.got)} of "
                f"{len(c.data)} bytes back; the proxy said:\n{log_of(output, c.port)}"
            )
            counts["whole"] += 1
    return counts


def log_of(output: str, port: int) -> str:
    """The proxy's log lines about the client on ``port``."""
    return "".join(line for line in output.splitlines(True) if f"127.0.0.1:{port}:" in line)


def dropped_ports(output: str) -> set[int]:
    return {int(p) for p in re.findall(r"#\d+ 127\.0\.0\.1:(\d+): mirror dropped", output)}


@dataclass
class Wave:
    clients: list[Client]
    peers: Peers
    after: Snapshot | None = None  # the proxy once the wave's connections are closed


def run_proxy(
    backend: str, mirror: str | None, waves: list[list[Client]], env: dict[str, str]
) -> tuple[list[Wave], Watch, str]:
    """Serve the waves of clients, one after the other, through one proxy; what each wave
    did, the proxy's figures and its output."""

    async def main() -> tuple[list[Wave], Watch, Command]:
        done: list[Wave] = []
        current = [Peers(len(waves[0]), 0)]

        async def target_handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await current[0].target(r, w)

        async def mirror_handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await current[0].mirror(r, w)

        target = await asyncio.start_server(target_handler, "127.0.0.1", 0, backlog=1024)
        mirror_server = None
        args = ["--target", f"127.0.0.1:{target.sockets[0].getsockname()[1]}"]
        if mirror == "listening":
            sock = socket.socket()  # a small window: a stalled mirror fills it soon
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            sock.bind(("127.0.0.1", 0))
            mirror_server = await asyncio.start_server(mirror_handler, sock=sock, backlog=1024)
            args += ["--mirror", f"127.0.0.1:{sock.getsockname()[1]}"]
        elif mirror == "refusing":
            with socket.socket() as closed:  # bound, never listening: connections refused
                closed.bind(("127.0.0.1", 0))
                args += ["--mirror", f"127.0.0.1:{closed.getsockname()[1]}"]
        options = ["--backend", backend, "--mirror-lag", str(MIRROR_LAG), "--grace", "5"]
        command = Command(
            ["proxy", "--listen", "127.0.0.1:0", "--stats-interval", "0", *options, *args], env
        )
        try:
            port = await asyncio.to_thread(command.port)
            with Watch(command.proc.pid) as watch:
                before = watch.before
                assert before is not None
                for clients in waves:
                    peers = current[0] = Peers(len(clients), command.proc.pid)
                    await load(clients, port, peers)
                    settled = await asyncio.to_thread(
                        watch.settle,
                        lambda s: (
                            s.sockets <= before.sockets and s.pipes <= before.pipes + POOL_PIPE_FDS
                        ),
                    )
                    done.append(Wave(clients, peers, settled))
            # Still relaying after the storm.
            after = Client(CLIENTS, "normal", b"normal  9999999\n" + BLOB[:100_000])
            current[0].reached.set()
            await run_client(after, port)
            assert after.got == after.data
            assert await asyncio.to_thread(command.stop) == 0
        finally:
            command.kill()
            for server in (target, mirror_server):
                if server is not None:
                    server.close()
        return done, watch, command

    done, watch, command = asyncio.run(main())
    return done, watch, command.output


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
@pytest.mark.parametrize(
    ("mirror", "env"),
    [
        pytest.param(None, {}, id="no-mirror"),
        pytest.param("listening", {}, id="mirror"),
        pytest.param("listening", {"ZCIO_DISABLE": "all"}, id="mirror-fallback"),
        pytest.param("refusing", {}, id="mirror-refusing"),
    ],
)
def test_a_hundred_clients_at_once_with_faults(
    backend: str, mirror: str | None, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Copying (forced fallback) with a mirror grows the most: a second wave there shows that
    # memory the first one left is reused, not added to.
    count = 2 if mirror == "listening" and env else 1
    waves = [make_clients(f"proxy-{backend}-{mirror}-{i}") for i in range(count)]
    if mirror != "listening":  # no mirror to misbehave: those are plain clients
        for c in waves[0]:
            if c.role in ("mdie", "mstall"):
                c.role = "normal"
                c.data = b"normal  " + c.data[8:]
    done, watch, output = run_proxy(backend, mirror, waves, env)
    clients, peers = done[0].clients, done[0].peers
    counts = check_clients(clients, output)
    for wave in done[1:]:
        check_clients(wave.clients, output)
    assert "Traceback" not in output, output[-5000:]
    served = sum(len(w) for w in waves) + 1
    assert f"exit: {served} connection(s), 0 active" in output, output[-3000:]
    before, peak, after = watch.before, watch.peak, done[0].after
    assert before is not None and after is not None
    # Every relay at once when the last reached the target: each holds the client's and the
    # target's socket (and the mirror's); only the vanishing clients may be gone by then.
    assert peers.at_gate is not None
    per_relay = 3 if mirror == "listening" else 2
    at_once = (peers.at_gate.sockets - before.sockets) // per_relay
    assert at_once >= sum(c.role != "vanish" for c in clients), (at_once, watch.line("proxy"))
    assert after.sockets == before.sockets, watch.line("proxy")
    assert after.pipes <= before.pipes + POOL_PIPE_FDS, watch.line("proxy")
    assert peak.rss_kib - before.rss_kib < 512 << 10, watch.line("proxy")
    assert after.rss_kib - before.rss_kib < 256 << 10, watch.line("proxy")
    if env:  # forced fallback: every byte copied through user space
        assert moved(output, "splice") == moved(output, "tee") == 0, output[-2000:]
    else:
        assert moved(output, "splice") > 0, output[-2000:]
    drops = dropped_ports(output)
    note = ""
    if mirror == "listening":
        whole_mirrors = 0
        for c in clients:
            if (
                c.role in ("normal", "empty", "treset")
                and c.port not in drops
                and c.index in peers.mirrored
            ):
                # A mirror that stayed got every byte the client sent (the target's reset
                # ends the tee, and the mirror's stream with it: a prefix then).
                got = peers.mirrored[c.index]
                assert c.data.startswith(got), (c.index, c.role, len(got))
                whole_mirrors += c.role in ("normal", "empty") and got == c.data
            if c.role == "mdie":
                assert c.index not in peers.mirrored, (c.index, c.role)
            if c.role == "mstall" and c.port not in drops:  # kernel buffers held it all
                assert peers.mirrored[c.index] == c.data, (c.index, c.role)
        stalls = sum(c.role == "mstall" and c.port in drops for c in clients)
        normal = sum(c.role in ("normal", "empty") for c in clients)
        # A healthy mirror is dropped only when it lags --mirror-lag behind on a loaded
        # machine; most stay, every one of them whole.
        assert whole_mirrors >= normal // 2, (whole_mirrors, normal, output[-3000:])
        note = (
            f"; mirror: {whole_mirrors}/{normal} healthy mirrors whole, "
            f"{sum(c.port in drops for c in clients)} drops "
            f"({stalls} stalled)"
        )
    elif mirror == "refusing":
        assert output.count("unavailable (Connection refused)") == served, output[-2000:]
        note = "; mirror refused every connection"
    if len(done) > 1:
        second = done[1].after
        assert second is not None
        # Measured here: the RSS after each of five waves plateaus (46, 73, 91, 75, 71 MiB
        # on asyncio with a mirror): the allocator's high-water mark, not a leak.
        assert second.rss_kib - after.rss_kib < 128 << 10, (watch.line("proxy"), second)
        assert second.sockets == before.sockets, second
        assert second.pipes <= before.pipes + POOL_PIPE_FDS, second
        note += (
            f"; a second wave of {len(done[1].clients)}: RSS after it "
            f"{second.rss_kib / 1024:.1f} MiB, fds {second.fds}"
        )
    with capsys.disabled():
        print(
            f"\n[load] proxy {backend} mirror={mirror}{' fallback' if env else ''}: "
            f"{len(clients)} clients, {at_once} relayed "
            "at once, "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f"{note}; {watch.line('proxy')}; "
            f"splice {moved(output, 'splice'):,} B, tee {moved(output, 'tee'):,} B, "
            f"userspace {moved(output, 'userspace'):,} B"
        )
