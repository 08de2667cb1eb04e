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
from rnnlab.checkpoint import load_checkpoint
from rnnlab.config import check_config, option
from rnnlab.data.text import load_corpus, token_dtype
from rnnlab.data.tokenizer import fit_tokenizer, tokenizer_from_json
from rnnlab.errors import ConfigError, DataError, RunDirError
from rnnlab.models import LanguageModel, LanguageModelConfig, WindowLanguageModel, WindowLanguageModelConfig
from rnnlab.nn import RECURRENT
from rnnlab.rundir import (
    DATA_DIR,
    RUN_JSON,
    TOKENIZER,
    check_run_dir_free,
    discard_unstarted,
    has_checkpoint,
    prepare_run_dir,
    read_run,
    update_run_json,
)
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


BY_LEVEL = "by --level: char 64/256/1 layer, word and bpe Zaremba's 200/200/2 layers"


@dataclass
class LMRunConfig:
    """Everything ``rnnlab train lm`` takes; ``None`` means "the level's default" (:data:`LEVEL_DEFAULTS`)."""

    data: str | None = option(None, "text file, directory, or directory with train.txt/valid.txt[/test.txt]",
                              default_text="the built-in pydoc_data.topics corpus")
    level: str = option("char", "what a token is", choices=tuple(LEVEL_DEFAULTS))
    model: str = option("lstm", "mlp (Bengio's fixed window) or any recurrent cell: " + ", ".join(sorted(RECURRENT)))
    split: tuple[float, ...] = option((0.9, 0.05, 0.05), "train, valid[, test] fractions of a single text",
                                      min=0.0, max=1.0, min_open=True)
    encoding_errors: str = option("strict", "undecodable UTF-8: strict = stop with file and byte offset; "
                                            "replace = U+FFFD", choices=("strict", "replace"))
    vocab_size: int | None = option(None, "word: keep the most frequent words; bpe: vocabulary size", min=2,
                                    default_text="all words / 4096 for bpe")
    min_count: int = option(1, "word: drop words seen fewer times", min=1)
    embed: int | None = option(None, "embedding size", min=1, default_text="by --level: 64 char, 200 word/bpe")
    hidden: int | None = option(None, "hidden units per layer", min=1, default_text="by --level: 256 char, 200 word/bpe")
    layers: int | None = option(None, "recurrent layers", min=1, default_text="by --level: 1 char, 2 word/bpe")
    window: int = option(5, "mlp only: tokens the window sees", min=1)
    tie: bool = option(False, "tie input and output embeddings (Press & Wolf 2017)")
    dropout: float = option(0.0, "locked dropout on input, between layers and on output", min=0.0, max=1.0,
                            max_open=True)
    embed_dropout: float = option(0.0, "embedding dropout: drop whole word types (AWD-LSTM: 0.1)", min=0.0, max=1.0,
                                  max_open=True)
    activation_reg: float = option(0.0, "AR: penalty α·mean(h²) on the last layer's dropped output (AWD-LSTM: 2)",
                                   min=0.0)
    temporal_reg: float = option(0.0, "TAR: penalty β·mean((h_t − h_{t−1})²) on the last layer (AWD-LSTM: 1)",
                                 min=0.0)
    weight_drop: float = option(0.0, "DropConnect on the recurrent weights W_hh (AWD-LSTM: 0.5)", min=0.0, max=1.0,
                                max_open=True)
    init_range: float | None = option(None, "uniform init range for every weight (Zaremba: 0.1)", min=0.0,
                                      min_open=True, default_text="PyTorch's")
    batch_size: int | None = option(None, "sequences per batch", min=1, default_text="by --level: 32 char, 20 word/bpe")
    bptt: int | None = option(None, "tokens per training window (truncated BPTT)", min=1,
                              default_text="by --level: 64 char, 35 word/bpe")
    windows: bool | None = option(None, "random windows instead of contiguous TBPTT streams",
                                  default_text="on for char, off for word/bpe")
    optimizer: str | None = option(None, "optimizer", choices=("sgd", "adam", "adamw"),
                                   default_text="adam; sgd for word")
    lr: float | None = option(None, "learning rate", min=0.0, min_open=True,
                              default_text="by --level: 3e-3 char, 20 word, 2e-3 bpe")
    clip: float | None = option(None, "max global gradient norm (0 = off)", min=0.0,
                                default_text="1.0; 0.25 for word")
    schedule: str | None = option(None, "learning-rate schedule (plateau: halve after an evaluation without a new "
                                        "best; its clock is --eval-every)", choices=("none", "step", "plateau"),
                                  default_text="plateau")
    epochs: int | None = option(None, "passes over the training text", min=1,
                                default_text="by --level: 3 char, 13 word, 6 bpe")
    max_steps: int | None = option(None, "stop after this many optimizer steps", min=1)
    max_minutes: float | None = option(None, "stop after this many wall-clock minutes", min=0.0, min_open=True)
    eval_every: int | None = option(None, "steps between evaluations, checkpoints and plateau decisions", min=1,
                                    default_text="once per epoch")
    patience: int | None = option(None, "early stop after this many evaluations without improvement", min=1)
    seed: int = option(0, "random seed", cli=False)
    progress: bool = option(True, "progress bar", cli=False)
    tensorboard: bool = option(False, "also write TensorBoard logs (needs tensorboard installed)")

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
        dropout_embed=c.embed_dropout, activation_reg=c.activation_reg, temporal_reg=c.temporal_reg,
        init_range=c.init_range))


def train_config(c: LMRunConfig) -> TrainConfig:
    return TrainConfig(optimizer=c.optimizer, lr=c.lr, clip=c.clip, schedule=c.schedule, lr_factor=0.5,
                       max_epochs=c.epochs, max_steps=c.max_steps,
                       max_time_s=None if c.max_minutes is None else c.max_minutes * 60, eval_every=c.eval_every,
                       patience=c.patience, seed=c.seed, progress=c.progress, tensorboard=c.tensorboard)


def resume_config(out: Path, overrides: dict | None = None) -> LMRunConfig:
    """The stored configuration of the LM run in ``out``, with ``overrides`` (e.g. a longer budget), checked."""
    info = read_run(out, kind="lm")
    stored = dict(info.get("config") or {})
    stored.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(LMRunConfig)}
    try:
        config = LMRunConfig(**{k: v for k, v in stored.items() if k in known})
    except TypeError as error:
        raise RunDirError(f"{out / RUN_JSON} holds an unreadable configuration ({error})") from None
    config.split = tuple(config.split)
    return check_config(config)


def train_lm(config: LMRunConfig, out: str | Path, *, resume: bool = False, command: str = "",
             overrides: dict | None = None, force: bool = False, log=print) -> dict:
    """Train (or resume) into ``out``; returns final metrics. ``overrides`` may extend a resumed run.

    Everything is checked before the run directory is created (options, data, tokenizer, model), so a
    rejected command leaves nothing behind. ``resume`` continues from the latest checkpoint; a run
    that died before its first checkpoint starts again from scratch (there is nothing to continue).
    Resuming on training text that differs from the stored fingerprint is refused unless ``force``.
    """
    out = Path(out)
    dist.init_from_env()
    if resume:
        config = resume_config(out, overrides)
        if not has_checkpoint(out):
            log(f"note: {out} holds no checkpoint yet (the run stopped before its first save); starting it again")
            resume, command = False, read_run(out).get("command", command)
    else:
        config = check_config(config.resolved())
        if dist.is_main():
            check_run_dir_free(out, resumable=True)  # before any slow work
    corpus = load_corpus(config.data, fractions=config.split, errors=config.encoding_errors)
    fingerprint = corpus.fingerprint()
    if resume:
        stored = read_run(out).get("data_fingerprint")
        if stored is not None and stored != fingerprint and not force:
            raise DataError(f"the training text of {out} changed since the run started ({corpus.source}); resuming "
                            f"would continue on different data. Pass --force to do it anyway, or use a new --out")
        files = load_checkpoint(out, which="latest").files
        if TOKENIZER not in files:
            raise RunDirError(f"the latest checkpoint of {out} holds no {TOKENIZER}; it cannot be resumed")
        tokenizer = tokenizer_from_json(files[TOKENIZER])
    else:
        size = config.vocab_size
        tokenizer = fit_tokenizer(config.level, corpus.lines("train"), max_size=size, min_count=config.min_count,
                                  bpe_vocab=size or 4096)
    seed_everything(config.seed)
    model = build_language_model(config, tokenizer.vocab_size)  # any model error before the directory exists
    train_settings = train_config(config)
    try:  # a failure while setting up a fresh run leaves no directory behind
        if dist.is_main():
            if resume:
                prepare_run_dir(out, kind="lm", config=asdict(config), resume=True)
                update_run_json(out, config=asdict(config))
            else:
                prepare_run_dir(out, kind="lm", config=asdict(config), command=command, data_fingerprint=fingerprint)
            data = encode_splits(corpus, tokenizer, out / DATA_DIR)
        dist.barrier()
        if not dist.is_main():
            data = {s: np.memmap(out / DATA_DIR / f"{s}.bin", dtype=token_dtype(tokenizer.vocab_size), mode="r")
                    for s in corpus.splits}
        task = LanguageModelTask(data, tokenizer, batch_size=config.batch_size, bptt=config.bptt,
                                 windows=config.windows, seed=config.seed)
        trainer = Trainer(model, task, train_settings, out)
    except BaseException:
        if dist.is_main() and not resume:
            discard_unstarted(out)
        raise
    summary = trainer.fit(resume=resume)
    results = {split: trainer.evaluate(split) for split in ("valid", "test") if split in data}
    if dist.is_main():
        update_run_json(out, summary=summary, results=results,
                        parameters=sum(p.numel() for p in model.parameters()),
                        tokens={s: int(len(v)) for s, v in data.items()}, unknown_tokens=tokenizer.unknown_count)
    return {"summary": summary, "results": results, "level": tokenizer.level,
            "parameters": sum(p.numel() for p in model.parameters()), "tokens": {s: len(v) for s, v in data.items()}}
