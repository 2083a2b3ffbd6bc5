"""``downsample-study report SWEEP``: write a sweep's report into its folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from downsample_study.console import SideParser, command_name, side_command
from downsample_study.errors import ReportError
from downsample_study.layout import COMPARISONS_FILE, REPORT_FILE, TABLE_FILE
from downsample_study.report.build import write_report
from downsample_study.report.comparisons import parse_baseline
from downsample_study.report.tables import markdown


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command on ``argv`` (the command line's by default), named ``prog`` in its usage."""
    parser = SideParser(
        prog=prog or command_name("downsample_study.report"),
        description="Summarise a sweep folder: report.md, results.csv, comparisons.csv, plots.",
    )
    parser.add_argument("sweep", type=Path, help="the sweep folder, e.g. multirun/<date>/<time>")
    parser.add_argument(
        "--baseline", action="append", metavar="KEY=VALUE[,KEY=VALUE]",
        help="compare each variant with the one that has these values (repeatable; default: "
             "the sweep's report.baselines, else downsample=maxpool)",
    )
    parser.add_argument("--margin", type=float, metavar="PP",
                        help="the equivalence margin in percentage points (default: the "
                             "sweep's report.equivalence_margin)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the report to W&B")
    parser.add_argument("--no-plots", action="store_true",
                        help="write the tables only, quicker on a large sweep (an earlier "
                             "report's plots are removed: they would not match)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return side_command(lambda: _report(args), stopped=f"no {REPORT_FILE} written (it is "
                        f"the last file written); run the command again")


def _report(args: argparse.Namespace) -> int:
    if args.margin is not None and not args.margin > 0:
        raise ReportError(f"--margin: the equivalence margin must be > 0 pp, got "
                          f"{args.margin:g}")
    baselines = [parse_baseline(b) for b in args.baseline] if args.baseline else None
    report = write_report(args.sweep, baselines, use_wandb=not args.no_wandb,
                          margin=args.margin, draw_plots=not args.no_plots)
    print(markdown(report))
    plots = "" if args.no_plots else " and plots"
    print(f"written: {report.sweep / REPORT_FILE}, {TABLE_FILE}, {COMPARISONS_FILE}{plots}")
    return 0
