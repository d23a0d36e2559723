"""``python -m actsym``: the command line."""

import sys

from actsym.cli import main

sys.exit(main())
