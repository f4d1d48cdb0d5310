"""``python -m zcio_cli``: the same as the ``zcio`` command."""

from zcio_cli import main

raise SystemExit(main())
