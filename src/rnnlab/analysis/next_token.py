"""What a language model expects next: the most likely next tokens, and (for a character model) words.

For a character model the next *word* is a sequence of characters ended by a non-word character,
so its probability is a product over steps:

    p(w_1..w_n | prompt) = Π_k p(w_k | prompt, w_<k) · p(a character that is not a letter/digit | prompt, w)

:func:`next_words` finds the most likely words by beam search over characters (width ``beam``):
each probability it reports is exact for that word; a likely word that fell out of the beam is
missed, so the list is a lower bound on what the model would rank, not a sample.
"""
from __future__ import annotations

import math

import torch


def _word_char(token: str) -> bool:
    return len(token) == 1 and (token.isalnum() or token in "_'")


@torch.no_grad()
def next_tokens(model, prompt_ids: list[int], tokenizer, *, k: int = 8) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens after ``prompt_ids``: ``[(decoded token, p), ...]``, best first."""
    probs = model.next_distribution(prompt_ids)  # (V,)
    top = probs.topk(min(k, probs.numel()))
    return [(tokenizer.decode([int(i)]), float(p)) for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def next_words(model, prompt_ids: list[int], tokenizer, *, k: int = 5, beam: int = 8,
               max_chars: int = 16) -> list[tuple[str, float]]:
    """The ``k`` most likely next words of a character model (see the module docstring)."""
    if tokenizer.level != "char":
        return next_tokens(model, prompt_ids, tokenizer, k=k)
    tokens = tokenizer.tokens
    word_ids = torch.tensor([i for i, t in enumerate(tokens) if _word_char(t)])
    end_mask = torch.ones(len(tokens), dtype=torch.bool)
    end_mask[word_ids] = False
    was_training = model.training
    model.eval()
    try:
        logits, state = model(torch.tensor([prompt_ids], dtype=torch.long))
        beams = [("", 0.0, logits[0, -1], state)]  # (word so far, log p, next-token logits (V,), state)
        done: list[tuple[str, float]] = []
        for length in range(max_chars + 1):  # beams hold words of `length` letters
            expansions = []
            for word, logp, next_logits, state in beams:
                logprobs = next_logits.log_softmax(-1)
                if word:  # the word ends here if a non-word character comes next
                    done.append((word, logp + float(torch.logsumexp(logprobs[end_mask], 0))))
                else:  # the next token is not a word character: it is the "word" (punctuation, newline)
                    for i in logprobs.masked_fill(~end_mask, -math.inf).topk(min(k, int(end_mask.sum()))).indices:
                        done.append((tokens[int(i)], logp + float(logprobs[i])))
                if length == max_chars:
                    continue
                for i in logprobs[word_ids].topk(min(beam, len(word_ids))).indices:
                    token = int(word_ids[i])
                    expansions.append((logp + float(logprobs[token]), word + tokens[token], token, state))
            expansions.sort(key=lambda e: -e[0])
            beams = []
            for logp, word, token, state in expansions[:beam]:
                step_logits, step_state = model(torch.tensor([[token]]), state)
                beams.append((word, logp, step_logits[0, -1], step_state))
            finished = sorted((p for _, p in done), reverse=True)
            if not beams or (len(finished) >= k and max(b[1] for b in beams) < finished[k - 1]):
                break  # longer words only get less likely: no open beam can enter the top k
    finally:
        model.train(was_training)
    best: dict[str, float] = {}
    for word, logp in done:
        best[word] = max(best.get(word, -math.inf), logp)
    ranked = sorted(best.items(), key=lambda item: -item[1])[:k]
    return [(word, math.exp(logp)) for word, logp in ranked]
