"""Table 18: FID_shift of edited conditions.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only fid``):

    python analyses/table18_fid.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("fid"))
