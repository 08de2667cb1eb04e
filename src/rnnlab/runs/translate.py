"""Translation runs end to end: what ``rnnlab train translate``, ``rnnlab translate`` and ``rnnlab evaluate`` call.

Run directory (besides what every run has, :mod:`rnnlab.rundir`)::

    RUN/run.json                  config {"data", "model", "train"}; "data_stats"; "results" per split
    RUN/source_vocab.json         vocabularies: words, or with ``--tokens bpe`` the whole ``tokenizers``
    RUN/target_vocab.json         BPE tokenizer (also inside every checkpoint; translate/evaluate/report use them)
    RUN/translations-<split>.json what ``evaluate`` decoded: scores for greedy and beam, BLEU by source
                                  length, and sample sentences with their attention (read by the report)

Everything is validated (options, data file, filters) before the directory is created, so a bad
command leaves nothing behind.

Data parallel under ``torchrun`` as for language models (:mod:`rnnlab.distributed`): rank 0 fits the
vocabularies and writes the run directory, the other ranks read them; each rank trains on its share
of every batch (:class:`~rnnlab.tasks.translate.TranslationTask`) and DDP averages the gradients::

    torchrun --nproc_per_node 2 -m rnnlab.cli train translate --data ../shared/data/eng-fra/fra.txt --out RUN
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from rnnlab import distributed as dist
from rnnlab.checkpoint import load_checkpoint
from rnnlab.config import check_config, option
from rnnlab.data.translation import TranslationDataConfig, load_translation_data, normalize, vocabulary_from_json
from rnnlab.errors import ConfigError, DataError, RunDirError
from rnnlab.io import atomic_write_json, atomic_write_text
from rnnlab.models.translation_search import TranslatorEnsemble, beam_search, greedy_search
from rnnlab.models.translator import Translator, TranslatorConfig
from rnnlab.rundir import check_run_dir_free, prepare_run_dir, read_run, update_run_json
from rnnlab.tasks.translate import TranslationTask, bleu_chrf, score_groups
from rnnlab.train import TrainConfig, Trainer, seed_everything

KIND = "translate"
LENGTH_BUCKETS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, 15), (16, 20), (21, 10_000))  # source tokens, inclusive
SAMPLES = 12  # sentences with attention kept for the report


@dataclass
class TranslateTrainConfig:
    batch_size: int = option(64, "sentence pairs per batch", min=1)
    lr: float = option(2e-3, "Adam learning rate", min=0.0, min_open=True)
    clip: float = option(1.0, "maximum gradient norm (0: no clipping)", min=0.0)
    label_smoothing: float = option(0.1, "label smoothing of the training loss", min=0.0, max=1.0, max_open=True)
    epochs: int = option(40, "maximum epochs", min=1)
    max_steps: int | None = option(None, "stop after this many steps", min=1)
    max_cpu_minutes: float | None = option(10.0, "stop after this much CPU time of this process (minutes)",
                                           min=0.0, min_open=True)
    patience: int | None = option(5, "early stopping: epochs without a better validation score", min=0)
    select: str = option("bleu", "validation score for early stopping and the best weights", choices=("bleu", "loss"))
    schedule: str = option("plateau", "learning-rate schedule: plateau halves it after a flat epoch",
                           choices=("none", "plateau"))
    lr_patience: int = option(2, "plateau schedule: validations without a better score before the rate is halved",
                              min=0)
    eval_every: int | None = option(None, "steps between validations (default: every epoch)", min=1)
    sampling: float = option(0.0, "scheduled sampling: chance of feeding the model's own previous word instead of "
                                  "the reference's", min=0.0, max=1.0)


@dataclass
class SearchConfig:
    beam: int = option(5, "beam size (1 = greedy)", min=1)
    alpha: float = option(1.0, "length normalisation: score = log p / length^alpha", min=0.0)
    max_len_a: float = option(1.5, "maximum output length a * source length + b: a", min=0.0)
    max_len_b: int = option(5, "maximum output length a * source length + b: b", min=0)


def _train_config(t: TranslateTrainConfig, seed: int, progress: bool) -> TrainConfig:
    return TrainConfig(optimizer="adam", lr=t.lr, clip=t.clip or None, schedule=t.schedule, lr_factor=0.5,
                       lr_patience=t.lr_patience, max_epochs=t.epochs, max_steps=t.max_steps,
                       max_cpu_s=None if t.max_cpu_minutes is None else t.max_cpu_minutes * 60,
                       eval_every=t.eval_every, patience=t.patience, seed=seed, progress=progress)


def train_translation(data: TranslationDataConfig, model: TranslatorConfig, train: TranslateTrainConfig, out,
                      *, seed: int = 0, progress: bool = True, resume: bool = False, command: str = "",
                      max_steps: int | None = None) -> dict:
    """Train (or resume) a translator into ``out``; returns the summary and validation/test scores.

    ``model`` may carry placeholder vocabulary sizes: they are set from the data. On ``resume`` the
    stored configs are used and only ``max_steps`` (if given) changes.
    """
    out = Path(out)
    dist.init_from_env()
    if resume:
        info = read_run(out, kind=KIND)
        stored = info["config"]
        data, train = TranslationDataConfig(**stored["data"]), TranslateTrainConfig(**stored["train"])
        model, seed = TranslatorConfig(**stored["model"]), stored["seed"]
        if max_steps is not None:
            train = replace(train, max_steps=max_steps)
        vocabularies = _read_vocabularies(out)
    else:
        for config in (data, model, train):
            check_config(config)
        if dist.is_main():
            check_run_dir_free(out)  # before the slow part
        vocabularies = None
    if dist.is_main() or vocabularies is not None:
        dataset = load_translation_data(data, vocabularies=vocabularies)
    if dist.is_main():
        sized = replace(model, source_vocab=len(dataset.source_vocab), target_vocab=len(dataset.target_vocab))
        config = {"data": asdict(data), "model": asdict(sized), "train": asdict(train), "seed": seed}
        if resume:
            update_run_json(out, config=config)
        else:
            prepare_run_dir(out, kind=KIND, config=config, command=command, data_stats=dataset.stats)
            atomic_write_text(out / "source_vocab.json", dataset.source_vocab.to_json())
            atomic_write_text(out / "target_vocab.json", dataset.target_vocab.to_json())
    dist.barrier()
    if not dist.is_main() and vocabularies is None:  # the other ranks read what rank 0 fitted (BPE included)
        dataset = load_translation_data(data, vocabularies=_read_vocabularies(out))
    model = replace(model, source_vocab=len(dataset.source_vocab), target_vocab=len(dataset.target_vocab))
    seed_everything(seed)
    translator = Translator(model)
    task = TranslationTask(dataset, batch_size=train.batch_size, seed=seed, label_smoothing=train.label_smoothing,
                           select=train.select, sampling=train.sampling)
    trainer = Trainer(translator, task, _train_config(train, seed, progress), out)
    summary = trainer.fit(resume=resume)
    results = {split: trainer.evaluate(split) for split in ("valid",)}
    parameters = sum(p.numel() for p in translator.parameters())
    if dist.is_main():
        update_run_json(out, summary=summary, results=results, parameters=parameters)
    return {"summary": summary, "results": results, "parameters": parameters, "data_stats": dataset.stats}


def _read_vocabularies(run_dir: Path) -> tuple:
    return tuple(vocabulary_from_json((run_dir / f"{side}_vocab.json").read_text(encoding="utf-8"))
                 for side in ("source", "target"))


def load_translator(run_dir, which: str = "best"):
    """``(model, source_vocab, target_vocab, run_info)`` of a translation run (checked to belong together)."""
    run_dir = Path(run_dir)
    info = read_run(run_dir, kind=KIND)
    checkpoint = load_checkpoint(run_dir, which=which)
    missing = [f for f in ("source_vocab.json", "target_vocab.json") if f not in checkpoint.files]
    if missing:
        raise RunDirError(f"checkpoint {checkpoint.directory} lacks {', '.join(missing)}; it is not a translation run")
    source, target = (vocabulary_from_json(checkpoint.files[f"{s}_vocab.json"]) for s in ("source", "target"))
    config = checkpoint.model.config
    if (config.source_vocab, config.target_vocab) != (len(source), len(target)):
        raise RunDirError(f"vocabularies in {checkpoint.directory} ({len(source)}, {len(target)} words) do not fit the "
                          f"model ({config.source_vocab}, {config.target_vocab}); the checkpoint is inconsistent")
    checkpoint.model.eval()
    return checkpoint.model, source, target, info


def load_translators(run_dir, ensemble=()):
    """:func:`load_translator` of ``run_dir``, or with ``ensemble`` (other run directories) a
    :class:`TranslatorEnsemble` of all of them; every member must have the same vocabularies."""
    model, source, target, info = load_translator(run_dir)
    if not ensemble:
        return model, source, target, info
    members = [model]
    for other in ensemble:
        member, other_source, other_target, _ = load_translator(other)
        if other_source.to_json() != source.to_json() or other_target.to_json() != target.to_json():
            raise ConfigError(f"{other} has other vocabularies than {run_dir}; an ensemble needs runs trained on the "
                              f"same data with the same --tokens/--min-count/--bpe-vocab")
        members.append(member)
    return TranslatorEnsemble(members).eval(), source, target, info


def translate_sentences(run_dir, sentences: list[str], search: SearchConfig, *, nbest: int = 1,
                        ensemble=()) -> list[dict]:
    """Translate raw sentences (normalised as in training); each result lists its unknown words.
    ``ensemble``: other run directories whose translators decode together with ``run_dir``'s."""
    check_config(search)
    if not 1 <= nbest <= search.beam:
        raise ConfigError(f"--nbest must be between 1 and --beam ({search.beam}); got {nbest}")
    model, source_vocab, target_vocab, info = load_translators(run_dir, ensemble)
    lowercase = info["config"]["data"].get("lowercase", True)
    results = []
    for sentence in sentences:
        tokens = normalize(sentence, lowercase).split()
        if not tokens:
            raise DataError(f"nothing to translate in {sentence!r}; expected at least one word")
        ids = torch.tensor([source_vocab.encode(tokens)])
        lengths = torch.tensor([len(tokens)])
        if search.beam == 1:
            hypotheses = greedy_search(model, ids, lengths, max_len_a=search.max_len_a, max_len_b=search.max_len_b)
        else:
            hypotheses = beam_search(model, ids, lengths, beam=search.beam, alpha=search.alpha, nbest=nbest,
                                     max_len_a=search.max_len_a, max_len_b=search.max_len_b)[0]
        results.append({"source": " ".join(tokens), "unknown": source_vocab.unknown(tokens),
                        "translations": [{"text": " ".join(target_vocab.decode(h.tokens)), "score": h.score,
                                          "log_prob": h.log_prob} for h in hypotheses]})
    return results


def _bucket_scores(groups, texts) -> list[dict]:
    rows = []
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, (src, _) in enumerate(groups) if low <= len(src) <= high]
        if chosen:
            scores = bleu_chrf([texts[i] for i in chosen], [[" ".join(r) for r in groups[i][1]] for i in chosen])
            rows.append({"low": low, "high": high, "sentences": len(chosen), "bleu": scores["bleu"],
                         "chrf": scores["chrf"]})
    return rows


def evaluate_run(run_dir, split: str = "test", search: SearchConfig | None = None, *, data: str | None = None,
                 encoding_errors: str | None = None, batch_size: int = 64, ensemble=()) -> dict:
    """Greedy and beam BLEU/chrF on ``split`` (all references), by source length; writes translations-<split>.json
    (with ``ensemble``, other runs decoded together with this one: translations-<split>-ensemble<M>.json, and
    the run's own single-model results stay as they are)."""
    search = check_config(search or SearchConfig())
    run_dir = Path(run_dir)
    model, source_vocab, target_vocab, info = load_translators(run_dir, ensemble)
    data_config = TranslationDataConfig(**info["config"]["data"])
    if data is not None:
        data_config = replace(data_config, data=data)
    if encoding_errors is not None:
        data_config = replace(data_config, encoding_errors=encoding_errors)
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"--split must be train, valid or test; got {split!r}")
    dataset = load_translation_data(data_config, vocabularies=(source_vocab, target_vocab))
    groups = dataset.references(split)
    if not groups:
        raise DataError(f"split {split!r} of {data_config.data} is empty")
    common = dict(batch_size=batch_size, max_len_a=search.max_len_a, max_len_b=search.max_len_b)
    decoded = {}
    for name, beam in (("greedy", 1), (f"beam{search.beam}", search.beam)):
        if name in decoded:
            continue
        started, cpu = time.perf_counter(), time.process_time()
        scores = score_groups(model, groups, source_vocab, target_vocab, beam=beam, alpha=search.alpha, **common)
        scores["wall_s"], scores["cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
        decoded[name] = scores
    best = decoded[f"beam{search.beam}"]
    summary = {name: {k: s[k] for k in ("bleu", "chrf", "bleu_signature", "chrf_signature", "wall_s", "cpu_s")}
               for name, s in decoded.items()}
    for name, s in decoded.items():  # the first reference only: comparable with single-reference reports
        summary[name]["bleu_first_reference"] = bleu_chrf(s["texts"], [[" ".join(refs[0])] for _, refs in groups])["bleu"]
    buckets = {name: _bucket_scores(groups, s["texts"]) for name, s in decoded.items()}
    samples = []
    for i in range(min(SAMPLES, len(groups))):
        index = i * max(1, len(groups) // SAMPLES)
        hypothesis = best["hypotheses"][index]
        samples.append({"source": source_vocab.pieces(groups[index][0]), "references": [" ".join(r) for r in groups[index][1]],
                        "greedy": decoded["greedy"]["texts"][index], "beam": best["texts"][index],
                        "target": target_vocab.id_pieces(hypothesis.tokens) + (["<eos>"] if hypothesis.attention is not None
                                  and len(hypothesis.attention) > len(hypothesis.tokens) else []),
                        "attention": None if hypothesis.attention is None else
                        [[round(float(w), 4) for w in row] for row in hypothesis.attention]})
    result = {"split": split, "sources": len(groups), "references": sum(len(r) for _, r in groups),
              "search": asdict(search), "scores": summary, "buckets": buckets, "samples": samples,
              "unknown_source_tokens": sum(len(source_vocab.unknown(s)) for s, _ in groups)}
    scores = {name: {"bleu": s["bleu"], "chrf": s["chrf"]} for name, s in summary.items()}
    results = dict(info.get("results") or {})
    if ensemble:
        result["ensemble"] = [str(run_dir), *map(str, ensemble)]
        atomic_write_json(run_dir / f"translations-{split}-ensemble{len(result['ensemble'])}.json", result)
        results[f"{split}_translation_ensemble{len(result['ensemble'])}"] = {"members": result["ensemble"], **scores}
    else:
        atomic_write_json(run_dir / f"translations-{split}.json", result)
        results[f"{split}_translation"] = scores
    update_run_json(run_dir, results=results)
    return result

