"""``rnnlab export RUN_DIR --format onnx``: a trained run as an ONNX graph, verified in onnxruntime.

    pip install -e ".[export]"                     # onnx + onnxruntime
    rnnlab export runs/pydoc --format onnx         # -> runs/pydoc/model.onnx + export.json
"""
from __future__ import annotations

import argparse

from rnnlab.runs.export import export_run


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained run to ONNX (checked in onnxruntime)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory of rnnlab train lm / forecast / classify")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    parser.add_argument("--out", default=None, help="the .onnx file (default: RUN_DIR/model.onnx)")
    parser.add_argument("--force", action="store_true", help="replace existing export files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run_dir, args.out, force=args.force)
    print(f"wrote {result['path']} ({result['kind']}: inputs {', '.join(result['inputs'])}; outputs "
          f"{', '.join(result['outputs'])}); onnxruntime {result['onnxruntime']} matches PyTorch to "
          f"{result['max_abs_diff']:.1e} on {len(result['checks'])} random inputs; record: {result['record']}")
    return 0
