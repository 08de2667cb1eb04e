"""FSDD loading and splits, connected digits, the acoustic model and the speech task (no download)."""
import json

import numpy as np
import pytest
import soundfile
import torch

from rnnlab.data.audio import FeatureConfig, features
from rnnlab.data.labelled_sequences import SequenceSet
from rnnlab.data.speech import (
    ConnectedConfig,
    connected_set,
    connected_utterance,
    encode_digits,
    load_fsdd,
    perturbed_recording,
    split_fsdd,
    training_table,
)
from rnnlab.errors import DataError
from rnnlab.models.acoustic import AcousticConfig, AcousticModel, conv_strides
from rnnlab.models.ctc import frames_needed
from rnnlab.tasks.speech import AugmentConfig, IsolatedSpeechTask, SpeechTask, digit_confusion, score, stacked
from rnnlab.train import TrainConfig, Trainer

SPEAKERS = ("ann", "bob")


def make_fsdd(root, takes=12, seconds=0.12, rate=8000, speakers=SPEAKERS):
    """A tiny FSDD look-alike: digit d is a tone at 300 + 150 d Hz, a speaker shifts it a little."""
    folder = root / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    for s, speaker in enumerate(speakers):
        for d in range(10):
            for take in range(takes):
                tone = 0.4 * np.sin(2 * np.pi * (300 + 150 * d + 20 * s + take) * t) * np.hanning(len(t))
                soundfile.write(folder / f"{d}_{speaker}_{take}.wav", tone, rate, subtype="PCM_16")
    (folder / "README.txt").write_text("not a recording")  # ignored: not {digit}_{speaker}_{take}.wav
    return root


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    return make_fsdd(tmp_path_factory.mktemp("fsdd"))


def test_load_and_split(fsdd):
    recordings = load_fsdd(fsdd)
    assert len(recordings) == 2 * 10 * 12
    assert load_fsdd(fsdd / "recordings")[5].path == recordings[5].path
    official = split_fsdd(recordings, "official")
    assert {r.take for r in official["test"]} == set(range(5))
    assert {r.take for r in official["valid"]} == set(range(5, 10))
    assert {r.take for r in official["train"]} == {10, 11}
    held = split_fsdd(recordings, "speaker:bob")
    assert {r.speaker for r in held["test"]} == {"bob"} and len(held["test"]) == 120
    assert {r.speaker for r in held["train"] + held["valid"]} == {"ann"}
    with pytest.raises(DataError, match="no recordings of speaker 'carol'; speakers: ann, bob"):
        split_fsdd(recordings, "speaker:carol")
    with pytest.raises(DataError, match="unknown split 'random'"):
        split_fsdd(recordings, "random")


def test_nested_held_out_split_leaves_the_outer_voice_out(tmp_path):
    recordings = load_fsdd(make_fsdd(tmp_path, takes=6, seconds=0.05, speakers=("ann", "bob", "cid")))
    inner = split_fsdd(recordings, "speaker:bob/without:cid")
    assert {r.speaker for r in inner["test"]} == {"bob"} and len(inner["test"]) == 60
    assert {(r.speaker, r.take) for r in inner["train"]} == {("ann", 5)}
    assert {r.speaker for r in inner["valid"]} == {"ann"} and len(inner["valid"]) == 50
    plain = split_fsdd(recordings, "speaker:bob")
    assert {r.speaker for r in plain["train"]} == {"ann", "cid"}
    for bad, message in (("speaker:bob/without:dan", "no recordings of speaker 'dan'"),
                         ("speaker:bob/without:bob", "cannot also be left out"),
                         ("speaker:bob/only:ann", "expected speaker:NAME/without:OTHER"),
                         ("speaker:bob/without:ann,cid", "leaves no train recordings")):
        with pytest.raises(DataError, match=message):
            split_fsdd(recordings, bad)


def test_missing_or_empty_data_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fsdd(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        load_fsdd(tmp_path / "empty")


def test_connected_utterances_are_deterministic_and_well_formed(fsdd):
    pool = split_fsdd(load_fsdd(fsdd), "official")["train"]
    table, c = training_table(pool), ConnectedConfig()
    a = connected_utterance(table, 7, seed=3, c=c)
    b = connected_utterance(table, 7, seed=3, c=c)
    assert np.array_equal(a.samples, b.samples) and a.digits == b.digits and a.speaker == b.speaker
    lengths = []
    for k in range(60):
        u = connected_utterance(table, k, seed=3, c=c)
        assert 1 <= len(u.digits) <= 7 and all(0 <= d <= 9 for d in u.digits)
        # n recordings of 0.12 s plus n + 1 pauses of 0.05-0.3 s
        n = len(u.digits)
        assert n * 960 + (n + 1) * 400 <= len(u.samples) <= n * 960 + (n + 1) * 2400
        lengths.append(n)
    assert set(lengths) == set(range(1, 8))
    fixed = connected_set(pool, 6, seed=1, c=c)
    assert [u.speaker for u in fixed] == ["ann", "bob"] * 3


def test_noise_is_added_at_the_requested_snr(fsdd):
    pool = split_fsdd(load_fsdd(fsdd), "official")["train"]
    table = training_table(pool)
    c = ConnectedConfig(noise=True, snr_min=10.0, snr_max=10.0, pause_min=0.0, pause_max=0.0)
    clean = connected_utterance(table, 4, seed=0, c=c)  # augment off: no noise
    noisy = connected_utterance(table, 4, seed=0, c=c, augment=True)
    assert clean.digits == noisy.digits
    noise = noisy.samples.astype(np.float64) - clean.samples
    snr = 10 * np.log10(np.mean(clean.samples.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)


def test_acoustic_model_ignores_padding_and_subsamples():
    torch.manual_seed(0)
    model = AcousticModel(AcousticConfig(n_features=6, hidden=8, layers=2, stack=3, dropout=0.0)).double().eval()
    a, b = torch.randn(10, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    x = torch.zeros(2, 10, 6, dtype=torch.float64)
    x[0], x[1, :7] = a, b
    x[1, 7:] = 99.0  # garbage in the padding must not matter
    log_probs, out_lengths = model(x, torch.tensor([10, 7]))
    assert out_lengths.tolist() == [4, 3] and log_probs.shape == (2, 4, 11)
    alone, _ = model(b.unsqueeze(0), torch.tensor([7]))
    torch.testing.assert_close(log_probs[1, :3], alone[0])
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 4, dtype=torch.float64))
    # frame stacking by hand: step 1 of sequence 0 reads frames 3, 4, 5
    torch.testing.assert_close(model.stack_frames(x)[0, 1], torch.cat([a[3], a[4], a[5]]))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8])
def test_conv_front_end_lengths_padding_and_size(k):
    torch.manual_seed(k)
    config = AcousticConfig(n_features=5, hidden=4, layers=1, stack=k, frontend="conv", conv_channels=7, dropout=0.0)
    model = AcousticModel(config).double().eval()
    s1, s2 = conv_strides(k)
    assert s1 * s2 == k and (k == 1 or s1 > 1)
    kernels = [max(3, 2 * (s // 2) + 1) for s in (s1, s2)]
    assert [c.kernel_size[0] for c in model.frontend.convs] == kernels
    conv_params = 5 * 7 * kernels[0] + 7 + 7 * 7 * kernels[1] + 7
    assert sum(p.numel() for p in model.frontend.parameters()) == conv_params
    stacking = AcousticModel(AcousticConfig(n_features=5, hidden=4, layers=1, stack=k, dropout=0.0))
    rnn = lambda m: sum(p.numel() for p in m.rnn.parameters())  # noqa: E731
    assert rnn(model) - rnn(stacking) == 3 * 2 * 4 * (7 - 5 * k)  # GRU input weights, both directions
    for T in range(1, 3 * k + 4):  # ceil(T / k) frames come out of the convolutions, as the formula says
        x = torch.randn(1, T, 5, dtype=torch.float64)
        out, lengths = model.frontend(x, torch.tensor([T]))
        assert out.shape == (1, -(-T // k), 7) and lengths.tolist() == [-(-T // k)]
        assert model.output_lengths(torch.tensor([T])).tolist() == [-(-T // k)]
    a, b = torch.randn(3 * k + 2, 5, dtype=torch.float64), torch.randn(k + 1, 5, dtype=torch.float64)
    x = torch.full((2, len(a), 5), 99.0, dtype=torch.float64)  # garbage in the padding must not matter
    x[0], x[1, :len(b)] = a, b
    log_probs, out_lengths = model(x, torch.tensor([len(a), len(b)]))
    alone, alone_lengths = model(b.unsqueeze(0), torch.tensor([len(b)]))
    assert out_lengths[1] == alone_lengths[0] == alone.shape[1]
    torch.testing.assert_close(log_probs[1, :alone.shape[1]], alone[0])


def test_ctc_frames_needed():
    assert frames_needed([]) == 0 and frames_needed([3]) == 1 and frames_needed([1, 2, 3]) == 3
    assert frames_needed([1, 1, 2, 2, 2]) == 8  # a blank between equal neighbours: 5 labels + 3
    ctc = torch.nn.CTCLoss(blank=0, reduction="sum")
    for labels in ([1, 1, 2], [3, 4, 5], [7, 7, 7, 7]):
        need = frames_needed(labels)
        for T in (need - 1, need):  # CTC itself: impossible (infinite loss) one frame short, possible at need
            log_probs = torch.randn(T, 1, 11).log_softmax(-1)
            loss = ctc(log_probs, torch.tensor([labels]), torch.tensor([T]), torch.tensor([len(labels)]))
            assert torch.isinf(loss) == (T < need)


def test_scores_by_hand():
    s = score([[1, 2, 3], [4]], [[1, 3], [4, 4]])
    assert s["der"] == pytest.approx(2 / 4) and s["deletions"] == pytest.approx(1 / 4)
    assert s["insertions"] == pytest.approx(1 / 4) and s["ser"] == 1.0
    assert score([[5, 5]], [[]])["der"] == 1.0
    m = digit_confusion([[1, 2, 3], [4]], [[1, 7, 3], [4, 4]])
    assert m[1, 1] == m[3, 3] == m[4, 4] == 1 and m[2, 7] == 1 and m[10, 4] == 1 and m.sum() == 5
    assert encode_digits([0, 9]) == [1, 10]


def test_perturbed_recording_speed_and_noise(fsdd):
    r = load_fsdd(fsdd)[3]
    assert np.array_equal(perturbed_recording(r, np.random.default_rng(0), ConnectedConfig()), r.samples)
    n = len(r.samples)
    for change in (0.1, 0.2):
        c = ConnectedConfig(speed=True, speed_change=change)
        lengths = {len(perturbed_recording(r, np.random.default_rng(k), c)) for k in range(40)}
        assert lengths == {int(np.ceil(n / f)) for f in (1 - change, 1.0, 1 + change)}  # played faster or slower
    noisy = perturbed_recording(r, np.random.default_rng(1), ConnectedConfig(noise=True, snr_min=20.0, snr_max=20.0))
    noise = noisy.astype(np.float64) - r.samples
    assert 10 * np.log10(np.mean(r.samples.astype(np.float64) ** 2) / np.mean(noise ** 2)) == pytest.approx(20, abs=0.3)


def _isolated(fsdd, connected=ConnectedConfig(), augment=AugmentConfig(), seed=0):
    pool = split_fsdd(load_fsdd(fsdd), "official")["train"]
    fc = FeatureConfig(n_mels=12)
    clean = [stacked(features(r.samples, fc), 2) for r in pool]
    sets = {"train": SequenceSet(clean, np.array([r.digit for r in pool]), [str(d) for d in range(10)])}
    return IsolatedSpeechTask(sets, pool, fc, connected, augment, stack=2, batch_size=8, seed=seed), clean


def test_isolated_augmentation_is_fresh_each_epoch_and_reproducible(fsdd):
    plain, clean = _isolated(fsdd)
    first = next(iter(plain.train_batches(0)))
    i = np.random.default_rng((0, 0)).permutation(len(clean))[0]
    assert torch.equal(first["x"][0, :len(clean[i])], torch.from_numpy(clean[i]))  # no augmentation: the set as is
    on = (ConnectedConfig(speed=True, noise=True), AugmentConfig(spec_augment=True))
    one, again = list(_isolated(fsdd, *on)[0].train_batches(1)), list(_isolated(fsdd, *on)[0].train_batches(1))
    assert len(one) == len(list(plain.train_batches(1))) == 5
    for p, q, r in zip(one, again, plain.train_batches(1)):
        assert torch.equal(p["x"], q["x"]) and torch.equal(p["y"], r["y"])  # reproducible; same order as without
    assert not torch.equal(one[0]["x"], next(iter(_isolated(fsdd, *on)[0].train_batches(2)))["x"])  # a new epoch
    assert len({int(n) for b in one for n in b["lengths"]}) > 1  # speeds differ, so do the lengths
    assert json.loads(_isolated(fsdd, *on)[0].checkpoint_files()["speech.json"])["stack"] == 2


def _task(fsdd, seed=0, augment=AugmentConfig(spec_augment=True)):
    splits = split_fsdd(load_fsdd(fsdd), "official")
    c = ConnectedConfig(max_digits=3, speed=True, noise=True)
    evals = {"valid": connected_set(splits["valid"], 4, 1, c)}
    return SpeechTask(splits["train"], evals, FeatureConfig(n_mels=12), c, augment, utterances=12, batch_size=4,
                      seed=seed)


def test_task_batches_are_deterministic_and_ctc_ready(fsdd):
    one, two = list(_task(fsdd).train_batches(2)), list(_task(fsdd).train_batches(2))
    assert len(one) == 3
    for p, q in zip(one, two):
        for key in p:
            assert torch.equal(p[key], q[key])
    batch = one[0]
    assert batch["x"].shape[2] == 12 and int(batch["target_lengths"].sum()) == len(batch["targets"])
    assert 1 <= int(batch["targets"].min()) and int(batch["targets"].max()) <= 10  # never the blank
    assert not torch.equal(one[0]["x"], list(_task(fsdd).train_batches(3))[0]["x"])  # fresh data each epoch


def _train(fsdd, run_dir, max_steps, resume=False):
    torch.manual_seed(0)
    model = AcousticModel(AcousticConfig(n_features=12, hidden=6, layers=1, dropout=0.1))
    config = TrainConfig(lr=0.01, max_epochs=3, max_steps=max_steps, progress=False, seed=0, restore_best=False)
    Trainer(model, _task(fsdd), config, run_dir=run_dir).fit(resume=resume)
    return model


def test_exact_resume(fsdd, tmp_path):
    straight = _train(fsdd, tmp_path / "a", max_steps=7)
    _train(fsdd, tmp_path / "b", max_steps=4)
    resumed = _train(fsdd, tmp_path / "b", max_steps=7, resume=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_features_of_a_whole_recording(fsdd):
    recording = load_fsdd(fsdd)[0]
    frames = features(recording.samples, FeatureConfig())
    assert frames.shape == (1 + 960 // 80, 40) and torch.isfinite(frames).all()


def test_a_run_made_before_an_option_existed_resumes_with_its_default(tmp_path):
    from dataclasses import asdict, replace

    from rnnlab.data.speech import ConnectedConfig
    from rnnlab.errors import ConfigError
    from rnnlab.rundir import prepare_run_dir
    from rnnlab.runs.speech import SpeechRunConfig, _check_resumable
    from rnnlab.tasks.speech import AugmentConfig

    model = AcousticConfig(n_features=40, n_labels=11)
    config = {"run": asdict(SpeechRunConfig()), "model": asdict(model), "features": asdict(FeatureConfig()),
              "connected": asdict(ConnectedConfig()), "augment": asdict(AugmentConfig()), "seed": 0}
    old = {**config, "model": {k: v for k, v in config["model"].items() if k != "frontend"},
           "run": {k: v for k, v in config["run"].items() if k != "schedule"}}  # written before those options
    prepare_run_dir(tmp_path / "run", kind="speech", config=old)
    _check_resumable(tmp_path / "run", config)  # the defaults are what the old run did: accepted
    conv = {**config, "model": asdict(replace(model, frontend="conv"))}
    with pytest.raises(ConfigError, match="model.frontend"):
        _check_resumable(tmp_path / "run", conv)
