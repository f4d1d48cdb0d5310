"""zcio: zero-copy I/O for async Python on Linux (asyncio, uvloop and trio, through anyio).

The public names live here; the implementation is in private modules.
"""

from __future__ import annotations

from ._errors import (
    BrokenDestination as BrokenDestination,
)
from ._errors import (
    BusyError as BusyError,
)
from ._errors import (
    ClosedDestination as ClosedDestination,
)
from ._errors import (
    IncompleteTransfer as IncompleteTransfer,
)
from ._errors import (
    TransferError as TransferError,
)
from ._errors import (
    ZcioError as ZcioError,
)
from ._errors import (
    ZeroCopyUnavailable as ZeroCopyUnavailable,
)
from ._kinds import Kind as Kind
from ._kinds import Method as Method
from ._plan import Plan as Plan
from ._plan import Reason as Reason
from ._plan import Skipped as Skipped
from ._probe import FdInfo as FdInfo
from ._probe import probe as probe
from ._progress import Progress as Progress
from ._stats import MethodStats as MethodStats
from ._stats import Stats as Stats
from ._stats import stats as stats
from ._transfer import plan as plan
from ._transfer import send_file as send_file

__version__ = "0.1.0.dev0"

__all__ = [
    "BrokenDestination",
    "BusyError",
    "ClosedDestination",
    "FdInfo",
    "IncompleteTransfer",
    "Kind",
    "Method",
    "MethodStats",
    "Plan",
    "Progress",
    "Reason",
    "Skipped",
    "Stats",
    "TransferError",
    "ZcioError",
    "ZeroCopyUnavailable",
    "__version__",
    "plan",
    "probe",
    "send_file",
    "stats",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio."):
        _obj.__module__ = "zcio"
del _name, _obj
