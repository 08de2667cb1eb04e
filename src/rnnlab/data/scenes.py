"""Captioned scenes whose truth is known: handwritten digits or coloured shapes on a 64×64 canvas.

A scene holds 2–4 objects, one per cell of a 2×2 grid (so boxes never overlap), each jittered
inside its cell. Objects are listed in reading order (top-left, top-right, bottom-left,
bottom-right) and the caption follows a small grammar::

    caption  := object (" , " object relation)* " and " object relation
    object   := "a" size [colour] label          size: small | large; colour: shapes only
    relation := "to the right" | "below" | "below left" | "below right"

The relation of object k is where it lies relative to object k − 1, e.g. "a large 3 , a small 7 to
the right and a small 1 below left". :func:`parse_caption` reads a caption back into the same
facts :func:`scene_facts` takes from the scene (round trip: ``parse_caption(s.caption) ==
scene_facts(s.objects)``).

* **Digit scenes** use the 1,797 8×8 drawings that ship in scikit-learn (``load_digits``), split
  60/20/20 between train, valid and test scenes *by drawing*, so test digits are unseen drawings;
  each is upsampled (bilinear) to a side of 12–14 px (small) or 20–24 px (large); ink is white on black.
* **Shape scenes** render circle, square, triangle, diamond and cross in five colours with numpy.
* **Compositional split**: combinations that never occur in train/valid/test — ordered pairs of
  neighbouring digits (a, (a + k) mod 10) for one k drawn from the seed, or colour–shape pairs
  (colour_i, shape_(i+k) mod 5) — so every digit, colour and shape alone is still seen in training.

Everything is deterministic given ``(kind, split, count, seed)``. Images are ``uint8`` ``(N, 64, 64, C)``
with C = 1 (digits) or 3 (shapes); boxes are ``(top, left, bottom, right)`` in pixels, bottom/right exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rnnlab.errors import ConfigError, DataError

CANVAS, GRID = 64, 2
CELL = CANVAS // GRID
KINDS = ("digits", "shapes")
SPLITS = ("train", "valid", "test", "compositional")
SIZES = {"digits": {"small": (12, 14), "large": (20, 24)}, "shapes": {"small": (10, 13), "large": (18, 24)}}
DIGITS = tuple(str(d) for d in range(10))
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {"red": (225, 45, 40), "green": (40, 185, 70), "blue": (50, 100, 235), "yellow": (235, 215, 40),
           "purple": (165, 65, 210)}
# (row step, column step) from one object to the next in reading order -> the phrase that says it
RELATIONS = {(0, 1): "to the right", (1, 0): "below", (1, -1): "below left", (1, 1): "below right"}
SPECIALS = ("<pad>", "<bos>", "<eos>")
WORDS = ("a", ",", "and", "small", "large", "to", "the", "right", "below", "left") + DIGITS + SHAPES + tuple(COLOURS)
VOCAB = SPECIALS + WORDS
PAD, BOS, EOS = 0, 1, 2
LABEL_WORDS = frozenset(DIGITS + SHAPES)  # words that name an object (attention localisation scores these)

__all__ = ["CANVAS", "KINDS", "SPLITS", "VOCAB", "PAD", "BOS", "EOS", "LABEL_WORDS", "SceneObject", "SceneSet",
           "build_scenes", "scene_facts", "caption_of", "parse_caption", "encode_caption", "decode_tokens",
           "held_out_pairs", "channels_of"]


@dataclass(frozen=True)
class SceneObject:
    label: str                        # "0".."9" or a shape name
    size: str                         # small | large
    colour: str | None                # shapes only
    box: tuple[int, int, int, int]    # top, left, bottom, right (pixels; bottom/right exclusive)
    cell: tuple[int, int]             # (row, column) of the 2x2 grid


@dataclass
class SceneSet:
    """``count`` scenes of one kind and split: images, objects in reading order, captions."""

    kind: str
    split: str
    images: np.ndarray                                 # (N, 64, 64, C) uint8
    objects: list[list[SceneObject]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def channels_of(kind: str) -> int:
    return 1 if kind == "digits" else 3


# ----------------------------------------------------------------------------- grammar
def scene_facts(objects: list[SceneObject]) -> list[tuple[str, str, str | None, str | None]]:
    """``[(label, size, colour, relation)]`` in reading order; the first relation is None."""
    facts = []
    for k, o in enumerate(objects):
        relation = None
        if k:
            prev = objects[k - 1].cell
            relation = RELATIONS[(o.cell[0] - prev[0], o.cell[1] - prev[1])]
        facts.append((o.label, o.size, o.colour, relation))
    return facts


def caption_of(facts: list[tuple[str, str, str | None, str | None]]) -> str:
    """The caption the grammar gives for ``facts`` (see the module docstring)."""
    phrases = []
    for label, size, colour, relation in facts:
        words = ["a", size] + ([colour] if colour else []) + [label] + (relation.split() if relation else [])
        phrases.append(" ".join(words))
    if len(phrases) == 1:
        return phrases[0]
    return " , ".join(phrases[:-1]) + " and " + phrases[-1]


def parse_caption(text: str) -> list[tuple[str, str, str | None, str | None]]:
    """Facts ``[(label, size, colour, relation)]`` read back from a caption; DataError if it is not grammatical."""
    chunks, separators = [[]], []
    for word in text.split():
        if word in (",", "and"):
            separators.append(word)
            chunks.append([])
        else:
            chunks[-1].append(word)
    expected = [","] * (len(chunks) - 2) + ["and"] if len(chunks) > 1 else []
    if separators != expected:
        raise DataError(f"caption {text!r} does not follow the scene grammar: objects must be joined by "
                        f"{' '.join(expected) or 'nothing'}, got {' '.join(separators)}")
    relations = {tuple(phrase.split()): phrase for phrase in RELATIONS.values()}
    facts = []
    for k, words in enumerate(chunks):
        def fail(why: str):
            raise DataError(f"caption {text!r} does not follow the scene grammar: object {k + 1} "
                            f"({' '.join(words) or 'empty'!r}): {why}")

        if len(words) < 3 or words[0] != "a" or words[1] not in ("small", "large"):
            fail("expected 'a', a size (small or large), [a colour] and a digit or shape")
        colour = words[2] if words[2] in COLOURS else None
        at = 3 if colour else 2
        if at >= len(words) or words[at] not in LABEL_WORDS:
            fail("expected a digit or a shape")
        rest = tuple(words[at + 1:])
        if (k == 0) != (not rest) or (rest and rest not in relations):
            fail("the first object takes no relation; every later one takes one of: " + ", ".join(RELATIONS.values()))
        facts.append((words[at], words[1], colour, relations.get(rest)))
    return facts


def encode_caption(text: str, length: int) -> np.ndarray:
    """``[BOS, w_1 .. w_n, EOS, PAD ...]`` as int64 of ``length + 2`` (DataError for unknown words)."""
    index = {w: i for i, w in enumerate(VOCAB)}
    words = text.split()
    if len(words) > length:
        raise DataError(f"caption has {len(words)} words; at most {length} fit")
    unknown = [w for w in words if w not in index or index[w] < len(SPECIALS)]
    if unknown:
        raise DataError(f"caption words {unknown} are not in the scene vocabulary")
    ids = np.full(length + 2, PAD, dtype=np.int64)
    ids[0] = BOS
    ids[1:len(words) + 1] = [index[w] for w in words]
    ids[len(words) + 1] = EOS
    return ids


def decode_tokens(ids) -> str:
    """Words up to the first EOS (BOS and PAD dropped)."""
    words = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i >= len(SPECIALS):
            words.append(VOCAB[i])
    return " ".join(words)


# ----------------------------------------------------------------------------- splits
@lru_cache(maxsize=1)
def _digit_drawings() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("digit scenes need scikit-learn (pip install scikit-learn); "
                        "or use --scenes shapes") from None
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _drawing_pool(split: str, seed: int) -> np.ndarray:
    """Indices of the drawings a split may use: 60/20/20 by drawing; test and compositional share one."""
    images, _ = _digit_drawings()
    order = np.random.default_rng([seed, 7919]).permutation(len(images))
    a, b = int(0.6 * len(order)), int(0.8 * len(order))
    return {"train": order[:a], "valid": order[a:b]}.get(split, order[b:])


def held_out_pairs(kind: str, seed: int) -> set[tuple[str, str]]:
    """Combinations only the compositional split shows: neighbouring digit pairs, or colour–shape pairs."""
    k = int(np.random.default_rng([seed, 104729]).integers(1, 10 if kind == "digits" else 5))
    if kind == "digits":
        return {(str(a), str((a + k) % 10)) for a in range(10)}
    colours = list(COLOURS)
    return {(colours[i], SHAPES[(i + k) % len(SHAPES)]) for i in range(len(colours))}


def _combinations(kind: str, objects: list[SceneObject]) -> set[tuple[str, str]]:
    if kind == "digits":
        return {(a.label, b.label) for a, b in zip(objects, objects[1:])}
    return {(o.colour, o.label) for o in objects}


# ----------------------------------------------------------------------------- rendering
def _resize(image: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image, mode="F").resize((side, side), Image.BILINEAR), dtype=np.float32)


def _shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean (side, side) mask of ``shape`` filling its box."""
    c = (side - 1) / 2
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    if shape == "circle":
        return (y - c) ** 2 + (x - c) ** 2 <= (side / 2) ** 2
    if shape == "square":
        return np.ones((side, side), dtype=bool)
    if shape == "triangle":  # apex at the top, base at the bottom
        return np.abs(x - c) <= (y + 1) / 2
    if shape == "diamond":
        return np.abs(x - c) + np.abs(y - c) <= side / 2
    if shape == "cross":
        arm = side / 6
        return (np.abs(x - c) <= arm) | (np.abs(y - c) <= arm)
    raise ConfigError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _place(rng: np.random.Generator, kind: str, cell: tuple[int, int], size: str) -> tuple[int, int, int, int]:
    low, high = SIZES[kind][size]
    side = int(rng.integers(low, high + 1))
    top = cell[0] * CELL + int(rng.integers(0, CELL - side + 1))
    left = cell[1] * CELL + int(rng.integers(0, CELL - side + 1))
    return top, left, top + side, left + side


def _scene(rng: np.random.Generator, kind: str, pool: np.ndarray | None) -> tuple[np.ndarray, list[SceneObject]]:
    channels = channels_of(kind)
    image = np.zeros((CANVAS, CANVAS, channels), dtype=np.float32)
    count = int(rng.integers(2, GRID * GRID + 1))
    cells = sorted(int(c) for c in rng.choice(GRID * GRID, size=count, replace=False))
    objects = []
    for c in cells:
        cell, size = (c // GRID, c % GRID), ("small", "large")[int(rng.integers(2))]
        top, left, bottom, right = box = _place(rng, kind, cell, size)
        side = bottom - top
        if kind == "digits":
            drawings, targets = _digit_drawings()
            index = int(pool[rng.integers(len(pool))])
            patch = np.clip(_resize(drawings[index], side), 0.0, 1.0)
            image[top:bottom, left:right, 0] = np.maximum(image[top:bottom, left:right, 0], patch)
            objects.append(SceneObject(str(targets[index]), size, None, box, cell))
        else:
            shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]
            rgb = np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 21, size=3), 0, 255) / 255.0
            mask = _shape_mask(shape, side)
            image[top:bottom, left:right][mask] = rgb
            objects.append(SceneObject(shape, size, colour, box, cell))
    return np.round(image * 255).astype(np.uint8), objects


def build_scenes(kind: str, split: str, count: int, seed: int = 0) -> SceneSet:
    """``count`` scenes of ``kind`` for ``split``; the same arguments give the same scenes, bit for bit.

    train/valid/test never show a held-out combination (:func:`held_out_pairs`); every compositional
    scene shows at least one. Digit scenes of different splits draw from disjoint sets of drawings.
    """
    if kind not in KINDS:
        raise ConfigError(f"scenes must be one of {', '.join(KINDS)}; got {kind!r}")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"the number of scenes must be a positive integer; got {count!r}")
    rng = np.random.default_rng([seed, KINDS.index(kind), SPLITS.index(split)])
    pool = _drawing_pool(split, seed) if kind == "digits" else None
    held = held_out_pairs(kind, seed)
    images = np.zeros((count, CANVAS, CANVAS, channels_of(kind)), dtype=np.uint8)
    result = SceneSet(kind, split, images)
    n = 0
    while n < count:
        image, objects = _scene(rng, kind, pool)
        unseen = bool(_combinations(kind, objects) & held)
        if unseen != (split == "compositional"):
            continue  # rejection keeps the splits' combinations apart
        images[n] = image
        result.objects.append(objects)
        result.captions.append(caption_of(scene_facts(objects)))
        n += 1
    return result


MAX_WORDS = max(len(caption_of([("0", "small", "purple", "below right")] * GRID * GRID).split()), 1)
