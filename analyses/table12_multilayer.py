"""Table 12: multi-layer sink removal.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only multilayer``):

    python analyses/table12_multilayer.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("multilayer"))
