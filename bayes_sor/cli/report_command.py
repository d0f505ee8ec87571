"""``python -m bayes_sor report RUN_DIR``: (re)write a finished run folder's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, rope_width
from bayes_sor.report.run_report import write_report


def _report_command(args: argparse.Namespace) -> int:
    written = write_report(args.run_dir, args.rope)
    print(f"wrote {', '.join(p.name for p in written)} in {args.run_dir}/")
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor report RUN_DIR``."""
    p = subparsers.add_parser(
        "report", help="(re)write report.html / report.md and figures of a finished run folder"
    )
    p.add_argument("run_dir", type=Path, help="a run folder written by 'fit'")
    p.add_argument(
        "--rope",
        type=rope_width,
        default=None,
        help="half-width of the region of practical equivalence on the std.all "
        f"scale (default: the run's, else {DEFAULT_ROPE})",
    )
    p.set_defaults(handler=_report_command)
