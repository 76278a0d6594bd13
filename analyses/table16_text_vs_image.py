"""Table 16: text vs image sinks.

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only modality``):

    python analyses/table16_text_vs_image.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("modality"))
