"""Token identity of sinks: classes, positions and stability of the dominant keys (issue 8 item 3).

Thin wrapper over ``interp.analysis`` (the same as ``interp analyze STORE --only sink_identity``):

    python analyses/sink_token_identity.py STORE --out DIR [--resamples N] [--conditions ...] [--help]
"""

import sys

from interp.analysis.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("sink_identity"))
