"""``zcio probe``: what the kernel offers, and the plan zcio would use for each argument.

The kernel part makes one tiny real call of each syscall (a byte through a temporary file and
a pipe), since a syscall can exist and still be refused (seccomp, an old kernel, a sandbox).
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import zcio

from ._errors import CliError, parse_address

__all__ = ["kernel_report", "register"]

CONNECT_TIMEOUT = 3.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "probe",
        help="what the kernel offers, and how zcio would send each PATH or HOST:PORT",
        description="Print what the kernel offers (sendfile, splice, tee, copy_file_range, "
        "pipe-max-size) and, for each argument, its kind and the plan zcio would use to send it "
        "to a TCP socket, with the reason for every method passed over.",
    )
    parser.add_argument("targets", nargs="*", metavar="PATH|HOST:PORT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    python = platform.python_version()
    print(f"zcio {zcio.__version__}, Linux {platform.release()}, Python {python}")
    print()
    print("Kernel:")
    for name, verdict in kernel_report():
        print(f"  {name:<16} {verdict}")
    failed = 0
    with _tcp_destination() as tcp:
        for target in args.targets:
            print()
            try:
                _describe(target, tcp)
            except CliError as exc:
                print(f"zcio probe: error: {exc}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


# -- the kernel --------------------------------------------------------------------------------


def kernel_report() -> list[tuple[str, str]]:
    """``(name, verdict)`` rows: each syscall tried once for real, and the pipe limits."""
    rows = [(name, _try(call)) for name, call in _CALLS.items()]
    rows.append(("pipe-max-size", _read_proc("/proc/sys/fs/pipe-max-size", "bytes")))
    disabled = os.environ.get("ZCIO_DISABLE", "")
    rows.append(("ZCIO_DISABLE", disabled or "not set (every method may be used)"))
    return rows


def _try(call: Callable[[int, int, int], int]) -> str:
    """Move one byte with ``call(file, pipe_r, pipe_w)``: "yes", or what the kernel said."""
    try:
        with ExitStack() as stack:
            f = stack.enter_context(tempfile.TemporaryFile())
            f.write(b"z")
            f.flush()
            r, w = os.pipe()
            stack.callback(os.close, r)
            stack.callback(os.close, w)
            moved = call(f.fileno(), r, w)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return f"no ({name}: {exc.strerror})"
    return "yes" if moved == 1 else f"no (moved {moved} bytes of 1)"


def _sendfile(file: int, r: int, w: int) -> int:
    return os.sendfile(w, file, 0, 1)


def _splice(file: int, r: int, w: int) -> int:
    return os.splice(file, w, 1, offset_src=0)


def _tee(file: int, r: int, w: int) -> int:
    os.write(w, b"z")
    r2, w2 = os.pipe()
    try:
        return zcio.tee(r, w2, 1, os.SPLICE_F_NONBLOCK)
    finally:
        os.close(r2)
        os.close(w2)


def _copy_file_range(file: int, r: int, w: int) -> int:
    with tempfile.TemporaryFile() as out:
        return os.copy_file_range(file, out.fileno(), 1, offset_src=0)


_CALLS: dict[str, Callable[[int, int, int], int]] = {
    "sendfile": _sendfile,
    "splice": _splice,
    "tee": _tee,
    "copy_file_range": _copy_file_range,
}


def _read_proc(path: str, unit: str) -> str:
    try:
        with open(path) as f:
            return f"{int(f.read())} {unit}"
    except (OSError, ValueError):
        return "unknown"


# -- the arguments -----------------------------------------------------------------------------


@contextmanager
def _tcp_destination() -> Iterator[socket.socket]:
    """A connected loopback TCP socket: the destination every plan is made for."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.setblocking(False)
            yield client


def _describe(target: str, tcp: socket.socket) -> None:
    if os.path.lexists(target) or "/" in target or ":" not in target:
        _describe_path(target, tcp)
    else:
        _describe_address(target, tcp)


def _describe_path(path: str, tcp: socket.socket) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise CliError(f"{path}: is a directory (name a file, a FIFO or a device)")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO must not hang us
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    try:
        _report(path, fd, tcp)
    finally:
        os.close(fd)


def _describe_address(address: str, tcp: socket.socket) -> None:
    host, port = parse_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise CliError(f"{address}: cannot connect: {exc.strerror or exc}") from exc
    with sock:
        sock.setblocking(False)
        _report(address, sock, tcp)


def _report(name: str, source: int | socket.socket, tcp: socket.socket) -> None:
    info = zcio.probe(source)
    size = f", {info.size} bytes" if info.size >= 0 else ""
    print(f"{name}: {info.kind}{size}")
    if info.detail:
        print(f"  {info.detail}")
    plan = zcio.plan(source, tcp)
    print(f"  to a TCP socket: {plan.method}" + ("" if plan.zero_copy else " (a copy)"))
    for method in plan.candidates[1:]:
        print(f"    then, if the kernel refuses: {method}")
    for skipped in plan.passed_over:
        print(f"    not {skipped.method}: {skipped.why}")
