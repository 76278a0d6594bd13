"""Figure 6: robustness of the main sink effect across sampler settings and tags.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only robustness``):

    python analyses/figure06_robustness.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("robustness"))
