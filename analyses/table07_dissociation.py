"""Table 7: perceptual dissociation of sink vs equal-budget random removal.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only dissociation``):

    python analyses/table07_dissociation.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("dissociation"))
