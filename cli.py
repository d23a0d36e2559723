"""Thin entry point: ``python cli.py ...`` runs the same program as the ``actsym`` console script."""

import sys

from actsym.cli import main

if __name__ == "__main__":
    sys.exit(main())
