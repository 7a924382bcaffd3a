"""``python -m ctlib ...``: see :mod:`ctlib.cli`."""

import sys

from .cli import main

sys.exit(main())
