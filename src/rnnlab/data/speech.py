"""Spoken digits: the Free Spoken Digit Dataset, its splits, and connected digits made from it.

FSDD (``recordings/{digit}_{speaker}_{take}.wav``: 8 kHz mono, six speakers, 50 takes of each digit)
is read once into memory (:func:`load_fsdd`, about 12 MB of float32). Splits (:func:`split_fsdd`):

* ``official``: takes 0–4 are the test set (the dataset README's split). Validation, for early
  stopping and model choice, is carved from the training takes: takes 5–9; training uses takes 10–49.
* ``speaker:NAME`` (held-out speaker): NAME's 500 recordings are the test set; the other five
  speakers give validation (their takes 0–4, i.e. seen speakers) and training (their takes 5–49).
  Nothing of NAME is used for any choice. ``speaker:NAME/without:OTHER`` also leaves OTHER out of
  training and validation (nested leave-one-speaker-out: choose settings without the outer test voice).

Connected digits (:func:`connected_utterance`): 1–7 digits drawn uniformly (length uniform in
1..7), each a random recording *of one speaker* from the split's pool, joined with pauses of
``U(pause_min, pause_max)`` seconds (also before the first and after the last digit), each
recording scaled to a common RMS, and optionally white noise at an SNR drawn from ``snr_db``.
Everything is drawn from ``numpy.random.default_rng((seed, index))``: utterance ``index`` of a
seed is always the same, whatever was drawn before it. Fixed evaluation sets (:func:`connected_set`)
cycle through the split's speakers so that each gets the same number of utterances.

Labels for CTC: blank 0, digit d -> d + 1 (:data:`BLANK`, :func:`encode_digits`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.config import option
from rnnlab.data.audio import read_audio, resample
from rnnlab.errors import DataError

__all__ = ["Recording", "Utterance", "ConnectedConfig", "load_fsdd", "split_fsdd", "connected_utterance",
           "connected_set", "isolated_set", "speed_perturb", "add_noise", "perturbed_recording", "encode_digits", "BLANK",
           "N_LABELS", "FSDD_RATE", "SPEAKERS"]

FSDD_RATE = 8000
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
BLANK, N_LABELS = 0, 11
NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass
class Recording:
    samples: np.ndarray   # (N,) float32 at FSDD_RATE
    digit: int
    speaker: str
    take: int
    path: str


@dataclass
class Utterance:
    samples: np.ndarray   # (N,) float32
    digits: list[int]
    speaker: str
    index: int = 0


@dataclass
class ConnectedConfig:
    """How connected-digit utterances are made."""

    min_digits: int = option(1, "fewest digits in a connected utterance", min=1)
    max_digits: int = option(7, "most digits in a connected utterance", min=1)
    pause_min: float = option(0.05, "shortest pause between digits, seconds", min=0.0)
    pause_max: float = option(0.3, "longest pause between digits, seconds", min=0.0)
    noise: bool = option(False, "add white noise to training utterances at an SNR from --snr-min..--snr-max")
    snr_min: float = option(10.0, "lowest signal-to-noise ratio of added noise, dB")
    snr_max: float = option(30.0, "highest signal-to-noise ratio of added noise, dB")
    speed: bool = option(False, "speed perturbation of training recordings (factor 1 - r, 1 or 1 + r, r = "
                                "--speed-change)")
    speed_change: float = option(0.1, "speed perturbation: r of the factors 1 - r, 1, 1 + r (Ko et al. 2015 use 0.1)",
                                 min=0.0, max=0.5)


def load_fsdd(root: str | os.PathLike) -> list[Recording]:
    """Every ``{digit}_{speaker}_{take}.wav`` under ``root`` (or ``root/recordings``), sorted by name."""
    root = Path(root)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    if not folder.is_dir():
        raise DataError(f"FSDD directory {root} does not exist; expected a folder of {{digit}}_{{speaker}}_{{take}}.wav "
                        f"files (or one holding recordings/)")
    recordings = []
    for path in sorted(folder.iterdir()):
        match = NAME.match(path.name)
        if match is None:
            continue
        audio = read_audio(path, FSDD_RATE)
        recordings.append(Recording(audio.samples, int(match[1]), match[2], int(match[3]), str(path)))
    if not recordings:
        raise DataError(f"{folder} holds no {{digit}}_{{speaker}}_{{take}}.wav files (e.g. 4_george_12.wav)")
    return recordings


def split_fsdd(recordings: list[Recording], split: str = "official") -> dict[str, list[Recording]]:
    """``{"train", "valid", "test"}`` lists of recordings for ``official``, ``speaker:NAME`` or
    ``speaker:NAME/without:A[,B...]`` (NAME held out and A, B... left out of everything: the inner loop of
    a nested leave-one-speaker-out, where the outer held-out voice must not help choose anything)."""
    if split == "official":
        parts = {"train": lambda r: r.take >= 10, "valid": lambda r: 5 <= r.take < 10, "test": lambda r: r.take < 5}
    elif split.startswith("speaker:"):
        held, _, rest = split.split(":", 1)[1].partition("/")
        if rest and not rest.startswith("without:"):
            raise DataError(f"split {split!r}: expected speaker:NAME/without:OTHER[,OTHER...] after the '/'")
        left_out = set(rest[len("without:"):].split(",")) if rest else set()
        speakers = sorted({r.speaker for r in recordings})
        for name in (held, *sorted(left_out)):
            if name not in speakers:
                raise DataError(f"split {split!r}: no recordings of speaker {name!r}; speakers: {', '.join(speakers)}")
        if held in left_out:
            raise DataError(f"split {split!r}: the held-out speaker {held!r} cannot also be left out")
        seen = lambda r: r.speaker != held and r.speaker not in left_out  # noqa: E731
        parts = {"train": lambda r: seen(r) and r.take >= 5, "valid": lambda r: seen(r) and r.take < 5,
                 "test": lambda r: r.speaker == held}
    else:
        raise DataError(f"unknown split {split!r}; expected 'official' or 'speaker:NAME' (e.g. speaker:lucas)")
    out = {name: [r for r in recordings if keep(r)] for name, keep in parts.items()}
    for name, items in out.items():
        if not items:
            raise DataError(f"split {split!r} leaves no {name} recordings (takes 0-4 test, 5-9 valid, 10-49 train)")
    return out


def encode_digits(digits) -> list[int]:
    """CTC labels of a digit sequence: digit d -> d + 1 (0 is the blank)."""
    return [int(d) + 1 for d in digits]


def _by_speaker(pool: list[Recording]) -> dict[str, dict[int, list[Recording]]]:
    table: dict[str, dict[int, list[Recording]]] = {}
    for r in pool:
        table.setdefault(r.speaker, {}).setdefault(r.digit, []).append(r)
    return table


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-8


def connected_utterance(table: dict, index: int, seed: int, c: ConnectedConfig, *, speaker: str | None = None,
                        augment: bool = False, rate: int = FSDD_RATE) -> Utterance:
    """Utterance ``index`` of ``seed`` from ``table`` (speaker -> digit -> recordings); see the module doc.

    ``augment`` turns on the training-only perturbations of ``c`` (speed, noise).
    """
    rng = np.random.default_rng((seed, index))
    speakers = sorted(table)
    speaker = speaker if speaker is not None else speakers[int(rng.integers(len(speakers)))]
    available = sorted(table[speaker])
    n = int(rng.integers(c.min_digits, c.max_digits + 1))
    digits = [available[int(rng.integers(len(available)))] for _ in range(n)]
    pieces = []
    for d in digits:
        pieces.append(np.zeros(int(rng.uniform(c.pause_min, c.pause_max) * rate), np.float32))
        choices = table[speaker][d]
        x = choices[int(rng.integers(len(choices)))].samples
        if augment and c.speed:
            x = speed_perturb(x, rng, rate, c.speed_change)
        pieces.append((x * (0.1 / _rms(x))).astype(np.float32))
    pieces.append(np.zeros(int(rng.uniform(c.pause_min, c.pause_max) * rate), np.float32))
    samples = np.concatenate(pieces)
    if augment and c.noise:
        samples = add_noise(samples, rng, c, speech_power=np.mean(np.concatenate(pieces[1::2]).astype(np.float64) ** 2))
    return Utterance(samples.astype(np.float32), digits, speaker, index)


def speed_perturb(x: np.ndarray, rng: np.random.Generator, rate: int = FSDD_RATE, change: float = 0.1) -> np.ndarray:
    """``x`` played at a speed drawn from ``1 - change, 1, 1 + change`` (Ko et al. 2015): resampled from
    ``rate · factor`` to ``rate``, so a factor above 1 is shorter and higher — tempo and pitch (formants)
    move together, as a shorter or longer vocal tract would move them."""
    factor = (1.0 - change, 1.0, 1.0 + change)[int(rng.integers(3))]
    return resample(x, int(round(rate * factor)), rate) if factor != 1.0 else x


def add_noise(samples: np.ndarray, rng: np.random.Generator, c: ConnectedConfig, *, speech_power: float) -> np.ndarray:
    """``samples`` plus white noise at an SNR drawn uniformly from ``c.snr_min..c.snr_max`` dB relative to
    ``speech_power`` (the mean square of the speech alone, pauses excluded)."""
    snr = rng.uniform(c.snr_min, c.snr_max)
    return samples + rng.standard_normal(len(samples)).astype(np.float32) * np.float32(
        np.sqrt(speech_power / 10 ** (snr / 10)))


def perturbed_recording(r: Recording, rng: np.random.Generator, c: ConnectedConfig, rate: int = FSDD_RATE
                        ) -> np.ndarray:
    """One training recording with the perturbations ``c`` turns on (speed, then noise), for the
    isolated-digit task; the samples unchanged when none is on."""
    x = r.samples
    if c.speed:
        x = speed_perturb(x, rng, rate, c.speed_change)
    if c.noise:
        x = add_noise(x, rng, c, speech_power=float(np.mean(x.astype(np.float64) ** 2)))
    return np.asarray(x, np.float32)


def connected_set(pool: list[Recording], n: int, seed: int, c: ConnectedConfig) -> list[Utterance]:
    """``n`` fixed utterances from ``pool``; utterance k is spoken by the (k mod S)-th speaker."""
    table = _by_speaker(pool)
    speakers = sorted(table)
    return [connected_utterance(table, k, seed, c, speaker=speakers[k % len(speakers)]) for k in range(n)]


def isolated_set(pool: list[Recording]) -> list[Utterance]:
    """Every recording of ``pool`` as a one-digit utterance (the isolated-digit task)."""
    return [Utterance(r.samples, [r.digit], r.speaker, k) for k, r in enumerate(pool)]


def training_table(pool: list[Recording]) -> dict:
    """speaker -> digit -> recordings, for drawing training utterances with :func:`connected_utterance`."""
    return _by_speaker(pool)
