"""Table 20: sink specificity against every control at equal budget.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only specificity``):

    python analyses/table20_sink_specificity.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("specificity"))
