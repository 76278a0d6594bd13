"""Table 13: sink removal in phase windows.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only phase``):

    python analyses/table13_phase_windows.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("phase"))
