"""Language modelling as a trainer task: data on disk, TBPTT loss, full-stream evaluation.

Evaluation covers every prediction of a split exactly once, with state carried: the N − 1
targets are cut into B streams of L = ⌊(N − 1)/B⌋ and run in chunks of T steps; the remaining tail
(fewer than B targets) follows stream B − 1, so it is run last from that stream's final state::

    loss = (1 / (N − 1)) Σ_t −ln p(x_{t+1} | x_≤t)      nats per token
    perplexity = exp(loss) (word, subword);  bits per character = loss / ln 2 (char)
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab import distributed as dist
from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.text import Corpus, write_token_file
from rnnlab.data.token_batches import ContiguousBatches, RandomWindows
from rnnlab.data.tokenizer import Tokenizer, tokenizer_from_json
from rnnlab.errors import DataError, RunDirError
from rnnlab.models.quantize import quantize_int8
from rnnlab.rundir import TOKENIZER


def encode_splits(corpus: Corpus, tokenizer: Tokenizer, cache_dir: str | Path) -> dict[str, np.memmap]:
    """Encode every split of ``corpus`` to ``cache_dir/<split>.bin`` and memory-map it."""
    out = {}
    for split in corpus.splits:
        out[split] = write_token_file(tokenizer.encode_lines(corpus.lines(split)), Path(cache_dir) / f"{split}.bin",
                                      tokenizer.vocab_size)
    return out


def _nll_sum(model, x: torch.Tensor, y: torch.Tensor, state):
    logits, state = model(x, state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item(), state


@torch.no_grad()
def evaluate_stream(model, ids: np.ndarray, *, batch_size: int = 10, bptt: int = 100) -> dict[str, float]:
    """Mean cross-entropy (nats/token) over every prediction in ``ids``, state carried (see module doc)."""
    n_targets = len(ids) - 1
    if n_targets < 1:
        raise DataError(f"evaluation needs at least 2 tokens; got {len(ids)}")
    batch_size = max(1, min(batch_size, n_targets))
    length = n_targets // batch_size
    device = next(model.parameters()).device
    data = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    rows = torch.stack([data[b * length:(b + 1) * length + 1] for b in range(batch_size)]).to(device)  # (B, L+1)
    total, state = 0.0, None
    for start in range(0, length, bptt):
        end = min(start + bptt, length)
        nll, state = _nll_sum(model, rows[:, start:end], rows[:, start + 1:end + 1], state)
        total += nll
    tail = data[batch_size * length:].to(device)  # continues stream B-1
    if len(tail) > 1:
        last = _select_row(state, batch_size - 1)
        for start in range(0, len(tail) - 1, bptt):
            end = min(start + bptt, len(tail) - 1)
            nll, last = _nll_sum(model, tail[None, start:end], tail[None, start + 1:end + 1], last)
            total += nll
    return {"loss": total / n_targets, "tokens": float(n_targets)}


def _select_row(state, row: int):
    """Row ``row`` of a carried state, keeping its nesting; batch is dim 1 of (L, B, H), dim 0 of (B, k)."""
    if isinstance(state, torch.Tensor):
        dim = 1 if state.dim() == 3 else 0
        return state.narrow(dim, row, 1)
    if isinstance(state, (list, tuple)):
        return type(state)(_select_row(s, row) for s in state)
    return state


class LanguageModelTask:
    """Trainer task: contiguous TBPTT batches (carried state) or random windows; metrics per level."""

    perplexity = True
    item_name = "tok"

    def __init__(self, data: dict[str, np.ndarray], tokenizer: Tokenizer, *, batch_size: int = 20, bptt: int = 35,
                 windows: bool = False, windows_per_epoch: int | None = None, seed: int = 0,
                 eval_batch_size: int = 10, eval_bptt: int = 100):
        self.data, self.tokenizer, self.seed = data, tokenizer, seed
        self.batch_size, self.bptt, self.windows = batch_size, bptt, windows
        self.eval_batch_size, self.eval_bptt = eval_batch_size, eval_bptt
        self.level = tokenizer.level
        train = data["train"]
        self.contiguous = ContiguousBatches(train, batch_size, bptt, rank=dist.rank(), world=dist.world_size())
        self.windows_per_epoch = windows_per_epoch or len(self.contiguous)

    def num_batches(self, epoch: int) -> int:
        return self.windows_per_epoch if self.windows else len(self.contiguous)

    def train_batches(self, epoch: int):
        if self.windows:
            return RandomWindows(self.data["train"], self.batch_size, self.bptt, self.windows_per_epoch,
                                 seed=self.seed, epoch=epoch, rank=dist.rank(), world=dist.world_size())
        return self.contiguous

    def loss(self, model, batch, state):
        x, y = batch
        logits, state = model(x, None if self.windows else state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        penalty = getattr(getattr(model, "module", model), "activation_penalty", lambda: None)()  # AR/TAR
        if penalty is not None:
            loss = loss + penalty
        return loss, state, y.numel()

    def evaluate(self, model, split: str) -> dict[str, float]:
        if split not in self.data:
            raise DataError(f"no {split!r} split; have {sorted(self.data)}")
        metrics = evaluate_stream(model, self.data[split], batch_size=self.eval_batch_size, bptt=self.eval_bptt)
        return {**metrics, **level_metrics(metrics["loss"], self.level)}

    def checkpoint_files(self) -> dict[str, str]:
        return {TOKENIZER: self.tokenizer.to_json()}


def level_metrics(loss: float, level: str) -> dict[str, float]:
    """Perplexity for word/subword tokens, bits per character for characters."""
    if level == "char":
        return {"bpc": loss / math.log(2)}
    return {"ppl": math.exp(min(loss, 700.0))}


def load_language_model(path, which: str = "best", *, int8: bool = False):
    """(model, tokenizer, checkpoint) from a run directory or checkpoint; checks they belong together.

    ``int8``: the model with int8 weights in its recurrent and linear layers (CPU inference only).
    """

    checkpoint = load_checkpoint(path, which=which)
    if TOKENIZER not in checkpoint.files:
        raise RunDirError(f"checkpoint {checkpoint.directory} has no tokenizer.json; it is not a language model run")
    tokenizer = tokenizer_from_json(checkpoint.files[TOKENIZER])
    vocab = getattr(checkpoint.model.config, "vocab_size", None)
    if vocab != tokenizer.vocab_size:
        raise RunDirError(f"tokenizer in {checkpoint.directory} has {tokenizer.vocab_size} tokens but the model "
                          f"expects {vocab}; they do not belong together")
    checkpoint.model.eval()
    model = quantize_int8(checkpoint.model) if int8 else checkpoint.model
    return model, tokenizer, checkpoint
