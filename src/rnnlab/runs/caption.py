"""Captioning runs end to end: what ``rnnlab train caption``, ``rnnlab caption`` and ``rnnlab evaluate`` call.

Run directory (kind ``caption``)::

    RUN/run.json      config {"run": CaptionRunConfig, "model": CaptionerConfig}, "summary", "results"
                      (test and compositional scores: BLEU-1..4, exact, per attribute, localisation)
    RUN/metrics.csv   training loss; validation loss and exact-caption accuracy per evaluation
    RUN/ckpt-*/       weights + model.json (the Trainer's checkpoints; ``best`` = lowest validation loss)

Scenes are rebuilt from the stored config (kind, counts, ``data_seed``): nothing but the weights is
saved, and ``rnnlab evaluate RUN --split compositional`` scores exactly the scenes training held out.
Everything a run needs is validated before its directory is made, so a bad option leaves nothing behind.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from rnnlab.checkpoint import load_checkpoint
from rnnlab.config import check_config, option
from rnnlab.data.images import read_image
from rnnlab.data.scenes import CANVAS, KINDS, SPLITS, VOCAB, SceneSet, build_scenes, channels_of
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.models.captioner import Captioner, CaptionerConfig
from rnnlab.rundir import check_run_dir_free, has_checkpoint, prepare_run_dir, read_run, update_run_json
from rnnlab.tasks.caption import CaptionTask, generate, score_captions
from rnnlab.train import TrainConfig, Trainer, seed_everything

__all__ = ["CaptionRunConfig", "model_config_for", "train_caption", "load_captioner", "run_scenes",
           "evaluate_caption", "caption_file"]


@dataclass
class CaptionRunConfig:
    scenes: str = option("digits", "built-in scenes: digits (scikit-learn's handwritten digits) or shapes",
                         choices=KINDS)
    train_scenes: int = option(10000, "training scenes (generated from --data-seed)", min=1)
    valid_scenes: int = option(1000, "validation scenes (early stopping)", min=1)
    test_scenes: int = option(1000, "scenes in each of the test and compositional splits", min=1)
    data_seed: int = option(0, "seed of the scenes, the drawing split and the held-out combinations", min=0)
    batch_size: int = option(64, "scenes per training batch", min=1)
    lr: float = option(2e-3, "Adam learning rate", min=0.0, min_open=True)
    epochs: int = option(6, "passes over the training scenes at most", min=1)
    patience: int = option(3, "early stop after this many evaluations without a lower validation loss", min=0)
    max_minutes: float | None = option(None, "wall-clock budget in minutes (none: no limit)", min=0.0, min_open=True)
    max_cpu_minutes: float | None = option(None, "CPU-time budget in minutes (fair on a shared machine; none: no limit)",
                                           min=0.0, min_open=True)
    penalty: float = option(0.01, "lambda of the doubly-stochastic attention regulariser", min=0.0)
    concept_weight: float = option(1.0, "weight of the word-detection loss on region features (needs --concepts)",
                             min=0.0)
    clip: float = option(5.0, "gradient-norm clipping (0: off)", min=0.0)
    beam: int = option(1, "beam size of the final test scores (1: greedy)", min=1)
    seed: int = option(0, "seed of initialisation and batch order", cli=False)
    progress: bool = option(True, "progress bar", cli=False)


def model_config_for(run: CaptionRunConfig, **model_options) -> CaptionerConfig:
    """The captioner config for ``run``'s scenes (vocabulary, channels and image size fixed by them)."""
    config = CaptionerConfig(vocab_size=len(VOCAB), channels=channels_of(run.scenes), image_size=CANVAS,
                             **model_options)
    return check_config(config)


def _train_config(run: CaptionRunConfig) -> TrainConfig:
    return TrainConfig(optimizer="adam", lr=run.lr, clip=run.clip or None, max_epochs=run.epochs,
                       max_time_s=None if run.max_minutes is None else run.max_minutes * 60, patience=run.patience,
                       max_cpu_s=None if run.max_cpu_minutes is None else run.max_cpu_minutes * 60,
                       restore_best=True, seed=run.seed, progress=run.progress, log_every=20)


def run_scenes(run: CaptionRunConfig, split: str) -> SceneSet:
    """The scenes of ``split`` exactly as the run saw (or held out from) them."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    count = {"train": run.train_scenes, "valid": run.valid_scenes}.get(split, run.test_scenes)
    return build_scenes(run.scenes, split, count, run.data_seed)


def _configs_from(info: dict) -> tuple[CaptionRunConfig, CaptionerConfig]:
    stored = info.get("config") or {}
    try:
        run = CaptionRunConfig(**{f.name: stored["run"][f.name] for f in fields(CaptionRunConfig)
                                  if f.name in stored["run"]})
        model = CaptionerConfig(**stored["model"])
    except (KeyError, TypeError) as error:
        raise RunDirError(f"run.json of a caption run lacks a usable config ({error}); expected "
                          f"{{'run': ..., 'model': ...}}") from None
    return run, model


def train_caption(run: CaptionRunConfig, model_config: CaptionerConfig, out: str | Path, *, resume: bool = False,
                  command: str = "", epochs: int | None = None) -> dict:
    """Train (or resume: the stored config, optionally more ``epochs``) into ``out``; score test and compositional."""
    out = Path(out)
    if resume:
        run, model_config = _configs_from(read_run(out, kind="caption"))
        if not has_checkpoint(out):
            raise RunDirError(f"cannot resume {out}: it has no checkpoint yet; start it again with a new --out")
        if epochs is not None:
            run.epochs = epochs
    check_config(run)
    check_config(model_config)
    Captioner(model_config)  # raises on contradictory options before anything is written
    if not resume:
        check_run_dir_free(out)
    splits = {split: run_scenes(run, split) for split in ("train", "valid")}
    config = {"run": asdict(run), "model": asdict(model_config)}
    prepare_run_dir(out, kind="caption", config=config, command=command, resume=resume)
    if resume:
        update_run_json(out, config=config)
    seed_everything(run.seed)
    model = Captioner(model_config)
    task = CaptionTask(splits, batch_size=run.batch_size, seed=run.seed, penalty=run.penalty,
                       concepts=run.concept_weight)
    summary = Trainer(model, task, _train_config(run), out).fit(resume=resume)
    results = {split: evaluate_model(model, run, split, beam=run.beam) for split in ("test", "compositional")}
    parameters = sum(p.numel() for p in model.parameters())
    update_run_json(out, summary=summary, results=results, parameters=parameters)
    return {"summary": summary, "results": results, "parameters": parameters}


def evaluate_model(model: Captioner, run: CaptionRunConfig, split: str, *, beam: int = 1) -> dict:
    scenes = run_scenes(run, split)
    captions, attention = generate(model, scenes.images, beam=beam)
    metrics = score_captions(scenes, captions, attention if model.config.attention else None,
                             grid=model.encoder.grid, size=model.config.image_size)
    return {"scenes": len(scenes), "beam": beam, **metrics}


def load_captioner(run_dir: str | Path, which: str = "best") -> tuple[Captioner, CaptionRunConfig, dict]:
    """``(model in eval mode, run config, run.json)`` of a caption run."""
    run_dir = Path(run_dir)
    info = read_run(run_dir, kind="caption")
    if not has_checkpoint(run_dir):
        raise RunDirError(f"{run_dir} has no checkpoint yet; train it first (rnnlab train caption --out {run_dir})")
    model = load_checkpoint(run_dir, which=which).model
    if not isinstance(model, Captioner):
        raise RunDirError(f"{run_dir} holds a {type(model).__name__}, expected a Captioner")
    run, _ = _configs_from(info)
    return model.eval(), run, info


def evaluate_caption(run_dir: str | Path, split: str = "test", *, beam: int = 1) -> dict:
    """Scores of the run's best weights on one of its splits (see :func:`rnnlab.tasks.caption.score_captions`)."""
    if beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {beam}")
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)} for a caption run; got {split!r}")
    model, run, _ = load_captioner(run_dir)
    return evaluate_model(model, run, split, beam=beam)


def caption_file(model: Captioner, path: str | Path, *, beam: int = 1, invert: bool = False) -> dict:
    """Caption one PNG/JPEG with a loaded captioner: ``{"caption", "attention" (T, L) or None, "image"}``."""
    if beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {beam}")
    image = read_image(path, model.config.image_size, model.config.channels, invert=invert)
    captions, attention = generate(model, image, beam=beam)
    return {"caption": captions[0], "attention": attention[0], "image": image[0]}
