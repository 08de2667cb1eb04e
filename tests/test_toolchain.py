"""The PyTorch toolchain works on every layer: torch.compile, torch.jit.trace, torch.export and both ONNX
exporters (checked with onnxruntime), each giving the eager layer's outputs."""
import contextlib
import importlib.util
import io
import warnings

import pytest
import torch

import rnnlab
from rnnlab.nn import MinGRU, MinLSTM

LAYERS = {
    "lstm": lambda: rnnlab.LSTM(3, 4, num_layers=2, batch_first=True),
    "peephole": lambda: rnnlab.LSTM(3, 4, batch_first=True, cell="peephole"),
    "layernorm": lambda: rnnlab.LSTM(3, 4, batch_first=True, cell="layernorm"),
    "gru": lambda: rnnlab.GRU(3, 4, batch_first=True, bidirectional=True),
    "rnn": lambda: rnnlab.RNN(3, 4, batch_first=True),
    "mingru": lambda: MinGRU(3, 4, batch_first=True),
    "minlstm": lambda: MinLSTM(3, 4, batch_first=True, bidirectional=True),
}
HAVE_ORT = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(params=sorted(LAYERS))
def layer(request):
    torch.manual_seed(0)
    return LAYERS[request.param]().eval()


def _same(got, layer, x):
    torch.testing.assert_close(got, layer(x)[0], rtol=1e-5, atol=1e-5)


def test_torch_compile(layer):
    torch._dynamo.reset()
    x = torch.randn(2, 6, 3)
    _same(torch.compile(layer)(x)[0], layer, x)


def test_jit_trace_and_export(layer):
    x = torch.randn(2, 6, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same(torch.jit.trace(layer, (x,))(x)[0], layer, x)
    _same(torch.export.export(layer, (x,)).module()(x)[0], layer, x)


@pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed (pip install -e '.[export]')")
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_export_runs_in_onnxruntime(layer, dynamo):
    import onnxruntime

    x = torch.randn(2, 6, 3)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(layer, (x,), buffer, dynamo=dynamo, input_names=["x"])
    session = onnxruntime.InferenceSession(buffer.getvalue())
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    _same(torch.from_numpy(got), layer, x)
