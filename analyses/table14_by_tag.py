"""Table 14: effects by GenEval task type.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only tags``):

    python analyses/table14_by_tag.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("tags"))
