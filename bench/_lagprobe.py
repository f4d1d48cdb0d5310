"""Where an event loop's lag comes from: the loop's thread, seen by the kernel while it ticks.

The lag of a ticker (how late a 1 ms sleep wakes up) mixes three things: the loop busy with
work (a call that holds it), the loop asleep on something other than its timer (the disk, a
lock), and the loop ready to run but waiting for a CPU that other processes hold. The third is
the machine's, not the code's: on a shared machine it is most of the worst wake-ups. So
:class:`LoopProbe`, made on the loop's thread, reads that thread's counters from ``/proc``:

- ``schedstat``'s run-queue wait (nanoseconds spent runnable but not running), read before and
  after each tick, gives each wake-up's lag less the time it waited for a CPU;
- ``io``'s ``read_bytes`` (disk reads the thread started, counted when the request is queued)
  says whether the loop's thread started disk reads, which it should never do;
- a sampler thread looks at the loop's thread whenever a tick is late by ``stall_ms`` or more,
  and keeps where it was: its innermost Python frames (``sys._current_frames``), its state and
  its kernel stack (``/proc/thread-self/task/<tid>/stack``, root only; empty while running).

Everything is optional: a kernel without a counter gives None, and the ticker works as before.
The sampler takes the GIL for some microseconds every millisecond, in the idle reference runs
as in the others.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

__all__ = ["LoopProbe"]

#: Python frames kept per stall sample (innermost last).
FRAMES = 4
#: Stall samples kept per run (the first ones).
MAX_STALLS = 40


def _task_file(tid: int, name: str) -> str:
    return f"/proc/self/task/{tid}/{name}"


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class LoopProbe:
    """Counters of the thread that made it (the event loop's), and a sampler of its stalls.

    ``beat()`` at the start of every tick; ``runq_ms()`` around it for the run-queue wait;
    ``start()``/``stop()`` the sampler; ``result()`` the stalls and the disk reads started."""

    def __init__(self, stall_ms: float = 5.0) -> None:
        self.tid = threading.get_native_id()
        self.ident = threading.get_ident()
        self.stall_s = stall_ms / 1e3
        self.stalls: list[dict[str, Any]] = []
        self._last = 0.0
        self._t0 = time.perf_counter()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._sched: BinaryIO | None
        try:
            self._sched = open(_task_file(self.tid, "schedstat"), "rb", buffering=0)  # noqa: SIM115
        except OSError:
            self._sched = None
        self._reads0 = self.disk_reads()

    def runq_ms(self) -> float | None:
        """Milliseconds the loop's thread has waited, runnable, for a CPU (since it started)."""
        if self._sched is None:
            return None
        self._sched.seek(0)
        return int(self._sched.read().split()[1]) / 1e6

    def disk_reads(self) -> int | None:
        """Bytes of disk reads the loop's thread has started (since it started)."""
        text = _read_text(_task_file(self.tid, "io"))
        if text is None:
            return None
        for line in text.splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
        return None

    def beat(self) -> None:
        """A tick starts now."""
        self._last = time.perf_counter()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._reads0 = self.disk_reads()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sched is not None:
            self._sched.close()

    def result(self) -> dict[str, Any]:
        reads, reads0 = self.disk_reads(), self._reads0
        return {
            "loop_disk_read_bytes": None if reads is None or reads0 is None else reads - reads0,
            "stalls": self.stalls,
        }

    def _sample(self) -> None:
        seen: set[tuple[float, str]] = set()
        while not self._done.wait(0.001):
            last = self._last
            late = time.perf_counter() - last
            if not last or late < self.stall_s or len(self.stalls) >= MAX_STALLS:
                continue
            where = self._where()
            key = (last, where["python"][-1] if where["python"] else "")
            if key in seen:
                continue
            seen.add(key)
            self.stalls.append({"t_s": last - self._t0, "late_ms": late * 1e3, **where})

    def _where(self) -> dict[str, Any]:
        frame = sys._current_frames().get(self.ident)
        python = []
        if frame is not None:
            for fs in traceback.extract_stack(frame)[-FRAMES:]:
                python.append(f"{fs.filename.rsplit('/', 1)[-1]}:{fs.lineno} {fs.line or ''}")
        stat = _read_text(_task_file(self.tid, "stat"))
        state = stat.rsplit(")", 1)[1].split()[0] if stat else "?"
        stack = _read_text(_task_file(self.tid, "stack")) or ""
        kernel = [ln.split()[-1].split("+")[0] for ln in stack.splitlines()[:8]]
        return {"python": python, "state": state, "kernel": kernel}
