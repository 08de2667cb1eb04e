"""``rnnlab forecast train|predict``: recurrent forecasting from a CSV (or the built-in CO2 series).

    rnnlab forecast train --csv data.csv --target OT --out runs/f1       # horizon/look-back from the index
    rnnlab forecast train --horizon 52 --lookback 156 --output quantile --out runs/co2   # built-in CO2
    rnnlab forecast predict runs/f1 --csv data.csv          # -> runs/f1/forecast.csv + forecast.png
"""
from __future__ import annotations

import argparse

from rnnlab.commands.options import add_config_options, add_run_options, apply_threads, command_line, config_from_args
from rnnlab.data.columns import index_like_columns, read_csv_file
from rnnlab.data.series import TIME_COLUMN_NAMES
from rnnlab.errors import ConfigError
from rnnlab.rundir import check_run_dir_free
from rnnlab.runs.forecast import ForecastRunConfig, format_results, infer_window, load_source, predict_run, train_run
from rnnlab.runs.model_choice import CANDIDATES, describe
from rnnlab.train import TrainConfig


def register(subparsers) -> None:
    parser = subparsers.add_parser("forecast", help="train a recurrent forecaster or forecast with one",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="forecast_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    train = sub.add_parser("train", help="train on a CSV (or the built-in weekly CO2 series) into a run directory")
    add_run_options(train)
    add_config_options(train, ForecastRunConfig)
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="forecast the horizon after the end of a CSV with a trained run")
    predict.add_argument("run_dir", metavar="RUN_DIR", help="run directory of rnnlab forecast train")
    predict.add_argument("--csv", default=None, help="data to forecast from (default: the built-in series the "
                                                      "run was trained on)")
    predict.add_argument("--out", default=None, help="output CSV (default: RUN_DIR/forecast.csv; PNG beside it)")
    predict.add_argument("--force", action="store_true", help="replace existing output files")
    predict.add_argument("--fill", default=None, choices=["raise", "interpolate", "ffill", "zero"],
                         help="missing cells in --csv (default: the run's own policy)")
    predict.add_argument("--level", type=float, default=None,
                         help="prediction-interval level in (0, 1) (default: the run's)")
    predict.add_argument("--use", default=None, choices=CANDIDATES,
                         help="forecast with this candidate (default: the one the run chose on validation)")
    predict.set_defaults(func=run_predict)


def _default_targets(c: ForecastRunConfig) -> tuple[list[str] | None, str]:
    """Targets when none are named: every column but time, covariates and index-like columns (said so)."""
    if c.csv is None or c.target:
        return (list(c.target) if c.target else None), ""
    frame = read_csv_file(c.csv, what="series CSV")
    time_col = c.time_col or next((col for col in frame.columns if str(col).lower() in TIME_COLUMN_NAMES), None)
    candidates = [col for col in frame.columns if col != time_col and col not in c.past]
    excluded = index_like_columns(frame, candidates)
    targets = [col for col in candidates if col not in excluded]
    if not targets:
        raise ConfigError(f"{c.csv} has no target column besides time {time_col!r} and index-like {sorted(excluded)}; "
                          f"name one with --target")
    note = "; ".join(f"left out {name!r}: {why}" for name, why in excluded.items())
    return targets, note


def run_train(args: argparse.Namespace) -> int:
    apply_threads(args)
    c = config_from_args(ForecastRunConfig, args)
    if c.csv is None and (c.target or c.past):
        raise ConfigError("--target/--past name CSV columns; pass --csv too (without it the built-in CO2 is used)")
    check_run_dir_free(args.out)  # before any slow work
    targets, note = _default_targets(c)
    series, source = load_source(c.csv, targets=targets, time_col=c.time_col, past_covariates=c.past,
                                 calendar=c.calendar, fill=c.fill, reindex=c.reindex)
    window = infer_window(series, period=c.period, horizon=c.horizon, lookback=c.lookback)
    if window["why"]:
        print(f"inferred: {window['why']} (set --horizon/--lookback/--period to choose)")
    print(f"targets: {', '.join(series.target_names)}" + (f" ({note})" if note else ""))
    model = dict(lookback=window["lookback"], horizon=window["horizon"], cell=c.cell, hidden_size=c.hidden,
                 num_layers=c.layers, dropout=c.dropout, decoder=c.decoder, segment=c.segment, norm=c.norm,
                 output=c.output, loss=c.loss, quantiles=tuple(c.quantiles))
    train = TrainConfig(lr=c.lr, max_epochs=c.epochs, patience=c.patience, seed=args.seed,
                        progress=not args.no_progress)
    if series.filled:
        print(f"filled missing values ({c.fill if c.csv else 'interpolate'}): {series.filled}")
    results, choice = train_run(args.out, series, source, model, train, batch_size=c.batch_size,
                                period=window["period"], level=c.interval_level(), command=command_line(),
                                time_col=c.time_col if c.csv else "date", fill=c.fill if c.csv else "interpolate",
                                select=c.select, ensemble=c.ensemble)
    print(describe(choice))
    print(f"test windows: {int(results['model']['windows'])} (MSE/MAE on standardised values; MASE/sMAPE on "
          f"the original scale; 'model' is the recurrent model)")
    print(format_results(results))
    print(f"test MASE of the chosen forecast ({choice['chosen']}): {results[choice['test_row']]['mase']:.4f}")
    print(f"run: {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    table, csv_path, png, used = predict_run(args.run_dir, args.csv, out_csv=args.out, level=args.level,
                                             fill=args.fill, force=args.force, use=args.use)
    print(f"forecast with: {used}" + ("" if args.use else " (the run's choice on validation; --use to override)"))
    print(table.to_string(index=False, max_rows=12))
    print(f"wrote {csv_path} and {png}")
    return 0
