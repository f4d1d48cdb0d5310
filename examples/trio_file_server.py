"""HTTP/1.0 file server on trio, bodies by sendfile(2): trio_file_server.py PORT DIR"""

import os
import sys
from functools import partial

import trio

import zcio_trio


def open_file(root: str, target: str) -> tuple[int, int] | None:
    name = os.path.basename(target)  # only the files directly in root
    path = os.path.join(root, name)
    if not name or name.startswith(".") or not os.path.isfile(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    return fd, os.fstat(fd).st_size


async def handle(root: str, stream: zcio_trio.ZeroCopySocketStream) -> None:
    async with stream:
        parts = (await stream.receive_some(8192)).split(b" ", 2)
        target = parts[1].decode("latin-1") if len(parts) == 3 else ""
        found = await trio.to_thread.run_sync(open_file, root, target)  # disks can be slow
        if found is None:
            await stream.send_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        fd, size = found
        try:
            await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            await stream.send_file(fd, count=size)  # a file that shrank raises: no short body
        finally:
            os.close(fd)


port, root = int(sys.argv[1]), sys.argv[2]
trio.run(partial(zcio_trio.serve_tcp, partial(handle, root), port, host="127.0.0.1"))
