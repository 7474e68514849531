"""`python -m bench [--quick] [--big] [--runs N] [--only sqlite|postgres]`,
`python -m bench --peers`, or `python -m bench --scale`."""

from __future__ import annotations

import sys

from .harness import main

if __name__ == "__main__":
    sys.exit(main())
