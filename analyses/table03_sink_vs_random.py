"""Table 3: sink removal vs equal-budget random removal.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only controls``):

    python analyses/table03_sink_vs_random.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("controls"))
