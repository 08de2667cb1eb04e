"""Spoken-digit runs end to end: what ``rnnlab train speech``, ``transcribe`` and ``evaluate`` call.

Two tasks on the same features:

* ``connected`` (default): connected digits (1–7 per utterance) with an acoustic model trained by
  CTC (:class:`rnnlab.tasks.speech.SpeechTask`), decoded greedily or by prefix beam search;
* ``isolated``: one recording -> one digit with :class:`rnnlab.models.classifier.SequenceClassifier`
  (mean pooling) and :class:`rnnlab.tasks.classify.ClassifyTask` — the simple baseline.

Evaluation sets are fixed: ``valid_utterances`` connected utterances from the validation recordings
(seed :data:`VALID_SEED`) and ``test_utterances`` from the test recordings (seed :data:`TEST_SEED`),
so that every run of a split is scored on the same utterances. The run directory::

    RUN/run.json          config + "results" (test DER/SER or accuracy, per speaker, digit confusion)
    RUN/ckpt-*/           weights + model.json + speech.json (features, task, labels)
    RUN/speech_samples.png   spectrogram and CTC posteriors of test utterances (connected)
    RUN/confusion.png        digit confusion on the test set
"""
from __future__ import annotations

import json
import time
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from rnnlab.analysis.plots import confusion_figure, save_png
from rnnlab.analysis.report_speech import posteriors_figure
from rnnlab.checkpoint import load_checkpoint
from rnnlab.config import check_config, option
from rnnlab.data.audio import FeatureConfig, features, read_audio
from rnnlab.data.labelled_sequences import SequenceSet
from rnnlab.data.speech import ConnectedConfig, connected_set, isolated_set, load_fsdd, split_fsdd
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.models.acoustic import AcousticConfig, AcousticModel
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.ctc import combine, frames_needed, label_confidences
from rnnlab.rundir import check_run_dir_free, prepare_run_dir, read_run, update_run_json
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.tasks.speech import (
    AugmentConfig,
    IsolatedSpeechTask,
    SpeechTask,
    decode_batch,
    digit_confusion,
    score,
    stacked,
)
from rnnlab.train import TrainConfig, Trainer, seed_everything

__all__ = ["SpeechRunConfig", "train_speech", "evaluate_speech", "transcribe", "load_speech_model"]

VALID_SEED, TEST_SEED = 1, 2
DIGITS = [str(d) for d in range(10)]


@dataclass
class SpeechRunConfig:
    data: str = option("../shared/data/fsdd", "FSDD folder (holding recordings/ or the WAV files themselves)")
    split: str = option("official", "official (takes 0-4 test), speaker:NAME (NAME held out entirely) or "
                                    "speaker:NAME/without:A,B (A and B unused too)")
    task: str = option("connected", "connected digits with CTC, or isolated digits with the sequence classifier",
                       choices=("connected", "isolated"))
    utterances: int = option(2000, "connected training utterances drawn per epoch", min=1)
    valid_utterances: int = option(240, "fixed connected validation utterances", min=1)
    test_utterances: int = option(600, "fixed connected test utterances", min=1)
    epochs: int = option(8, "training epochs", min=1)
    batch_size: int = option(32, "utterances per batch", min=1)
    lr: float = option(2e-3, "Adam learning rate", min=0.0, min_open=True)
    schedule: str = option("none", "learning-rate schedule: none, plateau (multiply by --lr-factor after "
                                   "--lr-patience + 1 validations in a row without a lower loss) or step (multiply "
                                   "by --lr-factor every epoch after --lr-start)", choices=("none", "plateau", "step"))
    lr_factor: float = option(0.5, "factor of each learning-rate decay", min=0.0, max=1.0, min_open=True)
    lr_patience: int = option(0, "plateau: validations without a lower loss tolerated before a decay", min=0)
    lr_start: int = option(8, "step: the last epoch at the full learning rate", min=0)
    clip: float = option(5.0, "largest global gradient norm (0: no clipping)", min=0.0)
    patience: int | None = option(None, "stop after this many evaluations without a better validation loss", min=1)
    max_cpu_minutes: float | None = option(None, "CPU-time budget of training, minutes", min=0.0, min_open=True)
    beam: int = option(1, "prefix beam width when scoring (1: best path)", min=1)

    def __post_init__(self) -> None:
        check_config(self)


def _check(run: SpeechRunConfig, connected: ConnectedConfig, features: FeatureConfig) -> None:
    if connected.max_digits < connected.min_digits:
        raise ConfigError(f"--max-digits must be >= --min-digits ({connected.min_digits}); got {connected.max_digits}")
    if connected.pause_max < connected.pause_min:
        raise ConfigError(f"--pause-max must be >= --pause-min ({connected.pause_min}); got {connected.pause_max}")
    if features.kind == "mfcc" and features.n_mfcc > features.n_mels:
        raise ConfigError(f"--n-mfcc must be <= --n-mels ({features.n_mels}); got {features.n_mfcc}")
    if connected.snr_max < connected.snr_min:
        raise ConfigError(f"--snr-max must be >= --snr-min ({connected.snr_min}); got {connected.snr_max}")


def _eval_sets(splits: dict, run: SpeechRunConfig, connected: ConnectedConfig) -> dict:
    if run.task == "isolated":
        return {name: isolated_set(splits[name]) for name in ("valid", "test")}
    return {"valid": connected_set(splits["valid"], run.valid_utterances, VALID_SEED, connected),
            "test": connected_set(splits["test"], run.test_utterances, TEST_SEED, connected)}


def _sequence_set(utterances, feature_config: FeatureConfig, stack: int) -> SequenceSet:
    return SequenceSet([stacked(features(u.samples, feature_config), stack) for u in utterances],
                       np.array([u.digits[0] for u in utterances]), list(DIGITS))


def train_speech(run: SpeechRunConfig, model: AcousticConfig, feature_config: FeatureConfig,
                 connected: ConnectedConfig, augment: AugmentConfig, out, *, resume: bool = False,
                 command: str = "", progress: bool = True, seed: int = 0) -> dict:
    """Train into ``out`` (everything is checked and the data read before the directory is made)."""
    _check(run, connected, feature_config)
    if run.task == "isolated" and model.frontend != "stack":
        raise ConfigError("--frontend conv applies to --task connected only (the isolated baseline stacks frames)")
    if not resume:
        check_run_dir_free(out)
    splits = split_fsdd(load_fsdd(run.data), run.split)
    model = replace(model, n_features=feature_config.size, n_labels=11)
    config = {"run": asdict(run), "model": asdict(model), "features": asdict(feature_config),
              "connected": asdict(connected), "augment": asdict(augment), "seed": seed}
    train_config = TrainConfig(optimizer="adam", lr=run.lr, clip=run.clip or None, max_epochs=run.epochs,
                               schedule=run.schedule, lr_factor=run.lr_factor, lr_patience=run.lr_patience,
                               lr_start=run.lr_start,
                               patience=run.patience, max_cpu_s=run.max_cpu_minutes * 60 if run.max_cpu_minutes else None,
                               seed=seed, progress=progress)
    eval_sets = _eval_sets(splits, run, connected)
    seed_everything(seed)
    net = _build(run, model, feature_config)  # a bad --cell stops here, before the run directory exists
    if run.task == "isolated":
        sets = {"train": _sequence_set(isolated_set(splits["train"]), feature_config, model.stack),
                **{k: _sequence_set(v, feature_config, model.stack) for k, v in eval_sets.items()}}
        task = IsolatedSpeechTask(sets, splits["train"], feature_config, connected, augment, stack=model.stack,
                                  batch_size=run.batch_size, seed=seed)
    else:
        task = SpeechTask(splits["train"], eval_sets, feature_config, connected, augment, utterances=run.utterances,
                          batch_size=run.batch_size, seed=seed)
        _check_ctc_lengths(net, task.eval_frames("valid"), [u.digits for u in eval_sets["valid"]])
    run_dir = prepare_run_dir(out, kind="speech", config=config, command=command, resume=resume)
    if resume:
        _check_resumable(run_dir, config)
    summary = Trainer(net, task, train_config, run_dir=run_dir).fit(resume=resume)
    net.eval()
    results = _score(net, run, task, eval_sets["test"])
    if run.task == "connected":  # seen speakers' validation set, beside the test speaker(s)
        results.update(valid_der=task.evaluate(net, "valid", beam=run.beam)["der"])
    results.update(train_wall_s=round(summary["wall_s"], 1), train_cpu_s=round(summary["cpu_s"], 1), epochs=summary["epochs"],
                   parameters=sum(p.numel() for p in net.parameters()))
    update_run_json(run_dir, results=results, training=summary)
    _figures(run_dir, net, run, results, eval_sets["test"], feature_config)
    return results


def _build(run: SpeechRunConfig, model: AcousticConfig, feature_config: FeatureConfig):
    if run.task == "isolated":
        return SequenceClassifier(ClassifierConfig(n_features=feature_config.size * model.stack, n_classes=10,
                                                   cell=model.cell, hidden_size=model.hidden, num_layers=model.layers,
                                                   dropout=model.dropout, bidirectional=model.bidirectional,
                                                   pooling="mean"))
    return AcousticModel(model)


def _check_ctc_lengths(net: AcousticModel, frames: list[torch.Tensor], digits: list[list[int]]) -> None:
    """Every validation utterance must leave CTC enough output frames after subsampling; otherwise
    ``zero_infinity`` would silently drop such utterances from the loss."""
    have = net.output_lengths(torch.tensor([len(f) for f in frames]))
    for f, d, h in zip(frames, digits, have.tolist()):
        need = frames_needed(d)
        if h < need:
            raise ConfigError(f"--stack {net.config.stack} leaves {h} output frames for a validation utterance of "
                              f"{len(f)} frames and {len(d)} digits, which needs at least {need}; lower --stack")


def _check_resumable(run_dir: Path, config: dict) -> None:
    """A resumed run may change only its budget (epochs, CPU minutes, patience); run.json records it."""
    stored = _with_added_defaults(read_run(run_dir)["config"])
    budget = ("epochs", "max_cpu_minutes", "patience")
    mine = json.loads(json.dumps(config))
    strip = lambda c: {**c, "run": {k: v for k, v in c.get("run", {}).items() if k not in budget}}  # noqa: E731
    if strip(stored) != strip(mine):
        changed = sorted(f"{group}.{key}" for group in mine if isinstance(mine[group], dict)
                         for key in mine[group] if key not in budget
                         and stored.get(group, {}).get(key) != mine[group][key])
        raise ConfigError(f"cannot resume {run_dir} with other options ({', '.join(changed) or 'seed'}); only "
                          f"--epochs, --max-cpu-minutes and --patience may change")
    update_run_json(run_dir, config=mine)


def _with_added_defaults(stored: dict) -> dict:
    """A stored configuration with the options added since it was written (e.g. ``frontend``, ``schedule``)
    at their defaults: a run made before an option existed behaved as its default does."""
    classes = {"run": SpeechRunConfig, "model": AcousticConfig, "features": FeatureConfig,
               "connected": ConnectedConfig, "augment": AugmentConfig}
    filled = dict(stored)
    for group, cls in classes.items():
        values = dict(stored.get(group) or {})
        for f in fields(cls):
            if f.name not in values and f.default is not MISSING:
                values[f.name] = json.loads(json.dumps(f.default))
        filled[group] = values
    return filled


def _score(net, run: SpeechRunConfig, task, utterances) -> dict:
    """Test scores overall and per speaker, and the digit confusion."""
    if run.task == "isolated":
        logits, _ = task.predict(net, "test")
        hyps = [[int(k)] for k in logits.argmax(axis=1)]
    else:
        hyps, _ = decode_batch(net, task.eval_frames("test"), beam=run.beam)
    return _scored(run, utterances, hyps)


def _scored(run: SpeechRunConfig, utterances, hyps) -> dict:
    """:func:`_score`'s results for given hypotheses (digit lists, one per utterance)."""
    references = [u.digits for u in utterances]
    speakers = sorted({u.speaker for u in utterances})
    per_speaker = {}
    for s in speakers:
        index = [i for i, u in enumerate(utterances) if u.speaker == s]
        per_speaker[s] = score([references[i] for i in index], [hyps[i] for i in index])
    matrix = digit_confusion(references, hyps)
    overall = score(references, hyps)
    out = {"split": "test", "data_split": run.split, "task": run.task, **overall,
           "per_speaker": {s: {k: v for k, v in m.items() if k in ("der", "ser", "digits")}
                           for s, m in per_speaker.items()},
           "digit_confusion": matrix.tolist()}  # not "confusion": the shared classifier section would show it again
    if run.task == "isolated":
        out["accuracy"] = 1.0 - overall["ser"]
    return out


def ensemble_hypotheses(members, utterances, task: str, *, beam: int = 1) -> list[list[int]]:
    """Digits of each utterance decoded by several speech models together; ``members``: ``(model, spec)`` pairs
    (:func:`load_speech_model`), each reading frames made with its own features.

    * isolated: the digit with the highest mean of the members' class probabilities;
    * connected: each member decodes alone (best path, or prefix beam search with ``beam``), and of those
      candidate digit strings the one with the highest product of the members' CTC probabilities wins
      (:func:`rnnlab.models.ctc.combine`; averaging CTC posteriors frame by frame would not work: the
      members' label spikes fall on different frames).
    """
    if task == "isolated":
        return [[int(_class_probabilities(members, u.samples).argmax())] for u in utterances]
    decoded = [decode_batch(model, [features(u.samples, spec["features"]) for u in utterances], beam=beam)
               for model, spec in members]
    return [[label - 1 for label in _best_of(decoded, i)] for i in range(len(utterances))]


def _figures(run_dir: Path, net, run: SpeechRunConfig, results: dict, utterances, feature_config) -> None:
    names = DIGITS + ["ins/del"]
    save_png(confusion_figure(np.array(results["digit_confusion"]), names,
                              title=f"test DER {results['der']:.2%}" if run.task == "connected"
                              else f"test accuracy {results['accuracy']:.2%}"), run_dir / "confusion.png")
    if run.task == "connected":
        picks = utterances[:3]
        frames = [features(u.samples, feature_config) for u in picks]
        hyps, posteriors = decode_batch(net, frames)
        save_png(posteriors_figure(frames, posteriors, [u.digits for u in picks], hyps, feature_config.hop_ms / 1000,
                                   net.config.stack), run_dir / "speech_samples.png")


# ----------------------------------------------------------------------------- using a trained run
def load_speech_model(run_dir):
    """``(model, spec)`` of a speech run: the best checkpoint's model (eval mode) and speech.json."""
    ckpt = load_checkpoint(run_dir)
    if "speech.json" not in ckpt.files:
        raise RunDirError(f"{ckpt.directory} holds no speech.json; it is not a speech run")
    spec = json.loads(ckpt.files["speech.json"])
    spec["features"] = FeatureConfig(**spec["features"])
    return ckpt.model.eval(), spec


def _members(run_dir, ensemble=()) -> list[tuple]:
    """``(model, spec)`` of ``run_dir`` and of each ``ensemble`` run, checked to share the task and sample rate."""
    members = [load_speech_model(d) for d in (run_dir, *ensemble)]
    task, rate = members[0][1]["task"], members[0][1]["features"].rate
    for other, (_, spec) in zip(ensemble, members[1:]):
        if (spec["task"], spec["features"].rate) != (task, rate):
            raise ConfigError(f"{other}: task {spec['task']!r} at {spec['features'].rate} Hz; an ensemble with "
                              f"{run_dir} needs task {task!r} at {rate} Hz")
    return members


def _class_probabilities(members, samples) -> torch.Tensor:
    """The mean of isolated-digit models' class probabilities ``(10,)`` for one waveform (each its own features)."""
    probs = torch.zeros(len(DIGITS))
    with torch.no_grad():
        for model, spec in members:
            x = torch.from_numpy(stacked(features(samples, spec["features"]), spec["stack"])).unsqueeze(0)
            probs += torch.softmax(model(x, torch.tensor([x.shape[1]])), dim=-1)[0] / len(members)
    return probs


def _best_of(decoded, i: int) -> list[int]:
    """CTC labels of utterance ``i`` chosen from the members' decodings ``[(hyps, posteriors), ...]`` (digits as in
    :func:`~rnnlab.tasks.speech.decode_batch`) by :func:`~rnnlab.models.ctc.combine`."""
    candidates = list(dict.fromkeys(tuple(d + 1 for d in hyps[i]) for hyps, _ in decoded))  # in member order
    if len(candidates) == 1:  # the members agree (or there is one): nothing to weigh
        return list(candidates[0])
    return combine([posteriors[i] for _, posteriors in decoded], candidates)[0]


def transcribe(run_dir, paths, *, beam: int = 1, ensemble=()) -> list[dict]:
    """Digits, per-digit confidence and timing of each audio file (all files are read and checked first);
    with ``ensemble`` (other speech runs of the same task), the runs decode together as in
    :func:`ensemble_hypotheses`, and a digit's confidence is the members' mean.

    The real-time factor is processing time (features, network and decoding of every member; reading the
    file excluded) over audio duration, measured on the wall clock of this process.
    """
    members = _members(run_dir, ensemble)
    task, rate = members[0][1]["task"], members[0][1]["features"].rate
    audios = [read_audio(p, rate) for p in paths]
    results = []
    for audio in audios:
        started, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            if task == "isolated":
                probs = _class_probabilities(members, audio.samples)
                digits, confidences = [int(probs.argmax())], [float(probs.max())]
            else:
                decoded = [decode_batch(model, [features(audio.samples, spec["features"])], beam=beam)
                           for model, spec in members]
                labels = _best_of(decoded, 0)
                digits = [label - 1 for label in labels]
                confidences = np.mean([label_confidences(posteriors[0], labels)[0] for _, posteriors in decoded],
                                      axis=0).tolist() if labels else []
        seconds = time.perf_counter() - started
        results.append({"path": audio.path, "digits": digits, "confidences": confidences, "duration": audio.duration,
                        "seconds": seconds, "cpu_seconds": time.process_time() - cpu, "notes": audio.notes()})
    return results


def evaluate_speech(run_dir, *, split: str = "test", beam: int | None = None, data: str | None = None,
                    ensemble=()) -> dict:
    """Score a run on its own ``split`` ("valid" or "test") of ``data`` (default: the run's data); with
    ``ensemble`` (other run directories of the same task and split), the runs decoded together
    (:func:`ensemble_hypotheses`), recorded in ``results["ensemble"]``."""
    info = read_run(run_dir, kind="speech")
    cfg = info["config"]
    run = SpeechRunConfig(**{**cfg["run"], **({"data": data} if data else {}), **({"beam": beam} if beam else {})})
    if split not in ("valid", "test"):
        raise ConfigError(f"--split must be valid or test for a speech run; got {split!r}")
    for other in ensemble:
        theirs = read_run(other, kind="speech")["config"]["run"]
        if (theirs["task"], theirs["split"]) != (run.task, run.split):
            raise ConfigError(f"{other}: task {theirs['task']!r}, split {theirs['split']!r}; an ensemble with "
                              f"{run_dir} needs task {run.task!r} on split {run.split!r}")
    connected = ConnectedConfig(**cfg["connected"])
    members = _members(run_dir, ensemble)
    model, spec = members[0]
    splits = split_fsdd(load_fsdd(run.data), run.split)
    utterances = _eval_sets(splits, run, connected)[split]
    fc = spec["features"]
    if ensemble:
        results = _scored(run, utterances, ensemble_hypotheses(members, utterances, run.task, beam=run.beam))
        results["ensemble"] = [str(run_dir), *map(str, ensemble)]
    elif run.task == "isolated":
        task = ClassifyTask({"test": _sequence_set(utterances, fc, spec["stack"])}, np.zeros(model.config.n_features),
                            np.ones(model.config.n_features), batch_size=256)
        results = _score(model, run, task, utterances)
    else:
        task = SpeechTask(splits["train"], {"test": utterances}, fc, connected, AugmentConfig())
        results = _score(model, run, task, utterances)
    results["split"] = split
    return results
