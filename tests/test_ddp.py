"""Data-parallel training: 2 CPU processes (gloo) stay in step and match one process on the same global batch."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.distributed
from safetensors.torch import load_file, save_file

from distributed_checks import needs_gloo, run_ranks
from rnnlab.data.tokenizer import CharTokenizer
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.tasks.lm import LanguageModelTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

TEXT = "the clouds are in the sky; the sea is in the bay. " * 8
STEPS = 6


def _train(out_dir: str, tag: str) -> None:
    """Train STEPS SGD steps on a global batch of 4 streams; save parameters and the logged losses."""
    torch.set_num_threads(1)
    tok = CharTokenizer.fit([TEXT])
    ids = np.asarray(tok.encode(TEXT))
    seed_everything(0)
    model = LanguageModel(LanguageModelConfig(tok.vocab_size, embed_size=8, hidden_size=16, num_layers=2))
    task = LanguageModelTask({"train": ids, "valid": ids[:100]}, tok, batch_size=4, bptt=8)
    losses = []
    trainer = Trainer(model, task, TrainConfig(optimizer="sgd", lr=0.5, clip=1.0, max_steps=STEPS, progress=False),
                      callbacks=[lambda t, e, i: losses.append(i["loss"]) if e == "step" else None])
    trainer.fit()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, f"{tag}.safetensors"))
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as handle:
        json.dump(losses, handle)


def _train_rank(rank: int, out_dir: str) -> None:
    _train(out_dir, f"rank{rank}")


@needs_gloo
def test_two_processes_train_in_step_and_match_one_process(tmp_path):
    run_ranks(_train_rank, str(tmp_path))
    _train(str(tmp_path), "single")
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    single = load_file(str(tmp_path / "single.safetensors"))
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"ranks diverged in {key}"
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-4, atol=1e-5)
    seed_everything(0)
    initial = LanguageModel(LanguageModelConfig(CharTokenizer.fit([TEXT]).vocab_size, embed_size=8, hidden_size=16,
                                                num_layers=2)).state_dict()
    assert all(not torch.equal(single[key], initial[key]) for key in single)  # every tensor was trained
    ddp_losses = json.loads((tmp_path / "rank0.json").read_text())
    single_losses = json.loads((tmp_path / "single.json").read_text())
    assert len(ddp_losses) == STEPS
    np.testing.assert_allclose(ddp_losses, single_losses, rtol=1e-5)


def _train_into(out_dir: str, run: str, max_steps: int, resume: bool) -> None:
    """SGD on a global batch of 4 streams with a run directory (checkpoints every 2 steps)."""
    torch.set_num_threads(1)
    tok = CharTokenizer.fit([TEXT])
    ids = np.asarray(tok.encode(TEXT))
    seed_everything(0)
    model = LanguageModel(LanguageModelConfig(tok.vocab_size, embed_size=8, hidden_size=16, num_layers=2,
                                              dropout_hidden=0.3))  # dropout: the per-rank RNG matters
    task = LanguageModelTask({"train": ids, "valid": ids[:100]}, tok, batch_size=4, bptt=8)
    config = TrainConfig(optimizer="sgd", lr=0.5, clip=1.0, max_steps=max_steps, eval_every=2, progress=False,
                         restore_best=False)
    Trainer(model, task, config, run_dir=os.path.join(out_dir, run)).fit(resume=resume)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, f"{run}.safetensors"))


def _resume_rank(rank: int, out_dir: str) -> None:
    _train_into(out_dir, "straight", 2 * STEPS, resume=False)
    _train_into(out_dir, "stopped", STEPS, resume=False)  # "killed" after its checkpoint at STEPS
    _train_into(out_dir, "stopped", 2 * STEPS, resume=True)


@needs_gloo
def test_two_process_resume_is_exact(tmp_path):
    """Every rank's carried state and RNG are saved, so stop-and-resume equals one uninterrupted run."""
    run_ranks(_resume_rank, str(tmp_path))
    straight = load_file(str(tmp_path / "straight.safetensors"))
    resumed = load_file(str(tmp_path / "stopped.safetensors"))
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
