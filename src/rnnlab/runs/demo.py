"""``rnnlab demo``: the whole story in a few minutes on a laptop CPU, no download.

1. **Long gaps** (:func:`rnnlab.runs.lab.run_grid`): "i grew up in <country> ... i speak fluent" ->
   the country's language, with MLP (window 10), RNN and LSTM at an equal parameter and step
   budget, at a few gaps. The MLP cannot see past its window, the RNN loses the cue as the gap
   grows, the LSTM keeps it.
2. **Gradient flow** (:func:`rnnlab.runs.gradflow.gradient_study`): ||dL/dh_t|| against distance
   for the RNN and the LSTM, before and after training.
3. **Language** (:func:`rnnlab.runs.lm.train_lm`): a character LSTM on the built-in corpus (the
   documentation inside every Python, ``pydoc_data.topics``), then its next-word guesses.
4. **Report** (:func:`rnnlab.analysis.report.build_report`): one HTML page of all of it, with the
   LSTM's gates on held-out text.

Everything lands in one run directory (``run.json`` of kind ``demo``; parts in ``lab/``,
``gradflow/``, ``lm/``), so ``rnnlab report`` can rebuild the page later.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rnnlab.analysis.next_token import next_words
from rnnlab.analysis.report import build_report
from rnnlab.rundir import check_run_dir_free, prepare_run_dir, update_run_json
from rnnlab.runs.gradflow import gradient_study
from rnnlab.runs.lab import run_grid
from rnnlab.runs.lm import LMRunConfig, train_lm
from rnnlab.tasks.lab import LabSettings
from rnnlab.tasks.lm import load_language_model

PROMPTS = ["The return value is ", "If the object is not ", "This method is called to ", "An exception is raised if the "]


@dataclass
class DemoPlan:
    """Sizes of each part; ``quick()`` is the seconds-long version the tests run."""

    gaps: list = field(default_factory=lambda: [5, 10, 20])
    models: list = field(default_factory=lambda: ["mlp", "rnn", "lstm"])
    countries: int = 5             # classes of the cue task (chance 1/5)
    budget: int = 10_000           # parameters per lab model
    embedding: int = 16
    lab_steps: int = 800           # per lab run, at most (a run stops once solved): the equal step budget
    eval_size: int = 256
    gradflow_gap: int = 20
    lm_hidden: int = 128
    lm_embed: int = 32
    lm_steps: int = 3000
    lm_batch: int = 32
    lm_bptt: int = 64
    seed: int = 0

    @classmethod
    def quick(cls) -> "DemoPlan":
        return cls(gaps=[3, 8], budget=3000, embedding=8, lab_steps=40, eval_size=64, gradflow_gap=6,
                   lm_hidden=24, lm_embed=8, lm_steps=30, lm_batch=8, lm_bptt=32)


def default_out() -> Path:
    return Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")


def run_demo(out: str | Path, plan: DemoPlan, *, progress: bool = True, log=print) -> dict:
    """Run every part into ``out`` (must be new or empty); returns the numbers the terminal summary shows."""
    out = Path(out)
    check_run_dir_free(out)
    started = time.perf_counter()
    settings = LabSettings(budget=plan.budget, embedding=plan.embedding, steps=plan.lab_steps, lr=3e-3,
                           eval_every=max(plan.lab_steps // 8, 10), eval_size=plan.eval_size,
                           task_options={"num_countries": plan.countries})
    parts = [["lab", "lab"], ["gradflow", "gradflow"], ["lm", "lm"]]  # [name, sub-directory], in page order
    prepare_run_dir(out, kind="demo", config={"plan": plan.__dict__}, parts=parts, prompts=PROMPTS,
                    command=" ".join(["rnnlab", *sys.argv[1:]]) if sys.argv else "rnnlab demo")
    timings = {}

    log(f"[1/4] long-gap cue task: {', '.join(plan.models)} at gaps {', '.join(map(str, plan.gaps))} "
        f"({plan.countries} countries, chance {1 / plan.countries:.2f}; ~{plan.budget:,} parameters each)")
    t = time.perf_counter()
    results = run_grid("gap", plan.models, plan.gaps, [plan.seed], settings, out / "lab", progress=progress, log=log)
    timings["lab"] = time.perf_counter() - t

    log(f"[2/4] gradient flow: ||dL/dh_t|| against distance at gap {plan.gradflow_gap}, RNN and LSTM, "
        f"before and after training")
    t = time.perf_counter()
    factors = gradient_study(["rnn", "lstm"], plan.gradflow_gap, [plan.seed], settings, out / "gradflow",
                             probe_size=min(64, plan.eval_size), progress=progress, log=log)
    timings["gradflow"] = time.perf_counter() - t

    log(f"[3/4] character LSTM ({plan.lm_hidden} units) on the built-in corpus pydoc_data.topics, "
        f"{plan.lm_steps} steps")
    t = time.perf_counter()
    config = LMRunConfig(level="char", model="lstm", embed=plan.lm_embed, hidden=plan.lm_hidden, layers=1,
                         batch_size=plan.lm_batch, bptt=plan.lm_bptt, max_steps=plan.lm_steps, epochs=10_000,
                         eval_every=max(plan.lm_steps // 6, 5), seed=plan.seed, progress=progress)
    lm = train_lm(config, out / "lm", command="rnnlab demo")
    timings["lm"] = time.perf_counter() - t

    model, tokenizer, _ = load_language_model(out / "lm")
    with torch.no_grad():
        guesses = {p: next_words(model, tokenizer.encode(p), tokenizer, k=3) for p in PROMPTS}

    summary = [{"model": m, **{f"gap {g}": _final(results, m, g) for g in plan.gaps}} for m in plan.models]
    valid = lm["results"].get("valid", {})
    numbers = {
        "accuracy": summary,
        "gradient_factor": {f"{r['model']} {r['stage']}": r["factor_h"] for r in factors},
        "lm_valid_bpc": valid.get("loss", math.nan) / math.log(2),
        "next_words": {p: [[w, round(q, 4)] for w, q in g] for p, g in guesses.items()},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    table = {"title": f"Held-out accuracy on the long-gap cue task (chance {1 / plan.countries:.2f})",
             "columns": ["model"] + [f"gap {g}" for g in plan.gaps],
             "rows": [[row["model"]] + [row[f"gap {g}"] for g in plan.gaps] for row in summary]}
    update_run_json(out, table=table, results={"char LSTM valid": {"bpc": numbers["lm_valid_bpc"]},
                                               "seconds": numbers["seconds"]})
    log("[4/4] report")
    numbers["report"] = str(build_report(out))
    numbers["seconds"]["total"] = round(time.perf_counter() - started, 1)
    update_run_json(out, results={"char LSTM valid": {"bpc": numbers["lm_valid_bpc"]}, "seconds": numbers["seconds"]})
    return numbers


def _final(results, model: str, gap: int) -> float | None:
    values = [r.final for r in results if r.model == model and r.length == gap]
    return round(sum(values) / len(values), 3) if values else None
