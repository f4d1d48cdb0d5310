"""A full-duplex TCP proxy on asyncio streams; every byte moves with splice(2).

python examples/proxy_asyncio.py LISTEN_PORT TARGET_HOST TARGET_PORT
"""

import asyncio
import sys

import zcio


async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    await zcio.splice_stream(src, dst)  # until src says EOF
    dst.write_eof()  # pass the half-close on; the other direction goes on


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    up_reader, up_writer = await asyncio.open_connection(sys.argv[2], int(sys.argv[3]))
    try:
        async with asyncio.TaskGroup() as tg:  # one direction failing cancels the other
            tg.create_task(pump(reader, up_writer))
            tg.create_task(pump(up_reader, writer))
    except* (OSError, zcio.TransferError) as group:
        print(f"connection ended: {group.exceptions!r}", file=sys.stderr)
    finally:
        writer.close()
        up_writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


asyncio.run(main())
