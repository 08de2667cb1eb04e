"""``rnnlab train speech``, ``rnnlab transcribe``, ``rnnlab evaluate`` for spoken digits.

    rnnlab train speech --data ../shared/data/fsdd --out runs/digits     # connected digits, CTC, a few CPU minutes
    rnnlab train speech --split speaker:lucas --spec-augment --speed --out runs/lucas   # lucas never heard
    rnnlab train speech --task isolated --out runs/isolated                # one digit per recording (baseline)
    rnnlab train speech --frontend conv --schedule plateau --epochs 16 --out runs/conv   # conv subsampling, lr decay
    rnnlab transcribe runs/digits a.wav b.wav                              # "4 0 7 1", confidences, real-time factor
    rnnlab transcribe runs/digits a.wav --ensemble runs/digits2            # two runs decode together
    rnnlab evaluate runs/digits --split test [--beam 8]                    # digit error rate, per speaker
    rnnlab evaluate runs/digits --ensemble runs/digits2                    # two runs decoded together
    rnnlab train speech --out runs/digits --resume --epochs 12             # continue exactly where it stopped
"""
from __future__ import annotations

import argparse
import sys

CONFIGS = ("SpeechRunConfig", "AcousticConfig", "FeatureConfig", "ConnectedConfig", "AugmentConfig")


def _config_classes():
    from rnnlab.data.audio import FeatureConfig
    from rnnlab.data.speech import ConnectedConfig
    from rnnlab.models.acoustic import AcousticConfig
    from rnnlab.runs.speech import SpeechRunConfig
    from rnnlab.tasks.speech import AugmentConfig

    return [(SpeechRunConfig, "data and training"), (AcousticConfig, "acoustic model"), (FeatureConfig, "features"),
            (ConnectedConfig, "connected digits"), (AugmentConfig, "SpecAugment")]


def register_train(kinds) -> None:
    from rnnlab.commands.options import add_config_options, add_run_options

    parser = kinds.add_parser("speech", help="train a spoken-digit recogniser on FSDD (CTC or isolated)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, resume=True)
    for cls, group in _config_classes():
        add_config_options(parser, cls, group=group)
    parser.set_defaults(func=run_train)


def register(subparsers) -> None:
    parser = subparsers.add_parser("transcribe", help="recognise the digits spoken in audio files with a speech run")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by rnnlab train speech")
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files (WAV, any rate; stereo is mixed down)")
    parser.add_argument("--beam", type=int, default=1, help="prefix beam width (default: 1, best path)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN", default=(),
                        help="other speech runs of the same task decoded together with RUN_DIR")
    parser.set_defaults(func=run_transcribe)


def run_train(args: argparse.Namespace) -> int:
    from rnnlab.commands.options import apply_threads, command_line, config_from_args
    from rnnlab.runs.speech import train_speech

    apply_threads(args)
    configs = [config_from_args(cls, args) for cls, _ in _config_classes()]
    results = train_speech(*configs, args.out, resume=args.resume, command=command_line(),
                           progress=not args.no_progress, seed=args.seed)
    print(f"trained {results['parameters']:,} parameters for {results['epochs']} epochs "
          f"({results['train_wall_s']:.0f} s wall, {results['train_cpu_s']:.0f} s CPU)")
    print(describe(results))
    print(f"run directory: {args.out}")
    return 0


def describe(results: dict) -> str:
    """Test scores in a few lines (overall, then per speaker)."""
    if results["task"] == "isolated":
        lines = [f"{results['split']} accuracy {1 - results['der']:.2%} on {results['utterances']} recordings "
                 f"(split {results['data_split']})"]
        lines += [f"  {s:<10} {1 - m['der']:.2%}" for s, m in results["per_speaker"].items()]
    else:
        lines = [f"{results['split']} digit error rate {results['der']:.2%} (sub {results['substitutions']:.2%}, "
                 f"del {results['deletions']:.2%}, ins {results['insertions']:.2%}), utterance error "
                 f"{results['ser']:.2%} on {results['utterances']} utterances / {results['digits']} digits "
                 f"(split {results['data_split']})"]
        lines += [f"  {s:<10} DER {m['der']:.2%}  utterances wrong {m['ser']:.2%}"
                  for s, m in results["per_speaker"].items()]
    return "\n".join(lines)


def run_transcribe(args: argparse.Namespace) -> int:
    from rnnlab.commands.options import apply_threads
    from rnnlab.errors import ConfigError
    from rnnlab.runs.speech import transcribe

    apply_threads(args)
    if args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    results = transcribe(args.run_dir, args.audio, beam=args.beam, ensemble=args.ensemble)
    total_audio = sum(r["duration"] for r in results)
    for r in results:
        digits = " ".join(map(str, r["digits"])) or "(no digits)"
        confidence = " ".join(f"{c:.2f}" for c in r["confidences"])
        print(f"{r['path']}: {digits}   confidence {confidence or '-'}   ({r['duration']:.2f} s audio)")
        for note in r["notes"]:
            print(f"note: {r['path']}: {note}", file=sys.stderr)
    seconds = sum(r["seconds"] for r in results)
    print(f"real-time factor {seconds / total_audio:.4f} ({seconds:.3f} s to process {total_audio:.2f} s of audio, "
          f"{sum(r['cpu_seconds'] for r in results):.3f} s CPU, {args.threads} thread(s))")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``rnnlab evaluate`` for a speech run (dispatched by rnnlab.commands.evaluate)."""
    from pathlib import Path

    from rnnlab.errors import ConfigError
    from rnnlab.rundir import RUN_JSON
    from rnnlab.runs.speech import evaluate_speech

    if args.encoding_errors != "strict":
        raise ConfigError("--encoding-errors applies to text runs, not to a speech run")
    if args.beam is not None and args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    run_dir = Path(args.checkpoint)
    if not (run_dir / RUN_JSON).exists() and (run_dir.parent / RUN_JSON).exists():
        run_dir = run_dir.parent
    results = evaluate_speech(run_dir, split=args.split, beam=args.beam, data=args.data, ensemble=args.ensemble or ())
    if results.get("ensemble"):
        print(f"ensemble of {len(results['ensemble'])} runs: {', '.join(results['ensemble'])}")
    print(describe(results))
    return 0
