"""``python -m lossbench``: the command line (:mod:`lossbench.apps.cli`)."""

import sys

from lossbench.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
