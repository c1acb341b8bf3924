"""``python -m sisguard.prune prune|evaluate …``."""

from __future__ import annotations

import sys

from sisguard.prune.cli import main

if __name__ == "__main__":
    sys.exit(main())
