"""Zero-copy for asyncio code written against the loop and stream APIs, on any loop.

``sock_sendfile`` and ``sendfile`` are drop-ins for ``loop.sock_sendfile`` and
``loop.sendfile`` that also work on uvloop (whose loop raises ``NotImplementedError``);
``relay`` proxies two stream connections with ``splice(2)``. Uses only zcio's public API.
"""

from ._relay import relay as relay
from ._sendfile import sendfile as sendfile, sock_sendfile as sock_sendfile

__all__ = ["relay", "sendfile", "sock_sendfile"]
