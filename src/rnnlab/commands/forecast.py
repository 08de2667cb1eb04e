"""``rnnlab forecast train|predict``: recurrent forecasting from a CSV (or the built-in CO2 series).

    rnnlab forecast train --csv data.csv --target OT --horizon 24 --lookback 96 --out runs/f1
    rnnlab forecast train --horizon 52 --lookback 156 --output quantile --out runs/co2   # built-in CO2
    rnnlab forecast predict runs/f1 --csv data.csv          # -> runs/f1/forecast.csv + forecast.png
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("forecast", help="train a recurrent forecaster or forecast with one")
    sub = parser.add_subparsers(dest="forecast_command", metavar="ACTION")
    sub.required = True

    train = sub.add_parser("train", help="train on a CSV (or the built-in weekly CO2 series) into a run directory")
    train.add_argument("--csv", default=None, help="CSV with a header and a time column (default: built-in CO2)")
    train.add_argument("--target", nargs="+", default=None, help="target column(s) (default: all but covariates)")
    train.add_argument("--time-col", default=None, help="timestamp column (default: date/time/timestamp/ds)")
    train.add_argument("--past", nargs="+", default=[], help="past-covariate columns (inputs only)")
    train.add_argument("--no-calendar", action="store_true", help="no calendar features from the timestamps")
    train.add_argument("--fill", default="raise", choices=["raise", "interpolate", "ffill", "zero"],
                       help="what to do with missing/non-numeric cells (default: stop and say where)")
    train.add_argument("--reindex", action="store_true", help="insert timestamps missing from the regular grid")
    train.add_argument("--horizon", type=int, required=True)
    train.add_argument("--lookback", type=int, required=True)
    train.add_argument("--cell", default="gru", help="recurrent cell (any name in rnnlab.nn.RECURRENT)")
    train.add_argument("--hidden", type=int, default=64)
    train.add_argument("--layers", type=int, default=1)
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--decoder", default="direct", choices=["direct", "autoregressive"])
    train.add_argument("--segment", type=int, default=0, help="SegRNN-style segment length (0 = step by step)")
    train.add_argument("--norm", default="revin", choices=["revin", "last", "none"])
    train.add_argument("--output", default="point", choices=["point", "gaussian", "quantile"])
    train.add_argument("--loss", default="mse", choices=["mse", "mae"], help="loss of point forecasts")
    train.add_argument("--quantiles", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    train.add_argument("--level", type=float, default=None, help="interval level (default 0.8, or the quantiles')")
    train.add_argument("--period", type=int, default=None, help="seasonal period for seasonal naive and MASE")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--patience", type=int, default=5)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--out", required=True, help="new run directory")
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="forecast the horizon after the end of a CSV with a trained run")
    predict.add_argument("run_dir")
    predict.add_argument("--csv", default=None, help="data to forecast from (default: the built-in series the "
                                                      "run was trained on)")
    predict.add_argument("--out", default=None, help="output CSV (default RUN_DIR/forecast.csv; PNG beside it)")
    predict.add_argument("--fill", default=None, choices=["raise", "interpolate", "ffill", "zero"])
    predict.add_argument("--level", type=float, default=None)
    predict.set_defaults(func=run_predict)


def _level(args, output: str, quantiles) -> float:
    if args.level is not None:
        return args.level
    return round(quantiles[-1] - quantiles[0], 10) if output == "quantile" else 0.8


def run_train(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.data.series_windows import check_window
    from rnnlab.errors import ConfigError
    from rnnlab.runs.forecast import format_results, load_source, train_run
    from rnnlab.train import TrainConfig

    check_window(args.lookback, args.horizon)
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.csv is None and (args.target or args.past):
        raise ConfigError("--target/--past name CSV columns; pass --csv too (without it the built-in CO2 is used)")
    series, source = load_source(args.csv, targets=args.target, time_col=args.time_col, past_covariates=args.past,
                                 calendar=not args.no_calendar, fill=args.fill, reindex=args.reindex)
    model = dict(lookback=args.lookback, horizon=args.horizon, cell=args.cell, hidden_size=args.hidden,
                 num_layers=args.layers, dropout=args.dropout, decoder=args.decoder, segment=args.segment,
                 norm=args.norm, output=args.output, loss=args.loss, quantiles=tuple(args.quantiles))
    train = TrainConfig(lr=args.lr, max_epochs=args.epochs, patience=args.patience, seed=args.seed,
                        progress=not args.no_progress)
    if series.filled:
        print(f"filled missing values ({args.fill if args.csv else 'interpolate'}): {series.filled}")
    results = train_run(args.out, series, source, model, train, batch_size=args.batch_size, period=args.period,
                        level=_level(args, args.output, args.quantiles), command=" ".join(sys.argv),
                        time_col=args.time_col if args.csv else "date", fill=args.fill if args.csv else "interpolate")
    print(f"test windows: {int(results['model']['windows'])} (MSE/MAE on standardised values; MASE/sMAPE on "
          f"the original scale)")
    print(format_results(results))
    print(f"run: {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnlab.runs.forecast import predict_run

    table, csv_path, png = predict_run(args.run_dir, args.csv, out_csv=args.out, level=args.level, fill=args.fill)
    print(table.to_string(index=False, max_rows=12))
    print(f"wrote {csv_path} and {png}")
    return 0
