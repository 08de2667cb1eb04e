"""Decoding settings of a trained translator, chosen on validation: beam size x length normalisation.

    python benchmarks/translate_decoding.py runs/bench-translate/lrpatience2 [more runs]
    python benchmarks/translate_decoding.py --ensemble runs/bench-translate/{lrpatience2,seed1,seed2}   # one ensemble

For each run: BLEU/chrF (all references, sacreBLEU) on the validation split for every beam size in
``--beams`` and every alpha in ``--alphas`` (score = log p / length^alpha); the setting with the best
validation BLEU is then scored on test. Every test score is listed too, so it is plain that the choice
was made on validation only. Writes ``benchmarks/results/translate_decoding.md`` (one section per run,
newest last; an earlier section of the same run is replaced).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from rnnlab.data.translation import load_translation_data
from rnnlab.runs.translate import TranslationDataConfig, load_translators
from rnnlab.tasks.translate import score_groups

HERE = Path(__file__).resolve().parent


def sweep(run_dir: Path, beams: list[int], alphas: list[float], data: str | None, ensemble=()
          ) -> tuple[list[dict], dict]:
    model, source_vocab, target_vocab, info = load_translators(run_dir, ensemble)
    config = TranslationDataConfig(**{**info["config"]["data"], **({"data": data} if data else {})})
    dataset = load_translation_data(config, vocabularies=(source_vocab, target_vocab))
    groups = {split: dataset.references(split) for split in ("valid", "test")}
    rows = []
    for beam in beams:
        for alpha in (alphas if beam > 1 else [1.0]):  # greedy has no length normalisation
            row = {"beam": beam, "alpha": alpha}
            cpu = time.process_time()
            for split, group in groups.items():
                s = score_groups(model, group, source_vocab, target_vocab, beam=beam, alpha=alpha, batch_size=64,
                                 max_len_a=1.5, max_len_b=5)
                row[split] = {"bleu": s["bleu"], "chrf": s["chrf"]}
            row["cpu_s"] = time.process_time() - cpu
            rows.append(row)
            print(f"  beam {beam:2d} alpha {alpha:4.2f}: valid {row['valid']['bleu']:.2f}  test {row['test']['bleu']:.2f}",
                  flush=True)
    best = max(rows, key=lambda r: r["valid"]["bleu"])
    return rows, best


def section(name: str, rows: list[dict], best: dict, command: str, wall: float) -> str:
    lines = [f"## {name}", "",
             f"`{command}` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()} "
             f"{os.cpu_count()} cores, one torch thread, {wall:.0f} s wall, load average after "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| beam | alpha | valid BLEU | valid chrF | test BLEU | test chrF | CPU-s (both splits) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen on valid)**" if r is best else ""
        lines.append(f"| {r['beam']} | {r['alpha'] if r['beam'] > 1 else '–'}{mark} | {r['valid']['bleu']:.1f} | "
                     f"{r['valid']['chrf']:.1f} | {r['test']['bleu']:.1f} | {r['test']['chrf']:.1f} | {r['cpu_s']:.0f} |")
    lines += ["", f"Chosen on validation: beam {best['beam']}, alpha {best['alpha']} → **test BLEU "
                  f"{best['test']['bleu']:.1f}** (chrF {best['test']['chrf']:.1f}).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--beams", default="1,5,10", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--alphas", default="0.5,0.75,1.0,1.25,1.5", type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--data", help="fra.txt, if not where the run was trained from")
    parser.add_argument("--ensemble", action="store_true", help="decode all the runs together as one ensemble")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "translate_decoding.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = " ".join(["python", *sys.argv])
    header = ("# Translation: decoding settings chosen on validation\n\nWritten by `benchmarks/translate_decoding.py`; "
              "BLEU against all references of each source (sacreBLEU), source split of the run's own data. Each "
              "section states the load average after it; decoding ran beside training runs, so its CPU-s are not "
              "comparable with idle-machine figures (the BLEU scores do not depend on the load).\n")
    text = args.results.read_text() if args.results.exists() else header
    jobs = [(" + ".join(r.name for r in args.runs), args.runs[0], args.runs[1:])] if args.ensemble else \
        [(r.name, r, ()) for r in args.runs]
    for name, run_dir, others in jobs:
        print(name, flush=True)
        started = time.perf_counter()
        rows, best = sweep(run_dir, args.beams, args.alphas, args.data, others)
        new = section(name, rows, best, command, time.perf_counter() - started)
        marker = f"## {name}\n"
        if marker in text:  # replace the run's earlier section
            head, rest = text.split(marker, 1)
            tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
            text = head + new + tail.lstrip("\n")
        else:
            text = text.rstrip("\n") + "\n\n" + new
        args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
