"""The kernel says no on a first call: zcio learns, falls back once, loses nothing."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

import pytest

import zcio
from _support import Receiver, file_of, make_data, sha

pytestmark = pytest.mark.anyio

DATA = make_data(1024 * 1024 + 3)


def pair() -> tuple[socket.socket, Receiver]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, Receiver(b, accept=False).start()


async def test_real_einval_from_procfs_falls_back_and_is_remembered_per_filesystem(
    tmp_path: Path,
) -> None:
    # sendfile(2) refuses /proc/self/status with EINVAL: a genuine kernel refusal.
    a, rx = pair()
    try:
        before = zcio.stats()
        n = await zcio.send_file(a, "/proc/self/status")
        delta = zcio.stats() - before
        assert n > 0
        assert delta.fallbacks == {"kernel_refused": 1}
        assert delta.bytes("userspace") == n
        skipped = zcio.plan("/proc/self/status", a).reason_against(zcio.Method.SENDFILE)
        assert skipped is not None and skipped.reason is zcio.Reason.REFUSED_FOR_PAIR
        # Files elsewhere still go by sendfile.
        path = file_of(tmp_path, DATA)
        assert zcio.plan(path, a).method is zcio.Method.SENDFILE
        before = zcio.stats()
        await zcio.send_file(a, path)
        assert (zcio.stats() - before).bytes("sendfile") == len(DATA)
    finally:
        a.close()
    assert rx.result()[: len(b"Name:")] == b"Name:"


@pytest.mark.parametrize(
    ("code", "process_wide"), [(errno.EINVAL, False), (errno.ENOSYS, True), (errno.EPERM, True)]
)
async def test_simulated_first_call_refusals(
    code: int, process_wide: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = file_of(tmp_path, DATA)
    real = os.sendfile
    calls: list[int] = []

    def refusing(*args: Any) -> int:
        calls.append(1)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "sendfile", refusing)
    a, rx = pair()
    try:
        with pytest.raises(zcio.ZeroCopyUnavailable):
            await zcio.send_file(a, path, fallback=False)
        assert len(calls) == 1
        # Learned: the next plan skips sendfile without calling it.
        skipped = zcio.plan(path, a).reason_against(zcio.Method.SENDFILE)
        assert skipped is not None
        expected = zcio.Reason.UNAVAILABLE if process_wide else zcio.Reason.REFUSED_FOR_PAIR
        assert skipped.reason is expected
        before = zcio.stats()
        assert await zcio.send_file(a, path) == len(DATA)
        assert len(calls) == 1
        assert (zcio.stats() - before).bytes("userspace") == len(DATA)
        tcp = socket.socket()
        with tcp:
            tcp_skip = zcio.plan(path, tcp).reason_against(zcio.Method.SENDFILE)
            assert (tcp_skip is not None) is process_wide
    finally:
        monkeypatch.setattr(os, "sendfile", real)
        a.close()
    assert sha(rx.result()) == sha(DATA)  # exactly one copy: nothing from the refused call


async def test_error_after_bytes_moved_is_an_error_not_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = file_of(tmp_path, DATA)
    real = os.sendfile
    calls: list[int] = []

    def flaky(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(1)
        if len(calls) == 1:
            return real(out_fd, in_fd, offset, min(count, 1000))
        raise OSError(errno.EINVAL, "late EINVAL")

    monkeypatch.setattr(os, "sendfile", flaky)
    a, rx = pair()
    try:
        with pytest.raises(OSError, match="late EINVAL") as info:
            await zcio.send_file(a, path)
        assert not isinstance(info.value, zcio.ZcioError)
        assert zcio.plan(path, a).method is zcio.Method.SENDFILE  # nothing learned
    finally:
        monkeypatch.setattr(os, "sendfile", real)
        a.close()
    assert rx.result() == DATA[:1000]


async def test_copy_file_range_refusal_moves_to_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = file_of(tmp_path, DATA)

    def exdev(*args: Any) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", exdev)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        before = zcio.stats()
        assert await zcio.send_file(f, path) == len(DATA)
        delta = zcio.stats() - before
    assert out.read_bytes() == DATA
    assert delta.bytes("sendfile") == len(DATA)
    assert delta.fallbacks == {"kernel_refused": 1}
    assert zcio.plan(path, out).method is zcio.Method.COPY_FILE_RANGE  # EXDEV teaches nothing
