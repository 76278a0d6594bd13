"""Tables 10, 11 and Figure 4: dose-response over eta and its trend test.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only dose``):

    python analyses/table10_11_figure04_dose.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("dose"))
