"""interp view STORE [STORE ...]: serve the explorer of stores locally, or write one HTML report (--export).

Design
------
Every store is opened (and checked) before anything is served or written, so a path that is not a
store, an empty store or one without a finished sample is one line on stderr (``ViewError``, exit 2),
never a blank page. Serving prints the address and runs until interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time

from interp.cli import COMMANDS


def cmd_view(args: argparse.Namespace) -> int:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        print("interp view: needs bokeh; install interp[view]", file=sys.stderr)
        return 2
    from interp.view.source import StoreSource

    t0 = time.perf_counter()
    sources = [StoreSource(s) for s in args.stores]
    if args.export:
        from interp.view.export import export

        path = export(sources, args.export)
        print(f"wrote {path} ({time.perf_counter() - t0:.1f} s)")
        return 0
    from interp.view.server import ViewServer

    server = ViewServer(sources, host=args.host, port=args.port)
    print(f"interp view: serving {len(sources)} store(s) at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def add_view_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    view = subparsers.add_parser("view", help=COMMANDS["view"][2], description=__doc__.splitlines()[0])
    view.add_argument("stores", nargs="+", metavar="STORE", help="Zarr stores written by interp (trace or sweep)")
    view.add_argument("--export", metavar="FILE.html", help="write one self-contained HTML file instead of serving")
    view.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    view.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    view.set_defaults(func=cmd_view)
    return view
