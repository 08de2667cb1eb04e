"""Why does the plain LSTM fail the long-gap cue task? Sweep the forget-gate bias at one gap.

With forget bias b the forget gate starts near f = sigmoid(b): 0.73 for b = 1, 0.95 for b = 3,
0.993 for b = 5. The cell keeps a fraction f^gap of the cue, and the gradient back to the cue
shrinks by the same factor, so the plain LSTM (b = 1) starts with 0.73^100 ~ 2e-14 of the signal
at gap 100. This script trains the lab's LSTM (same budget, steps, optimiser as ``rnnlab lab gap``)
with each bias and prints one markdown row per run.

    python benchmarks/lab_forget_bias.py --gap 100 --biases 1,2,3,5 --seed 0
"""
from __future__ import annotations

import argparse
import time

import torch

from rnnlab.data.synthetic import LongGapCue
from rnnlab.models.sequence_model import SequenceModel
from rnnlab.tasks.lab import GRID_DEFAULTS, SOLVED, LabTask, hidden_for_budget, is_solved
from rnnlab.train import TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", type=int, default=100)
    parser.add_argument("--biases", default="1,2,3,5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the gap grid's step budget")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = GRID_DEFAULTS["gap"]["settings"]
    steps = args.steps or settings.steps
    task = LongGapCue(args.gap, seed=args.seed)
    hidden, params = hidden_for_budget("lstm", task, settings)
    print(f"gap {args.gap}, LSTM hidden {hidden} ({params} params), {steps} steps at most, seed {args.seed}\n")
    print("| forget bias | sigmoid(b) | sigmoid(b)^gap | final accuracy | steps | solved | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for bias in [float(b) for b in args.biases.split(",")]:
        torch.manual_seed(args.seed)
        model = SequenceModel("lstm", settings.embedding, hidden, task.output_size,
                              num_embeddings=task.num_embeddings, forget_bias=bias)
        lab_task = LabTask(task, settings.batch_size, settings.eval_size, args.seed)
        seen = {"acc": float("nan"), "solved": None}

        def watch(trainer, event, info):
            if event == "eval":
                seen["acc"] = info["accuracy"]
                if seen["solved"] is None and is_solved("class", info):
                    seen["solved"] = trainer.step
                    trainer.config.max_steps = trainer.step  # stop: solved
        config = TrainConfig(optimizer="adam", lr=settings.lr, clip=settings.clip, max_epochs=None, max_steps=steps,
                             eval_every=settings.eval_every, restore_best=False, seed=args.seed, progress=False)
        start = time.perf_counter()
        summary = Trainer(model, lab_task, config, callbacks=[watch]).fit()
        f = torch.sigmoid(torch.tensor(bias)).item()
        print(f"| {bias:g} | {f:.3f} | {f ** args.gap:.1e} | {seen['acc']:.3f} | {summary['steps']} | "
              f"{'yes' if seen['solved'] else 'no'} | {time.perf_counter() - start:.0f} |", flush=True)
    print(f"\nsolved = {SOLVED['class']}")


if __name__ == "__main__":
    main()
