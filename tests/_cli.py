"""Running the ``zcio`` command as a subprocess, the way a user does, and reading what it says."""

from __future__ import annotations

import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

TIMEOUT = 15.0


class Command:
    """``python -m zcio ARGS`` with stdout and stderr merged, read line by line in a thread."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, max_fds: int | None = None
    ) -> None:
        base = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}

        def limit() -> None:  # in the child, before exec
            if max_fds is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zcio", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**base, **(env or {})},
            preexec_fn=limit if max_fds is not None else None,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self._new.put(line)
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The first line (already seen or to come) matching ``pattern``."""
        regex = re.compile(pattern)
        for seen in self.lines:
            if match := regex.search(seen):
                return match
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline - time.monotonic())) is not None:
            if match := regex.search(line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{self.output}")

    def _next(self, timeout: float) -> str | None:
        """The next line, kept in ``lines``; None at the end of the output or after ``timeout``."""
        try:
            line = self._new.get(timeout=timeout) if timeout > 0 else self._new.get_nowait()
        except queue.Empty:
            return None
        if line is None:
            self._new.put(None)  # the end stays the end
            return None
        self.lines.append(line)
        return line

    def port(self) -> int:
        """The port from the start line ("listening on 127.0.0.1:PORT" or "on http://...")."""
        return int(self.wait_for(r"(?:listening on |on http://)\S*?:(\d+)")[1])

    def stop(self, signum: int = signal.SIGINT, timeout: float = TIMEOUT) -> int:
        """Send ``signum``, wait for the exit, read the rest; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.finish(timeout)
        finally:
            self.kill()

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit and the end of the output; the exit status."""
        status = self.proc.wait(timeout)
        self._pump.join(timeout)
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._pump.join(TIMEOUT)

    @property
    def output(self) -> str:
        """Everything printed so far."""
        while self._next(0) is not None:
            pass
        return "".join(self.lines)


def run(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run ``zcio ARGS`` to its end: the exit status and everything it printed."""
    command = Command(args, env)
    try:
        return command.finish(), command.output
    finally:
        command.kill()


def moved(output: str, method: str) -> int:
    """Bytes that ``method`` moved, summed over every "bytes moved:" line (one per process)."""
    total = 0
    for line in output.splitlines():
        if "bytes moved:" in line:
            total += sum(
                int(n.replace(",", "")) for n in re.findall(rf"\b{method} ([\d,]+) B", line)
            )
    return total


__all__ = ["TIMEOUT", "Command", "moved", "run", "signal"]
