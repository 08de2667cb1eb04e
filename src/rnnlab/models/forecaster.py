"""Recurrent forecaster: look-back window -> all horizon steps, as points or distributions.

Shapes: ``B`` windows, look-back ``L``, horizon ``H``, ``C`` targets, ``P`` past covariates,
``K`` calendar features (known in the future), hidden size ``D``, ``Q`` output parameters per value.

Input ``x (B, L, C + P + K)`` is ``[targets | past covariates | calendar]`` per step (as built by
:class:`rnnlab.data.series_windows.ForecastData`), ``future (B, H, K)`` the calendar over the
horizon. :meth:`Forecaster.forward` returns distribution parameters ``(B, H, C, Q)`` in the
units of the (globally scaled) targets.

Encoders (any cell from :data:`rnnlab.nn.RECURRENT` via ``build_recurrent``):

* ``segment = 0``: the recurrent layer reads every step, ``h_L = RNN(x_1..x_L)``; then
  - ``decoder="direct"``: one linear map ``[h_L, future_1..H] -> (H, C, Q)`` (multi-output);
  - ``decoder="autoregressive"``: a second layer, started from the encoder state, steps through
    the horizon on ``[y_hat_{t-1}, future_t]`` and feeds back its own point forecast (no teacher
    forcing, so training and inference see the same inputs).
* ``segment = w > 0`` (SegRNN, Lin et al. 2023): channel-independent. Each channel's window is
  cut into ``L / w`` segments, each embedded by ``relu(W_e s + b)`` into ``D``; the layer runs over
  segments (few recurrent steps). Decoding is parallel (SegRNN's PMF): for each of the
  ``ceil(H / w)`` output segments, one recurrent step from the encoder state on the input
  ``[position embedding | channel embedding]``, then ``Linear(D, w Q)``. Covariates are not used.

Instance normalisation (``norm``): ``"revin"`` (Kim et al. 2022) standardises each window's
targets by their own mean ``mu`` and ``sigma = sqrt(var + 1e-5)``, applies a learned per-channel
affine, and maps outputs back by ``y = mu + sigma * y_n``. The output side omits the inverse affine
of the paper: the linear head already absorbs it, and leaving it out keeps quantiles ordered and
scales positive. ``"last"`` (SegRNN) subtracts the window's last value and adds it back.

Outputs (``output``): ``"point"`` (Q = 1; loss ``"mse"`` or ``"mae"``); ``"gaussian"`` (Q = 2:
mean, ``sigma = softplus(raw) + 1e-3``; loss = Gaussian negative log-likelihood); ``"quantile"``
(Q = len(quantiles); ``q_1 = raw_1``, ``q_k = q_{k-1} + softplus(raw_k)`` so quantiles never
cross; loss = pinball ``max(tau e, (tau - 1) e)``, ``e = y - q_tau``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.registry import register_model
from rnnlab.nn import build_recurrent

DECODERS = ("direct", "autoregressive")
NORMS = ("revin", "last", "none")
OUTPUTS = ("point", "gaussian", "quantile")


@dataclass
class ForecasterConfig:
    n_targets: int
    lookback: int
    horizon: int
    n_past: int = 0
    n_calendar: int = 0
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    decoder: str = "direct"
    segment: int = 0
    norm: str = "revin"
    output: str = "point"
    loss: str = "mse"
    quantiles: tuple = (0.1, 0.5, 0.9)

    def __post_init__(self):
        self.quantiles = tuple(float(q) for q in self.quantiles)
        for name in ("n_targets", "lookback", "horizon", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        for name, value, allowed in (("decoder", self.decoder, DECODERS), ("norm", self.norm, NORMS),
                                     ("output", self.output, OUTPUTS)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}; got {value!r}")
        if self.output == "point" and self.loss not in ("mse", "mae"):
            raise ConfigError(f"a point forecaster trains on loss 'mse' or 'mae'; got {self.loss!r}")
        if self.output == "quantile" and (not self.quantiles or list(self.quantiles) != sorted(set(self.quantiles))
                                          or not 0 < self.quantiles[0] or not self.quantiles[-1] < 1):
            raise ConfigError(f"quantiles must be strictly increasing levels in (0, 1); got {self.quantiles}")
        if self.segment:
            if self.lookback % self.segment:
                raise ConfigError(f"lookback {self.lookback} must be a multiple of segment {self.segment}")
            if self.n_past or self.n_calendar:
                raise ConfigError("segment > 0 (SegRNN) is channel-independent and uses no covariates or calendar "
                                  f"features; got n_past={self.n_past}, n_calendar={self.n_calendar}")
            if self.decoder != "direct":
                raise ConfigError("segment > 0 decodes all horizon segments in parallel; use decoder='direct'")
            if self.hidden_size % 2:
                raise ConfigError(f"segment > 0 splits hidden_size into two embeddings; got odd {self.hidden_size}")

    @property
    def n_inputs(self) -> int:
        return self.n_targets + self.n_past + self.n_calendar

    @property
    def n_params(self) -> int:
        return {"point": 1, "gaussian": 2, "quantile": len(self.quantiles)}[self.output]


def _map_state(state, fn):
    """Apply ``fn`` to a recurrent state: a tensor (GRU/RNN) or a tuple ``(h, c)`` (LSTM)."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


@register_model("forecaster")
class Forecaster(nn.Module):
    """See the module docstring. ``forward(x, future=None) -> (B, H, C, Q)``."""

    Config = ForecasterConfig

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        self.config = c = config
        D, Q = c.hidden_size, c.n_params
        rnn = dict(num_layers=c.num_layers, dropout=c.dropout if c.num_layers > 1 else 0.0, batch_first=True)
        if c.norm == "revin":
            self.revin_weight = nn.Parameter(torch.ones(c.n_targets))
            self.revin_bias = nn.Parameter(torch.zeros(c.n_targets))
        self.drop = nn.Dropout(c.dropout)
        if c.segment:
            self.embed = nn.Linear(c.segment, D)
            self.encoder = build_recurrent(c.cell, D, D, **rnn)
            self.n_out_segments = math.ceil(c.horizon / c.segment)
            self.position = nn.Parameter(torch.randn(self.n_out_segments, D // 2))
            self.channel = nn.Parameter(torch.randn(c.n_targets, D // 2))
            self.head = nn.Linear(D, c.segment * Q)
        else:
            self.encoder = build_recurrent(c.cell, c.n_inputs, D, **rnn)
            if c.decoder == "direct":
                self.head = nn.Linear(D + c.horizon * c.n_calendar, c.horizon * c.n_targets * Q)
            else:
                self.decoder = build_recurrent(c.cell, c.n_targets + c.n_calendar, D, **rnn)
                self.head = nn.Linear(D, c.n_targets * Q)

    @classmethod
    def from_config(cls, config: ForecasterConfig) -> Forecaster:
        return cls(config)

    # ------------------------------------------------------------------ normalisation
    def _normalise(self, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``target (B, L, C)`` -> normalised window, location ``(B, 1, C)``, scale ``(B, 1, C)``."""
        norm = self.config.norm
        if norm == "revin":
            loc = target.mean(dim=1, keepdim=True)
            scale = torch.sqrt(target.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
            return (target - loc) / scale * self.revin_weight + self.revin_bias, loc, scale
        loc = target[:, -1:, :] if norm == "last" else torch.zeros_like(target[:, :1, :])
        return target - loc, loc, torch.ones_like(loc)

    def _outputs(self, raw: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Raw head outputs ``(B, H, C, Q)`` -> distribution parameters in target units."""
        loc, scale = loc.unsqueeze(-1), scale.unsqueeze(-1)  # (B, 1, C, 1)
        out = self.config.output
        if out == "point":
            return raw * scale + loc
        if out == "gaussian":
            mean = raw[..., :1] * scale + loc
            sigma = (F.softplus(raw[..., 1:]) + 1e-3) * scale
            return torch.cat([mean, sigma], dim=-1)
        steps = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1)
        return steps.cumsum(dim=-1) * scale + loc  # ordered quantiles

    # ------------------------------------------------------------------ forward
    def _check(self, x: Tensor, future: Tensor | None) -> Tensor:
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.lookback or x.shape[2] != c.n_inputs:
            raise InputShapeError(f"expected x of shape (B, lookback={c.lookback}, inputs={c.n_inputs}) "
                                  f"[targets {c.n_targets} + past {c.n_past} + calendar {c.n_calendar}]; "
                                  f"got {tuple(x.shape)}")
        if future is None and not c.n_calendar:
            return x.new_zeros(x.shape[0], c.horizon, 0)
        if future is None or tuple(future.shape) != (x.shape[0], c.horizon, c.n_calendar):
            raise InputShapeError(f"expected future calendar features of shape ({x.shape[0]}, {c.horizon}, "
                                  f"{c.n_calendar}); got {None if future is None else tuple(future.shape)}")
        return future

    def forward(self, x: Tensor, future: Tensor | None = None) -> Tensor:
        """``x (B, L, C+P+K)``, ``future (B, H, K)`` -> parameters ``(B, H, C, Q)``."""
        future = self._check(x, future)
        c = self.config
        target, loc, scale = self._normalise(x[..., :c.n_targets])
        if c.segment:
            raw = self._segment_forward(target)
        else:
            inputs = torch.cat([target, x[..., c.n_targets:]], dim=-1)  # (B, L, C+P+K)
            _, state = self.encoder(inputs)
            if c.decoder == "direct":
                raw = self._direct(state, future)
            else:
                raw = self._autoregressive(state, target[:, -1, :], future, loc, scale)
        return self._outputs(raw, loc, scale)

    @staticmethod
    def _top(state) -> Tensor:
        """Last layer's hidden state ``(B, D)`` from ``h_n (layers, B, D)`` or ``(h_n, c_n)``."""
        return (state[0] if isinstance(state, tuple) else state)[-1]

    def _direct(self, state, future: Tensor) -> Tensor:
        c = self.config
        features = torch.cat([self.drop(self._top(state)), future.flatten(1)], dim=1)  # (B, D + H K)
        return self.head(features).view(-1, c.horizon, c.n_targets, c.n_params)

    def _point(self, raw: Tensor) -> Tensor:
        """Normalised point forecast from raw parameters ``(..., Q)`` (mean, or the median quantile)."""
        if self.config.output != "quantile":
            return raw[..., 0]
        levels = torch.tensor(self.config.quantiles)
        middle = int(torch.argmin((levels - 0.5).abs()))
        steps = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1)
        return steps.cumsum(dim=-1)[..., middle]

    def _autoregressive(self, state, last: Tensor, future: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        c = self.config
        previous, outputs = last, []  # (B, C), normalised units
        for t in range(c.horizon):
            step_in = torch.cat([previous, future[:, t, :]], dim=-1).unsqueeze(1)  # (B, 1, C + K)
            out, state = self.decoder(step_in, state)
            raw = self.head(self.drop(out[:, 0, :])).view(-1, c.n_targets, c.n_params)  # (B, C, Q)
            outputs.append(raw)
            previous = self._point(raw)
        return torch.stack(outputs, dim=1)  # (B, H, C, Q)

    def _segment_forward(self, target: Tensor) -> Tensor:
        c = self.config
        B, L, C = target.shape
        w, m, D = c.segment, self.n_out_segments, c.hidden_size
        segments = target.permute(0, 2, 1).reshape(B * C, L // w, w)  # (B C, L/w, w)
        _, state = self.encoder(F.relu(self.embed(segments)))  # h_n: (layers, B C, D)
        queries = torch.cat([self.position.unsqueeze(0).expand(C, -1, -1),
                             self.channel.unsqueeze(1).expand(-1, m, -1)], dim=-1)  # (C, m, D)
        queries = queries.unsqueeze(0).expand(B, -1, -1, -1).reshape(B * C * m, 1, D)
        state = _map_state(state, lambda s: s.repeat_interleave(m, dim=1))  # (layers, B C m, D)
        out, _ = self.encoder(queries, state)  # SegRNN decodes with the encoder's own weights
        raw = self.head(self.drop(out[:, 0, :]))  # (B C m, w Q)
        raw = raw.view(B, C, m * w, c.n_params)[:, :, :c.horizon]  # (B, C, H, Q)
        return raw.permute(0, 2, 1, 3)

    # ------------------------------------------------------------------ loss and prediction
    def loss(self, params: Tensor, y: Tensor) -> Tensor:
        """Training loss of ``params (B, H, C, Q)`` against ``y (B, H, C)`` (see module docstring)."""
        c = self.config
        if c.output == "point":
            error = params[..., 0] - y
            return error.pow(2).mean() if c.loss == "mse" else error.abs().mean()
        if c.output == "gaussian":
            mean, sigma = params[..., 0], params[..., 1]
            return (torch.log(sigma) + 0.5 * ((y - mean) / sigma) ** 2).mean() + 0.5 * math.log(2 * math.pi)
        levels = torch.tensor(c.quantiles, dtype=params.dtype, device=params.device)
        error = y.unsqueeze(-1) - params  # (B, H, C, Q)
        return torch.maximum(levels * error, (levels - 1) * error).mean()

    def point(self, params: Tensor) -> Tensor:
        """Point forecast ``(B, H, C)``: the value, the mean, or the quantile nearest 0.5."""
        if self.config.output == "quantile":
            levels = torch.tensor(self.config.quantiles)
            return params[..., int(torch.argmin((levels - 0.5).abs()))]
        return params[..., 0]

    def interval(self, params: Tensor, level: float = 0.8) -> tuple[Tensor, Tensor] | None:
        """Central prediction interval ``(lower, upper)``, each ``(B, H, C)``; None for point forecasts.

        Gaussian: ``mean -/+ z sigma`` with ``z = Phi^-1((1 + level) / 2)``. Quantile: the outermost
        quantiles, whose nominal level is ``q_max - q_min`` (``level`` must match it).
        """
        c = self.config
        if c.output == "point":
            return None
        if c.output == "gaussian":
            z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2))
            return params[..., 0] - z * params[..., 1], params[..., 0] + z * params[..., 1]
        nominal = c.quantiles[-1] - c.quantiles[0]
        if abs(nominal - level) > 1e-6:
            raise ConfigError(f"this model's quantiles {c.quantiles} give a {nominal:.0%} interval; got level={level}")
        return params[..., 0], params[..., -1]
