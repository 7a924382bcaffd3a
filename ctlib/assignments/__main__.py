"""``python -m ctlib.assignments {build,grade} ...``"""

from .cli import main

raise SystemExit(main())
