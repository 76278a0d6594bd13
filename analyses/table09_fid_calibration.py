"""Table 9: FID_shift of common variations (calibration).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only fid_calibration``):

    python analyses/table09_fid_calibration.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("fid_calibration"))
