"""Index-0 overlap: the argmax key vs key 0, image patch (0, 0) and CLIP BOS.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only index0_overlap``):

    python analyses/index0_overlap.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("index0_overlap"))
