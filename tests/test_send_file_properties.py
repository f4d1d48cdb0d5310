"""Property tests: any size, offset and count give exactly the right bytes, or a clean error."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import zcio
from _support import Receiver, make_data

pytestmark = pytest.mark.anyio

PAGE = os.sysconf("SC_PAGE_SIZE")
SIZES = [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 1, 3 * 1024 * 1024 + 5]
DATA = make_data(max(SIZES), seed=7)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    root = tmp_path_factory.mktemp("sizes")
    out = {}
    for size in SIZES:
        path = root / f"{size}.bin"
        path.write_bytes(DATA[:size])
        out[size] = str(path)
    return out


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int, int | None]:
    size = draw(st.sampled_from(SIZES))
    edges = st.sampled_from([0, 1, PAGE - 1, PAGE, PAGE + 1, size - 1, size, size + 1])
    offset = max(0, draw(st.one_of(edges, st.integers(0, size + 2))))
    count = draw(st.one_of(st.none(), edges.map(lambda c: max(c, 0)), st.integers(0, size + 2)))
    return size, offset, count


def expected(size: int, offset: int, count: int | None) -> tuple[bytes, bool]:
    """What must arrive, and whether an IncompleteTransfer must be raised."""
    available = DATA[offset:size] if offset < size else b""
    if count is None:
        return available, False
    return available[:count], count > len(available)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=ranges(), to_file=st.booleans())
async def test_any_range(
    case: tuple[int, int, int | None],
    to_file: bool,
    mode: str,
    files: dict[int, str],
    tmp_path: Path,
) -> None:
    size, offset, count = case
    want, incomplete = expected(size, offset, count)
    if to_file:
        out = tmp_path / "out.bin"
        with open(out, "wb") as f:
            try:
                n = await zcio.send_file(f, files[size], offset=offset, count=count)
            except zcio.IncompleteTransfer as exc:
                assert incomplete
                n = exc.sent
            else:
                assert not incomplete
        assert out.read_bytes() == want
        assert n == len(want)
        return
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        try:
            n = await zcio.send_file(a, files[size], offset=offset, count=count)
        except zcio.IncompleteTransfer as exc:
            assert incomplete
            assert exc.expected == count
            n = exc.sent
        else:
            assert not incomplete
    finally:
        a.close()
    assert n == len(want)
    assert rx.result() == want
