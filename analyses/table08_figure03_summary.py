"""Table 8 and Figure 3: summary table and heatmap of every edit.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only summary``):

    python analyses/table08_figure03_summary.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("summary"))
