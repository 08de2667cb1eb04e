"""Train a language model into a run directory: what ``rnnlab train lm`` calls.

Defaults depend on the level: characters get a 1-layer 256-unit LSTM trained with Adam on random
windows (a few minutes on the built-in corpus with 2 CPU cores, the demo path); words and subwords
get Zaremba's 2x200 LSTM with TBPTT. Every default can be overridden; ``run.json`` records the
resolved configuration, and ``--resume`` rebuilds everything from it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from rnnlab import distributed as dist
from rnnlab.data.text import load_corpus, token_dtype
from rnnlab.data.tokenizer import fit_tokenizer, tokenizer_from_json
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.io import read_json
from rnnlab.models import LanguageModel, LanguageModelConfig, WindowLanguageModel, WindowLanguageModelConfig
from rnnlab.nn import RECURRENT
from rnnlab.rundir import check_run_dir_free, prepare_run_dir, update_run_json
from rnnlab.tasks.lm import LanguageModelTask, encode_splits
from rnnlab.train import TrainConfig, Trainer, seed_everything

LEVEL_DEFAULTS = {
    "char": dict(embed=64, hidden=256, layers=1, batch_size=32, bptt=64, optimizer="adam", lr=3e-3, clip=1.0,
                 windows=True, epochs=3, schedule="plateau"),
    "word": dict(embed=200, hidden=200, layers=2, batch_size=20, bptt=35, optimizer="sgd", lr=20.0, clip=0.25,
                 windows=False, epochs=13, schedule="plateau"),
    "bpe": dict(embed=200, hidden=200, layers=2, batch_size=20, bptt=35, optimizer="adam", lr=2e-3, clip=1.0,
                windows=False, epochs=6, schedule="plateau"),
}


@dataclass
class LMRunConfig:
    data: str | None = None              # file, directory, or train/valid/test directory; None = built-in corpus
    level: str = "char"                  # char | word | bpe
    model: str = "lstm"                  # mlp or any rnnlab.nn.RECURRENT cell name
    split: tuple = (0.9, 0.05, 0.05)     # train/valid[/test] fractions for a single text
    encoding_errors: str = "strict"
    vocab_size: int | None = None        # word: keep the most frequent; bpe: merges target (default 4096)
    min_count: int = 1
    embed: int | None = None
    hidden: int | None = None
    layers: int | None = None
    window: int = 5                      # mlp only
    tie: bool = False
    dropout: float = 0.0                 # locked dropout on input, between layers and on output
    weight_drop: float = 0.0
    init_range: float | None = None
    batch_size: int | None = None
    bptt: int | None = None
    windows: bool | None = None          # random windows instead of contiguous TBPTT streams
    optimizer: str | None = None
    lr: float | None = None
    clip: float | None = None
    schedule: str | None = None
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int | None = None
    patience: int | None = None
    seed: int = 0
    progress: bool = True
    tensorboard: bool = False

    def resolved(self) -> "LMRunConfig":
        if self.level not in LEVEL_DEFAULTS:
            raise ConfigError(f"--level must be one of {sorted(LEVEL_DEFAULTS)}, got {self.level!r}")
        values = asdict(self)
        for key, default in LEVEL_DEFAULTS[self.level].items():
            if values[key] is None:
                values[key] = default
        values["split"] = tuple(values["split"])

        if self.model != "mlp" and self.model not in RECURRENT:  # checked before any file is written
            raise ConfigError(f"--model must be mlp or one of {sorted(RECURRENT)}, got {self.model!r}")
        return LMRunConfig(**values)


def build_language_model(c: LMRunConfig, vocab_size: int):
    if c.model == "mlp":
        return WindowLanguageModel(WindowLanguageModelConfig(vocab_size, embed_size=c.embed, hidden_size=c.hidden,
                                                             window=c.window))

    if c.model not in RECURRENT:
        raise ConfigError(f"--model must be mlp or one of {sorted(RECURRENT)}, got {c.model!r}")
    return LanguageModel(LanguageModelConfig(
        vocab_size, cell=c.model, embed_size=c.embed, hidden_size=c.hidden, num_layers=c.layers, tie_weights=c.tie,
        dropout_input=c.dropout, dropout_hidden=c.dropout, dropout_output=c.dropout, weight_drop=c.weight_drop,
        init_range=c.init_range))


def train_config(c: LMRunConfig) -> TrainConfig:
    return TrainConfig(optimizer=c.optimizer, lr=c.lr, clip=c.clip, schedule=c.schedule, lr_factor=0.5,
                       max_epochs=c.epochs, max_steps=c.max_steps,
                       max_time_s=None if c.max_minutes is None else c.max_minutes * 60, eval_every=c.eval_every,
                       patience=c.patience, seed=c.seed, progress=c.progress, tensorboard=c.tensorboard)


def train_lm(config: LMRunConfig, out: str | Path, *, resume: bool = False, command: str = "",
             overrides: dict | None = None) -> dict:
    """Train (or resume) into ``out``; returns final metrics. ``overrides`` may extend a resumed run."""
    out = Path(out)
    dist.init_from_env()
    if resume:
        info = read_json(out / "run.json", "run description (run.json) to resume")
        if info.get("kind") != "lm":
            raise RunDirError(f"cannot resume {out}: it holds a {info.get('kind')!r} run, not a language model")
        stored = dict(info["config"])
        stored.update({k: v for k, v in (overrides or {}).items() if v is not None})
        config = LMRunConfig(**{f.name: stored[f.name] for f in fields(LMRunConfig) if f.name in stored})
        config.split = tuple(config.split)
    else:
        config = config.resolved()
        if dist.is_main():
            check_run_dir_free(out)  # before any slow work
    corpus = load_corpus(config.data, fractions=config.split, errors=config.encoding_errors)
    if resume:
        tokenizer = tokenizer_from_json((out / "tokenizer.json").read_text(encoding="utf-8"))
    else:
        size = config.vocab_size
        tokenizer = fit_tokenizer(config.level, corpus.lines("train"), max_size=size, min_count=config.min_count,
                                  bpe_vocab=size or 4096)
    if dist.is_main():
        if resume:
            prepare_run_dir(out, kind="lm", config=asdict(config), resume=True)
            update_run_json(out, config=asdict(config))
        else:
            prepare_run_dir(out, kind="lm", config=asdict(config), command=command)
            (out / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
        data = encode_splits(corpus, tokenizer, out / "data")
    dist.barrier()
    if not dist.is_main():
        data = {s: np.memmap(out / "data" / f"{s}.bin", dtype=token_dtype(tokenizer.vocab_size), mode="r")
                for s in corpus.splits}
    seed_everything(config.seed)
    model = build_language_model(config, tokenizer.vocab_size)
    task = LanguageModelTask(data, tokenizer, batch_size=config.batch_size, bptt=config.bptt,
                             windows=config.windows, seed=config.seed)
    trainer = Trainer(model, task, train_config(config), out)
    summary = trainer.fit(resume=resume)
    results = {split: trainer.evaluate(split) for split in ("valid", "test") if split in data}
    if dist.is_main():
        update_run_json(out, summary=summary, results=results,
                        parameters=sum(p.numel() for p in model.parameters()),
                        tokens={s: int(len(v)) for s, v in data.items()}, unknown_tokens=tokenizer.unknown_count)
    return {"summary": summary, "results": results, "level": tokenizer.level,
            "parameters": sum(p.numel() for p in model.parameters()), "tokens": {s: len(v) for s, v in data.items()}}
