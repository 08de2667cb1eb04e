"""Baselines every forecaster must beat, evaluated on exactly the same windows.

All take the look-back window of the targets ``x (B, L, C)`` and return ``(B, H, C)``:

    naive           f[h] = x[L-1]                                   (last value)
    seasonal naive  f[h] = x[L - m + (h mod m)]                     (same phase, last season)
    linear          f = W x + b, one map R^L -> R^H shared by all channels (DLinear's
                    "channel-independent" setting), fitted by ridge least squares in closed form:
                    W = (X^T X + lambda N I)^-1 X^T Y over all N training windows and channels,
                    lambda picked on the validation windows.
    linear + decomposition (DLinear, Zeng et al. 2023): features [x - MA_k(x), MA_k(x)] where MA_k
                    is a moving average of width k with the window's ends repeated as padding.

Since both DLinear components are linear in ``x``, least squares on them spans the same maps as
plain linear; the decomposition changes only how the ridge penalty acts. DLinear proper is fitted
by Adam with early stopping, which regularises differently, so expect close but not equal numbers.
"""
from __future__ import annotations

import json

import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError, InputShapeError


def _check(x: Tensor, horizon: int) -> None:
    if x.dim() != 3:
        raise InputShapeError(f"expected a look-back window (B, L, C); got shape {tuple(x.shape)}")
    if horizon <= 0:
        raise ConfigError(f"horizon must be a positive integer; got {horizon}")


def naive(x: Tensor, horizon: int) -> Tensor:
    """Repeat the last observed value: ``(B, L, C) -> (B, H, C)``."""
    _check(x, horizon)
    return x[:, -1:, :].expand(-1, horizon, -1).clone()


def seasonal_naive(x: Tensor, horizon: int, period: int) -> Tensor:
    """Repeat the last full season of length ``period``: ``f[h] = x[L - m + (h mod m)]``."""
    _check(x, horizon)
    if not 1 <= period <= x.shape[1]:
        raise ConfigError(f"seasonal period must be between 1 and the lookback {x.shape[1]}; got {period}")
    index = x.shape[1] - period + torch.arange(horizon) % period
    return x[:, index, :]


def moving_average(x: Tensor, kernel: int) -> Tensor:
    """DLinear's trend: width-``kernel`` moving average along time of ``(B, L, C)``, ends repeated."""
    front = x[:, :1, :].expand(-1, (kernel - 1) // 2, -1)
    back = x[:, -1:, :].expand(-1, kernel // 2, -1)
    padded = torch.cat([front, x, back], dim=1)  # (B, L + kernel - 1, C)
    return padded.unfold(1, kernel, 1).mean(dim=-1)  # (B, L, C)


class LinearBaseline:
    """Closed-form ridge regression from the look-back window to the horizon, channel-independent."""

    def __init__(self, lookback: int, horizon: int, *, decomposition: bool = False, kernel: int = 25,
                 ridge: float = 1e-3):
        if lookback <= 0 or horizon <= 0:
            raise ConfigError(f"lookback and horizon must be positive; got {lookback} and {horizon}")
        self.lookback, self.horizon = lookback, horizon
        self.decomposition, self.kernel, self.ridge = decomposition, kernel, ridge
        self.weight: Tensor | None = None  # (F + 1, H), last row = bias

    def features(self, x: Tensor) -> Tensor:
        """``(B, L, C)`` -> per-channel rows ``(B*C, F + 1)`` (window values, then a constant 1)."""
        if x.dim() != 3 or x.shape[1] != self.lookback:
            raise InputShapeError(f"expected windows (B, {self.lookback}, C); got {tuple(x.shape)}")
        x = x.double()
        if self.decomposition:
            trend = moving_average(x, self.kernel)
            x = torch.cat([x - trend, trend], dim=1)  # (B, 2L, C)
        rows = x.permute(0, 2, 1).reshape(-1, x.shape[1])  # (B*C, F)
        return torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], dim=1)

    def fit(self, batches, n_targets: int, *, valid=None, ridges=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)) -> LinearBaseline:
        """Accumulate ``X^T X`` and ``X^T Y`` over every batch (dicts with ``x`` and ``y``), then solve.

        With ``valid`` batches, the penalty is picked from ``ridges`` by validation MSE (the sums are
        accumulated once; each candidate costs one solve); otherwise ``self.ridge`` is used.
        """
        gram = xty = None
        count = 0
        for batch in batches:
            feats = self.features(batch["x"][..., :n_targets])
            y = batch["y"].double().permute(0, 2, 1).reshape(-1, self.horizon)  # (B*C, H)
            gram = feats.T @ feats if gram is None else gram + feats.T @ feats
            xty = feats.T @ y if xty is None else xty + feats.T @ y
            count += len(feats)
        if gram is None:
            raise DataError("no training windows to fit the linear baseline on")
        candidates = {}
        for ridge in (ridges if valid is not None else (self.ridge,)):
            penalty = ridge * count * torch.eye(len(gram), dtype=gram.dtype)
            penalty[-1, -1] = 0.0  # the bias is not shrunk
            candidates[ridge] = torch.linalg.solve(gram + penalty, xty)
        if valid is not None:
            errors = dict.fromkeys(candidates, 0.0)
            for batch in valid:
                feats = self.features(batch["x"][..., :n_targets])
                y = batch["y"].double().permute(0, 2, 1).reshape(-1, self.horizon)
                for ridge, weight in candidates.items():
                    errors[ridge] += float(((feats @ weight - y) ** 2).sum())
            self.ridge = min(errors, key=errors.get)
        self.weight = candidates[self.ridge]
        return self

    def __call__(self, x: Tensor) -> Tensor:
        """``(B, L, C) -> (B, H, C)``."""
        if self.weight is None:
            raise ConfigError("the linear baseline is not fitted; call fit() first")
        batch, _, channels = x.shape
        out = self.features(x) @ self.weight  # (B*C, H)
        return out.reshape(batch, channels, self.horizon).permute(0, 2, 1).to(x.dtype)

    def to_json(self) -> str:
        return json.dumps({"lookback": self.lookback, "horizon": self.horizon, "decomposition": self.decomposition,
                           "kernel": self.kernel, "ridge": self.ridge})

    def to_dict(self) -> dict:
        """Everything :meth:`from_dict` needs to forecast again, the fitted map included (JSON-ready)."""
        if self.weight is None:
            raise ConfigError("the linear baseline is not fitted; call fit() first")
        return {**json.loads(self.to_json()), "weight": self.weight.tolist()}

    @classmethod
    def from_dict(cls, spec: dict) -> LinearBaseline:
        model = cls(spec["lookback"], spec["horizon"], decomposition=spec["decomposition"], kernel=spec["kernel"],
                    ridge=spec["ridge"])
        model.weight = torch.tensor(spec["weight"], dtype=torch.float64)
        expected = (2 * model.lookback if model.decomposition else model.lookback) + 1
        if tuple(model.weight.shape) != (expected, model.horizon):
            raise DataError(f"a saved linear baseline must have weights ({expected}, {model.horizon}); "
                            f"got {tuple(model.weight.shape)}")
        return model


BASELINES = ("naive", "seasonal_naive", "linear")


def baseline_forecast(name: str, x: Tensor, horizon: int, *, period: int | None = None,
                      linear: LinearBaseline | None = None) -> Tensor:
    """The forecast ``(B, H, C)`` of baseline ``name`` from the target look-back ``x (B, L, C)``."""
    if name == "naive":
        return naive(x, horizon)
    if name == "seasonal_naive":
        if period is None:
            raise ConfigError("seasonal naive needs a seasonal period")
        return seasonal_naive(x, horizon, period)
    if name == "linear":
        if linear is None:
            raise ConfigError("the linear baseline needs its fitted map")
        return linear(x)
    raise ConfigError(f"unknown baseline {name!r}; expected one of {BASELINES}")


def evaluate_baselines(data, split: str = "test", *, period: int | None = None, linear: bool = True,
                       decomposition: bool = False, batch_size: int = 512) -> dict[str, Tensor]:
    """Predictions of every baseline on all windows of ``split`` of a ``ForecastData``.

    Returns ``{"target": (N, H, C), "naive": ..., "seasonal_naive": ..., "linear": ...}`` (and
    ``"dlinear"`` with ``decomposition``) in scaled units; windows in chronological order. The
    linear maps are fitted on the training windows, their ridge penalty picked on the validation
    windows when the data has a "valid" split.
    """
    C = data.n_targets
    out: dict[str, list] = {"target": [], "naive": []}
    models = {}
    if period is not None:
        out["seasonal_naive"] = []
    if linear:
        variants = (("linear", False), ("dlinear", True)) if decomposition else (("linear", False),)
        for name, decompose in variants:
            valid = data.batches("valid", batch_size=batch_size) if "valid" in data.splits else None
            models[name] = LinearBaseline(data.lookback, data.horizon, decomposition=decompose).fit(
                data.batches("train", batch_size=batch_size), C, valid=valid)
            out[name] = []
    for batch in data.batches(split, batch_size=batch_size):
        x = batch["x"][..., :C]
        out["target"].append(batch["y"])
        out["naive"].append(naive(x, data.horizon))
        if period is not None:
            out["seasonal_naive"].append(seasonal_naive(x, data.horizon, period))
        for name, model in models.items():
            out[name].append(model(x))
    return {name: torch.cat(parts) for name, parts in out.items()}


class FittedBaselines:
    """The baselines of one run, fitted on its training windows, as a forecast from a saved run needs them.

    ``period`` is the seasonal period (``None``: no seasonal naive, e.g. yearly data or a period
    longer than the look-back); ``linear`` the fitted ridge map. :meth:`to_dict` is what the
    checkpoint's forecast.json stores, so ``rnnlab forecast predict`` can forecast with a baseline
    the run chose without refitting anything.
    """

    def __init__(self, horizon: int, period: int | None, linear: LinearBaseline):
        self.horizon, self.period, self.linear = horizon, period, linear

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in BASELINES if name != "seasonal_naive" or self.period is not None)

    @classmethod
    def fit(cls, data, period: int | None, *, batch_size: int = 512) -> FittedBaselines:
        """Fit on the training windows of a ``ForecastData`` (ridge penalty picked on "valid" if present)."""
        valid = data.batches("valid", batch_size=batch_size) if "valid" in data.splits else None
        linear = LinearBaseline(data.lookback, data.horizon).fit(data.batches("train", batch_size=batch_size),
                                                                 data.n_targets, valid=valid)
        usable = period if period is not None and 1 < period <= data.lookback else None
        return cls(data.horizon, usable, linear)

    def forecast(self, name: str, x: Tensor) -> Tensor:
        """``(B, L, C)`` target look-back (scaled) -> ``(B, H, C)``."""
        if name not in self.names:
            raise ConfigError(f"baseline {name!r} is not available here; expected one of {self.names}")
        return baseline_forecast(name, x, self.horizon, period=self.period, linear=self.linear)

    def to_dict(self) -> dict:
        return {"horizon": self.horizon, "period": self.period, "linear": self.linear.to_dict()}

    @classmethod
    def from_dict(cls, spec: dict) -> FittedBaselines:
        return cls(spec["horizon"], spec["period"], LinearBaseline.from_dict(spec["linear"]))
