"""``rnnlab demo``: a short look inside the core — an RNN and an LSTM read the same sequence.

The sequence carries one cue at step 0 followed by noise. We print, at a few steps, the LSTM's gates
(how much it writes, keeps and shows) and how far each network's state still reflects the cue,
measured by the gradient of the final state with respect to the first input.
"""
from __future__ import annotations

import argparse

import torch

from rnnlab.nn import LSTM, RNN


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="a short built-in demonstration (no download)")
    parser.add_argument("--steps", type=int, default=40, help="sequence length (default 40)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.steps < 2 or args.hidden < 1:
        from rnnlab.errors import ConfigError
        raise ConfigError(f"--steps must be >= 2 and --hidden >= 1; got {args.steps} and {args.hidden}")
    torch.manual_seed(args.seed)
    x = torch.randn(1, args.steps, 4) * 0.1
    x[0, 0] = torch.tensor([3.0, -3.0, 3.0, -3.0])  # the cue
    x.requires_grad_(True)
    lstm = LSTM(4, args.hidden, batch_first=True)  # forget-gate bias 1.0 by default
    rnn = RNN(4, args.hidden, batch_first=True)

    output, (h_n, c_n), record = lstm(x, record=True)
    gates = record[0][0]  # layer 0, forward direction: each (1, T, H)
    print(f"LSTM, hidden {args.hidden}, one cue at step 0 then {args.steps - 1} steps of noise")
    print(f"{'step':>5} {'input i':>8} {'forget f':>9} {'output o':>9} {'|c|':>7} {'|h|':>7}   (means over units)")
    for t in sorted({0, 1, 2, args.steps // 4, args.steps // 2, args.steps - 1}):
        i, f, o = (gates[k][0, t].mean().item() for k in "ifo")
        c, h = gates["c"][0, t].norm().item(), gates["h"][0, t].norm().item()
        print(f"{t:>5} {i:>8.3f} {f:>9.3f} {o:>9.3f} {c:>7.3f} {h:>7.3f}")

    print("\nHow much the final state still depends on the cue, ||d h_T / d x_0|| (larger = remembered):")
    for name, model in (("RNN (tanh)", rnn), ("LSTM", lstm)):
        h_last = model(x)[0][0, -1]
        grad, = torch.autograd.grad(h_last.sum(), x)
        print(f"  {name:<11} {grad[0, 0].norm().item():.3e}")
    return 0
