"""Sequence classifier: padding independence, pooling by hand, learning, data loaders, bad input."""
import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.labelled_sequences import (
    SequenceSet,
    feature_stats,
    load_japanese_vowels,
    load_sequence_csv,
    load_ts,
    pad,
)
from rnnlab.errors import ConfigError, DataError, InputShapeError, LengthsError
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.train import TrainConfig, Trainer, seed_everything


def padded(sequences, T, fill):
    x = torch.full((len(sequences), T, sequences[0].shape[1]), fill)
    for i, s in enumerate(sequences):
        x[i, :len(s)] = s
    return x, torch.tensor([len(s) for s in sequences])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_logits_do_not_depend_on_padding(cell, pooling, bidirectional):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(3, 4, cell=cell, hidden_size=8, num_layers=2,
                                                bidirectional=bidirectional, pooling=pooling)).eval()
    sequences = [torch.randn(n, 3) for n in (5, 1, 9, 3)]
    short = model(*padded(sequences, 9, 0.0))
    long = model(*padded(sequences, 20, 123.0))  # longer padding full of garbage
    torch.testing.assert_close(short, long, rtol=1e-5, atol=1e-5)
    alone = torch.cat([model(s.unsqueeze(0), torch.tensor([len(s)])) for s in sequences])
    torch.testing.assert_close(short, alone, rtol=1e-5, atol=1e-5)  # batch of one, no padding at all


def test_pooled_features_by_hand():
    torch.manual_seed(0)
    seq = torch.randn(1, 6, 2)
    for pooling in ("last", "mean", "max"):
        model = SequenceClassifier(ClassifierConfig(2, 3, hidden_size=5, pooling=pooling, bidirectional=True))
        output, _ = model.rnn(seq[:, :4])  # the valid part only, no lengths
        expected = {"last": torch.cat([output[0, -1, :5], output[0, 0, 5:]]),
                    "mean": output[0].mean(0), "max": output[0].max(0).values}[pooling]
        got = model.features(torch.cat([seq[:, :4], torch.zeros(1, 2, 2)], 1), torch.tensor([4]))[0]
        torch.testing.assert_close(got, expected)


def make_task(n=120, seed=0):
    """Two classes told apart only by the sign of the running trend; lengths 4..15."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(n):
        label = i % 2
        length = int(rng.integers(4, 16))
        slope = 0.3 if label else -0.3
        steps = slope + 0.3 * rng.standard_normal((length, 2))
        sequences.append(np.cumsum(steps, axis=0).astype(np.float32))
        labels.append(label)
    data = SequenceSet(sequences, np.array(labels), ["down", "up"])
    splits = {"train": data.subset(np.arange(0, 80)), "valid": data.subset(np.arange(80, 100)),
              "test": data.subset(np.arange(100, 120))}
    return ClassifyTask(splits, *feature_stats(splits["train"]), batch_size=16)


def test_learns_trend_direction():
    seed_everything(0)
    task = make_task()
    model = SequenceClassifier(ClassifierConfig(2, 2, hidden_size=16))
    Trainer(model, task, TrainConfig(lr=1e-2, max_epochs=15, progress=False)).fit()
    assert task.evaluate(model, "test")["accuracy"] >= 0.9


def test_bad_inputs():
    with pytest.raises(ConfigError, match="pooling must be one of"):
        ClassifierConfig(2, 3, pooling="attention")
    with pytest.raises(ConfigError, match="at least 2 classes"):
        ClassifierConfig(2, 1)
    model = SequenceClassifier(ClassifierConfig(2, 3))
    with pytest.raises(InputShapeError, match=r"\(B, T, 2\)"):
        model(torch.zeros(1, 4, 3), torch.tensor([4]))
    with pytest.raises(LengthsError):
        model(torch.zeros(2, 4, 2), torch.tensor([5, 1]))
    with pytest.raises(DataError, match="shorter than the longest"):
        pad([np.zeros((5, 2))], [0], max_len=3)


def test_ts_parser_and_csv_loader(tmp_path):
    ts = tmp_path / "toy.ts"
    ts.write_text("# comment\n@problemName toy\n@classLabel true a b\n@data\n"
                  "1,2,3:4,5,6:a\n7,8:9,10:b\n")
    data = load_ts(ts)
    assert data.class_names == ["a", "b"] and data.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(data.sequences[0], [[1, 4], [2, 5], [3, 6]])
    ts.write_text("@data\n1,2:3:a\n")
    with pytest.raises(DataError, match="line 2: dimensions have different lengths"):
        load_ts(ts)
    frame = pd.DataFrame({"id": [1, 1, 1, 2, 2], "label": ["x", "x", "x", "y", "y"],
                          "f1": [0.0, 1, 2, 3, 4], "f2": [5.0, 6, 7, 8, 9]})
    frame.to_csv(tmp_path / "seq.csv", index=False)
    data = load_sequence_csv(tmp_path / "seq.csv", id_col="id", label_col="label")
    assert [len(s) for s in data.sequences] == [3, 2] and data.labels.tolist() == [0, 1]
    frame.loc[4, "f2"] = np.nan
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="feature 'f2' at row 5"):
        load_sequence_csv(tmp_path / "bad.csv", id_col="id", label_col="label")
    with pytest.raises(DataError, match=r"columns \['cls'\] not found"):
        load_sequence_csv(tmp_path / "seq.csv", id_col="id", label_col="cls")


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None,
                    reason="JapaneseVowels ships in the optional aeon wheel (pip install aeon); not installed")
def test_japanese_vowels_shape():
    train, test = load_japanese_vowels("train"), load_japanese_vowels("test")
    assert (len(train), len(test), train.n_features) == (270, 370, 12)
    lengths = [len(s) for s in train.sequences + test.sequences]
    assert (min(lengths), max(lengths)) == (7, 29)
    assert np.bincount(train.labels).tolist() == [30] * 9


def test_cli_train_predict_from_csv(tmp_path, capsys):
    from rnnlab.cli import main

    task = make_task()
    for split, name in (("train", "train.csv"), ("test", "test.csv")):
        data = task.splits[split]
        frame = pd.concat([pd.DataFrame({"id": i, "label": data.class_names[data.labels[i]], "a": s[:, 0],
                                         "b": s[:, 1]}) for i, s in enumerate(data.sequences)])
        frame.to_csv(tmp_path / name, index=False)
    run = tmp_path / "run"
    code = main(["classify", "train", "--csv", str(tmp_path / "train.csv"), "--test-csv", str(tmp_path / "test.csv"),
                 "--epochs", "2", "--hidden", "8", "--no-progress", "--out", str(run)])
    assert code == 0 and "test accuracy" in capsys.readouterr().out
    assert (run / "confusion.png").exists()
    code = main(["classify", "predict", str(run), "--csv", str(tmp_path / "test.csv"), "--label", "label"])
    table = pd.read_csv(run / "predictions.csv")
    assert code == 0 and len(table) == 20 and set(table["predicted"]) <= {"down", "up"}
    pd.DataFrame({"id": [0, 0], "a": [1.0, 2.0]}).to_csv(tmp_path / "narrow.csv", index=False)
    code = main(["classify", "predict", str(run), "--csv", str(tmp_path / "narrow.csv"), "--out",
                 str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "columns ['b'] not found" in err and err.count("\n") == 1  # the model's own features
