"""Translation under DDP: 2 CPU processes (gloo) on shares of each batch match one process on the whole batch."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.distributed
from safetensors.torch import load_file, save_file

from distributed_checks import needs_gloo, run_ranks
from rnnlab.data.translation import TranslationDataConfig, load_translation_data
from rnnlab.models.translator import Translator, TranslatorConfig
from rnnlab.tasks.translate import TranslationTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

STEPS = 5
LINES = [f"{en} {a}.\t{fr} {b}{' !' if i % 3 else '.'}" for i, (en, fr) in enumerate(
    [("I am", "Je suis"), ("He is", "Il est"), ("We are", "Nous sommes"), ("They are", "Ils sont")] * 2)
    for a, b in [("happy", "heureux"), ("tired", "très fatigué"), ("ready", "prêt"), ("here", "ici"),
                 ("late", "en retard"), ("sad", "triste")]]


def _train(data_path: str, out_dir: str, tag: str) -> None:
    """STEPS SGD steps on global batches of 7 pairs (shares of 4 and 3 under two processes)."""
    torch.set_num_threads(1)
    data = load_translation_data(TranslationDataConfig(data=data_path, tokens="bpe", bpe_vocab=64))
    seed_everything(0)
    model = Translator(TranslatorConfig(len(data.source_vocab), len(data.target_vocab), embed=8, hidden=16,
                                        dropout=0.0))
    task = TranslationTask(data, batch_size=7, seed=0, label_smoothing=0.1)
    losses = []
    trainer = Trainer(model, task, TrainConfig(optimizer="sgd", lr=0.5, clip=1.0, max_steps=STEPS, progress=False),
                      callbacks=[lambda t, e, i: losses.append(i["loss"]) if e == "step" else None])
    trainer.fit()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, f"{tag}.safetensors"))
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as handle:
        json.dump(losses, handle)


def _train_rank(rank: int, data_path: str, out_dir: str) -> None:
    _train(data_path, out_dir, f"rank{rank}")


@needs_gloo
def test_two_processes_translate_in_step_and_match_one_process(tmp_path):
    data_path = tmp_path / "fra.txt"
    data_path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    run_ranks(_train_rank, str(data_path), str(tmp_path))
    _train(str(data_path), str(tmp_path), "single")
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    single = load_file(str(tmp_path / "single.safetensors"))
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"ranks diverged in {key}"
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-4, atol=1e-5)
    ddp_losses = json.loads((tmp_path / "rank0.json").read_text())
    single_losses = json.loads((tmp_path / "single.json").read_text())
    assert len(ddp_losses) == STEPS
    np.testing.assert_allclose(ddp_losses, single_losses, rtol=1e-5)
