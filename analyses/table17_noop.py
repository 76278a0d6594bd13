"""Table 17: the no-op check (the edit kernel's noise floor).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only noop``):

    python analyses/table17_noop.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("noop"))
