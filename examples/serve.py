"""A zero-copy static file server on 127.0.0.1: anyio for the network, zcio for the bodies.

    python examples/serve.py [DIR] [--host 127.0.0.1] [--port 8000] [--backend trio] [--uvloop]

Headers go out with ``stream.send``, file bodies with ``zcio.send_file``: sendfile(2) moves them
from the page cache to the socket without passing through Python. HTTP/1.1 keep-alive, GET and
HEAD, one byte range, directory listings. Nothing outside DIR is reachable; hidden (dot) files
are neither listed nor served. Without DIR, it serves the current folder.

This is the whole server in one file, to show zcio's core API at work; ``zcio serve`` is the
full one (zcio_starlette on zcio_uvicorn).
"""

from __future__ import annotations

import argparse
import functools
import html
import mimetypes
import os
import posixpath
import re
import signal
import stat
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import quote, unquote

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

import zcio

MAX_HEAD = 16 << 10  # bytes of request line and headers
IDLE_TIMEOUT = 30  # seconds a kept-alive connection may wait for its next request
RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)
# The client closed, stopped half way, sent too long a head, or the connection broke.
GONE = (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.BrokenResourceError, OSError)


def open_target(root: str, path: str) -> tuple[int, os.stat_result] | None:
    """Open the regular file or directory that the decoded URL ``path`` names in ``root``.

    None (a 404) for dot segments ('..', hidden files), NUL bytes, paths not starting with '/',
    symlinks leading out of ``root``, and anything missing, unreadable or of another kind.
    """
    parts = [part for part in path.split("/") if part]
    if not path.startswith("/") or "\0" in path or any(p.startswith(".") for p in parts):
        return None
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, real]) != root:
        return None
    try:  # O_NOFOLLOW: no symlink swapped in since realpath; O_NONBLOCK: a FIFO cannot hang us
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
        return fd, info
    os.close(fd)
    return None


def listing(path: str, fd: int) -> bytes:
    """A bare HTML index of the directory open as ``fd``, without hidden entries."""
    with os.scandir(fd) as entries:
        names = sorted(e.name + "/" * e.is_dir() for e in entries if not e.name.startswith("."))
    base = path.rstrip("/") + "/"
    links = [(posixpath.dirname(base[:-1]).rstrip("/") + "/", "../")] if base != "/" else []
    links += [(base + name, name) for name in names]
    items = "".join(
        f'<li><a href="{html.escape(quote(url, errors="surrogateescape"))}">'
        f"{html.escape(name)}</a>\n"
        for url, name in links
    )
    title = f"Index of {html.escape(base)}"
    page = f"<!doctype html>\n<title>{title}</title><h1>{title}</h1>\n<ul>\n{items}</ul>\n"
    return page.encode(errors="replace")  # '?' for the names that are not UTF-8


def byte_range(value: str, size: int) -> tuple[int, int, int]:
    """(status, start, stop) for a Range header: 200 the whole file, 206 a slice, 416 none."""
    m = RANGE.fullmatch(value.strip())
    if m is None or m[1] == m[2] == "" or (m[1] and m[2] and int(m[2]) < int(m[1])):
        return 200, 0, size  # absent, several ranges or invalid: ignored, as RFC 9110 allows
    if not m[1]:  # bytes=-N: the last N bytes
        start, stop = size - min(int(m[2]), size), size
    else:
        start, stop = int(m[1]), (min(int(m[2]) + 1, size) if m[2] else size)
    return (206, start, stop) if start < stop else (416, 0, 0)


def head(status: int, fields: dict[str, str | int], keep_alive: bool) -> bytes:
    """The status line and the header fields, Date and Connection added."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    lines += [f"Connection: {'keep-alive' if keep_alive else 'close'}", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def respond(root: str, stream: SocketStream, reader: BufferedByteReceiveStream) -> bool:
    """Read one request and answer it. Returns whether the connection stays open."""
    with anyio.move_on_after(IDLE_TIMEOUT) as idle:
        data = await reader.receive_until(b"\r\n\r\n", MAX_HEAD)
    if idle.cancelled_caught:
        return False
    request, *lines = data.decode("latin-1").split("\r\n")
    method, target, version = [*request.split(" ", 2), "", ""][:3]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        keep_alive = False  # a request body we do not read: the connection cannot go on
    path = unquote(target.partition("?")[0], errors="surrogateescape")
    status, body, sent = 404, b"", 0
    fields: dict[str, str | int] = {}
    found: tuple[int, os.stat_result] | None = None
    if not re.fullmatch(r"HTTP/1\.[01]", version):
        status, keep_alive = 400, False
    elif method not in ("GET", "HEAD"):
        status, fields["Allow"] = 405, "GET, HEAD"
    else:
        found = await anyio.to_thread.run_sync(open_target, root, path)
    try:
        if found and stat.S_ISREG(found[1].st_mode):
            fd, size = found[0], found[1].st_size
            status, start, stop = byte_range(headers.get("range", ""), size)
            fields["Content-Length"] = stop - start
            if status == 416:
                fields["Content-Range"] = f"bytes */{size}"
            else:
                kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
                fields["Content-Type"] = kind
                fields["Last-Modified"] = formatdate(found[1].st_mtime, usegmt=True)
                fields["Accept-Ranges"] = "bytes"
            if status == 206:
                fields["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            await stream.send(head(status, fields, keep_alive))
            if method == "GET" and stop > start:
                try:  # zcio puts these bytes on the wire after the headers sent above
                    sent = await zcio.send_file(stream, fd, offset=start, count=stop - start)
                except zcio.IncompleteTransfer as exc:  # the file shrank: close, since the
                    sent, keep_alive = exc.sent, False  # promised Content-Length cannot be kept
        else:
            if found:
                status, body = 200, await anyio.to_thread.run_sync(listing, path, found[0])
            body = body or f"{status} {HTTPStatus(status).phrase}\n".encode()
            kind = "text/html" if found else "text/plain"
            fields |= {"Content-Type": f"{kind}; charset=utf-8", "Content-Length": len(body)}
            sent = 0 if method == "HEAD" else len(body)
            await stream.send(head(status, fields, keep_alive) + body[:sent])
    finally:
        if found:
            os.close(found[0])
    client = stream.extra(SocketAttribute.remote_address)[0]
    shown = request if request.isprintable() else ascii(request)
    print(f'{client} "{shown}" {status} {sent}', flush=True)
    return keep_alive


async def handle(root: str, stream: SocketStream) -> None:
    """One connection: its requests one after the other, until either side closes it."""
    reader = BufferedByteReceiveStream(stream)
    async with stream:
        try:
            while await respond(root, stream, reader):
                pass
        except GONE:
            pass


async def serve(root: str, host: str, port: int, backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, functools.partial(handle, root), tg)
            port = listener.extra(SocketAttribute.local_port)
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
            # What zcio will do for file -> TCP socket here (ZCIO_DISABLE included): a plan looks
            # at kinds and flags only, and the listening socket has those of its connections.
            sock = listener.extra(SocketAttribute.raw_socket)
            no = zcio.plan(__file__, sock).reason_against(zcio.Method.SENDFILE)
            way = "zero-copy: sendfile" if no is None else f"zero-copy: off, {no.why}"
            print(f"serving {url} from {root} on {backend}, {way}", flush=True)
            async for _ in signals:
                break
            tg.cancel_scope.cancel()  # stops accepting, and ends every connection


def main() -> None:
    parser = argparse.ArgumentParser(description="A zero-copy static file server.")
    parser.add_argument("dir", nargs="?", default=".", help="directory (default: this one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--uvloop", action="store_true", help="run asyncio on uvloop")
    args = parser.parse_args()
    if args.uvloop and args.backend != "asyncio":
        parser.error("--uvloop goes with --backend asyncio")
    if not os.path.isdir(args.dir):
        parser.error(f"not a directory: {args.dir}")
    root = os.path.realpath(args.dir)
    backend = "asyncio+uvloop" if args.uvloop else args.backend
    run = functools.partial(serve, root, args.host, args.port, backend)
    options = {"use_uvloop": True} if args.uvloop else {}
    try:
        anyio.run(run, backend=args.backend, backend_options=options)
    except KeyboardInterrupt:  # Ctrl-C before the signal handler was in place
        pass
    except OSError as exc:  # most likely: the port is taken
        parser.exit(1, f"cannot serve on {args.host}:{args.port}: {exc}\n")
    stats = zcio.stats()
    moved = [
        f"{name} {m.bytes:,} bytes in {m.calls:,} calls"
        for name, m in stats.methods.items()
        if m.bytes
    ]
    fallbacks = f"; fallbacks: {dict(stats.fallbacks)}" if stats.fallbacks else ""
    print(f"stopped; zcio sent: {', '.join(moved) or 'nothing'}{fallbacks}")


if __name__ == "__main__":
    main()
