"""Table 2: dynamic sink interventions (score path, eta = 0).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only interventions``):

    python analyses/table02_sink_interventions.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("interventions"))
