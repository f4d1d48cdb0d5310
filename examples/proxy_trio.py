"""A full-duplex TCP proxy on trio; every byte moves with splice(2), never through Python.

python examples/proxy_trio.py LISTEN_PORT TARGET_HOST TARGET_PORT
"""

import sys
from functools import partial

import trio

import zcio


async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
    await zcio.splice_stream(src, dst)  # until src says EOF
    await dst.send_eof()  # pass the half-close on; the other direction goes on


async def handle(target: tuple[str, int], client: trio.SocketStream) -> None:
    try:
        async with (
            client,
            await trio.open_tcp_stream(*target) as upstream,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(pump, client, upstream)
            nursery.start_soon(pump, upstream, client)
    except* (OSError, trio.BrokenResourceError, zcio.TransferError) as group:
        print(f"connection ended: {group.exceptions!r}", file=sys.stderr)


port, host, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
trio.run(partial(trio.serve_tcp, partial(handle, (host, target_port)), port, host="127.0.0.1"))
