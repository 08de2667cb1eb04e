"""A plain ``torch.nn.Transformer`` translator beside rnnlab's RNN, at about its parameter count and CPU time.

Written from the published description (Vaswani et al. 2017, "Attention is all you need"), scaled down
for 10k sentence pairs: an encoder–decoder ``torch.nn.Transformer`` (post-norm as in the paper, ReLU
feed-forward), token embeddings scaled by sqrt(d_model) plus fixed sinusoidal positions, the decoder's
embedding tied to the output layer (section 3.4), a causal mask on the decoder and padding masks on
both sides, Adam (beta2 0.98, eps 1e-9) with linear warm-up then inverse-square-root decay (section
5.3, with a shorter warm-up and a lower peak than the paper's for this small data), label smoothing
0.1 (section 5.4), dropout (0.3 by default: 0.1 as in the paper over-fits 10k pairs). Greedy decoding.

Everything around the model is rnnlab's, so the numbers compare: the same data, normalisation and
split by source sentence (:func:`rnnlab.data.translation.load_translation_data`), the same word
vocabularies (every training word; ``--tokens bpe`` for subwords), the same maximum output length
(1.5 x source + 5), and the same scoring (sacreBLEU against all references, BLEU by source length).
Training stops at a CPU-time budget (process time, one thread) keeping the weights with the best
validation BLEU, evaluated after every epoch, as rnnlab's trainer does.

    python benchmarks/translate_transformer.py --cpu-minutes 10 --out runs/bench-translate/transformer.json
    python benchmarks/translate_transformer.py --preset all --max-tokens 20 --cpu-minutes 5 --out ...
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID, TranslationDataConfig, load_translation_data
from rnnlab.tasks.translate import bleu_chrf, collate

BUCKETS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, 15), (16, 20), (21, 10_000))  # as rnnlab.runs.translate


class PositionalEncoding(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (section 3.5)."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe)

    def forward(self, x):  # (B, T, d)
        return x + self.pe[: x.size(1)]


class TransformerTranslator(nn.Module):
    def __init__(self, source_vocab: int, target_vocab: int, d_model: int = 256, heads: int = 4,
                 encoder_layers: int = 2, decoder_layers: int = 2, ff: int = 512, dropout: float = 0.3):
        super().__init__()
        self.d_model = d_model
        self.source_embedding = nn.Embedding(source_vocab, d_model, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocab, d_model, padding_idx=PAD_ID)
        for e in (self.source_embedding, self.target_embedding):
            nn.init.normal_(e.weight, std=d_model ** -0.5)
            with torch.no_grad():
                e.weight[PAD_ID].zero_()
        self.positions = PositionalEncoding(d_model)
        self.dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(d_model, heads, encoder_layers, decoder_layers, ff, dropout,
                                          batch_first=True)
        self.output_bias = nn.Parameter(torch.zeros(target_vocab))  # weight tied to target_embedding

    def _embed(self, embedding, ids):
        return self.dropout(self.positions(embedding(ids) * math.sqrt(self.d_model)))

    def encode(self, source):
        mask = source == PAD_ID
        return self.transformer.encoder(self._embed(self.source_embedding, source), src_key_padding_mask=mask), mask

    def decode(self, memory, memory_mask, target_in):
        causal = nn.Transformer.generate_square_subsequent_mask(target_in.size(1), dtype=torch.bool)
        out = self.transformer.decoder(self._embed(self.target_embedding, target_in), memory, tgt_mask=causal,
                                       tgt_is_causal=True, tgt_key_padding_mask=target_in == PAD_ID,
                                       memory_key_padding_mask=memory_mask)
        return F.linear(out, self.target_embedding.weight, self.output_bias)

    def forward(self, source, target_in):
        memory, mask = self.encode(source)
        return self.decode(memory, mask, target_in)


@torch.no_grad()
def greedy(model, groups, source_vocab, target_vocab, batch_size=128, max_len_a=1.5, max_len_b=5):
    """Best-first-token decoding of every source in ``groups``; texts in the order of ``groups``."""
    model.eval()
    order = sorted(range(len(groups)), key=lambda i: len(groups[i][0]))
    texts = [""] * len(groups)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids = [source_vocab.encode(groups[i][0]) for i in chunk]
        source = collate([(s, []) for s in ids])[0]
        memory, mask = model.encode(source)
        steps = int(max_len_a * max(len(s) for s in ids) + max_len_b)
        limit = torch.tensor([int(max_len_a * len(s) + max_len_b) for s in ids])
        out = torch.full((len(chunk), 1), BOS_ID, dtype=torch.long)
        done = torch.zeros(len(chunk), dtype=torch.bool)
        for t in range(steps):
            logits = model.decode(memory, mask, out)[:, -1]
            logits[:, PAD_ID] = logits[:, BOS_ID] = -math.inf
            token = logits.argmax(-1)
            token = torch.where(done | (t >= limit), torch.full_like(token, EOS_ID), token)
            out = torch.cat([out, token[:, None]], 1)
            done |= token == EOS_ID
            if done.all():
                break
        for i, row in zip(chunk, out[:, 1:].tolist()):
            texts[i] = " ".join(target_vocab.decode(row))
    model.train()
    return texts


def score(texts, groups):
    return bleu_chrf(texts, [[" ".join(r) for r in refs] for _, refs in groups])


def buckets(texts, groups):
    rows = []
    for low, high in BUCKETS:
        chosen = [i for i, (s, _) in enumerate(groups) if low <= len(s) <= high]
        if chosen:
            s = score([texts[i] for i in chosen], [groups[i] for i in chosen])
            rows.append({"low": low, "high": high, "sentences": len(chosen), "bleu": s["bleu"], "chrf": s["chrf"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/eng-fra/fra.txt")
    parser.add_argument("--preset", default="tutorial", choices=("tutorial", "all"))
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--tokens", default="word", choices=("word", "bpe"))
    parser.add_argument("--bpe-vocab", type=int, default=4000)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2, help="encoder layers and decoder layers")
    parser.add_argument("--ff", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, reached after --warmup steps")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--cpu-minutes", type=float, default=10.0)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5, help="epochs without a better validation BLEU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="result JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data = load_translation_data(TranslationDataConfig(data=args.data, preset=args.preset, max_tokens=args.max_tokens,
                                                       min_count=1, tokens=args.tokens, bpe_vocab=args.bpe_vocab))
    sv, tv = data.source_vocab, data.target_vocab
    pairs = [(sv.encode(s), tv.encode(t)) for s, t in data.splits["train"]]
    model = TransformerTranslator(len(sv), len(tv), args.d_model, args.heads, args.layers, args.layers, args.ff,
                                  args.dropout)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{parameters:,} parameters; {len(pairs):,} training pairs", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / args.warmup, math.sqrt(args.warmup / (step + 1))))
    valid, test = data.references("valid"), data.references("test")
    rng = np.random.default_rng(args.seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    best, history, steps, bad = (-1.0, None), [], 0, 0
    for epoch in range(args.max_epochs):
        order = rng.permutation(len(pairs))
        pool = 32 * args.batch_size  # length-sorted pools, as rnnlab's task (less padding)
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(pairs[i][0]))
            batches += [chunk[i:i + args.batch_size] for i in range(0, len(chunk), args.batch_size)]
        for index in rng.permutation(len(batches)):
            source, _, target_in, target_out = collate([pairs[i] for i in batches[index]])
            logits = model(source, target_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_out.reshape(-1), ignore_index=PAD_ID,
                                   label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            steps += 1
            if time.process_time() - cpu0 >= args.cpu_minutes * 60:
                break
        bleu = score(greedy(model, valid, sv, tv), valid)["bleu"]
        history.append({"epoch": epoch + 1, "steps": steps, "cpu_s": time.process_time() - cpu0,
                        "wall_s": time.perf_counter() - wall0, "valid_bleu": bleu, "loss": float(loss.detach())})
        print(json.dumps(history[-1]), flush=True)
        if bleu > best[0]:
            best, bad = (bleu, {k: v.clone() for k, v in model.state_dict().items()}), 0
        else:
            bad += 1
        if time.process_time() - cpu0 >= args.cpu_minutes * 60 or bad > args.patience:
            break
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    model.load_state_dict(best[1])
    texts = greedy(model, test, sv, tv)
    scores = score(texts, test)
    scores["bleu_first_reference"] = bleu_chrf(texts, [[" ".join(refs[0])] for _, refs in test])["bleu"]
    result = {"model": f"torch.nn.Transformer d{args.d_model} h{args.heads} {args.layers}+{args.layers} layers "
                       f"ff{args.ff}", "args": vars(args), "train_cpu_s": cpu_s, "train_wall_s": wall_s,
              "epochs": len(history), "steps": steps, "best_valid_bleu": best[0], "parameters": parameters,
              "data_stats": data.stats, "test_sources": len(test), "test_references": sum(len(r) for _, r in test),
              "load_average": os.getloadavg(),
              **{k: scores[k] for k in ("bleu", "chrf", "bleu_signature", "chrf_signature", "bleu_first_reference")},
              "buckets": buckets(texts, test), "translations": texts, "history": history}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"test BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f} after {cpu_s:.0f} CPU-s ({len(history)} epochs, "
          f"{steps} steps)")


if __name__ == "__main__":
    main()
