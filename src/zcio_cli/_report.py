"""What the long-running commands print: the zero-copy methods at start, byte counts after."""

from __future__ import annotations

import zcio

from ._probe import kernel_report

__all__ = ["active_methods", "human"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def active_methods(wanted: tuple[str, ...]) -> str:
    """One line: which of ``wanted`` the kernel allows here (tried for real) and which are off.

    ``ZCIO_DISABLE`` and a kernel refusal both show up, with their reason.
    """
    verdicts = dict(kernel_report())
    disabled = {str(method) for method in zcio.disabled_methods()}
    on, off = [], []
    for method in wanted:
        if method in disabled:
            off.append(f"{method} (ZCIO_DISABLE)")
        elif verdicts.get(method, "no") == "yes":
            on.append(method)
        else:
            off.append(f"{method} ({verdicts.get(method)})")
    line = "zero-copy: " + (", ".join(on) if on else "none, every byte is copied")
    return line + (f"; off: {', '.join(off)}" if off else "")
