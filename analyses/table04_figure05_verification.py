"""Table 4 and Figure 5: intervention verification as measured removed mass.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only verification``):

    python analyses/table04_figure05_verification.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("verification"))
