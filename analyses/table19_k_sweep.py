"""Table 19: k-sweep, sink vs random across budgets.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only ksweep``):

    python analyses/table19_k_sweep.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("ksweep"))
