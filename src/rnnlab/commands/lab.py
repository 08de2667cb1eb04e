"""``rnnlab lab gap|adding|copy|order|gradflow``: the long-term dependency experiments.

Each subcommand runs a model x length x seed grid (or, for ``gradflow``, a model x seed study) at an
equal parameter budget and step budget, shows a progress bar per run, stops a run early once it is
solved (see :mod:`rnnlab.tasks.lab`) and writes runs.csv/json, metrics.csv, run.json, summary.md and PNG
plots into ``--out``. With no options, each runs the default grid of ``benchmarks/results/lab.md``.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

from rnnlab.commands.options import add_config_options, add_run_options, apply_threads, config_from_args
from rnnlab.errors import ConfigError
from rnnlab.runs.gradflow import gradient_study
from rnnlab.runs.lab import run_grid
from rnnlab.tasks.lab import GRID_DEFAULTS, MODELS, LabSettings

HELP = {
    "gap": 'long-gap cue task: "i grew up in <country> ... i speak fluent" -> language',
    "adding": "adding problem: sum of two marked values among T",
    "copy": "copy memory: replay 10 symbols after T blanks",
    "order": "temporal order: the order of X/Y hidden among distractors",
    "gradflow": "gradient norm ||dL/dh_t|| against distance, at init and after training, per cell",
}


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def register(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="long-term dependency experiments (RNN vs LSTM vs ...)")
    tasks = lab.add_subparsers(dest="lab_task", metavar="TASK")
    tasks.required = True
    for name, text in HELP.items():
        d = GRID_DEFAULTS[name]
        p = tasks.add_parser(name, help=text, description=text)
        p.add_argument("--out", required=True, help="output directory (new or empty; nothing is overwritten)")
        p.add_argument("--models", type=_names, default=d["models"],
                       help=f"comma-separated, from {', '.join(MODELS)} (default {','.join(d['models'])})")
        if name in ("gap", "gradflow"):
            what = "gap" if name == "gradflow" else "gaps"
            default = d["gap"] if name == "gradflow" else d["lengths"]
            p.add_argument("--gaps" if name == "gap" else "--gap", dest="lengths",
                           type=_ints if name == "gap" else int, default=default,
                           help=f"filler words between the country and 'i speak fluent' ({what}; default {default})")
        else:
            p.add_argument("--lengths", type=_ints, default=d["lengths"],
                           help=f"sequence lengths T (default {','.join(map(str, d['lengths']))})")
        p.add_argument("--seeds", type=_ints, default=d["seeds"], help=f"default {','.join(map(str, d['seeds']))}")
        add_config_options(p, LabSettings, defaults={k: v for k, v in asdict(d["settings"]).items()
                                                     if k != "task_options"})
        if name in ("gap", "gradflow"):
            p.add_argument("--countries", type=int, default=20, help="K countries, chance 1/K (default 20, max 40)")
            p.add_argument("--distractors", type=int, default=0, help="other countries in the filler (default 0)")
            p.add_argument("--filler", choices=("words", "grammar"), default="words", help="default words")
            p.add_argument("--min-gap", type=int, default=None,
                           help="draw each sequence's gap uniformly from [min-gap, gap] (default: fixed gap)")
        add_run_options(p, out=False, seed=False)
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    options = {}
    if args.lab_task in ("gap", "gradflow"):
        if args.countries < 2 or args.distractors < 0 or (args.min_gap is not None and args.min_gap < 1):
            raise ConfigError(f"--countries must be >= 2, --distractors >= 0 and --min-gap >= 1; got "
                              f"{args.countries}, {args.distractors}, {args.min_gap}")
        options = {"num_countries": args.countries, "distractors": args.distractors, "filler": args.filler,
                   "min_gap": args.min_gap}
    settings = config_from_args(LabSettings, args, task_options=options)
    progress = not args.no_progress
    if args.lab_task == "gradflow":
        gradient_study(args.models, args.lengths, args.seeds, settings, args.out, progress=progress)
    else:
        run_grid(args.lab_task, args.models, args.lengths, args.seeds, settings, args.out, progress=progress)
    print(f"wrote {args.out}/summary.md, runs.csv, runs.json and plots")
    return 0
