"""Every table and figure of the paper from one store (the same as ``interp analyze STORE``).

python analyses/run_all.py STORE --out DIR [--only NAME ...] [--list] [--help]
"""

import sys

from interp.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
