"""``python -m zcio_hypercorn app:app [hypercorn's options]``."""

import sys

from zcio_hypercorn import main

sys.exit(main())
