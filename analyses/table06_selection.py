"""Table 6: sink selection protocol (per head vs union, online vs replayed).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only selection``):

    python analyses/table06_selection.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("selection"))
