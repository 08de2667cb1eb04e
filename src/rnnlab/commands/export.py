"""``rnnlab export RUN_DIR --format onnx``: a trained run as ONNX graphs, verified in onnxruntime.

    pip install -e ".[export]"                     # onnx + onnxruntime
    rnnlab export runs/pydoc --format onnx         # -> runs/pydoc/model.onnx + export.json
    rnnlab export runs/fra --format onnx           # translator -> encoder.onnx, decoder_step.onnx, vocab.json

Language models, forecasters, sequence classifiers, speech models, translators and captioners export
(the last two as encoder.onnx + decoder_step.onnx + vocab.json); export.json
lists each graph's inputs and outputs, the preprocessing that stays outside the graphs, and the
largest difference from PyTorch measured in onnxruntime.
"""
from __future__ import annotations

import argparse

from rnnlab.runs.export import export_run


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained run to ONNX (checked in onnxruntime)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run directory of rnnlab train lm / forecast / classify / speech / translate / caption")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    parser.add_argument("--out", default=None,
                        help="the .onnx file (default: RUN_DIR/model.onnx; several graphs: <name>.onnx beside it)")
    parser.add_argument("--force", action="store_true", help="replace existing export files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run_dir, args.out, force=args.force)
    graphs = result.get("graphs") or {"model": result}
    for path, graph in zip(result["paths"], graphs.values()):
        print(f"wrote {path} ({result['kind']}: inputs {', '.join(graph['inputs'])}; outputs "
              f"{', '.join(graph['outputs'])}); onnxruntime matches PyTorch to {graph['max_abs_diff']:.1e} on "
              f"{len(graph['checks'])} random inputs")
    print(f"record: {result['record']} (onnxruntime {result['onnxruntime']})")
    return 0
