"""``rnnlab train caption``, ``rnnlab caption``, ``rnnlab evaluate`` (caption runs): image captioning.

    rnnlab train caption --out runs/scenes                  # built-in digit scenes, a few CPU minutes
    rnnlab train caption --scenes shapes --out runs/shapes  # coloured shapes
    rnnlab train caption --no-attention --out runs/st       # Show and Tell (image in the initial state)
    rnnlab caption runs/scenes picture.png --beam 3         # any PNG/JPEG
    rnnlab evaluate runs/scenes --split compositional       # combinations never seen in training
"""
from __future__ import annotations

import argparse

from rnnlab.commands.options import add_config_options, add_run_options, apply_threads, command_line, config_from_args


def register_train(kinds) -> None:
    from rnnlab.models.captioner import CaptionerConfig
    from rnnlab.runs.caption import CaptionRunConfig

    parser = kinds.add_parser("caption", help="train an image captioner on built-in scenes", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, resume=True)
    add_config_options(parser, CaptionRunConfig, group="data and training")
    add_config_options(parser, CaptionerConfig, group="model")
    parser.set_defaults(func=run_train)


def register(subparsers) -> None:
    parser = subparsers.add_parser("caption", help="caption PNG/JPEG images with a trained caption run",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by rnnlab train caption")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="PNG or JPEG file(s)")
    parser.add_argument("--beam", type=int, default=1, help="beam size (default: 1, greedy)")
    parser.add_argument("--invert", action="store_true",
                        help="invert the picture first (dark ink on light paper; the scenes are light on black)")
    parser.add_argument("--attention", action="store_true", help="also print where each word looked (peak region)")
    add_run_options(parser, out=False, seed=False, progress=False)
    parser.set_defaults(func=run_caption)


def run_train(args: argparse.Namespace) -> int:
    from rnnlab.models.captioner import CaptionerConfig
    from rnnlab.runs.caption import CaptionRunConfig, model_config_for, train_caption

    apply_threads(args)
    run = config_from_args(CaptionRunConfig, args, seed=args.seed, progress=not args.no_progress)
    model_options = {k: v for k, v in vars(args).items()
                     if k in CaptionerConfig.__dataclass_fields__ and k not in ("vocab_size", "channels", "image_size")}
    model = model_config_for(run, **model_options)
    epochs = getattr(args, "epochs", None) if args.resume else None
    result = train_caption(run, model, args.out, resume=args.resume, command=command_line(), epochs=epochs)
    s = result["summary"]
    print(f"trained {result['parameters']:,} parameters for {s['steps']} steps ({s['epochs']} epochs, "
          f"{s['wall_s']:.0f} s, stopped: {s['stopped']})")
    for split, metrics in result["results"].items():
        print(f"{split}: {describe(metrics)}")
    print(f"run directory: {args.out}")
    return 0


def describe(m: dict) -> str:
    """One line of scores (BLEU 0-100, the rest as percentages)."""
    text = (f"exact {100 * m['exact']:.1f}%, BLEU-1..4 {m['bleu1']:.1f}/{m['bleu2']:.1f}/{m['bleu3']:.1f}/"
            f"{m['bleu4']:.1f}")
    parts = [f"{a} {100 * m[a]:.1f}%" for a in ("label", "size", "colour", "relation", "count") if a in m]
    text += ", " + ", ".join(parts)
    if "localisation" in m:
        text += (f", attention localisation {100 * m['localisation']:.1f}% (label word), "
                 f"{100 * m['phrase_localisation']:.1f}% (object phrase)")
    return text + f" ({m['scenes']} scenes, beam {m['beam']})"


def run_caption(args: argparse.Namespace) -> int:
    from rnnlab.data.images import describe_preprocessing
    from rnnlab.errors import ConfigError
    from rnnlab.runs.caption import caption_file, load_captioner

    apply_threads(args)
    if args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    model, _, _ = load_captioner(args.run_dir)
    print(f"note: each image is {describe_preprocessing(model.config.image_size, model.config.channels)}"
          + (", after inverting it" if args.invert else ""))
    for path in args.images:
        result = caption_file(model, path, beam=args.beam, invert=args.invert)
        print(f"{path}: {result['caption']}")
        if args.attention and result["attention"] is not None:
            grid = model.encoder.grid
            for word, alpha in zip(result["caption"].split(), result["attention"]):
                r, c = divmod(int(alpha.argmax()), grid)
                print(f"  {word:>10}  peak at region row {r}, column {c} of {grid}x{grid} "
                      f"(weight {float(alpha.max()):.2f})")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``rnnlab evaluate`` for a caption run (dispatched by rnnlab.commands.evaluate)."""
    from pathlib import Path

    from rnnlab.errors import ConfigError
    from rnnlab.rundir import RUN_JSON
    from rnnlab.runs.caption import evaluate_caption

    if args.data is not None:
        raise ConfigError("a caption run is scored on its own scenes (--split train|valid|test|compositional); "
                          "--data is not used. To caption your own pictures: rnnlab caption RUN IMAGE")
    run_dir = Path(args.checkpoint)
    if not (run_dir / RUN_JSON).exists() and (run_dir.parent / RUN_JSON).exists():
        run_dir = run_dir.parent
    metrics = evaluate_caption(run_dir, args.split, beam=args.beam or 1)
    print(f"{args.split}: {describe(metrics)}")
    return 0
