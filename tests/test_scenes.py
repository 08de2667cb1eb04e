"""Built-in captioned scenes: determinism, boxes, the caption grammar and its parser, the splits."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="digit scenes need scikit-learn's load_digits")

from rnnlab.data import scenes as S  # noqa: E402
from rnnlab.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(scope="module", params=["digits", "shapes"])
def kind(request):
    return request.param


def test_same_arguments_give_the_same_scenes(kind):
    a, b = S.build_scenes(kind, "train", 40, seed=3), S.build_scenes(kind, "train", 40, seed=3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions and a.objects == b.objects
    c = S.build_scenes(kind, "train", 40, seed=4)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (40, 64, 64, S.channels_of(kind)) and a.images.dtype == np.uint8


def test_boxes_do_not_overlap_and_hold_all_the_ink(kind):
    scenes = S.build_scenes(kind, "test", 150, seed=1)
    for image, objects in zip(scenes.images, scenes.objects):
        assert 2 <= len(objects) <= 4
        covered = np.zeros(image.shape[:2], dtype=int)
        for o in objects:
            top, left, bottom, right = o.box
            assert 0 <= top < bottom <= 64 and 0 <= left < right <= 64
            covered[top:bottom, left:right] += 1
            assert image[top:bottom, left:right].max() > 0, "every box shows its object"
            low, high = S.SIZES[kind][o.size]
            assert bottom - top == right - left and low <= bottom - top <= high
        assert covered.max() == 1, "boxes never overlap"
        ink = image.max(axis=2) > 0
        assert not (ink & (covered == 0)).any(), "no pixel of any object lies outside its box"
        assert [o.cell for o in objects] == sorted(o.cell for o in objects), "reading order"


def test_shapes_are_drawn_in_their_colour():
    scenes = S.build_scenes("shapes", "train", 30, seed=0)
    for image, objects in zip(scenes.images, scenes.objects):
        for o in objects:
            top, left, bottom, right = o.box
            pixels = image[top:bottom, left:right].reshape(-1, 3)
            colour = pixels[pixels.max(axis=1) > 0].mean(axis=0)
            nearest = min(S.COLOURS, key=lambda name: np.abs(np.array(S.COLOURS[name]) - colour).sum())
            assert nearest == o.colour


def test_caption_round_trip(kind):
    scenes = S.build_scenes(kind, "valid", 200, seed=2)
    for caption, objects in zip(scenes.captions, scenes.objects):
        facts = S.scene_facts(objects)
        assert S.parse_caption(caption) == facts
        assert S.caption_of(facts) == caption
        assert S.decode_tokens(S.encode_caption(caption, S.MAX_WORDS)) == caption


def test_relations_follow_the_geometry():
    facts = S.parse_caption("a large 3 , a small 7 to the right , a small 1 below left and a large 0 to the right")
    assert facts == [("3", "large", None, None), ("7", "small", None, "to the right"),
                     ("1", "small", None, "below left"), ("0", "large", None, "to the right")]
    for objects in S.build_scenes("digits", "train", 100, seed=0).objects:
        for prev, (_, _, _, relation), o in zip(objects, S.scene_facts(objects)[1:], objects[1:]):
            if relation == "to the right":
                assert o.box[1] >= prev.box[3] and o.cell[0] == prev.cell[0]
            else:
                assert o.box[0] >= prev.box[2]
                if "left" in relation:
                    assert o.box[3] <= prev.box[1]
                elif "right" in relation:
                    assert o.box[1] >= prev.box[3]
                else:  # plain "below": the cell under the previous one (jitter may shift it sideways)
                    assert o.cell[1] == prev.cell[1]


@pytest.mark.parametrize("caption", [
    "", "a large 3", "a 3 and a small 7 to the right", "a large 3 and a small 7", "a large 3 to the right and a small 7 below",
    "a large 3 and a small 7 to the right and a small 1 below", "a large 3 , a small 7 to the right",
    "a huge 3 and a small 7 below", "a large red 3 x and a small 7 below", "a large 3 and a small 7 above"])
def test_parser_rejects_what_the_grammar_cannot_say(caption):
    if caption == "a large 3":  # one object is grammatical (no relation, no joiner)
        assert S.parse_caption(caption) == [("3", "large", None, None)]
        return
    with pytest.raises(DataError, match="scene grammar"):
        S.parse_caption(caption)


def test_compositional_split_holds_only_unseen_combinations(kind):
    held = S.held_out_pairs(kind, 0)
    assert len(held) == (10 if kind == "digits" else 5)
    firsts, seconds = {a for a, _ in held}, {b for _, b in held}
    assert len(firsts) == len(held) and len(seconds) == len(held), "each part is held out in one pair only"
    for split in ("train", "valid", "test"):
        for objects in S.build_scenes(kind, split, 300, seed=0).objects:
            assert not S._combinations(kind, objects) & held
    for objects in S.build_scenes(kind, "compositional", 100, seed=0).objects:
        assert S._combinations(kind, objects) & held


def test_digit_drawings_are_split_between_train_valid_and_test():
    pools = {split: set(S._drawing_pool(split, 0).tolist()) for split in ("train", "valid", "test", "compositional")}
    assert not pools["train"] & pools["valid"] and not pools["train"] & pools["test"]
    assert not pools["valid"] & pools["test"] and pools["test"] == pools["compositional"]
    assert sum(len(pools[s]) for s in ("train", "valid", "test")) == 1797


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="scenes must be one of digits, shapes; got 'cats'"):
        S.build_scenes("cats", "train", 1)
    with pytest.raises(ConfigError, match="split must be"):
        S.build_scenes("digits", "holdout", 1)
    with pytest.raises(ConfigError, match="positive integer"):
        S.build_scenes("digits", "train", 0)
    with pytest.raises(DataError, match="not in the scene vocabulary"):
        S.encode_caption("a large dog", 10)
