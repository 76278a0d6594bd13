"""``interp findings``: the study's findings page (markdown + PNG figures) from its tables or stores.

    interp findings traces/study/tables_cpu.npz --out docs/findings.md      # figures: docs/img/findings/

Design
------
Only the options live here, and this module imports nothing heavy, so ``interp findings --help``
stays instant (``interp.cli``'s lazy dispatch); the work is
:func:`interp.analysis.findings.write_page`, imported when the command runs. Its user errors (tables
missing, not tables, of two studies, a sample twice; a bad ``--out``) are
:class:`~interp.analysis.study_effects.StudyError`, reported by ``interp.cli`` as one line, status 2.
"""

from __future__ import annotations

import argparse


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "inputs", nargs="+", help="study tables (.npz, one per store or worker) or study stores (.zarr folders)"
    )
    ap.add_argument("--out", required=True, help="the page to write (markdown)")
    ap.add_argument(
        "--figures", help="folder for the page's PNG figures (default: img/findings/ beside the page)", default=None
    )
    ap.add_argument("--json", help="also write every result as JSON here")
    ap.add_argument("--cost", help="JSON of the run's cost, shown on the page (default: the cost in the tables)")
    ap.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    ap.add_argument("--margin", type=float, default=0.05, help="TOST margin of accuracy differences")
    ap.add_argument("--workers", type=int, default=1, help="processes reducing a store given as input")
    ap.add_argument("--label", help="how the page names its inputs (default: the paths given)")
    ap.add_argument("--no-lpips", action="store_true", help="skip LPIPS (else scored where its weights resolve)")
    ap.add_argument("--weights-dir", help="local metric weights for LPIPS (default: $INTERP_WEIGHTS_DIR)")


def run(args: argparse.Namespace) -> int:
    from interp.analysis.findings import write_page

    return write_page(args)


def add_findings_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``interp findings TABLES|STORE ... --out PAGE``: the study's findings page with its figures."""
    p = subparsers.add_parser(
        "findings",
        help="the study's findings page (markdown + figures) from its tables or store",
        description=__doc__.splitlines()[0],
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m interp.analysis.findings_cli ...``: the same as ``interp findings ...``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
