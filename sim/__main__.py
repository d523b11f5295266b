"""``python -m sim`` is ``sigprop``."""

import sys

from sim.cli import main

sys.exit(main())
