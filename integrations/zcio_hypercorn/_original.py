"""hypercorn's own objects, kept when zcio_hypercorn replaces them."""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["ORIGINALS", "original"]

#: (module name, attribute) -> hypercorn's object, for every name install() replaced.
ORIGINALS: dict[tuple[str, str], Any] = {}


def original(module: ModuleType, name: str) -> Any:
    """hypercorn's own ``module.name``, whether or not zcio_hypercorn replaced it."""
    try:
        return ORIGINALS[module.__name__, name]
    except KeyError:
        return getattr(module, name)
