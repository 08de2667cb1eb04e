"""``rnnlab classify train|predict``: many-to-one recurrent classification of variable-length sequences.

    rnnlab classify train --out runs/vowels                      # JapaneseVowels (needs: pip install aeon)
    rnnlab classify train --csv train.csv --test-csv test.csv --id id --label label --out runs/c1
    rnnlab classify predict runs/vowels                          # the JapaneseVowels test set
    rnnlab classify predict runs/c1 --csv new.csv --id id [--label label]
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="train a recurrent sequence classifier or predict with one")
    sub = parser.add_subparsers(dest="classify_command", metavar="ACTION")
    sub.required = True

    train = sub.add_parser("train", help="train on JapaneseVowels (default) or a long-format CSV")
    train.add_argument("--csv", default=None, help="training CSV: one row per time step (default: JapaneseVowels)")
    train.add_argument("--test-csv", default=None, help="test CSV in the same format")
    train.add_argument("--id", default="id", help="sequence-id column")
    train.add_argument("--label", default="label", help="label column")
    train.add_argument("--features", nargs="+", default=None, help="feature columns (default: all others)")
    train.add_argument("--cell", default="gru", help="recurrent cell (any name in rnnlab.nn.RECURRENT)")
    train.add_argument("--hidden", type=int, default=64)
    train.add_argument("--layers", type=int, default=1)
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--bidirectional", action="store_true")
    train.add_argument("--pooling", default="last", choices=["last", "mean", "max"])
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--patience", type=int, default=8)
    train.add_argument("--valid-fraction", type=float, default=0.15)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--out", required=True, help="new run directory")
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="classify sequences with a trained run")
    predict.add_argument("run_dir")
    predict.add_argument("--csv", default=None, help="sequences to classify (default: JapaneseVowels test set)")
    predict.add_argument("--id", default="id")
    predict.add_argument("--label", default=None, help="label column, if the CSV has one (reports accuracy)")
    predict.add_argument("--features", nargs="+", default=None)
    predict.add_argument("--out", default=None, help="output CSV (default RUN_DIR/predictions.csv)")
    predict.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.errors import ConfigError
    from rnnlab.runs.classify import BUILTIN, load_sets, train_run
    from rnnlab.train import TrainConfig

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    train, test = load_sets(csv=args.csv, test_csv=args.test_csv, id_col=args.id, label_col=args.label,
                            features=args.features)
    model = dict(cell=args.cell, hidden_size=args.hidden, num_layers=args.layers, dropout=args.dropout,
                 bidirectional=args.bidirectional, pooling=args.pooling)
    config = TrainConfig(lr=args.lr, max_epochs=args.epochs, patience=args.patience, seed=args.seed,
                         progress=not args.no_progress)
    results = train_run(args.out, train, test, model, config, valid_fraction=args.valid_fraction,
                        batch_size=args.batch_size, command=" ".join(sys.argv), source=args.csv or BUILTIN)
    print(f"{results['split']} accuracy {results['accuracy']:.4f} on {results['n']} sequences "
          f"({results['epochs']} epochs, {results['train_wall_s']:.0f} s); confusion matrix in {args.out}/confusion.png")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnlab.data.labelled_sequences import load_japanese_vowels, load_sequence_csv
    from rnnlab.runs.classify import predict_run, run_class_names

    if args.csv is None:
        data, labelled = load_japanese_vowels("test"), True
    else:
        data = load_sequence_csv(args.csv, id_col=args.id, label_col=args.label, features=args.features,
                                 class_names=run_class_names(args.run_dir))
        labelled = args.label is not None
    result = predict_run(args.run_dir, data, out_csv=args.out, labelled=labelled)
    if "accuracy" in result:
        print(f"accuracy {result['accuracy']:.4f} on {result['n']} sequences; confusion matrix: {result['png']}")
    print(f"wrote {result['csv']}")
    return 0
