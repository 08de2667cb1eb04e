"""Decoding CTC outputs: best path (greedy), prefix beam search, and forced alignment.

CTC (Graves et al. 2006) gives per-frame log-probabilities ``log y[t, k]`` over the labels plus a
blank. A *path* π picks one symbol per frame; the collapse B(π) merges repeats and then removes
blanks (``a a - a b -`` -> ``a a b``). The probability of a labelling l is the sum over its paths::

    p(l | x) = sum_{π : B(π) = l} prod_t y[t, π_t]

* :func:`greedy_decode` (best path): B(argmax_k y[t, k] for each t). Fast; the labelling of the most
  probable *path*, not necessarily the most probable labelling.
* :func:`prefix_beam_search`: keeps the ``beam`` most probable prefixes, each with the probability of
  its paths ending in blank (p_b) and in its last label (p_nb), and extends them frame by frame
  (Hannun et al. 2014, without a language model). A repeated label extends the prefix only after a
  blank. With a beam as large as the number of prefixes it is exact (the test checks it against
  brute force). ``beam=1`` keeps one prefix but still sums the paths that reach it, so it equals
  best-path decoding when each frame is confident (as trained CTC outputs are), not in general.
* :func:`align` (Viterbi forced alignment): the most probable path of a given labelling, hence each
  label's frames — used for per-label confidence (the highest posterior in its frames) and plots.
* :func:`log_likelihood` (the CTC forward algorithm): ``log p(l | x)`` of a given labelling, summed
  over all its paths in the log domain over the blank-extended sequence ``- l1 - l2 ... -``::

      alpha[t, s] = (alpha[t-1, s] ⊕ alpha[t-1, s-1] ⊕ alpha[t-1, s-2]) + log y[t, ext_s]
      (the s-2 term only when ext_s is a label different from ext_{s-2}); log p(l|x) = alpha[T-1, S-1] ⊕ alpha[T-1, S-2]

* :func:`combine` (an ensemble of CTC models): the candidate labelling with the highest *product* of
  the models' probabilities, ``argmax_l sum_m log p_m(l | x)``, over the models' own decodings. Averaging
  the models' frame posteriors instead fails: separately trained CTC models put their label spikes
  on different frames, and the average is blank nearly everywhere.

Every function takes one utterance ``log_probs (T, C)`` (numpy or torch, natural log) and works in
float64 numpy.
"""
from __future__ import annotations

import math

import numpy as np

from rnnlab.errors import ConfigError, DataError, InputShapeError

__all__ = ["greedy_decode", "prefix_beam_search", "align", "label_confidences", "collapse", "frames_needed",
           "log_likelihood", "combine"]


def _array(log_probs) -> np.ndarray:
    if hasattr(log_probs, "detach"):
        log_probs = log_probs.detach().cpu().numpy()
    a = np.asarray(log_probs, dtype=np.float64)
    if a.ndim != 2:
        raise InputShapeError(f"expected log-probabilities of shape (T, C); got {a.shape}")
    return a


def collapse(path, blank: int = 0) -> list[int]:
    """B(π): merge repeated symbols, then drop blanks."""
    out, previous = [], None
    for k in path:
        k = int(k)
        if k != previous and k != blank:
            out.append(k)
        previous = k
    return out


def frames_needed(labels) -> int:
    """Fewest frames on which CTC can emit ``labels``: one per label plus a blank between equal neighbours."""
    labels = list(labels)
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def greedy_decode(log_probs, blank: int = 0) -> list[int]:
    """The labelling of the most probable path (best-path decoding)."""
    return collapse(_array(log_probs).argmax(axis=1), blank)


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def prefix_beam_search(log_probs, beam: int = 8, blank: int = 0, prune: float = -12.0) -> tuple[list[int], float]:
    """The most probable labelling found by prefix beam search, and its log-probability ``log p(l|x)``.

    ``prune``: symbols with ``log y[t, k] < prune`` are not tried as extensions at frame t (they
    cannot change the result noticeably; set ``-inf`` for an exhaustive search).
    """
    y = _array(log_probs)
    if beam < 1:
        raise ConfigError(f"beam must be >= 1, got {beam}")
    neg = -math.inf
    beams: dict[tuple, list[float]] = {(): [0.0, neg]}  # prefix -> [log p_b, log p_nb]
    for t in range(y.shape[0]):
        row = y[t]
        candidates = [k for k in range(y.shape[1]) if k != blank and row[k] >= prune]
        nxt: dict[tuple, list[float]] = {}

        def entry(prefix):
            return nxt.setdefault(prefix, [neg, neg])

        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            e = entry(prefix)  # stay: a blank, or repeat the last label without a blank between
            e[0] = _logadd(e[0], total + row[blank])
            if prefix:
                e[1] = _logadd(e[1], pnb + row[prefix[-1]])
            for k in candidates:
                extended = entry(prefix + (k,))
                if prefix and k == prefix[-1]:  # "a a" needs a blank between: only paths ending in blank
                    extended[1] = _logadd(extended[1], pb + row[k])
                else:
                    extended[1] = _logadd(extended[1], total + row[k])
        ranked = sorted(nxt.items(), key=lambda item: _logadd(*item[1]), reverse=True)
        beams = dict(ranked[:beam])
    best, (pb, pnb) = max(beams.items(), key=lambda item: _logadd(*item[1]))
    return list(best), _logadd(pb, pnb)


def align(log_probs, labels, blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The most probable path of ``labels`` (Viterbi over the blank-extended sequence
    ``- l1 - l2 ... - ``): its symbol per frame ``(T,)`` and its state per frame ``(T,)`` (state
    2i + 1 is label i, even states are blanks).

    Raises DataError when the labelling needs more frames than there are.
    """
    y = _array(log_probs)
    T = y.shape[0]
    ext = [blank]
    for k in labels:
        ext += [int(k), blank]
    S = len(ext)
    needed = frames_needed(labels)
    if needed > T:
        raise DataError(f"a labelling of {len(labels)} symbols needs at least {needed} frames; got {T}")
    ext_array = np.array(ext)
    skip = np.zeros(S, dtype=bool)  # may come from s - 2: a label unlike the one before the blank
    skip[2:] = (ext_array[2:] != blank) & (ext_array[2:] != ext_array[:-2])
    score = np.full((T, S), -np.inf)
    back = np.zeros((T, S), dtype=np.int64)
    score[0, 0] = y[0, ext[0]]
    if S > 1:
        score[0, 1] = y[0, ext[1]]
    states = np.arange(S)
    for t in range(1, T):
        options = np.full((3, S), -np.inf)  # from s (stay), s - 1, s - 2; ties go to the nearer state
        options[0] = score[t - 1]
        options[1, 1:] = score[t - 1, :-1]
        options[2, 2:] = np.where(skip[2:], score[t - 1, :-2], -np.inf)
        step = options.argmax(axis=0)
        score[t] = options[step, states] + y[t, ext_array]
        back[t] = states - step
    s = S - 1 if S == 1 or score[T - 1, S - 1] >= score[T - 1, S - 2] else S - 2
    path = np.zeros(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = s
        s = back[t, s]
    return np.array([ext[s] for s in path]), path


def label_confidences(log_probs, labels, blank: int = 0) -> tuple[list[float], list[tuple[int, int]]]:
    """Per label: the highest posterior over the frames the forced alignment gives it, and those
    frames as ``(first, last)``."""
    y = _array(log_probs)
    if not labels:
        return [], []
    _, states = align(y, labels, blank)
    confidences, spans = [], []
    for i, k in enumerate(labels):
        frames = np.nonzero(states == 2 * i + 1)[0]
        confidences.append(float(np.exp(y[frames, k].max())))
        spans.append((int(frames[0]), int(frames[-1])))
    return confidences, spans


def log_likelihood(log_probs, labels, blank: int = 0) -> float:
    """``log p(labels | x)`` under CTC (the forward algorithm, see the module docstring); ``-inf`` when the
    labelling needs more frames than there are."""
    y = _array(log_probs)
    ext = [blank]
    for k in labels:
        ext += [int(k), blank]
    ext = np.array(ext)
    T, S = y.shape[0], len(ext)
    if frames_needed(labels) > T:
        return -math.inf
    skip = np.zeros(S, dtype=bool)  # may come from s - 2: a label unlike the one before the blank
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    alpha = np.full(S, -np.inf)
    alpha[:2] = y[0, ext[:2]]
    for t in range(1, T):
        stay, step, jump = alpha, np.full(S, -np.inf), np.full(S, -np.inf)
        step[1:] = alpha[:-1]
        jump[2:] = np.where(skip[2:], alpha[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, step), jump) + y[t, ext]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if S > 1 else alpha[-1])


def combine(log_probs_per_model, candidates, blank: int = 0) -> tuple[list[int], list[float]]:
    """The candidate labelling with the highest summed log-likelihood over the models (ties: the first
    candidate), and each candidate's sum. ``log_probs_per_model``: one ``(T_m, C)`` array per model for the
    same utterance (frame counts may differ); ``candidates``: labellings, e.g. each model's own decoding."""
    candidates = [list(c) for c in candidates]
    if not candidates:
        raise ConfigError("combine needs at least one candidate labelling")
    models = [_array(lp) for lp in log_probs_per_model]
    if not models:
        raise ConfigError("combine needs the log-probabilities of at least one model")
    totals = [sum(log_likelihood(lp, c, blank) for lp in models) for c in candidates]
    return candidates[int(np.argmax(totals))], totals
