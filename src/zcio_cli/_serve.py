"""``zcio serve``: a static file server, zcio_starlette on zcio_uvicorn, zero-copy bodies.

We bind the listening socket ourselves, before uvicorn starts, so that a port in use is one
clear line; uvicorn then serves on it, in this process or in ``--workers N`` processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import socket
import tempfile
from typing import Any

from ._errors import CliError, require
from ._report import active_methods

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="a zero-copy static file server for DIR (default: the current folder)",
        description="Serve DIR over HTTP/1.1 like `python -m http.server`, but async and "
        "zero-copy (sendfile), with Range requests, ETags and folder listings. Nothing outside "
        "DIR is reachable; hidden files are neither listed nor served.",
    )
    parser.add_argument(
        "dir", nargs="?", default=".", metavar="DIR", help="the folder to serve (default: .)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="default: 8000 (0: any free)")
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the event loop (default: auto, uvloop when installed)",
    )
    parser.add_argument(
        "--http",
        choices=["h11", "httptools"],
        default="httptools",
        help="uvicorn's HTTP parser, through zcio_uvicorn.H11Protocol or HttpToolsProtocol "
        "(default: httptools)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening socket (default: 1)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="serve a folder of sample files (ignores DIR)"
    )
    cache = parser.add_argument_group(
        "the open-file cache (zcio.asgi.FileCache; per worker process; see docs/cli.md)"
    )
    cache.add_argument(
        "--cache-ttl",
        type=_cache_number(float),
        default=1.0,
        metavar="S",
        help="seconds a cached file is trusted before its name is checked again; a file "
        "replaced by rename may be served whole as it was for this long (default: 1; 0: check "
        "every request)",
    )
    cache.add_argument(
        "--cache-files",
        type=_cache_number(int),
        default=None,
        metavar="N",
        help="most files (and fds) cached; 0 turns the cache off (default: a quarter of the "
        "open-file limit, at most 4096)",
    )
    limits = parser.add_argument_group(
        "limits on what one client may send (0 turns one off; see docs/security.md)"
    )
    for flag, kind, metavar, text in LIMITS:
        limits.add_argument(flag, type=_limit(kind), metavar=metavar, help=text)
    parser.set_defaults(run=run)


#: ``zcio serve``'s limits. Unset, each is zcio_uvicorn.Limits' default (the numbers below).
LIMITS: list[tuple[str, type, str, str]] = [
    ("--max-request-line", int, "BYTES", "longest request target; longer: 414 (default: 8192)"),
    (
        "--max-header-bytes",
        int,
        "BYTES",
        "most header bytes in a request; more: 431 (default: 32768)",
    ),
    ("--max-headers", int, "N", "most header fields in a request; more: 431 (default: 100)"),
    ("--head-timeout", float, "S", "seconds to send a request's head; later: 408 (default: 10)"),
    (
        "--max-connections",
        int,
        "N",
        "connections open at once; one more closes the longest-idle one (waiting for a head, "
        "else for a body), or gets 503 "
        "(default: half the open-file limit less 64, at most 10000)",
    ),
    (
        "--send-timeout",
        float,
        "S",
        "seconds a response may make no progress because the client reads nothing; then the "
        "connection is dropped (default: 60)",
    ),
    (
        "--body-timeout",
        float,
        "S",
        "seconds to wait for the next piece of a request's body (or from a 100 Continue to "
        "it); later: 408, or closed (default: 30)",
    ),
    (
        "--max-pipelined",
        int,
        "N",
        "requests queued behind the one being answered on a connection; more wait unread "
        "(default: 16)",
    ),
]


def _limit(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {text}")
        return value or "off"

    return parse


def _cache_number(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    root = demo_folder() if args.demo else args.dir
    if not os.path.isdir(root):
        raise CliError(f"{root}: no such directory" if not os.path.exists(root) else
                       f"{root}: not a directory")  # fmt: skip
    if args.workers < 1:
        raise CliError("--workers must be 1 or more")
    require("starlette", "serve")
    uvicorn = require("uvicorn", "serve")
    try:
        zcio_uvicorn = require("zcio_uvicorn", "serve")
    except ValueError as exc:  # a ZCIO_UVICORN_* variable it reads at import
        raise CliError(str(exc)) from exc
    if args.http == "httptools":
        require("httptools", "serve")
    loop = args.loop
    if loop == "auto":  # as uvicorn's own "auto": uvloop when installed
        loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    if loop == "uvloop":
        require("uvloop", "uvloop")
    sock = _bind(args.host, args.port)
    root = os.path.realpath(root)
    limits = _limits(zcio_uvicorn, args)
    config = _config(uvicorn, zcio_uvicorn, root, args, loop, limits)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    workers = f"{args.workers} workers" if args.workers > 1 else "1 worker"
    print(f"zcio serve: {root} on {url} ({loop}, {args.http}, {workers})", flush=True)
    print(f"zcio serve: {active_methods(('sendfile',))} (Ctrl-C stops)", flush=True)
    print(f"zcio serve: limits: {limits.describe()}", flush=True)
    print(f"zcio serve: file cache: {_describe_cache(args)}", flush=True)
    with sock:
        try:
            if args.workers > 1:
                from uvicorn.supervisors import Multiprocess

                supervisor: Any = Multiprocess  # its signature changed in uvicorn 0.51
                if "target" in inspect.signature(Multiprocess).parameters:
                    target = uvicorn.Server(config).run
                    supervisor(config, target=target, sockets=[sock]).run()
                else:
                    supervisor(config, sockets=[sock]).run()
            else:
                uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down for
            pass
    return 0


def _describe_cache(args: argparse.Namespace) -> str:
    if args.cache_files == 0:
        return "off"
    files = "default size" if args.cache_files is None else f"at most {args.cache_files} files"
    return f"{files}, names checked every {args.cache_ttl:g} s"


def _limits(zcio_uvicorn: Any, args: argparse.Namespace) -> Any:
    """zcio_uvicorn.Limits from the options ("off" for 0), over the library's defaults with
    any ``ZCIO_UVICORN_*`` variables applied."""
    changes: dict[str, Any] = {}
    for flag, *_ in LIMITS:
        name = flag.removeprefix("--").replace("-", "_")
        value = getattr(args, name)
        if value is not None:
            changes[name] = None if value == "off" else value
    try:
        return zcio_uvicorn.Limits.from_environment().replace(**changes)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _config(
    uvicorn: Any, zcio_uvicorn: Any, root: str, args: argparse.Namespace, loop: str, limits: Any
) -> Any:
    protocol = {"h11": zcio_uvicorn.H11Protocol, "httptools": zcio_uvicorn.HttpToolsProtocol}
    http = protocol[args.http]
    if args.workers > 1:  # workers import the protocol by name: the limits go by environment
        os.environ.update(limits.environment())
        os.environ[zcio_uvicorn.REPORT_ENV] = "0"
    else:
        http = http.configure(limits, report=False)
    # zcio_uvicorn's own start and end lines would repeat this command's (and its "bytes moved"
    # line, which _site logs per worker at the lifespan's end): off.
    common: dict[str, Any] = {
        "http": http,
        "loop": loop,
        "workers": args.workers,
        "log_level": "info",
        "lifespan": "on",
        "server_header": False,
    }
    if args.workers > 1:  # the workers import the app themselves: the root goes by environment
        from ._site import CACHE_ENV, ROOT_ENV

        os.environ[ROOT_ENV] = root
        os.environ[CACHE_ENV] = (
            f"{args.cache_ttl},{'' if args.cache_files is None else args.cache_files}"
        )
        return uvicorn.Config("zcio_cli._site:app_from_environment", factory=True, **common)
    from ._site import Site

    return uvicorn.Config(Site(root, cache=(args.cache_ttl, args.cache_files)), **common)


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise CliError(f"--port must be 0 to 65535, not {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # Resolved first: create_server's own message for a bad name repeats the address.
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})", 1) from exc
    # Not socket.create_server: its errors append "(while attempting to bind on ...)".
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # as create_server: IPv6 only, never dual-stack
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from exc
    return sock


def demo_folder() -> str:
    """A folder of sample files in the temp dir, written once: what ``make serve`` shows."""
    root = os.path.join(tempfile.gettempdir(), "zcio-demo")
    os.makedirs(os.path.join(root, "docs"), exist_ok=True)
    samples = {
        "hello.txt": "Hello! These bytes left the page cache by sendfile(2), not through Python.\n",
        "try-me.txt": "curl -i URL/hello.txt\ncurl -r 0-99 URL/random-64MiB.bin | xxd | head\n"
        "curl -o /dev/null URL/random-64MiB.bin\n",
        "docs/notes.txt": "Folders get a listing; hidden files get a 404.\n",
        ".secret": "Hidden: neither listed nor served.\n",
    }
    # Each file is written aside and renamed into place: two processes writing the demo at once
    # (two `make serve`, or test runs side by side) never show each other a half-written file.
    part = os.path.join(root, f".part-{os.getpid()}")
    for name, text in samples.items():
        with open(part, "w") as f:
            f.write(text)
        os.replace(part, os.path.join(root, name))
    big = os.path.join(root, "random-64MiB.bin")
    if not os.path.exists(big) or os.path.getsize(big) != 64 << 20:
        with open(part, "wb") as f:
            f.writelines([os.urandom(1 << 20)] * 64)  # one random MiB, 64 times
        os.replace(part, big)
    return root
