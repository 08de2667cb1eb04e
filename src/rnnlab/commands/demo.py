"""``rnnlab demo``: long gaps (MLP vs RNN vs LSTM), gradient flow, a character LSTM, and a report page.

No download and no GPU; a few minutes on 2 CPU cores (``--quick``: seconds, for tests). Prints a
summary table and next-word guesses, writes everything into ``--out`` (default
``runs/demo-<date>-<time>``) and prints the path of the HTML report. See :mod:`rnnlab.runs.demo`.
"""
from __future__ import annotations

import argparse

from tqdm.auto import tqdm

from rnnlab.commands.options import add_run_options, apply_threads
from rnnlab.runs.demo import DemoPlan, default_out, run_demo


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the main demonstration: RNN vs LSTM on long gaps, gradient flow, "
                                                "a character LSTM, and an HTML report (no download)")
    parser.add_argument("--out", default=None, help="run directory (default runs/demo-<date>-<time>)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long run with tiny models (for tests)")
    add_run_options(parser, out=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    plan = DemoPlan.quick() if args.quick else DemoPlan()
    plan.seed = args.seed
    out = args.out or default_out()
    numbers = run_demo(out, plan, progress=not args.no_progress, log=tqdm.write)

    gaps = [k for k in numbers["accuracy"][0] if k != "model"]
    print(f"\nHeld-out accuracy on the long-gap cue task (chance 1/{plan.countries}; at most {plan.lab_steps} "
          f"training steps each, equal parameter budget):")
    print(f"  {'model':<6}" + "".join(f"{g:>9}" for g in gaps))
    for row in numbers["accuracy"]:
        print(f"  {row['model']:<6}" + "".join(f"{row[g]:>9.3f}" if row[g] is not None else f"{'-':>9}" for g in gaps))
    print("\nGradient flow: per-step factor rho of ||dL/dh_t|| ~ rho^(T-t) (1 = no decay):")
    print("  " + ", ".join(f"{name} {value:.3f}" for name, value in numbers["gradient_factor"].items()))
    print(f"\nCharacter LSTM on pydoc_data.topics: {numbers['lm_valid_bpc']:.3f} bits per character (validation)")
    print("Next-word guesses:")
    for prompt, words in numbers["next_words"].items():
        print(f"  {prompt!r:<36} -> " + ", ".join(f"{w!r} {p:.2f}" for w, p in words))
    seconds = numbers["seconds"]
    print(f"\nTook {seconds['total']:.0f} s (lab {seconds['lab']:.0f}, gradient flow {seconds['gradflow']:.0f}, "
          f"language model {seconds['lm']:.0f}).")
    print(f"Report: {numbers['report']}")
    return 0
