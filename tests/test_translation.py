"""Translation data, attention, decoder and search: each against a reference (hand case, brute force,
sacreBLEU, the other code path in float64)."""
from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from rnnlab.data.translation import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SubwordVocabulary,
    TranslationDataConfig,
    Vocabulary,
    group_references,
    is_tutorial_pair,
    load_translation_data,
    normalize,
    read_pairs,
    split_by_source,
    vocabulary_from_json,
)
from rnnlab.errors import ConfigError, DataError
from rnnlab.models.attention import Attention
from rnnlab.models.translation_search import TranslatorEnsemble, beam_search, greedy_search
from rnnlab.models.translator import Translator, TranslatorConfig
from rnnlab.tasks.translate import bleu_chrf


# ----------------------------------------------------------------------------- data
def test_normalize_keeps_accents_splits_punctuation():
    assert normalize("Je suis pre\u0302t\u00a0!") == "je suis prêt !"       # NFC: e + combining ^ -> ê
    assert normalize("I\u2019m fine, thanks.") == "i'm fine , thanks ."
    assert normalize("Peut-être « oui »...", lowercase=False) == "Peut-être « oui » . . ."


def test_read_pairs_two_or_three_columns_and_bad_lines(tmp_path):
    good = tmp_path / "fra.txt"
    good.write_text("Go.\tVa !\nHi.\tSalut !\tCC-BY 2.0 (France) Attribution\n", encoding="utf-8")
    assert read_pairs(good) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    cases = {"Go.\tVa !\nHi.\n": "line 2: expected 2 or 3 tab-separated columns",
             "Go.\tVa !\n\nHi.\tSalut\n": "line 2: empty line",
             "Go.\tVa !\nHi.\t\n": "line 2: empty French"}
    for text, message in cases.items():
        good.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_pairs(good)
    good.write_bytes(b"Go.\tVa !\nHi.\tSalut \xff!\n")
    with pytest.raises(DataError, match="line 2: byte 0xff"):
        read_pairs(good)
    assert read_pairs(good, errors="replace")[1] == ("Hi.", "Salut \ufffd!")


def test_tutorial_filter_counts_words_like_the_tutorial():
    assert is_tutorial_pair(normalize("I'm fine.").split(), normalize("Je vais bien.").split())
    assert is_tutorial_pair(normalize("He is tall.").split(), normalize("Il est grand.").split())
    assert not is_tutorial_pair(normalize("Tom is tall.").split(), normalize("Tom est grand.").split())
    # "i'm" is two words for the tutorial: 8 words + "." = 9 kept, one more word = 10 dropped
    assert is_tutorial_pair(normalize("I'm a b c d e f.").split(), ["x", "."])
    assert not is_tutorial_pair(normalize("I'm a b c d e f g.").split(), ["x", "."])


def test_split_by_source_never_shares_a_source_and_keeps_all_references():
    pairs = [([f"s{i % 40}"], [f"t{i}"]) for i in range(100)]  # 40 sources, 2-3 references each
    splits = split_by_source(pairs, seed=3)
    seen = {name: {tuple(s) for s, _ in p} for name, p in splits.items()}
    assert not (seen["train"] & seen["valid"]) and not (seen["train"] & seen["test"]) and not (seen["valid"] & seen["test"])
    assert (len(seen["test"]), len(seen["valid"]), len(seen["train"])) == (2, 2, 36)  # floor(0.05 * 40)
    assert sum(len(p) for p in splits.values()) == 100
    assert split_by_source(pairs, seed=3) == splits and split_by_source(pairs, seed=4) != splits
    groups = dict((tuple(s), refs) for s, refs in group_references(pairs))
    assert groups[("s1",)] == [["t1"], ["t41"], ["t81"]]


def test_bpe_vocabulary_round_trip():
    sentences = [normalize(t).split() for t in ("Je suis très fatigué.", "Tu es prêt ?", "Nous sommes très prêts !",
                                                  "Il est fatigué, très fatigué.", "Elles sont prêtes.")] * 3
    vocab = SubwordVocabulary.fit(sentences, vocab_size=40)
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and len(vocab) <= 40
    assert SubwordVocabulary.fit(sentences, vocab_size=40).tokens == vocab.tokens  # deterministic fit
    for words in sentences[:5] + [["prêtes", "très", "fatigués"]]:  # an unseen word is spelt from units
        ids = vocab.encode(words)
        assert len(ids) >= len(words) and UNK_ID not in ids
        assert vocab.decode(ids + [EOS_ID, 7, 8]) == words  # words come back exactly; stops at <eos>
        assert vocab.decode([BOS_ID] + ids + [PAD_ID]) == words
    assert len(vocab.encode(["fatigué"])) == 1 or "@@" in " ".join(vocab.pieces(["fatigué"]))
    again = vocabulary_from_json(vocab.to_json())
    assert isinstance(again, SubwordVocabulary) and again.tokens == vocab.tokens
    assert again.encode(sentences[3]) == vocab.encode(sentences[3])
    assert vocab.unknown(["très", "zèbre"]) == ["zèbre"]  # z and b were never seen
    assert isinstance(vocabulary_from_json(Vocabulary.fit(sentences).to_json()), Vocabulary)


def test_bpe_data_keeps_words_in_the_splits(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("".join(f"I am {w}{i}.\tJe suis {w}{i}.\n" for i in range(10) for w in ("tired", "ready")),
                    encoding="utf-8")
    data = load_translation_data(TranslationDataConfig(data=str(path), tokens="bpe", bpe_vocab=64))
    assert isinstance(data.source_vocab, SubwordVocabulary) and data.stats["source_vocab"] == len(data.source_vocab)
    src, tgt = data.splits["train"][0]
    assert src[:2] == ["i", "am"] and data.target_vocab.decode(data.target_vocab.encode(tgt)) == tgt


def test_vocabulary_frequency_cut_and_round_trip():
    vocab = Vocabulary.fit([["a", "b", "a"], ["a", "c", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"]
    assert vocab.encode(["a", "c"]) == [4, 1] and vocab.unknown(["a", "c"]) == ["c"]
    assert vocab.decode([4, 5, EOS_ID, 4]) == ["a", "b"]
    assert Vocabulary.from_json(vocab.to_json()).tokens == vocab.tokens


def test_source_and_target_must_differ():
    with pytest.raises(ConfigError, match="must differ"):
        TranslationDataConfig(source="fra", target="fra")


def test_reversed_direction_swaps_columns(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("".join(f"I am w{i}.\tJe suis m{i}.\n" for i in range(40)), encoding="utf-8")
    data = load_translation_data(TranslationDataConfig(data=str(path), source="fra", target="eng", min_count=1))
    src, tgt = data.splits["train"][0]
    assert src[:2] == ["je", "suis"] and tgt[:2] == ["i", "am"]


# ----------------------------------------------------------------------------- attention
@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_attention_sums_to_one_and_padding_gets_exactly_zero(kind):
    torch.manual_seed(0)
    attention = Attention(kind, 6, 6).double()
    memory = torch.randn(3, 5, 6, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    query = torch.randn(3, 6, dtype=torch.float64)
    context, weights = attention(query, attention.keys(memory), memory, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, dtype=torch.float64))
    assert (weights[~mask] == 0).all()
    # changing padded memory rows changes nothing
    noisy = memory.clone()
    noisy[~mask] = 1e3
    context2, weights2 = attention(query, attention.keys(noisy), noisy, mask)
    assert torch.equal(weights, weights2) and torch.allclose(context, context2, atol=1e-12, rtol=0)
    # the hand formula
    if kind == "bahdanau":
        e = torch.tanh(memory @ attention.memory_proj.weight.T + attention.memory_proj.bias
                       + (query @ attention.query_proj.weight.T)[:, None]) @ attention.v.weight[0]
    else:
        keys = memory if kind == "dot" else memory @ attention.memory_proj.weight.T
        e = (keys * query[:, None]).sum(-1)
    a = torch.exp(e) * mask / (torch.exp(e) * mask).sum(-1, keepdim=True)
    torch.testing.assert_close(weights, a)
    torch.testing.assert_close(context, (a[..., None] * memory).sum(1))


def test_dot_attention_needs_equal_sizes():
    with pytest.raises(ConfigError, match="dot attention"):
        Attention("dot", 4, 6)


# ----------------------------------------------------------------------------- decoder
def _model(cell="gru", attention="bahdanau", input_feed=True, target_vocab=9, **kw):
    torch.manual_seed(0)
    config = TranslatorConfig(11, target_vocab, cell=cell, embed=6, hidden=8, layers=kw.pop("layers", 2),
                              attention=attention, input_feed=input_feed, dropout=0.0, **kw)
    return Translator(config).double().eval()


def _batch():
    source = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 0, 0, 0], [5, 4, 6, 0, 0]])
    return source, torch.tensor([5, 2, 3])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["none", "dot", "general"])
def test_teacher_forced_steps_equal_the_full_sequence_decoder(cell, attention):
    model = _model(cell, attention, input_feed=False)
    source, lengths = _batch()
    target_in = torch.tensor([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 4], [BOS_ID, 5, 5, 5]])
    full, full_weights = model(source, lengths, target_in)
    steps, step_weights = model(source, lengths, target_in, stepwise=True)
    torch.testing.assert_close(full, steps, rtol=0, atol=1e-12)
    if attention != "none":
        torch.testing.assert_close(full_weights, step_weights, rtol=0, atol=1e-12)


def test_sutskever_reads_the_source_reversed_but_keeps_memory_in_order():
    model = _model(attention="none", bidirectional=False)
    assert model.reverse_source
    source, lengths = _batch()
    memory, _ = model.encode(source, lengths)
    reversed_source = source.clone()
    reversed_source[1, :2] = source[1, :2].flip(0)
    model.reverse_source = False
    plain, _ = model.encode(reversed_source, lengths)
    # reading row 1 reversed = reading its reversal forwards; the memory is flipped back to source order
    torch.testing.assert_close(memory.values[1, :2], plain.values[1, :2].flip(0))


@pytest.mark.parametrize("attention", ["none", "bahdanau", "dot", "general"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_one_equals_greedy(attention, cell):
    model = _model(cell, attention)
    source, lengths = _batch()
    greedy = greedy_search(model, source, lengths, max_len_a=2.0, max_len_b=3)
    beam = beam_search(model, source, lengths, beam=1, alpha=0.0, max_len_a=2.0, max_len_b=3)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    for g, b in zip(greedy, beam):
        assert math.isclose(g.log_prob, b[0].log_prob, rel_tol=1e-9, abs_tol=1e-9)


def _sequence_log_prob(model, source, length, tokens):
    target_in = torch.tensor([[BOS_ID] + tokens[:-1]])
    with torch.no_grad():
        logits, _ = model(source[None], torch.tensor([length]), target_in, stepwise=True)
    log_probs = torch.log_softmax(logits[0].float(), -1)
    return float(sum(log_probs[t, y] for t, y in enumerate(tokens)))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_equals_brute_force_on_a_tiny_vocabulary(alpha):
    model = _model("gru", "bahdanau", target_vocab=6, layers=1)  # tokens 1 (<unk>), 3 (<eos>), 4, 5 can be produced
    source, lengths = _batch()
    free = [1, 4, 5]
    max_len = 3
    for row in range(3):
        outputs = []  # every output the search may give: ... <eos> before max_len, or max_len tokens
        for n in range(max_len):
            outputs += [list(p) + [EOS_ID] for p in itertools.product(free, repeat=n)]
        outputs += [list(p) for p in itertools.product(free, repeat=max_len)]
        scored = sorted(((_sequence_log_prob(model, source[row, :lengths[row]], int(lengths[row]), o), o)
                         for o in outputs), key=lambda x: -x[0] / len(x[1]) ** alpha)
        found = beam_search(model, source[row:row + 1, :lengths[row]], lengths[row:row + 1], beam=len(outputs),
                            alpha=alpha, nbest=5, max_len_a=0.0, max_len_b=max_len)[0]
        for (log_prob, tokens), hypothesis in zip(scored[:5], found):
            assert hypothesis.tokens == [t for t in tokens if t != EOS_ID]
            assert math.isclose(hypothesis.log_prob, log_prob, rel_tol=1e-6, abs_tol=1e-6)
            assert math.isclose(hypothesis.score, log_prob / len(tokens) ** alpha, rel_tol=1e-6, abs_tol=1e-6)


def test_beam_search_batched_equals_one_sentence_at_a_time():
    model = _model("lstm", "general")
    source, lengths = _batch()
    together = beam_search(model, source, lengths, beam=4, nbest=3)
    for row in range(3):
        alone = beam_search(model, source[row:row + 1, :lengths[row]], lengths[row:row + 1], beam=4, nbest=3)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]


def test_search_never_produces_pad_or_bos_and_respects_max_length():
    model = _model()
    source, lengths = _batch()
    for hyps in beam_search(model, source, lengths, beam=3, nbest=3, max_len_a=0.5, max_len_b=1):
        for h in hyps:
            assert PAD_ID not in h.tokens and BOS_ID not in h.tokens
    for h, n in zip(greedy_search(model, source, lengths, max_len_a=0.5, max_len_b=1), lengths.tolist()):
        assert len(h.tokens) <= int(0.5 * n + 1)


# ----------------------------------------------------------------------------- BLEU
def _hand_bleu(hypotheses, references):
    """Papineni et al. 2002, corpus level: clipped n-gram precisions (n ≤ 4), closest reference length."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, refs in zip(hypotheses, references):
        h, rs = hyp.split(), [r.split() for r in refs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, 5):
            counts = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            best = Counter()
            for r in rs:
                best |= Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    brevity = min(0.0, 1 - ref_len / hyp_len)
    return 100 * math.exp(precision + brevity)


def test_bleu_of_a_hand_case_equals_sacrebleu_multi_reference():
    hypotheses = ["je suis très content de te voir ici", "il est plus grand que moi", "nous sommes en retard"]
    references = [["je suis très heureux de te voir ici", "je suis content de te voir"],
                  ["il est plus grand que moi"],
                  ["nous sommes en retard aujourd'hui", "on est en retard", "nous sommes tous en retard"]]
    scores = bleu_chrf(hypotheses, references)
    assert math.isclose(scores["bleu"], _hand_bleu(hypotheses, references), rel_tol=1e-9)
    assert "nrefs:var" in scores["bleu_signature"] and "tok:13a" in scores["bleu_signature"]
    assert math.isclose(bleu_chrf(["a b c d"], [["a b c d"]])["bleu"], 100.0)


def test_scheduled_sampling_at_one_feeds_the_greedy_words_back():
    model = _model("gru", "dot")
    source, lengths = _batch()
    greedy = greedy_search(model, source, lengths, max_len_a=0.0, max_len_b=4)
    target_in = torch.full((3, 4), 4)
    target_in[:, 0] = BOS_ID
    logits, _ = model(source, lengths, target_in, sampling=1.0)
    logits[..., [PAD_ID, BOS_ID]] = float("-inf")  # search never produces these
    for row, hypothesis in zip(logits.argmax(-1).tolist(), greedy):
        produced = hypothesis.tokens + ([EOS_ID] if len(hypothesis.tokens) < 4 else [])
        assert row[:len(produced)] == produced
    teacher, _ = model(source, lengths, target_in)
    torch.testing.assert_close(model(source, lengths, target_in, sampling=0.0)[0], teacher)


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_step_is_the_mean_of_the_members_distributions():
    one, other = _model("gru", "bahdanau"), _model("lstm", "general", layers=1)
    ensemble = TranslatorEnsemble([one, other])
    source, lengths = _batch()
    previous = torch.tensor([4, 5, 6])
    (m1, s1), (m2, s2) = one.encode(source, lengths), other.encode(source, lengths)
    p = (torch.softmax(one.step(previous, s1, m1)[0], -1) + torch.softmax(other.step(previous, s2, m2)[0], -1)) / 2
    memory, state = ensemble.encode(source, lengths)
    log_probs, _, weights = ensemble.step(previous, state, memory)
    torch.testing.assert_close(log_probs, p.log(), rtol=0, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    beam = beam_search(ensemble, source, lengths, beam=1, alpha=0.0, max_len_a=2.0, max_len_b=3)
    assert [h.tokens for h in greedy_search(ensemble, source, lengths, max_len_a=2.0, max_len_b=3)] == \
        [b[0].tokens for b in beam]


def test_an_ensemble_of_one_model_searches_like_the_model():
    model = _model("lstm", "bahdanau")
    source, lengths = _batch()
    alone = beam_search(model, source, lengths, beam=3, nbest=2)
    together = beam_search(TranslatorEnsemble([model]), source, lengths, beam=3, nbest=2)
    for a, b in zip(alone, together):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert all(math.isclose(x.score, y.score, rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b))


def test_ensemble_members_must_share_vocabularies():
    with pytest.raises(ConfigError, match="share their vocabularies"):
        TranslatorEnsemble([_model(target_vocab=9), _model(target_vocab=10)])
    with pytest.raises(ConfigError, match="at least one"):
        TranslatorEnsemble([])
