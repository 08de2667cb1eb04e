"""``rnnlab lab gap|adding|copy|order|gradflow``: the long-term dependency experiments.

Each subcommand runs a model x length x seed grid (or, for ``gradflow``, a model x seed study) at an
equal parameter budget and step budget, shows a progress bar per run, stops a run early once it is
solved (see :mod:`rnnlab.tasks.lab`) and writes runs.csv/json, metrics.csv, run.json, summary.md and PNG
plots into ``--out``. With no options, each runs the default grid of ``benchmarks/results/lab.md``.
"""
from __future__ import annotations

import argparse

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
        p.add_argument("--out", required=True, help="output directory (must not hold lab results already)")
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
        s = d["settings"]
        p.add_argument("--steps", type=int, default=s.steps, help=f"training steps per run, at most (default {s.steps})")
        p.add_argument("--budget", type=int, default=s.budget, help=f"parameters per model (default {s.budget})")
        p.add_argument("--window", type=int, default=s.window, help=f"MLP window W (default {s.window})")
        p.add_argument("--embedding", type=int, default=s.embedding, help=f"embedding size (default {s.embedding})")
        p.add_argument("--lr", type=float, default=s.lr, help=f"Adam learning rate (default {s.lr})")
        p.add_argument("--clip", type=float, default=s.clip, help=f"gradient-norm clip (default {s.clip})")
        p.add_argument("--batch-size", type=int, default=s.batch_size, help=f"default {s.batch_size}")
        p.add_argument("--eval-every", type=int, default=s.eval_every, help=f"default {s.eval_every}")
        p.add_argument("--eval-size", type=int, default=s.eval_size, help=f"held-out sequences (default {s.eval_size})")
        if name in ("gap", "gradflow"):
            p.add_argument("--countries", type=int, default=20, help="K countries, chance 1/K (default 20, max 40)")
            p.add_argument("--distractors", type=int, default=0, help="other countries in the filler (default 0)")
            p.add_argument("--filler", choices=("words", "grammar"), default="words", help="default words")
            p.add_argument("--min-gap", type=int, default=None,
                           help="draw each sequence's gap uniformly from [min-gap, gap] (default: fixed gap)")
        p.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads (default 1: small recurrent models gain little from more)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.errors import ConfigError
    from rnnlab.runs.gradflow import gradient_study
    from rnnlab.runs.lab import run_grid

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    options = {}
    if args.lab_task in ("gap", "gradflow"):
        options = {"num_countries": args.countries, "distractors": args.distractors, "filler": args.filler,
                   "min_gap": args.min_gap}
    settings = LabSettings(budget=args.budget, embedding=args.embedding, window=args.window, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, clip=args.clip, eval_every=args.eval_every,
                           eval_size=args.eval_size, task_options=options)
    progress = not args.no_progress
    if args.lab_task == "gradflow":
        gradient_study(args.models, args.lengths, args.seeds, settings, args.out, progress=progress)
    else:
        run_grid(args.lab_task, args.models, args.lengths, args.seeds, settings, args.out, progress=progress)
    print(f"wrote {args.out}/summary.md, runs.csv, runs.json and plots")
    return 0
