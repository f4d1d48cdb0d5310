"""What the command line reports as one line: :class:`CliError`, and the checks that raise it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["CliError", "parse_address", "require"]


class CliError(Exception):
    """A mistake or a condition the user can fix: printed as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which extra installs it. A module that is there but refuses to
    load (zcio_uvicorn with an unsupported uvicorn) is reported with its own message."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise CliError(
            f"{module} is not installed; install it with: pip install 'zcio[{extra}]'"
        ) from exc
    except ImportError as exc:
        raise CliError(f"{module}: {exc}") from exc


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``; a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        example = "127.0.0.1:8080 or [::1]:8080"
        raise CliError(f"{what} must be HOST:PORT (e.g. {example}), not {text!r}")
    return host, int(port)
