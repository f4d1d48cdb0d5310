"""tee_stream: every byte to every destination, backpressure, dropping a failed destination."""

from __future__ import annotations

import random
import socket
import threading
from contextlib import AsyncExitStack

import anyio
import pytest

import zcio
from _support import (
    Receiver,
    Sender,
    destination,
    make_data,
    pipe_destination,
    sha,
    skip_unsupported,
    skip_unsupported_source,
    small_send_buffer,
    source,
    tcp_listener,
    tls_contexts,
)

pytestmark = pytest.mark.anyio

DATA = make_data(6 * 1024 * 1024 + 5, seed=21)


def assert_teed(delta: zcio.Stats, mode: str, n: int, k: int, buffered: int = 0) -> None:
    if mode == "native":
        assert delta.bytes("tee") == (n - buffered) * k, delta
        assert delta.bytes("splice") == (n - buffered) * k, delta
        assert delta.bytes("userspace") == buffered * k, delta
        assert not delta.fallbacks, delta
    else:
        assert delta.bytes("userspace") == n * k, delta
        assert delta.bytes("tee") == 0, delta
        assert delta.fallbacks == {"disabled": 1}, delta


@pytest.mark.parametrize(
    ("src_flavour", "dst_flavours"),
    [
        ("socket", ["socket"]),
        ("socket", ["socket", "anyio"]),
        ("anyio", ["anyio", "socket", "pipe"]),
        ("trio", ["trio", "trio"]),
        ("reader", ["writer", "socket"]),
        ("pipe", ["socket", "pipe"]),
    ],
)
async def test_every_destination_gets_every_byte(
    src_flavour: str, dst_flavours: list[str], mode: str
) -> None:
    skip_unsupported_source(src_flavour)
    for flavour in dst_flavours:
        if flavour != "pipe":
            skip_unsupported(flavour)
    ahead = 10 if src_flavour in ("anyio", "reader") else 0
    results = []
    async with AsyncExitStack() as stack:
        src = await stack.enter_async_context(source(src_flavour, DATA, read_ahead=ahead))
        dsts = []
        for flavour in dst_flavours:
            if flavour == "pipe":
                w, result = await stack.enter_async_context(pipe_destination())
                dsts.append(w)
                results.append(result)
            else:
                lsock, port = tcp_listener()
                rx = Receiver(lsock).start()
                dsts.append(await stack.enter_async_context(destination(flavour, port)))
                results.append(rx.result)
        progress = zcio.TeeProgress()
        before = zcio.stats()
        n = await zcio.tee_stream(src, *dsts, progress=progress)
        delta = zcio.stats() - before
    assert n == len(DATA) - ahead == progress.sent == progress.taken
    assert progress.sent_to == [n] * len(dsts)
    for result in results:
        assert sha(result()) == sha(DATA[ahead:])
    # Bytes the source's wrapper had read ahead reach every destination through user space.
    buffered = delta.bytes("userspace") // len(dsts) if mode == "native" else 0
    assert buffered <= (1 << 20 if ahead else 0)
    assert_teed(delta, mode, n, len(dsts), buffered)


async def test_source_waits_for_the_slowest_destination(mode: str) -> None:
    data = make_data(16 * 1024 * 1024, seed=5)
    gate = threading.Event()
    fast_sock, fast_port = tcp_listener(rcvbuf=64 * 1024)
    slow_sock, slow_port = tcp_listener(rcvbuf=64 * 1024)
    fast = Receiver(fast_sock).start()
    slow = Receiver(slow_sock, start_gate=gate).start()
    progress = zcio.TeeProgress()
    async with (
        source("socket", data) as src,
        destination("socket", fast_port) as a,
        destination("socket", slow_port) as b,
    ):
        small_send_buffer(a)
        small_send_buffer(b)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: zcio.tee_stream(src, a, b, progress=progress))
            await anyio.sleep(0.3)
            # The slow one reads nothing: the source stopped long before its end.
            assert progress.taken < len(data) // 2
            assert progress.sent_to[0] <= progress.taken
            gate.set()
    assert sha(fast.result()) == sha(data)
    assert sha(slow.result()) == sha(data)


@pytest.mark.parametrize("on_error", ["drop", "raise"])
async def test_a_failing_destination(on_error: str, mode: str) -> None:
    good_sock, good_port = tcp_listener()
    bad_sock, bad_port = tcp_listener(rcvbuf=32 * 1024)
    good = Receiver(good_sock).start()
    bad = Receiver(bad_sock, stop_after=100_000).start()
    progress = zcio.TeeProgress()
    async with (
        source("socket", DATA) as src,
        destination("socket", good_port) as a,
        destination("socket", bad_port) as b,
    ):
        small_send_buffer(b)
        with anyio.fail_after(15):
            if on_error == "drop":
                n = await zcio.tee_stream(src, a, b, on_error="drop", progress=progress)
            else:
                with pytest.raises(zcio.BrokenDestination, match="destination 1"):
                    await zcio.tee_stream(src, a, b, progress=progress)
    got = good.result()
    bad.result()
    if on_error == "drop":
        assert n == len(DATA)
        assert sha(got) == sha(DATA)  # the failure did not disturb the other destination
        assert list(progress.dropped) == [1]
        assert isinstance(progress.dropped[1], zcio.BrokenDestination)
        assert progress.sent_to[1] < len(DATA)
    else:
        assert got == DATA[: len(got)]
        assert not progress.dropped


async def test_a_mirror_gets_every_byte(mode: str) -> None:
    main_sock, main_port = tcp_listener()
    mirror_sock, mirror_port = tcp_listener()
    main = Receiver(main_sock).start()
    mirror = Receiver(mirror_sock).start()
    progress = zcio.TeeProgress()
    async with (
        source("socket", DATA) as src,
        destination("socket", main_port) as a,
        destination("socket", mirror_port) as m,
    ):
        before = zcio.stats()
        n = await zcio.tee_stream(src, a, mirrors=[m], progress=progress)
        delta = zcio.stats() - before
    assert n == len(DATA) == progress.sent
    assert progress.sent_to == [n, n]
    assert not progress.dropped
    assert sha(main.result()) == sha(DATA)
    assert sha(mirror.result()) == sha(DATA)
    assert_teed(delta, mode, n, 2)


async def test_a_stalled_mirror_is_dropped_and_the_destination_goes_on(mode: str) -> None:
    data = make_data(16 * 1024 * 1024, seed=8)  # far more than the stalled mirror can buffer
    gate = threading.Event()
    main_sock, main_port = tcp_listener()
    mirror_sock, mirror_port = tcp_listener(rcvbuf=64 * 1024)
    main = Receiver(main_sock).start()
    mirror = Receiver(mirror_sock, start_gate=gate).start()  # reads nothing until the end
    progress = zcio.TeeProgress()
    try:
        async with (
            source("socket", data) as src,
            destination("socket", main_port) as a,
            destination("socket", mirror_port) as m,
        ):
            small_send_buffer(m)
            with anyio.fail_after(15):
                n = await zcio.tee_stream(src, a, mirrors=[m], mirror_lag=0.1, progress=progress)
    finally:
        gate.set()
    assert n == len(data) == progress.sent == progress.sent_to[0]
    assert sha(main.result()) == sha(data)
    assert list(progress.dropped) == [1]
    assert isinstance(progress.dropped[1], TimeoutError)
    assert "mirror 1" in str(progress.dropped[1])
    got = mirror.result()
    assert len(got) == progress.sent_to[1] < len(data)
    assert got == data[: len(got)]  # what the mirror got is a prefix: nothing out of order


async def test_a_failing_mirror_is_dropped_even_when_errors_raise(mode: str) -> None:
    main_sock, main_port = tcp_listener()
    bad_sock, bad_port = tcp_listener(rcvbuf=32 * 1024)
    main = Receiver(main_sock).start()
    bad = Receiver(bad_sock, stop_after=100_000).start()
    progress = zcio.TeeProgress()
    async with (
        source("socket", DATA) as src,
        destination("socket", main_port) as a,
        destination("socket", bad_port) as m,
    ):
        small_send_buffer(m)
        with anyio.fail_after(15):
            n = await zcio.tee_stream(src, a, mirrors=[m], on_error="raise", progress=progress)
    assert n == len(DATA)
    assert sha(main.result()) == sha(DATA)
    bad.result()
    assert list(progress.dropped) == [1]
    assert isinstance(progress.dropped[1], zcio.BrokenDestination)


async def test_a_failing_destination_still_ends_a_mirrored_tee(mode: str) -> None:
    bad_sock, bad_port = tcp_listener(rcvbuf=32 * 1024)
    mirror_sock, mirror_port = tcp_listener()
    bad = Receiver(bad_sock, stop_after=50_000).start()
    mirror = Receiver(mirror_sock).start()
    async with (
        source("socket", DATA) as src,
        destination("socket", bad_port) as b,
        destination("socket", mirror_port) as m,
    ):
        small_send_buffer(b)
        with anyio.fail_after(15), pytest.raises(zcio.BrokenDestination, match="destination 0"):
            await zcio.tee_stream(src, b, mirrors=[m], on_error="drop")
    bad.result()
    got = mirror.result()
    assert got == DATA[: len(got)]


async def test_last_destination_dropped_raises(mode: str) -> None:
    bad_sock, bad_port = tcp_listener(rcvbuf=32 * 1024)
    bad = Receiver(bad_sock, stop_after=50_000).start()
    async with source("socket", DATA) as src, destination("socket", bad_port) as b:
        small_send_buffer(b)
        with anyio.fail_after(15), pytest.raises(zcio.BrokenDestination):
            await zcio.tee_stream(src, b, on_error="drop")
    bad.result()


@pytest.mark.parametrize("seed", range(4))
async def test_cancel_leaves_exact_per_destination_counts(seed: int, mode: str) -> None:
    rng = random.Random(seed)
    lsock, port = tcp_listener()
    sender = Sender(lsock, DATA).start()
    receivers = []
    ends = []
    for _ in range(2):
        a, b = socket.socketpair()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rng.choice([16, 64, 256]) * 1024)
        a.setblocking(False)
        receivers.append(Receiver(b, accept=False).start())
        ends.append(a)
    progress = zcio.TeeProgress()
    try:
        async with await anyio.connect_tcp("127.0.0.1", port) as src:
            with anyio.move_on_after(rng.uniform(0.0, 0.03)):
                await zcio.tee_stream(src, *ends, progress=progress)
            rest = bytearray()
            async for chunk in src:
                rest += chunk
    finally:
        for a in ends:
            a.close()
        sender.join()
    for i, rx in enumerate(receivers):
        got = rx.result()
        assert len(got) == progress.sent_to[i]
        assert got == DATA[: len(got)]
        assert progress.sent_to[i] <= progress.taken
    assert bytes(rest) == DATA[progress.taken :]


async def test_tls_destination_makes_the_tee_copy_in_user_space() -> None:
    tls = tls_contexts()
    plain_sock, plain_port = tcp_listener()
    tls_sock, tls_port = tcp_listener()
    plain = Receiver(plain_sock).start()
    secure = Receiver(tls_sock, tls=tls.server).start()
    async with (
        source("socket", DATA) as src,
        destination("socket", plain_port) as a,
        destination("anyio", tls_port, tls=tls.client) as b,
    ):
        with pytest.raises(zcio.ZeroCopyUnavailable):
            await zcio.tee_stream(src, a, b, fallback=False)
        before = zcio.stats()
        assert await zcio.tee_stream(src, a, b) == len(DATA)
        delta = zcio.stats() - before
    assert sha(plain.result()) == sha(DATA)
    assert sha(secure.result()) == sha(DATA)
    assert delta.fallbacks == {"user_space_tls": 1}
    assert delta.bytes("userspace") == 2 * len(DATA)


async def test_wrong_arguments() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        with pytest.raises(TypeError, match="at least one"):
            await zcio.tee_stream(a)
        with pytest.raises(ValueError, match="on_error"):
            await zcio.tee_stream(a, b, on_error="ignore")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="twice"):
            await zcio.tee_stream(a, b, b)
        with pytest.raises(ValueError, match="twice"):
            await zcio.tee_stream(a, b, mirrors=[b])
        with pytest.raises(TypeError, match="at least one"):
            await zcio.tee_stream(a, mirrors=[b])
        with pytest.raises(ValueError, match="mirror_lag"):
            await zcio.tee_stream(a, b, mirror_lag=-1)
    finally:
        a.close()
        b.close()
