"""Audio reading, resampling and features, against librosa / soxr and hand-made files."""
import numpy as np
import pytest
import soundfile
import torch

from rnnlab.data.audio import (
    FeatureConfig,
    features,
    log_mel,
    mel_filterbank,
    mfcc,
    normalize,
    read_audio,
    resample,
    spec_augment,
)
from rnnlab.errors import DataError

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("rate,n_fft,n_mels", [(8000, 256, 40), (16000, 512, 80), (8000, 512, 23)])
def test_mel_filterbank_equals_librosa(rate, n_fft, n_mels, htk):
    ours = mel_filterbank(rate, n_fft, n_mels, htk=htk)
    theirs = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, htk=htk, dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


def _librosa_db_mel(x, c: FeatureConfig):
    S = librosa.feature.melspectrogram(y=x, sr=c.rate, n_fft=c.n_fft, hop_length=c.hop, win_length=c.win_length,
                                       window="hann", center=True, pad_mode="constant", power=2.0, n_mels=c.n_mels,
                                       htk=c.htk)
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=c.top_db)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(rate=16000, n_mels=64, win_ms=20, hop_ms=8, htk=True,
                                                                   top_db=None), FeatureConfig(top_db=30.0)])
def test_log_mel_and_mfcc_equal_librosa(config):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.37 * config.rate)) / config.rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))  # a tone in noise, odd length
    x[len(x) // 2:len(x) // 2 + 600] = 0.0  # digital silence: the floor decides these frames
    ours = log_mel(x, config, torch.float64).numpy()
    reference = _librosa_db_mel(x, config)
    assert ours.shape == reference.T.shape == (1 + len(x) // config.hop, config.n_mels)
    np.testing.assert_allclose(ours, reference.T, atol=1e-6)
    cepstra = mfcc(x, config, torch.float64).numpy()
    np.testing.assert_allclose(cepstra, librosa.feature.mfcc(S=reference, n_mfcc=config.n_mfcc).T, atol=1e-6)


def test_normalize_and_features_shapes():
    x = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    frames = features(x, FeatureConfig(kind="mfcc"))
    assert frames.shape == (51, 13)
    torch.testing.assert_close(frames.mean(0), torch.zeros(13), atol=1e-4, rtol=0)
    torch.testing.assert_close(frames.std(0, unbiased=False), torch.ones(13), atol=1e-3, rtol=0)
    raw = torch.randn(30, 5, dtype=torch.float64) * 7 + 3
    n = normalize(raw, eps=0.0)
    torch.testing.assert_close(n * raw.std(0, unbiased=False) + raw.mean(0), raw)


def test_default_floor_hides_the_background_level():
    """The same tone over a quiet (-80 dB) or a louder (-50 dB) hiss: with the default 30 dB floor both
    backgrounds sit on the floor and the log-mel frames agree; librosa's 80 dB floor tells them apart."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    envelope = np.clip(np.sin(np.pi * (t - 0.25) / 0.5), 0, None) * ((t > 0.25) & (t < 0.75))  # no clicks
    tone = 0.5 * envelope * np.sin(2 * np.pi * 440 * t)
    hiss = rng.standard_normal(8000)
    quiet, loud = tone + 0.5e-4 * hiss, tone + 1.6e-3 * hiss
    assert FeatureConfig().top_db == 30.0
    floor = float(log_mel(quiet, FeatureConfig()).max()) - 30.0
    background = log_mel(quiet, FeatureConfig())[:10]  # the first 0.1 s: hiss only
    assert torch.allclose(background, torch.full_like(background, floor))
    same = log_mel(quiet, FeatureConfig()) - log_mel(loud, FeatureConfig())
    assert same.abs().max() < 0.1  # dB
    apart = log_mel(quiet, FeatureConfig(top_db=80.0)) - log_mel(loud, FeatureConfig(top_db=80.0))
    assert apart.abs().max() > 20.0


def test_spec_augment_masks_bands_deterministically():
    frames = torch.ones(100, 40)
    a = spec_augment(frames, np.random.default_rng(3), time_masks=2, time_width=10, freq_masks=2, freq_width=8)
    b = spec_augment(frames, np.random.default_rng(3), time_masks=2, time_width=10, freq_masks=2, freq_width=8)
    assert torch.equal(a, b) and torch.equal(frames, torch.ones(100, 40))  # a copy, the input untouched
    zero_rows = int((a == 0).all(dim=1).sum())
    zero_cols = int((a == 0).all(dim=0).sum())
    assert 0 < zero_rows <= 20 and 0 < zero_cols <= 16
    assert torch.equal(spec_augment(frames, np.random.default_rng(0), time_masks=0, freq_masks=0), frames)


def test_resample_matches_soxr_and_the_analytic_tone():
    soxr = pytest.importorskip("soxr")
    for source, target in [(16000, 8000), (44100, 8000), (11025, 8000), (8000, 16000)]:
        t = np.arange(int(0.5 * source)) / source
        x = np.sin(2 * np.pi * 440 * t)
        y = resample(x, source, target)
        assert len(y) == int(np.ceil(len(x) * target / source))
        inner = slice(200, len(y) - 200)  # away from the filters' edge effects
        expected = np.sin(2 * np.pi * 440 * np.arange(len(y)) / target)
        np.testing.assert_allclose(y[inner], expected[inner], atol=2e-3)
        theirs = soxr.resample(x, source, target, quality="VHQ")
        n = min(len(y), len(theirs))
        np.testing.assert_allclose(y[200:n - 200], theirs[200:n - 200], atol=2e-3)
    assert resample(np.ones(5), 8000, 8000).dtype == np.float32


def test_read_audio_resamples_and_mixes_down(tmp_path):
    rate = 16000
    t = np.arange(rate // 2) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 300 * t), 0.1 * np.sin(2 * np.pi * 300 * t)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")
    audio = read_audio(path, 8000)
    assert audio.rate == 8000 and audio.source_rate == rate and audio.channels == 2
    assert len(audio.samples) == 4000 and audio.samples.dtype == np.float32
    expected = 0.3 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000)
    np.testing.assert_allclose(audio.samples[100:-100], expected[100:-100], atol=2e-3)
    assert audio.notes() == ["2 channels mixed down to mono", "resampled from 16000 Hz to 8000 Hz"]
    same = read_audio(path)
    assert same.rate == rate and len(same.samples) == rate // 2


def _bad_files(tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, np.zeros(800), 8000, subtype="PCM_16")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("these are not the samples you are looking for\n" * 10)
    (tmp_path / "truncated.wav").write_bytes(good.read_bytes()[:20])
    soundfile.write(tmp_path / "silent.wav", np.zeros((0, 1)), 8000, subtype="PCM_16")
    return {"missing.wav": "does not exist", "empty.wav": "empty", "text.wav": "cannot read",
            "truncated.wav": "cannot read", "silent.wav": "0 samples"}


def test_every_bad_audio_file_names_itself(tmp_path):
    for name, words in _bad_files(tmp_path).items():
        with pytest.raises(DataError, match=words) as caught:
            read_audio(tmp_path / name, 8000)
        message = str(caught.value)
        assert str(tmp_path / name) in message and "\n" not in message
