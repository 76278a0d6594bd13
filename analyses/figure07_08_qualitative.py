"""Figures 7 and 8: baseline / sink-removed / random-removed panels.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only qualitative``):

    python analyses/figure07_08_qualitative.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("qualitative"))
