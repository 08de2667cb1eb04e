"""rnnlab export (ONNX, checked in onnxruntime) and int8 inference, through the command line and the library."""
import importlib.util
import json

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.models.quantize import quantize_int8
from rnnlab.tasks.lm import load_language_model

HAVE_ORT = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed (pip install -e '.[export]')")
TEXT = "".join(f"the clouds are in the sky number {i % 7}.\n" for i in range(60))
SMALL = ["--level", "char", "--embed", "8", "--hidden", "12", "--batch-size", "4", "--bptt", "16", "--no-progress",
         "--threads", "1", "--no-windows", "--max-steps", "4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "c.txt").write_text(TEXT)
    for name, extra in {"lstm2": ["--layers", "2"], "gru": ["--model", "gru"], "peephole": ["--model", "peephole"]}.items():
        assert main(["train", "lm", "--data", str(root / "c.txt"), "--out", str(root / name), *SMALL, *extra]) == 0
    return root


@needs_ort
@pytest.mark.parametrize("name, time_axis", [("lstm2", "dynamic"), ("gru", "dynamic"), ("peephole", "fixed (step graph)")])
def test_language_model_exports_with_state_inputs_and_matches_onnxruntime(runs, name, time_axis):
    import onnxruntime

    assert main(["export", str(runs / name)]) == 0
    record = json.loads((runs / name / "export.json").read_text())
    assert record["time_axis"] == time_axis and record["max_abs_diff"] <= 1e-4
    model, _, _ = load_language_model(runs / name)
    session = onnxruntime.InferenceSession(str(runs / name / "model.onnx"))
    # stream: one token at a time, feeding the state outputs back, equals the whole sequence in PyTorch
    tokens = torch.randint(0, model.config.vocab_size, (2, 5))
    want, _ = model(tokens)
    names = [i.name for i in session.get_inputs()]
    state = {n: np.zeros([d if isinstance(d, int) else 2 for d in i.shape], np.float32)
             for n, i in zip(names[1:], session.get_inputs()[1:])}
    for t in range(5):
        outputs = session.run(None, {"tokens": tokens[:, t:t + 1].numpy(), **state})
        np.testing.assert_allclose(outputs[0][:, 0], want[:, t].detach().numpy(), atol=1e-4)
        state = dict(zip(names[1:], outputs[1:]))


@needs_ort
def test_export_refuses_to_overwrite(runs, capsys, tmp_path):
    assert main(["export", str(runs / "gru"), "--out", str(tmp_path / "g.onnx")]) == 0
    assert (tmp_path / "g_export.json").is_file()
    capsys.readouterr()
    assert main(["export", str(runs / "gru"), "--out", str(tmp_path / "g.onnx")]) == 2
    assert "already exists" in capsys.readouterr().err


@needs_ort
def test_forecaster_exports(tmp_path):
    assert main(["forecast", "train", "--epochs", "1", "--hidden", "8", "--no-progress", "--out",
                 str(tmp_path / "fc")]) == 0
    assert main(["export", str(tmp_path / "fc")]) == 0
    assert json.loads((tmp_path / "fc" / "export.json").read_text())["max_abs_diff"] <= 1e-4


def test_int8_keeps_the_numbers_close_and_refuses_variants(runs, capsys):
    model, _, _ = load_language_model(runs / "lstm2")
    small = quantize_int8(model)
    tokens = torch.randint(0, model.config.vocab_size, (3, 11))
    full, quant = model(tokens)[0], small(tokens)[0]
    assert type(small.layers[0]).__module__.startswith("torch.ao.nn.quantized")
    assert (full - quant).abs().max() < 0.05 * full.abs().max() + 1e-3
    assert main(["evaluate", str(runs / "lstm2"), "--int8"]) == 0 and "bits per character" in capsys.readouterr().out
    assert main(["evaluate", str(runs / "peephole"), "--int8"]) == 2
    assert "int8 needs standard LSTM/GRU/RNN cells" in capsys.readouterr().err
