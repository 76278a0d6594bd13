"""Table 1 and Figure 2: attention concentration and activation norms per layer (H1), against t/T.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only h1_dynamics``):

    python analyses/table01_figure02_h1_dynamics.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("h1_dynamics"))
