"""Audio in, features out: WAV reading, resampling, log-mel filterbanks and MFCCs.

Reading (:func:`read_audio`) goes through ``soundfile`` (libsndfile): any format it reads (WAV, FLAC,
OGG, ...) at any sample rate. Stereo or multichannel audio is **mixed down** to mono (the mean of the
channels) and a different sample rate is **resampled** to the model's rate with a polyphase
anti-aliasing filter (:func:`resample`, ``scipy.signal.resample_poly``); :class:`Audio` records both,
so a command can say so. A file that is missing, empty, not audio, has a truncated header or holds
no samples raises :class:`~rnnlab.errors.DataError` naming the file.

Features (:func:`log_mel`, :func:`mfcc`), for a waveform ``x (N,)`` at rate ``sr``::

    X[f, t]   = sum_n w[n] x[t·hop + n − n_fft/2] e^{−2πi f n / n_fft}     torch.stft, Hann window of
                                                                            win_length zero-padded to n_fft,
                                                                            centred frames, zero padding
    M[m, t]   = sum_f B[m, f] |X[f, t]|²                                    B: mel filterbank (n_mels, n_fft/2+1)
    L[m, t]   = max(10 log10(max(M[m, t], 1e-10)), max_{m,t} L − top_db)     log-mel in dB, floored top_db
                                                                            below the utterance's loudest
    C[k, t]   = DCT-II(L[:, t])[k],  k < n_mfcc (orthonormal)               MFCC

:func:`mel_filterbank` builds Slaney's filterbank (Auditory Toolbox: linear below 1 kHz, logarithmic
above — librosa's default) or HTK's (mel = 2595 log10(1 + f/700)), each triangle scaled to unit area; ``tests/test_audio.py`` checks both and the features against ``librosa``. Output frames are
``(T, F)`` (time first, as the recurrent layers read them) with ``T = 1 + N // hop``.

:func:`normalize` is per-utterance mean/variance normalisation (each feature to zero mean, unit
variance over the utterance's frames); :func:`spec_augment` masks random time and frequency bands
(Park et al. 2019) with the normalised mean, 0.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from rnnlab.config import option
from rnnlab.errors import DataError

__all__ = ["Audio", "FeatureConfig", "read_audio", "resample", "mel_filterbank", "power_spectrogram", "log_mel",
           "mfcc", "features", "normalize", "spec_augment"]


@dataclass
class Audio:
    """A mono waveform in [-1, 1] and where it came from."""

    samples: np.ndarray        # (N,) float32
    rate: int                  # sample rate of ``samples``
    source_rate: int           # sample rate of the file
    channels: int              # channels in the file (mixed down to one)
    path: str = ""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def notes(self) -> list[str]:
        """What was done to the file on the way in, in words ([] when nothing was)."""
        said = []
        if self.channels > 1:
            said.append(f"{self.channels} channels mixed down to mono")
        if self.source_rate != self.rate:
            said.append(f"resampled from {self.source_rate} Hz to {self.rate} Hz")
        return said


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``samples (N,)`` from ``source_rate`` to ``target_rate`` (polyphase FIR, Kaiser window).

    The ratio is reduced exactly (44100 -> 8000 is up 80, down 441); the output has
    ``ceil(N · target / source)`` samples.
    """
    if source_rate <= 0 or target_rate <= 0:
        raise DataError(f"sample rates must be positive; got {source_rate} -> {target_rate}")
    if source_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(int(target_rate), int(source_rate))
    return resample_poly(np.asarray(samples, dtype=np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


def read_audio(path: str | os.PathLike, rate: int | None = None) -> Audio:
    """Read an audio file as mono float32 at ``rate`` (the file's own rate if None)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file {path} does not exist (expected a WAV file)")
    if path.stat().st_size == 0:
        raise DataError(f"audio file {path} is empty (0 bytes); expected a WAV file")
    try:
        data, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError, TypeError) as error:  # not audio, bad header
        reason = str(error).split(":")[-1].strip() or type(error).__name__
        raise DataError(f"cannot read {path} as audio ({reason}); expected a WAV file") from None
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} holds 0 samples; expected a recording")
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    target = int(source_rate) if rate is None else int(rate)
    return Audio(resample(samples, int(source_rate), target), target, int(source_rate), data.shape[1], str(path))


# ----------------------------------------------------------------------------- mel scale
def hz_to_mel(f, htk: bool = False):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0  # Slaney: linear to 1 kHz (15 mels), then 27 mels per factor 6.4
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m, htk: bool = False):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(rate: int, n_fft: int, n_mels: int, *, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (float64).

    Centres are ``n_mels + 2`` points equally spaced in mel between ``fmin`` and ``fmax`` (default
    ``rate / 2``); filter m rises from centre m to m+1 and falls to m+2. Slaney (``htk=False``):
    each filter is scaled by ``2 / (f_{m+2} − f_m)`` (unit area) on either scale, as librosa does.
    """
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise DataError(f"mel band must satisfy 0 <= fmin < fmax <= rate/2 = {rate / 2}; got {fmin}..{fmax}")
    fft_hz = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower, upper = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


# ----------------------------------------------------------------------------- features
@dataclass
class FeatureConfig:
    """How a waveform becomes frames (stored with the model, so transcription computes the same)."""

    rate: int = option(8000, "sample rate of the model (input audio is resampled to it)", min=1000)
    kind: str = option("logmel", "input features", choices=("logmel", "mfcc"), flag="--features")
    n_mels: int = option(40, "mel bands", min=1)
    n_mfcc: int = option(13, "cepstral coefficients kept (--features mfcc)", min=1)
    win_ms: float = option(25.0, "analysis window in milliseconds", min=1.0)
    hop_ms: float = option(10.0, "frame shift in milliseconds", min=1.0)
    htk: bool = option(False, "HTK mel scale instead of Slaney's (librosa's default)")
    # 30 dB, not librosa's 80: recordings differ in background level (FSDD: the quietest frames of a
    # speaker's median recording lie 18-50 dB below its loudest), and a floor above every background makes
    # unseen voices look alike (benchmarks/results/speech.md, "Front-ends on unseen voices").
    top_db: float | None = option(30.0, "floor of the log-mel energies below the utterance's loudest, dB: "
                                        "backgrounds quieter than this all look the same (librosa uses 80)",
                                  min=1.0)
    normalize: bool = option(True, "per-utterance mean/variance normalisation of each feature")

    @property
    def win_length(self) -> int:
        return int(round(self.rate * self.win_ms / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << max(0, self.win_length - 1).bit_length()  # next power of two >= the window

    @property
    def size(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


_BANKS: dict[tuple, torch.Tensor] = {}


def _bank(c: FeatureConfig) -> torch.Tensor:
    key = (c.rate, c.n_fft, c.n_mels, c.htk)
    if key not in _BANKS:
        _BANKS[key] = torch.from_numpy(mel_filterbank(c.rate, c.n_fft, c.n_mels, htk=c.htk))
    return _BANKS[key]


def power_spectrogram(samples, c: FeatureConfig, dtype=torch.float32) -> torch.Tensor:
    """``|STFT|²`` as ``(n_fft // 2 + 1, T)``, centred frames with zero padding."""
    x = torch.as_tensor(np.asarray(samples), dtype=dtype)
    window = torch.hann_window(c.win_length, periodic=True, dtype=dtype)
    spec = torch.stft(x, c.n_fft, hop_length=c.hop, win_length=c.win_length, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    return spec.real ** 2 + spec.imag ** 2


def log_mel(samples, c: FeatureConfig, dtype=torch.float32) -> torch.Tensor:
    """Log-mel energies in dB, ``(T, n_mels)`` (librosa's ``power_to_db(S, amin=1e-10, top_db=c.top_db)``)."""
    mel = _bank(c).to(dtype) @ power_spectrogram(samples, c, dtype)  # (n_mels, T)
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    if c.top_db is not None:
        db = db.clamp_min(float(db.max()) - c.top_db)
    return db.T


def _dct_matrix(n_in: int, n_out: int, dtype) -> torch.Tensor:
    """Orthonormal DCT-II as a matrix ``(n_in, n_out)``: C = L @ D."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    d = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / n_in)
    d[:, 0] /= math.sqrt(2.0)
    return d.to(dtype)


def mfcc(samples, c: FeatureConfig, dtype=torch.float32) -> torch.Tensor:
    """MFCCs ``(T, n_mfcc)``: the orthonormal DCT-II of the dB log-mel energies."""
    if c.n_mfcc > c.n_mels:
        raise DataError(f"n_mfcc must be <= n_mels ({c.n_mels}); got {c.n_mfcc}")
    return log_mel(samples, c, dtype) @ _dct_matrix(c.n_mels, c.n_mfcc, dtype)


def normalize(frames: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each feature to zero mean and unit variance over the utterance's frames ``(T, F)``."""
    mean = frames.mean(dim=0, keepdim=True)
    std = frames.std(dim=0, unbiased=False, keepdim=True)
    return (frames - mean) / (std + eps)


def features(samples, c: FeatureConfig) -> torch.Tensor:
    """The model's input frames ``(T, c.size)`` for a waveform at ``c.rate``."""
    if len(samples) == 0:
        raise DataError("cannot compute features of an empty waveform (0 samples)")
    frames = mfcc(samples, c) if c.kind == "mfcc" else log_mel(samples, c)
    return normalize(frames) if c.normalize else frames


def spec_augment(frames: torch.Tensor, rng: np.random.Generator, *, time_masks: int = 2, time_width: int = 10,
                 freq_masks: int = 2, freq_width: int = 8) -> torch.Tensor:
    """A copy of ``frames (T, F)`` with ``time_masks`` bands of up to ``time_width`` frames and
    ``freq_masks`` bands of up to ``freq_width`` features set to 0 (the normalised mean)."""
    out = frames.clone()
    T, F = out.shape
    for _ in range(freq_masks):
        width = int(rng.integers(0, min(freq_width, F) + 1))
        start = int(rng.integers(0, F - width + 1))
        out[:, start:start + width] = 0.0
    for _ in range(time_masks):
        width = int(rng.integers(0, min(time_width, max(T // 5, 1)) + 1))  # never more than a fifth
        start = int(rng.integers(0, T - width + 1))
        out[start:start + width, :] = 0.0
    return out
