"""Forecasting and sequence-classification benchmarks; results go to benchmarks/results/forecast.md.

Parts (each appends JSON lines to benchmarks/results/forecast_runs.jsonl, so a partial run keeps
what finished; ``report`` turns that file into the markdown table):

    python benchmarks/forecast.py ett --data ETTh1 [--ett-dir DIR] [--horizons 96 192 336 720]
    python benchmarks/forecast.py series            # CO2 (weekly) and sunspots (yearly): backtests
    python benchmarks/forecast.py classify          # JapaneseVowels (needs the aeon wheel installed)
    python benchmarks/forecast.py report

ETT protocol (Zhou et al. 2021; DLinear, PatchTST and SegRNN follow it): all 7 columns are
targets (multivariate), train / valid / test = first 12 / 4 / 4 months of 30 days, standardisation
fitted on train, MSE and MAE on standardised values averaged over every test window (none
dropped), horizons 96/192/336/720. The recurrent model is the SegRNN recipe (Lin et al. 2023):
look-back 720, segments of 48, one GRU layer, last-value normalisation, MAE loss, dropout 0.5,
channel-independent parallel decoding — with a smaller hidden size (64 instead of 512), a higher learning
rate and fewer epochs than the paper, to fit a shared 2-core CPU (see the results file for what that costs).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from rnnlab import metrics
from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ett_split
from rnnlab.models.baselines import evaluate_baselines
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.tasks.forecast import ForecastTask, evaluate_split
from rnnlab.train import TrainConfig, Trainer, seed_everything

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = RESULTS / "forecast_runs.jsonl"
DEFAULT_ETT = Path(os.environ.get("RNNLAB_ETT_DIR", HERE.parent.parent / "shared" / "data" / "ett"))


def record(entry: dict) -> None:
    entry = {**entry, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "machine": f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}, "
                        f"{torch.get_num_threads()} thread(s)",
             "command": "python " + " ".join(sys.argv)}
    RESULTS.mkdir(exist_ok=True)
    with open(RUNS, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
    print(json.dumps(entry), flush=True)


def progress(trainer, event: str, info: dict) -> None:
    """Print each validation result, so a long background run shows where it is."""
    if event == "eval":
        print(f"  epoch {trainer.epoch} step {trainer.step} valid loss {info['loss']:.4f} "
              f"({trainer.elapsed_s:.0f} s)", flush=True)


def run_ett(args) -> None:
    path = Path(args.ett_dir) / f"{args.data}.csv"
    if not path.is_file():
        sys.exit(f"{path} not found; pass --ett-dir or set RNNLAB_ETT_DIR")
    series = load_series(path, calendar=False)  # every column is a target, as in the benchmark
    for horizon in args.horizons:
        started = time.perf_counter()
        data = ForecastData(series, ett_split(len(series)), args.lookback, horizon)
        base = evaluate_baselines(data, "test", period=24)
        for name in ("naive", "seasonal_naive", "linear"):
            record({"part": "ett", "data": args.data, "horizon": horizon, "lookback": args.lookback, "model": name,
                    "mse": metrics.mse(base["target"], base[name]), "mae": metrics.mae(base["target"], base[name]),
                    "windows": len(base["target"]), "wall_s": round(time.perf_counter() - started, 1)})
        if args.baselines_only:
            continue
        seed_everything(args.seed)
        config = ForecasterConfig(n_targets=data.n_targets, lookback=args.lookback, horizon=horizon, cell=args.cell,
                                  hidden_size=args.hidden, segment=args.segment, norm="last", loss="mae",
                                  dropout=args.dropout)
        model = Forecaster(config)
        task = ForecastTask(data, batch_size=args.batch_size, seed=args.seed)
        started = time.perf_counter()
        train = TrainConfig(lr=args.lr, max_epochs=args.epochs, patience=args.patience, schedule="plateau",
                            lr_factor=0.5, lr_patience=0, seed=args.seed, progress=False)
        summary = Trainer(model, task, train, callbacks=[progress]).fit()
        test = evaluate_split(model, data, "test")["metrics"]
        record({"part": "ett", "data": args.data, "horizon": horizon, "lookback": args.lookback,
                "model": f"segrnn-{args.cell}", "mse": test["mse"], "mae": test["mae"], "windows": test["windows"],
                "epochs": summary["epochs"], "best_step": summary["best_step"], "stopped": summary["stopped"],
                "config": {"hidden": args.hidden, "segment": args.segment, "lr": args.lr, "dropout": args.dropout,
                           "batch_size": args.batch_size, "max_epochs": args.epochs, "patience": args.patience,
                           "schedule": "plateau x0.5", "clip": train.clip},
                "wall_s": round(time.perf_counter() - started, 1)})


def run_series(args) -> None:
    """Built-in single series, rolling-origin backtest: one model fitted on the first 80%, a forecast
    from every origin of the last 20% (all test windows), MASE (seasonal scale) and sMAPE."""
    import tempfile

    from rnnlab.data.builtin_series import SEASONAL_PERIOD, load_builtin
    from rnnlab.runs.forecast import train_run

    for name, lookback, horizon in (("co2", 156, 52), ("sunspots", 44, 11)):
        series = load_builtin(name)
        for output in ("point", "quantile"):
            model = dict(lookback=lookback, horizon=horizon, hidden_size=64, norm="revin", output=output)
            train = TrainConfig(lr=3e-3, max_epochs=args.epochs, patience=5, seed=args.seed, progress=False)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                results, _ = train_run(Path(out) / "run", series, f"builtin:{name}", model, train,
                                    period=SEASONAL_PERIOD[name], ratios=(0.7, 0.1, 0.2))
            wall = round(time.perf_counter() - started, 1)
            for model_name, row in results.items():
                if output == "quantile" and model_name != "model":
                    continue  # the baselines are the same for both outputs
                label = f"gru-{output}" if model_name == "model" else model_name
                record({"part": "series", "data": name, "horizon": horizon, "lookback": lookback, "model": label,
                        "period": SEASONAL_PERIOD[name], **{k: v for k, v in row.items()},
                        "wall_s": wall if model_name == "model" else None})


def run_classify(args) -> None:
    """JapaneseVowels: train on 85% of the 270 training utterances (15% for early stopping), test on 370."""
    import tempfile

    from rnnlab.runs.classify import load_sets, train_run

    train, test = load_sets()
    configs = [("gru", False, "last", 0), ("gru", False, "last", 1), ("gru", False, "last", 2),
               ("lstm", False, "last", 0), ("gru", True, "mean", 0)]
    for cell, bidirectional, pooling, seed in configs:
        model = dict(cell=cell, hidden_size=64, dropout=0.2, bidirectional=bidirectional, pooling=pooling)
        config = TrainConfig(lr=3e-3, max_epochs=args.epochs, patience=8, seed=seed, progress=False)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            results = train_run(Path(out) / "run", train, test, model, config, batch_size=16)
        record({"part": "classify", "data": "JapaneseVowels",
                "model": f"{'bi' if bidirectional else ''}{cell}-{pooling}", "seed": seed,
                "accuracy": results["accuracy"], "n_test": results["n"], "epochs": results["epochs"],
                "wall_s": round(time.perf_counter() - started, 1)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    ett = sub.add_parser("ett")
    ett.add_argument("--data", default="ETTh1", choices=["ETTh1", "ETTh2"])
    ett.add_argument("--ett-dir", default=str(DEFAULT_ETT))
    ett.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    ett.add_argument("--lookback", type=int, default=720)
    ett.add_argument("--segment", type=int, default=48)
    ett.add_argument("--hidden", type=int, default=64)
    ett.add_argument("--cell", default="gru")
    ett.add_argument("--dropout", type=float, default=0.5)
    ett.add_argument("--lr", type=float, default=5e-3)
    ett.add_argument("--batch-size", type=int, default=256)
    ett.add_argument("--epochs", type=int, default=6)
    ett.add_argument("--patience", type=int, default=2)
    ett.add_argument("--seed", type=int, default=0)
    ett.add_argument("--threads", type=int, default=1)
    ett.add_argument("--baselines-only", action="store_true", help="only the naive/seasonal/linear baselines")
    for name in ("series", "classify"):
        part = sub.add_parser(name)
        part.add_argument("--epochs", type=int, default=40 if name == "series" else 30)
        part.add_argument("--seed", type=int, default=0)
        part.add_argument("--threads", type=int, default=1)
    sub.add_parser("report")
    args = parser.parse_args(argv)
    if args.part == "report":
        from report_forecast import write_report

        write_report(RUNS, RESULTS / "forecast.md")
        return
    torch.set_num_threads(args.threads)
    {"ett": run_ett, "series": run_series, "classify": run_classify}[args.part](args)


if __name__ == "__main__":
    main()
