"""ONNX export of sequence classifiers, speech (CTC acoustic) models and translators, checked in onnxruntime.

Parity is checked per cell (the GRU's ``linear_before_reset`` has been exported wrongly before), per
direction (a backward direction must start at each sequence's own last step) and per pooling, on
padded batches of several lengths; translators are also decoded greedily from onnxruntime and
compared with PyTorch's greedy search, speech models by greedy CTC transcripts.
"""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cli_checks import fails
from rnnlab.checkpoint import save_checkpoint
from rnnlab.cli import main
from rnnlab.data.labelled_sequences import pad
from rnnlab.data.translation import EOS_ID, SPECIALS, Vocabulary
from rnnlab.models.acoustic import AcousticConfig, AcousticModel
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.conv_classifier import ConvClassifierConfig, ConvSequenceClassifier
from rnnlab.models.ctc import greedy_decode
from rnnlab.models.translation_search import greedy_search
from rnnlab.models.translator import Translator, TranslatorConfig
from rnnlab.rundir import prepare_run_dir
from rnnlab.runs.classify import saved_spec

HAVE_ORT = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None
pytestmark = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed (pip install -e '.[export]')")


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _fake_run(root, kind, model, files):
    """A run directory holding ``model`` as its best checkpoint (untrained: parity does not need training)."""
    run = prepare_run_dir(root, kind=kind, config={})
    save_checkpoint(run, model, step=1, files=files, best=True)
    return run


def _batches():
    """Padded batches ``(x, lengths)`` of several lengths, padding filled with noise (it must not matter)."""
    rng = torch.Generator().manual_seed(1)
    for lengths in ([1], [6, 2], [13, 1, 7, 2], [4, 4, 4], [30, 17, 29]):
        steps = max(lengths) + (1 if len(lengths) == 3 else 0)  # one batch padded past its longest
        yield torch.randn(len(lengths), steps, 3, generator=rng), torch.tensor(lengths)


# ----------------------------------------------------------------------------- classifiers
CLASSIFIERS = [(cell, bi, pooling) for cell in ("lstm", "gru", "rnn") for bi in (False, True)
               for pooling in ("last", "mean", "max")]


@pytest.mark.parametrize("cell, bidirectional, pooling", CLASSIFIERS)
def test_classifier_graph_equals_pytorch_on_variable_lengths(tmp_path, cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(n_features=3, n_classes=4, cell=cell, hidden_size=5, num_layers=2,
                                                bidirectional=bidirectional, pooling=pooling))
    mean, std = [0.5, -1.0, 2.0], [2.0, 0.5, 1.5]
    spec = {"class_names": list("abcd"), "mean": mean, "std": std, "features": ["u", "v", "w"], "stride": 1}
    run = _fake_run(tmp_path / "run", "classify", model, {"classify.json": json.dumps(spec)})
    assert main(["export", str(run)]) == 0
    record = json.loads((run / "export.json").read_text())
    assert record["max_abs_diff"] <= 1e-4 and record["inputs"] == ["x", "lengths"]
    assert record["class_names"] == list("abcd") and "standardisation" in record["preprocessing"]
    session = _session(run / "model.onnx")
    model.eval()
    for x, lengths in _batches():
        with torch.no_grad():
            want = model((x - torch.tensor(mean)) / torch.tensor(std), lengths)
        logits, probs = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        np.testing.assert_allclose(logits, want.numpy(), atol=1e-4)
        np.testing.assert_allclose(probs, torch.softmax(want, -1).numpy(), atol=1e-5)


@pytest.mark.parametrize("kernel", [7, 4])
def test_conv_classifier_graph_equals_pytorch(tmp_path, kernel):
    torch.manual_seed(0)
    model = ConvSequenceClassifier(ConvClassifierConfig(n_features=3, n_classes=2, cell="gru", hidden_size=5,
                                                        bidirectional=True, pooling="mean", conv_channels=6,
                                                        conv_kernel=kernel))
    spec = {"class_names": ["a", "b"], "mean": [0.0] * 3, "std": [1.0] * 3, "features": ["u", "v", "w"], "stride": 3}
    run = _fake_run(tmp_path / "run", "classify", model, {"classify.json": json.dumps(spec)})
    assert main(["export", str(run)]) == 0
    assert "every 3 steps" in json.loads((run / "export.json").read_text())["preprocessing"]
    session = _session(run / "model.onnx")
    model.eval()
    for x, lengths in _batches():
        with torch.no_grad():
            want = model(x, lengths)
        np.testing.assert_allclose(session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0], want.numpy(),
                                   atol=1e-4)


def test_trained_classifier_run_predicts_the_same_in_onnxruntime(tmp_path, capsys):
    rows = [{"id": s, "label": "ab"[s % 2], "x": float(np.sin(s + t)), "y": float(t * (s % 2))}
            for s in range(12) for t in range(3 + s % 5)]
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    assert main(["classify", "train", "--csv", str(tmp_path / "s.csv"), "--epochs", "1", "--hidden", "4",
                 "--epoch-choice", "early-stop", "--bidirectional", "--no-progress", "--threads", "1",
                 "--out", str(tmp_path / "cls")]) == 0
    assert main(["export", str(tmp_path / "cls")]) == 0
    assert "decoder_step" not in capsys.readouterr().out
    from rnnlab.checkpoint import load_checkpoint

    model = load_checkpoint(tmp_path / "cls").model.eval()
    spec = saved_spec(tmp_path / "cls")
    sequences = [pd.DataFrame(rows).query("id == @s")[["x", "y"]].to_numpy(np.float32) for s in range(12)]
    batch = pad(sequences, np.zeros(12), np.asarray(spec["mean"]), np.asarray(spec["std"]))
    with torch.no_grad():
        want = model(batch["x"], batch["lengths"]).numpy()
    raw = pad(sequences, np.zeros(12))  # the graph standardises by itself
    got = _session(tmp_path / "cls" / "model.onnx").run(None, {"x": raw["x"].numpy(),
                                                               "lengths": raw["lengths"].numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_classifier_with_an_unrolled_cell_is_refused_in_one_line(tmp_path, capsys):
    model = SequenceClassifier(ClassifierConfig(n_features=3, n_classes=2, cell="peephole", hidden_size=4))
    spec = {"class_names": ["a", "b"], "mean": [0.0] * 3, "std": [1.0] * 3, "features": list("uvw"), "stride": 1}
    run = _fake_run(tmp_path / "run", "classify", model, {"classify.json": json.dumps(spec)})
    fails(capsys, ["export", str(run)], "PeepholeLSTMCell", "cannot be exported with variable lengths")
    assert not (run / "model.onnx").exists() and not (run / "export.json").exists()


def test_export_without_what_it_needs_says_so_in_one_line(tmp_path, capsys):
    model = SequenceClassifier(ClassifierConfig(n_features=3, n_classes=2, hidden_size=4))
    run = _fake_run(tmp_path / "run", "classify", model, {})  # no classify.json beside the weights
    fails(capsys, ["export", str(run)], "holds no classify.json")
    empty = prepare_run_dir(tmp_path / "empty", kind="speech", config={})
    fails(capsys, ["export", str(empty)], "checkpoint")
    fails(capsys, ["export", str(tmp_path / "nothing")], "does not exist")
    assert not (run / "model.onnx").exists() and not (run / "export.json").exists()


# ----------------------------------------------------------------------------- speech
SPEECH_SPEC = {"task": "connected", "features": {"kind": "logmel"}, "blank": 0,
               "labels": ["<blank>"] + [str(d) for d in range(10)]}


@pytest.mark.parametrize("cell, bidirectional, stack, frontend", [
    ("gru", True, 2, "stack"), ("lstm", False, 3, "stack"), ("rnn", True, 1, "stack"), ("gru", True, 4, "conv"),
    ("lstm", True, 3, "conv")])
def test_acoustic_model_posteriors_and_greedy_transcripts_match(tmp_path, cell, bidirectional, stack, frontend):
    torch.manual_seed(0)
    model = AcousticModel(AcousticConfig(n_features=3, n_labels=11, cell=cell, hidden=6, layers=2,
                                         bidirectional=bidirectional, stack=stack, frontend=frontend,
                                         conv_channels=5))
    run = _fake_run(tmp_path / "run", "speech", model, {"speech.json": json.dumps(SPEECH_SPEC)})
    assert main(["export", str(run)]) == 0
    record = json.loads((run / "export.json").read_text())
    assert record["outputs"] == ["log_probs", "out_lengths"] and "in Python" in record["preprocessing"]
    session = _session(run / "model.onnx")
    model.eval()
    for x, lengths in _batches():
        with torch.no_grad():
            want, want_lengths = model(x * 3, lengths)  # larger inputs: more distinct posteriors
        got, got_lengths = session.run(None, {"x": (x * 3).numpy(), "lengths": lengths.numpy()})
        np.testing.assert_array_equal(got_lengths, want_lengths.numpy())
        for b, n in enumerate(want_lengths.tolist()):  # frames past out_lengths are never read
            np.testing.assert_allclose(got[b, :n], want[b, :n].numpy(), atol=1e-4)
            assert greedy_decode(got[b, :n]) == greedy_decode(want[b, :n].numpy())


def test_trained_speech_runs_transcribe_the_same_from_onnxruntime(tmp_path):
    from rnnlab.data.audio import features, read_audio
    from rnnlab.runs.speech import load_speech_model
    from rnnlab.tasks.speech import decode_batch, pad_frames
    from test_speech import make_fsdd

    fsdd = make_fsdd(tmp_path / "fsdd")
    tiny = ["--utterances", "16", "--batch-size", "8", "--valid-utterances", "4", "--test-utterances", "6",
            "--hidden", "8", "--layers", "1", "--n-mels", "12", "--max-digits", "3", "--no-progress", "--threads", "1",
            "--epochs", "1", "--data", str(fsdd)]
    assert main(["train", "speech", "--out", str(tmp_path / "c"), *tiny]) == 0
    assert main(["train", "speech", "--out", str(tmp_path / "i"), "--task", "isolated", *tiny]) == 0
    for run in ("c", "i"):
        assert main(["export", str(tmp_path / run)]) == 0
    model, spec = load_speech_model(tmp_path / "c")
    wavs = sorted((fsdd / "recordings").glob("*.wav"))[:5]
    frames = [features(read_audio(p, spec["features"].rate).samples, spec["features"]) for p in wavs]
    frames = [torch.cat(frames[:3]), *frames[3:]]  # one longer "connected" utterance
    want, _ = decode_batch(model, frames)
    x, lengths = pad_frames(frames)
    log_probs, out_lengths = _session(tmp_path / "c" / "model.onnx").run(None, {"x": x.numpy(),
                                                                                "lengths": lengths.numpy()})
    assert [[label - 1 for label in greedy_decode(lp[:n])] for lp, n in zip(log_probs, out_lengths)] == want
    record = json.loads((tmp_path / "i" / "export.json").read_text())
    assert record["model"] == "SequenceClassifier" and record["class_names"] == [str(d) for d in range(10)]


# ----------------------------------------------------------------------------- translators
TRANSLATORS = [  # eos_bias: <eos>'s output bias, chosen so that some test sentences end before their limit
    dict(cell="gru", attention="bahdanau", input_feed=True, bidirectional=True, eos_bias=1.5),
    dict(cell="lstm", attention="general", input_feed=True, bidirectional=True, layers=2, eos_bias=1.0),
    dict(cell="lstm", attention="dot", input_feed=False, bidirectional=False),
    dict(cell="rnn", attention="none", input_feed=False, bidirectional=False, tie=True, eos_bias=3.5),
]


def _translator_run(root, options):
    torch.manual_seed(0)
    options = dict(options)
    eos_bias = options.pop("eos_bias", None)
    words = list(SPECIALS) + [f"w{i}" for i in range(14)]
    model = Translator(TranslatorConfig(source_vocab=len(words), target_vocab=len(words), embed=8, hidden=8,
                                        dropout=0.0, **options))
    with torch.no_grad():
        for p in model.parameters():  # sharper distributions: greedy choices are not near-ties
            p.mul_(3.0)
        if eos_bias is not None:
            model.output.bias[EOS_ID] = eos_bias
    vocab = Vocabulary(words).to_json()
    return model, _fake_run(root, "translate", model, {"source_vocab.json": vocab, "target_vocab.json": vocab})


@pytest.mark.parametrize("options", TRANSLATORS, ids=lambda o: f"{o['cell']}-{o['attention']}")
def test_translator_greedy_decoding_from_onnxruntime_equals_pytorch(tmp_path, options):
    from rnnlab.runs.export import onnx_greedy_translate

    model, run = _translator_run(tmp_path / "run", options)
    assert main(["export", str(run)]) == 0
    record = json.loads((run / "export.json").read_text())
    assert set(record["graphs"]) == {"encoder", "decoder_step"} and record["max_abs_diff"] <= 1e-4
    assert json.loads((run / "vocab.json").read_text())["target"]["tokens"][:4] == list(SPECIALS)
    encoder, step = _session(run / "encoder.onnx"), _session(run / "decoder_step.onnx")
    model.eval()
    generator = torch.Generator().manual_seed(3)
    for lengths in ([5], [7, 2, 4], [1, 9]):
        lengths = torch.tensor(lengths)
        source = torch.randint(4, model.config.source_vocab, (len(lengths), int(lengths.max())), generator=generator)
        source[torch.arange(source.shape[1]) >= lengths[:, None]] = 0  # <pad>
        want = [h.tokens for h in greedy_search(model, source, lengths)]
        assert onnx_greedy_translate(encoder, step, source.numpy(), lengths.numpy()) == want
        # the step outputs themselves, from the encoder's initial state
        encoded = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {
            "source": source.numpy(), "lengths": lengths.numpy()})))
        previous = torch.full((len(lengths),), 2)
        with torch.no_grad():
            memory, state = model.encode(source, lengths)
            logits, _, weights = model.step(previous, state, memory)
        inputs = {i.name: encoded.get(i.name) for i in step.get_inputs()}
        outputs = step.run(None, {**inputs, "previous": previous.numpy()})
        np.testing.assert_allclose(outputs[0], torch.log_softmax(logits, -1).numpy(), atol=1e-4)
        if weights is not None:
            np.testing.assert_allclose(outputs[-1], weights.numpy(), atol=1e-5)


def test_trained_translation_run_decodes_the_same_from_onnxruntime(tmp_path):
    from rnnlab.runs.export import onnx_greedy_translate
    from rnnlab.runs.translate import load_translator
    from test_translation_cli import SUBJECTS, TINY, WORDS

    lines = [f"{en} {a}.\t{fr} {b}." for en, fr in SUBJECTS for a, b in WORDS]
    (tmp_path / "fra.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "enfr"
    assert main(["train", "translate", "--data", str(tmp_path / "fra.txt"), "--out", str(run), "--max-steps", "30",
                 "--cell", "lstm", *TINY]) == 0
    assert main(["export", str(run)]) == 0
    model, source_vocab, target_vocab, _ = load_translator(run)
    vocab = json.loads((run / "vocab.json").read_text())
    assert vocab["source"]["tokens"] == source_vocab.tokens and vocab["target"]["tokens"] == target_vocab.tokens
    sentences = [f"{en.lower()} {a} .".split() for en, _ in SUBJECTS for a, _ in WORDS[:3]]
    ids = [source_vocab.encode(s) for s in sentences]
    lengths = torch.tensor([len(i) for i in ids])
    source = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        source[row, :len(i)] = torch.tensor(i)
    want = [h.tokens for h in greedy_search(model, source, lengths)]
    got = onnx_greedy_translate(_session(run / "encoder.onnx"), _session(run / "decoder_step.onnx"), source.numpy(),
                                lengths.numpy())
    assert got == want


def test_translator_export_names_files_after_out(tmp_path, capsys):
    _, run = _translator_run(tmp_path / "run", TRANSLATORS[0])
    assert main(["export", str(run), "--out", str(tmp_path / "t.onnx")]) == 0
    for name in ("t_encoder.onnx", "t_decoder_step.onnx", "t_vocab.json", "t_export.json"):
        assert (tmp_path / name).is_file(), name
    fails(capsys, ["export", str(run), "--out", str(tmp_path / "t.onnx")], "already exists")
    fails(capsys, ["export", str(run), "--out", str(tmp_path / "t.txt")], "must end in .onnx")


def test_translator_with_an_unrolled_cell_is_refused(tmp_path, capsys):
    _, run = _translator_run(tmp_path / "run", dict(cell="mingru", attention="dot", bidirectional=False))
    fails(capsys, ["export", str(run)], "a translator with", "cannot be exported with variable lengths")


# ----------------------------------------------------------------------------- captioners
CAPTIONERS = [dict(cell="lstm"), dict(cell="gru", gate=False), dict(cell="peephole", concepts=False),
              dict(encoder="mlp", attention=False, cell="mingru")]


@pytest.mark.parametrize("options", CAPTIONERS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_captioner_greedy_captions_from_onnxruntime_equal_pytorch(tmp_path, options):
    from rnnlab.data.scenes import VOCAB
    from rnnlab.models.captioner import Captioner, CaptionerConfig
    from rnnlab.runs.export import onnx_greedy_caption

    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(vocab_size=len(VOCAB), channels=1, image_size=16, embed=8, hidden=12,
                                      features=8, attention_size=6, **options))
    with torch.no_grad():
        for p in model.parameters():  # sharper distributions: greedy choices are not near-ties
            p.mul_(2.0)
        if options == CAPTIONERS[0]:
            model.out.bias[2] = 4.0  # <eos> likelier: one caption ends early (pad after it), the others run on
    run = _fake_run(tmp_path / "run", "caption", model, {})
    assert main(["export", str(run)]) == 0
    record = json.loads((run / "export.json").read_text())
    assert set(record["graphs"]) == {"encoder", "decoder_step"} and record["max_abs_diff"] <= 1e-4
    assert json.loads((run / "vocab.json").read_text())["tokens"] == list(VOCAB)
    model.eval()
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    want, alphas = model.greedy(images, 12)
    if options == CAPTIONERS[0]:
        assert (want == 2).any() and (want == 0).any()  # the <eos> and padding branch is exercised
    got = onnx_greedy_caption(_session(run / "encoder.onnx"), _session(run / "decoder_step.onnx"), images.numpy(),
                              max_len=12)
    np.testing.assert_array_equal(got, want.numpy())
