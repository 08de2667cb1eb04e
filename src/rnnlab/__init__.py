"""rnnlab: recurrent neural networks made transparent.

Layers equal to ``torch.nn`` (and as fast, on PyTorch's fused kernels) whose gates can be recorded
and whose cells are written out by name; plus the experiments, models and tools built on them.
"""
from rnnlab.errors import (
                           ConfigError,
                           DataError,
                           InputShapeError,
                           LengthsError,
                           NonFiniteLossError,
                           RnnlabError,
                           RunDirError,
                           StateDictError,
                           StateError,
)
from rnnlab.models import LanguageModel, LanguageModelConfig, WindowLanguageModel
from rnnlab.models.sequence_model import SequenceModel
from rnnlab.models.window_mlp import WindowMLP
from rnnlab.nn import (
                           GRU,
                           LSTM,
                           RECURRENT,
                           RNN,
                           GRUCell,
                           LayerNormLSTMCell,
                           LSTMCell,
                           MinGRU,
                           MinGRUCell,
                           MinLSTM,
                           MinLSTMCell,
                           PeepholeLSTMCell,
                           RNNCell,
                           build_recurrent,
)
from rnnlab.train import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell", "LayerNormLSTMCell",
    "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell",
    "RECURRENT", "build_recurrent", "WindowMLP", "SequenceModel",
    "LanguageModel", "LanguageModelConfig", "WindowLanguageModel", "Trainer", "TrainConfig",
    "RnnlabError", "InputShapeError", "LengthsError", "StateError", "StateDictError", "ConfigError", "DataError",
    "RunDirError", "NonFiniteLossError",
]
