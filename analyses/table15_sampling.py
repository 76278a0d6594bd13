"""Table 15: sampling sensitivity.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only sampling``):

    python analyses/table15_sampling.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("sampling"))
