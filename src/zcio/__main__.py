"""``python -m zcio``: the ``zcio`` command (``zcio_cli``), shipped in the same wheel.

This is an entry point, not part of the library: the core never imports the command line.
"""

from zcio_cli import main

raise SystemExit(main())
