"""The classification recipe for small and long data: stratified folds, the cross-validated epoch
budget, block-mean downsampling, augmentation, and what run.json and the CLI say about them."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.augment import augment, auto_stride, downsample
from rnnlab.data.labelled_sequences import SequenceSet
from rnnlab.errors import ConfigError, DataError
from rnnlab.runs.classify_recipe import SMALL, cross_validate_epochs, resolve_epoch_choice, stratified_folds
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

torch.set_num_threads(1)


def toy_set(n=40, classes=4, lengths=(20, 60), seed=0):
    """Class k: a sine of frequency k + 1 cycles per sequence plus noise; lengths vary."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(n):
        k, T = i % classes, int(rng.integers(*lengths))
        t = np.linspace(0, 1, T)
        sequences.append((np.sin(2 * np.pi * (k + 1) * t + rng.uniform(0, 6)) + 0.2 * rng.normal(size=T))
                         .astype(np.float32)[:, None])
        labels.append(k)
    return SequenceSet(sequences, np.array(labels), [f"c{k}" for k in range(classes)], ["x"], list(range(n)))


def test_stratified_folds_partition_and_balance():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3)
    folds = stratified_folds(labels, 5, seed=1)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(20))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        assert np.sum(labels[fold] == 0) == 2 and np.sum(labels[fold] == 1) in (1, 2)
    with pytest.raises(DataError, match="needs at least 5 training sequences"):
        stratified_folds(labels[:4], 5)


def test_epoch_choice_by_size():
    assert resolve_epoch_choice("auto", SMALL - 1)[0] == "cv"
    assert resolve_epoch_choice("auto", SMALL)[0] == "early-stop"
    assert resolve_epoch_choice("cv", 5000)[0] == "cv"


def test_downsample_is_block_means_by_hand():
    x = np.arange(14, dtype=np.float32).reshape(7, 2)  # rows [0,1], [2,3], ..., [12,13]
    np.testing.assert_array_equal(downsample(x, 3), [[2, 3], [8, 9], [12, 13]])  # last block: one row
    assert downsample(x, 1) is x
    assert auto_stride([30, 400])[0] == 1 and auto_stride([30, 401])[0] == 3 and auto_stride([1000])[0] == 5
    with pytest.raises(ConfigError, match="positive integer"):
        downsample(x, 0)


def test_augment_touches_valid_steps_only_and_is_reproducible():
    batch = {"x": torch.ones(2, 5, 3), "lengths": torch.tensor([5, 2]), "y": torch.tensor([0, 1])}
    batch["x"][1, 2:] = 0  # padding
    a = augment(batch, np.random.default_rng(0), jitter=0.1, scaling=0.2)
    b = augment(batch, np.random.default_rng(0), jitter=0.1, scaling=0.2)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], batch["x"])
    assert torch.all(a["x"][1, 2:] == 0)
    scaled = augment(batch, np.random.default_rng(0), scaling=0.2)["x"]
    factor = 1 + 0.2 * np.random.default_rng(0).standard_normal((2, 1, 3))
    torch.testing.assert_close(scaled, batch["x"] * torch.tensor(factor, dtype=torch.float32))
    assert augment(batch, np.random.default_rng(0)) is batch


def test_augmented_training_resumes_exactly(tmp_path):
    data = toy_set(n=24)

    def run(epochs, resume=False):
        seed_everything(0)
        from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier

        model = SequenceClassifier(ClassifierConfig(1, 4, hidden_size=8))
        task = ClassifyTask({"train": data, "valid": data}, [0.0], [1.0], batch_size=8, jitter=0.1, scaling=0.1)
        Trainer(model, task, TrainConfig(max_epochs=epochs, progress=False, restore_best=False),
                run_dir=tmp_path / ("a" if epochs == 4 and not resume else "b")).fit(resume=resume)
        return model

    full = run(4)
    run(2)
    resumed = run(4, resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_cross_validated_budget_matches_its_own_curve():
    data = toy_set()
    cv = cross_validate_epochs(data, dict(hidden_size=16), TrainConfig(lr=1e-2, max_epochs=6, progress=False),
                               folds=4, batch_size=8, progress=False)
    assert cv["folds"] == 4 and len(cv["accuracy"]) == 6
    acc = np.array(cv["accuracy"])
    assert np.allclose(acc * 40, np.round(acc * 40))  # pooled counts over 40 held-out sequences
    best = [e for e in range(6) if acc[e] == acc.max()]
    assert cv["epochs"] - 1 == min(best, key=lambda e: (cv["loss"][e], e))
    assert cv["cv_accuracy"] == acc.max()


def write_long_csv(path, data: SequenceSet):
    rows = [{"id": i, "step": t, "label": data.class_names[k], "x": float(v)}
            for i, (s, k) in enumerate(zip(data.sequences, data.labels)) for t, v in enumerate(s[:, 0])]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_cli_small_long_data_uses_cv_downsampling_and_says_why(tmp_path, capsys):
    from rnnlab.cli import main

    train, test = toy_set(n=40, lengths=(300, 500)), toy_set(n=20, lengths=(300, 500), seed=1)
    write_long_csv(tmp_path / "train.csv", train)
    write_long_csv(tmp_path / "test.csv", test)
    run = tmp_path / "run"
    code = main(["classify", "train", "--csv", str(tmp_path / "train.csv"), "--test-csv", str(tmp_path / "test.csv"),
                 "--epochs", "8", "--folds", "3", "--hidden", "16", "--lr", "0.01", "--batch-size", "8",
                 "--jitter", "0.05", "--cv-min-steps", "0", "--no-progress", "--out", str(run)])
    out = capsys.readouterr().out
    assert code == 0
    assert "left out 'step'" in out  # the step index is not a feature
    assert "epochs: cv (40 training sequences < 200" in out and "3-fold cross-validation over 8 epochs" in out
    assert "block means of 3 steps" in out  # longest 499 > 400 -> stride ceil(499 / 200) = 3
    info = json.loads((run / "run.json").read_text())
    recipe = info["recipe"]
    assert recipe["downsample"] == 3 and recipe["epoch_choice"] == "cv" and recipe["epochs"] == recipe["cv"]["epochs"]
    assert info["training"]["epochs"] == recipe["epochs"]  # trained on everything for exactly that budget
    assert info["results"]["split"] == "test" and 0 <= info["results"]["accuracy"] <= 1
    # predict downsamples the same way (the stride is in classify.json): same accuracy as the run's test
    code = main(["classify", "predict", str(run), "--csv", str(tmp_path / "test.csv")])
    out = capsys.readouterr().out
    assert code == 0 and f"accuracy {info['results']['accuracy']:.4f}" in out
    from rnnlab.analysis.report import build_report

    html = build_report(run).read_text()
    assert "Classifier recipe" in html and "3-fold cross-validation on the training set" in html
    assert "block means of 3 steps" in html and "Confusion matrix" in html
    # too few sequences for the folds: one line, exit 2, no run directory left
    code = main(["classify", "train", "--csv", str(tmp_path / "train.csv"), "--folds", "50", "--no-progress",
                 "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "needs at least 50 training sequences" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_conv_frontend_ignores_padding_and_matches_a_hand_convolution():
    from rnnlab.models.conv_classifier import ConvClassifierConfig, ConvSequenceClassifier

    torch.manual_seed(0)
    model = ConvSequenceClassifier(ConvClassifierConfig(2, 3, hidden_size=8, conv_channels=4, conv_kernel=3,
                                                        conv_layers=1, pooling="mean")).eval()
    x = torch.randn(2, 6, 2)
    lengths = torch.tensor([6, 4])
    padded = torch.cat([x, torch.randn(2, 5, 2)], dim=1)  # longer padding holding garbage
    padded[1, 4:] = 7.0
    torch.testing.assert_close(model(x, lengths), model(padded, lengths))
    # the front-end by hand for sequence 1 (length 4): zero beyond the end, then y_t = b + sum_j W_j x_{t+j-1}
    conv, norm = model.convs[0], model.norms[0]
    seq = torch.cat([torch.zeros(1, 2), x[1, :4], torch.zeros(1, 2)])
    by_hand = torch.stack([conv.bias + sum(conv.weight[:, :, j] @ seq[t + j] for j in range(3)) for t in range(4)])
    front = model.front(padded, lengths)
    torch.testing.assert_close(front[1, :4], torch.relu(norm(by_hand)))
    assert torch.all(front[1, 4:] == 0)
