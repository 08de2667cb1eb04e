"""``rnnlab train translate``, ``rnnlab translate``, and ``rnnlab evaluate`` for translation runs.

    rnnlab train translate --data ../shared/data/eng-fra/fra.txt --out runs/enfr     # tutorial subset, ~10 CPU min
    rnnlab train translate --source fra --target eng --attention dot --out runs/fren
    rnnlab train translate --preset all --max-tokens 20 --max-cpu-minutes 60 --out runs/enfr20
    rnnlab translate runs/enfr "i am not sure it is a good idea ." --beam 5 --nbest 3
    rnnlab evaluate runs/enfr --split test           # sacreBLEU BLEU and chrF, all references, greedy and beam
    rnnlab train translate --tokens bpe --bpe-vocab 4000 --out runs/enfr-bpe   # subword units (BLEU still on words)
    torchrun --nproc_per_node 2 -m rnnlab.cli train translate --out runs/enfr-ddp   # data parallel, as for rnnlab train lm
"""
from __future__ import annotations

import argparse
import sys

from rnnlab.commands.options import (
    add_config_options,
    add_run_options,
    apply_threads,
    command_line,
    config_from_args,
    given,
)
from rnnlab.errors import ConfigError


def _configs():
    from rnnlab.data.translation import TranslationDataConfig
    from rnnlab.models.translator import TranslatorConfig
    from rnnlab.runs.translate import SearchConfig, TranslateTrainConfig

    return TranslationDataConfig, TranslatorConfig, TranslateTrainConfig, SearchConfig


def register_train(kinds) -> None:
    data_cls, model_cls, train_cls, _ = _configs()
    parser = kinds.add_parser("translate", help="train an RNN encoder-decoder translator (English-French)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, resume=True)
    add_config_options(parser, data_cls, group="data")
    add_config_options(parser, model_cls, group="model")
    add_config_options(parser, train_cls, group="training")
    parser.set_defaults(func=run_train)


def register(subparsers) -> None:
    *_, search_cls = _configs()
    parser = subparsers.add_parser("translate", help="translate sentences with a trained translation run",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by rnnlab train translate")
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="sentences in the run's source language")
    parser.add_argument("--nbest", type=int, default=1, help="hypotheses to print per sentence, best first (default: 1)")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN", help="other translation runs (same data and "
                        "vocabularies) that decode together with RUN_DIR: the mean of their next-word distributions")
    add_config_options(parser, search_cls, group="search")
    add_run_options(parser, out=False, seed=False, progress=False)
    parser.set_defaults(func=run_translate)


def run_train(args: argparse.Namespace) -> int:
    from rnnlab.runs.translate import train_translation

    data_cls, model_cls, train_cls, search_cls = _configs()
    apply_threads(args)
    if args.resume:
        changed = sorted(set().union(*(given(args, cls) for cls in (data_cls, model_cls, train_cls))) - {"max_steps"})
        if changed:
            raise ConfigError(f"--resume continues the run with its stored options; only --max-steps may be given, "
                              f"got {', '.join('--' + c.replace('_', '-') for c in changed)}")
        result = train_translation(None, None, None, args.out, resume=True, progress=not args.no_progress,
                                   max_steps=getattr(args, "max_steps", None))
    else:
        data = config_from_args(data_cls, args)
        model = config_from_args(model_cls, args, source_vocab=5, target_vocab=5)  # sizes come from the data
        train = config_from_args(train_cls, args)
        result = train_translation(data, model, train, args.out, seed=args.seed, progress=not args.no_progress,
                                   command=command_line())
    from rnnlab import distributed as dist

    if not dist.is_main():  # under torchrun rank 0 reports and evaluates
        return 0
    s, stats = result["summary"], result["data_stats"]
    print(f"trained {result['parameters']:,} parameters for {s['steps']} steps ({s['epochs']} epochs, "
          f"{s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU, stopped: {s['stopped']}) on {stats['train_pairs']:,} "
          f"pairs ({stats['train_sources']:,} distinct sources)")
    valid = result["results"]["valid"]
    print(f"valid: cross-entropy {valid['xent']:.3f}, greedy BLEU {valid['bleu']:.1f}, chrF {valid['chrf']:.1f}")
    _print_evaluation(_evaluate(args.out, "test", search_cls()))
    print(f"run directory: {args.out}")
    return 0


def _evaluate(run_dir, split, search, data=None, batch_size=64, encoding_errors=None, ensemble=()):
    from rnnlab.runs.translate import evaluate_run

    return evaluate_run(run_dir, split, search, data=data, batch_size=batch_size, encoding_errors=encoding_errors,
                        ensemble=ensemble)


def _print_evaluation(result: dict) -> None:
    if result.get("ensemble"):
        print(f"ensemble of {len(result['ensemble'])} runs: {', '.join(result['ensemble'])}")
    print(f"{result['split']}: {result['sources']} source sentences, {result['references']} references")
    for name, s in result["scores"].items():
        print(f"  {name:>7}: BLEU {s['bleu']:5.1f}  chrF {s['chrf']:5.1f}  (first reference only: BLEU "
              f"{s['bleu_first_reference']:.1f}; {s['cpu_s']:.1f} CPU-s)")
    first = next(iter(result["scores"].values()))
    print(f"  BLEU signature: {first['bleu_signature']}")
    print(f"  chrF signature: {first['chrf_signature']}")


def run_translate(args: argparse.Namespace) -> int:
    from rnnlab.runs.translate import translate_sentences

    *_, search_cls = _configs()
    apply_threads(args)
    search = config_from_args(search_cls, args)
    if args.nbest < 1:
        raise ConfigError(f"--nbest must be >= 1, got {args.nbest}")
    for result in translate_sentences(args.run_dir, args.sentences, search, nbest=args.nbest,
                                      ensemble=args.ensemble or ()):
        if result["unknown"]:
            print(f"note: not in the source vocabulary, read as <unk>: {' '.join(result['unknown'])}", file=sys.stderr)
        if len(args.sentences) > 1 or args.nbest > 1:
            print(f"> {result['source']}")
        for hypothesis in result["translations"]:
            prefix = f"{hypothesis['score']:8.3f}  " if args.nbest > 1 else ""
            print(prefix + hypothesis["text"])
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``rnnlab evaluate RUN`` for a translation run (dispatched by rnnlab.commands.evaluate)."""
    from pathlib import Path

    from rnnlab.rundir import RUN_JSON

    *_, search_cls = _configs()
    search = search_cls() if args.beam is None else search_cls(beam=args.beam)
    run_dir = Path(args.checkpoint)
    if not (run_dir / RUN_JSON).exists() and (run_dir.parent / RUN_JSON).exists():
        run_dir = run_dir.parent
    errors = "replace" if args.encoding_errors == "replace" else None  # else: as the run was trained
    _print_evaluation(_evaluate(run_dir, args.split, search, data=args.data, batch_size=args.batch_size,
                                encoding_errors=errors, ensemble=args.ensemble or ()))
    return 0
