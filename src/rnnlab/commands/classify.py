"""``rnnlab classify train|predict``: many-to-one recurrent classification of variable-length sequences.

    rnnlab classify train --out runs/vowels                      # JapaneseVowels (needs: pip install aeon)
    rnnlab classify train --csv train.csv --test-csv test.csv --id id --label label --out runs/c1
    rnnlab classify predict runs/vowels                          # the JapaneseVowels test set
    rnnlab classify predict runs/c1 --csv new.csv                # scores against the label column if it has one
"""
from __future__ import annotations

import argparse
import sys

from rnnlab.commands.options import add_config_options, add_run_options, apply_threads, command_line, config_from_args
from rnnlab.data.columns import read_csv_file
from rnnlab.data.labelled_sequences import load_japanese_vowels, load_sequence_csv
from rnnlab.rundir import check_run_dir_free
from rnnlab.runs.classify import BUILTIN, ClassifyRunConfig, load_sets, predict_run, saved_spec, train_run
from rnnlab.train import TrainConfig


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="train a recurrent sequence classifier or predict with one",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="classify_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    train = sub.add_parser("train", help="train on JapaneseVowels (default) or a long-format CSV")
    add_run_options(train)
    add_config_options(train, ClassifyRunConfig)
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="classify sequences with a trained run")
    predict.add_argument("run_dir", metavar="RUN_DIR", help="run directory of rnnlab classify train")
    predict.add_argument("--csv", default=None, help="sequences to classify (default: the JapaneseVowels test set)")
    predict.add_argument("--id", default="id", help="sequence-id column (default: id)")
    predict.add_argument("--label", default=None,
                         help="label column to score against (default: the training label column, if present)")
    predict.add_argument("--features", nargs="+", default=None,
                         help="feature columns (default: the ones the model was trained on)")
    predict.add_argument("--out", default=None, help="output CSV (default: RUN_DIR/predictions.csv)")
    predict.add_argument("--force", action="store_true", help="replace an existing output CSV")
    predict.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    apply_threads(args)
    c = config_from_args(ClassifyRunConfig, args)
    train_config = TrainConfig(lr=c.lr, max_epochs=c.epochs, patience=c.patience, seed=args.seed,
                               progress=not args.no_progress)
    check_run_dir_free(args.out)  # before loading data
    train, test = load_sets(csv=c.csv, test_csv=c.test_csv, id_col=c.id, label_col=c.label, features=c.features)
    if train.feature_names:
        note = "; ".join(f"left out {name!r}: {why}" for name, why in train.excluded.items())
        print(f"features: {', '.join(train.feature_names)}" + (f" ({note}; name columns with --features to choose)"
                                                                if note else ""))
    results = train_run(args.out, train, test, c.model_options(), train_config, valid_fraction=c.valid_fraction,
                        batch_size=c.batch_size, command=command_line(), source=c.csv or BUILTIN,
                        on_recipe=_print_recipe, **c.recipe_options())
    where = f"; confusion matrix in {args.out}/confusion.png" if "confusion" in results else ""
    print(f"{results['split']} accuracy {results['accuracy']:.4f} on {results['n']} sequences "
          f"({results['epochs']} epochs, {results['train_wall_s']:.0f} s){where}")
    return 0


def _print_recipe(recipe: dict) -> None:
    print(f"epochs: {recipe['epoch_choice']} ({recipe['epoch_choice_why']})")
    print(f"  {recipe['epochs_why']}")
    print(f"length: {recipe['downsample_why']}")
    augment = recipe["augment"]
    if augment["jitter"] or augment["scaling"]:
        print(f"augmentation: jitter {augment['jitter']}, scaling {augment['scaling']}")


def run_predict(args: argparse.Namespace) -> int:
    spec = saved_spec(args.run_dir)
    if args.csv is None:
        data, labelled = load_japanese_vowels("test"), True
    else:
        features = args.features or spec.get("features") or None
        label = args.label
        if label is None:  # score against the training label column when the file has it
            columns = set(read_csv_file(args.csv, what="sequence CSV", nrows=1).columns)
            label = "label" if "label" in columns else None
        data = load_sequence_csv(args.csv, id_col=args.id, label_col=label, features=features,
                                 class_names=spec["class_names"])
        labelled = label is not None
    result = predict_run(args.run_dir, data, out_csv=args.out, labelled=labelled, force=args.force)
    if "accuracy" in result:
        print(f"accuracy {result['accuracy']:.4f} on {result['n']} sequences; confusion matrix: {result['png']}")
    print(f"wrote {result['csv']}", file=sys.stdout)
    return 0
