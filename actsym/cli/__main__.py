"""``python -m actsym.cli``."""

import sys

from actsym.cli import main

sys.exit(main())
