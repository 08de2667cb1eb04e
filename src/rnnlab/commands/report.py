"""``rnnlab report RUN_DIR``: one self-contained HTML page of a run (lab, lm, forecast, classify, demo).

Bad input (a missing, empty, foreign or newer-format run directory) is one line on stderr and a
non-zero exit, through :class:`rnnlab.errors.RunDirError`; a partial run reports what it has.
"""
from __future__ import annotations

import argparse

from rnnlab.analysis.report import build_report
from rnnlab.io import check_new_file


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write a self-contained HTML report of a run directory",
                                   description="Write a single HTML file (styles, scripts, data and images inline) "
                                               "showing what the run in RUN_DIR holds.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by an rnnlab command with --out")
    parser.add_argument("--out", default=None, help="where to write the page (default: RUN_DIR/report.html, "
                                                     "which is rewritten; any other existing file needs --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing file given with --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_new_file(args.out, "report page", force=args.force)
    path = build_report(args.run_dir, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser")
    return 0
