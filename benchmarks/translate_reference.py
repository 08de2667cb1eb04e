"""The reference rnnlab's translator must beat: the PyTorch seq2seq tutorial's model, in plain PyTorch.

Written from the tutorial's published description ("NLP From Scratch: Translation with a Sequence to
Sequence Network and Attention", batched version): a GRU encoder over embeddings (dropout 0.1), a
GRU decoder whose input is ``[embedding ; context]`` with Bahdanau attention ``Va tanh(Wa q + Ua k)``
queried by the previous decoder state, a linear output; sentences padded with token 0 (= SOS) to
MAX_LENGTH with no masking, the NLL loss over all MAX_LENGTH positions, full teacher forcing, Adam
lr 1e-3, batch 32, greedy decoding for MAX_LENGTH steps. Only two things differ, both so that the
comparison is fair: the data are rnnlab's (same normalisation, same split by source sentence, unknown
test words mapped to an UNK id the tutorial lacks), and training stops at a CPU-time budget keeping
the weights with the best validation BLEU (evaluated after each epoch), as rnnlab's trainer does.

    python benchmarks/translate_reference.py --cpu-minutes 10 --out runs/bench-translate/reference.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.data.translation import TranslationDataConfig, load_translation_data
from rnnlab.tasks.translate import bleu_chrf

SOS, EOS, UNK = 0, 1, 2


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, x):
        return self.gru(self.dropout(self.embedding(x)))


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.Wa, self.Ua, self.Va = nn.Linear(hidden_size, hidden_size), nn.Linear(hidden_size, hidden_size), \
            nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys))).squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, max_length, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)
        self.max_length = max_length

    def forward(self, encoder_outputs, encoder_hidden, target=None):
        batch = encoder_outputs.size(0)
        decoder_input = torch.full((batch, 1), SOS, dtype=torch.long)
        hidden, outputs = encoder_hidden, []
        for i in range(self.max_length):
            output, hidden = self.step(decoder_input, hidden, encoder_outputs)
            outputs.append(output)
            decoder_input = target[:, i].unsqueeze(1) if target is not None else output.argmax(-1).detach()
        return F.log_softmax(torch.cat(outputs, dim=1), dim=-1)

    def step(self, x, hidden, encoder_outputs):
        embedded = self.dropout(self.embedding(x))
        context, _ = self.attention(hidden.permute(1, 0, 2), encoder_outputs)
        output, hidden = self.gru(torch.cat((embedded, context), dim=2), hidden)
        return self.out(output), hidden


def build_index(sentences):
    words = sorted({w for s in sentences for w in s})
    return {w: i + 3 for i, w in enumerate(words)}


def to_ids(tokens, index, length):
    ids = [index.get(w, UNK) for w in tokens][:length - 1] + [EOS]
    return ids + [SOS] * (length - len(ids))  # the tutorial pads with zeros (= SOS)


def translate(encoder, decoder, sources, index, words, length, batch=256):
    encoder.eval(), decoder.eval()
    texts = []
    with torch.no_grad():
        for start in range(0, len(sources), batch):
            x = torch.tensor([to_ids(s, index, length) for s in sources[start:start + batch]])
            ids = decoder(*encoder(x)).argmax(-1).tolist()
            for row in ids:
                out = []
                for i in row:
                    if i == EOS:
                        break
                    out.append(words.get(i, "<unk>"))
                texts.append(" ".join(out))
    encoder.train(), decoder.train()
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/eng-fra/fra.txt")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--cpu-minutes", type=float, default=10.0)
    parser.add_argument("--max-epochs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="result JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data = load_translation_data(TranslationDataConfig(data=args.data, min_count=1))
    train = data.splits["train"]
    length = 1 + max(len(t) for p in data.splits.values() for s, t in p for t in (s, t))  # + EOS
    src_index, tgt_index = build_index(s for s, _ in train), build_index(t for _, t in train)
    tgt_words = {i: w for w, i in tgt_index.items()}
    x = torch.tensor([to_ids(s, src_index, length) for s, _ in train])
    y = torch.tensor([to_ids(t, tgt_index, length) for _, t in train])
    encoder = EncoderRNN(len(src_index) + 3, args.hidden)
    decoder = AttnDecoderRNN(args.hidden, len(tgt_index) + 3, length)
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (encoder, decoder)]
    valid, test = data.references("valid"), data.references("test")
    rng = np.random.default_rng(args.seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    best, history = (-1.0, None), []
    for epoch in range(args.max_epochs):
        for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // 32)):
            outputs = decoder(*encoder(x[batch]), target=y[batch])
            loss = F.nll_loss(outputs.view(-1, outputs.size(-1)), y[batch].view(-1))
            for o in optimizers:
                o.zero_grad()
            loss.backward()
            for o in optimizers:
                o.step()
        texts = translate(encoder, decoder, [s for s, _ in valid], src_index, tgt_words, length)
        score = bleu_chrf(texts, [[" ".join(r) for r in refs] for _, refs in valid])["bleu"]
        history.append({"epoch": epoch + 1, "cpu_s": time.process_time() - cpu0, "valid_bleu": score,
                        "loss": float(loss.detach())})
        print(json.dumps(history[-1]), flush=True)
        if score > best[0]:
            best = (score, [{k: v.clone() for k, v in m.state_dict().items()} for m in (encoder, decoder)])
        if time.process_time() - cpu0 >= args.cpu_minutes * 60:
            break
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    for module, state in zip((encoder, decoder), best[1]):
        module.load_state_dict(state)
    texts = translate(encoder, decoder, [s for s, _ in test], src_index, tgt_words, length)
    scores = bleu_chrf(texts, [[" ".join(r) for r in refs] for _, refs in test])
    scores["bleu_first_reference"] = bleu_chrf(texts, [[" ".join(refs[0])] for _, refs in test])["bleu"]
    result = {"model": f"tutorial GRU {args.hidden} + Bahdanau (plain PyTorch)", "train_cpu_s": cpu_s,
              "train_wall_s": wall_s, "epochs": len(history), "best_valid_bleu": best[0],
              "parameters": sum(p.numel() for m in (encoder, decoder) for p in m.parameters()),
              "test_sources": len(test), "test_references": sum(len(r) for _, r in test),
              "max_length": length, "load_average": os.getloadavg(),
              **{k: scores[k] for k in ("bleu", "chrf", "bleu_signature", "chrf_signature", "bleu_first_reference")},
              "translations": texts, "history": history}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"test BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f} after {cpu_s:.0f} CPU-s ({len(history)} epochs)")


if __name__ == "__main__":
    main()
