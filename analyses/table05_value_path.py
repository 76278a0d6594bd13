"""Table 5: value-path interventions (zero, mean, lerp).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only value_path``):

    python analyses/table05_value_path.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("value_path"))
