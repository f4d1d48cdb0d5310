"""zcio: zero-copy I/O for async Python on Linux (asyncio, uvloop and trio, through anyio).

The public names live here; the implementation is in private modules.
"""

from __future__ import annotations

from ._errors import (
    BrokenDestination as BrokenDestination,
    BrokenSource as BrokenSource,
    BusyError as BusyError,
    ClosedDestination as ClosedDestination,
    ClosedSource as ClosedSource,
    IncompleteTransfer as IncompleteTransfer,
    TransferError as TransferError,
    ZcioError as ZcioError,
    ZeroCopyUnavailable as ZeroCopyUnavailable,
)
from ._folder import Folder as Folder, OutsideFolder as OutsideFolder
from ._inspect import plan as plan, probe as probe
from ._kinds import Kind as Kind, Method as Method
from ._knowledge import disabled_methods as disabled_methods
from ._open import (
    learn_filesystem as learn_filesystem,
    open_cached as open_cached,
    open_cached_stat as open_cached_stat,
)
from ._pipes import PipePool as PipePool, default_pipe_pool as default_pipe_pool
from ._plan import Plan as Plan, Reason as Reason, Skipped as Skipped
from ._probe import FdInfo as FdInfo
from ._progress import Progress as Progress
from ._stats import MethodStats as MethodStats, Stats as Stats, stats as stats
from ._syscalls import tee as tee
from ._tee import TeeProgress as TeeProgress, tee_stream as tee_stream
from ._transfer import (
    copy as copy,
    send_file as send_file,
    splice_stream as splice_stream,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BrokenDestination",
    "BrokenSource",
    "BusyError",
    "ClosedDestination",
    "ClosedSource",
    "FdInfo",
    "Folder",
    "IncompleteTransfer",
    "Kind",
    "Method",
    "MethodStats",
    "OutsideFolder",
    "PipePool",
    "Plan",
    "Progress",
    "Reason",
    "Skipped",
    "Stats",
    "TeeProgress",
    "TransferError",
    "ZcioError",
    "ZeroCopyUnavailable",
    "__version__",
    "copy",
    "default_pipe_pool",
    "disabled_methods",
    "learn_filesystem",
    "open_cached",
    "open_cached_stat",
    "plan",
    "probe",
    "send_file",
    "splice_stream",
    "stats",
    "tee",
    "tee_stream",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio."):
        _obj.__module__ = "zcio"
del _name, _obj
