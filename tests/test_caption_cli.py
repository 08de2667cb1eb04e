"""``rnnlab train caption`` / ``caption`` / ``evaluate`` / ``report`` end to end, bad inputs, exact resume, scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", reason="digit scenes need scikit-learn's load_digits")

from cli_checks import fails
from rnnlab.checkpoint import load_checkpoint  # noqa: E402
from rnnlab.cli import main  # noqa: E402
from rnnlab.data import scenes as S  # noqa: E402
from rnnlab.runs.caption import CaptionRunConfig, model_config_for, train_caption  # noqa: E402
from rnnlab.tasks.caption import score_captions  # noqa: E402

TINY = ["--train-scenes", "48", "--valid-scenes", "16", "--test-scenes", "12", "--batch-size", "16", "--epochs", "1",
        "--hidden", "16", "--embed", "8", "--features", "8", "--attention-size", "8", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption")
    assert main(["train", "caption", "--out", str(root / "run"), *TINY]) == 0
    from PIL import Image

    scene = S.build_scenes("digits", "test", 1).images[0, :, :, 0]
    Image.fromarray(scene).resize((128, 96)).save(root / "scene.png")
    Image.fromarray(scene).convert("RGB").save(root / "scene.jpg")
    Image.fromarray(scene).save(root / "scene.gif")
    (root / "notes.txt").write_text("not an image")
    (root / "cut.png").write_bytes((root / "scene.png").read_bytes()[:60])
    return root




def test_train_caption_evaluate(run, capsys):
    info = json.loads((run / "run" / "run.json").read_text())
    assert info["kind"] == "caption" and set(info["results"]) == {"test", "compositional"}
    assert info["config"]["model"]["hidden"] == 16 and info["config"]["run"]["train_scenes"] == 48
    capsys.readouterr()
    assert main(["caption", str(run / "run"), str(run / "scene.png"), str(run / "scene.jpg"), "--beam", "2",
                 "--attention"]) == 0
    out = capsys.readouterr().out
    assert "resized to 64x64" in out and "scene.png: " in out and "scene.jpg: " in out
    assert main(["evaluate", str(run / "run"), "--split", "compositional", "--beam", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("compositional: exact ") and "BLEU-1..4" in out and "(12 scenes, beam 1)" in out


@pytest.mark.parametrize("name, message", [
    ("missing.png", "does not exist; expected a PNG or JPEG file"),
    ("notes.txt", "is not an image PIL can read; expected a PNG or JPEG file"),
    ("scene.gif", "is a GIF image; expected PNG or JPEG"),
    ("cut.png", "cannot read the image"),
    (".", "it is a directory"),
])
def test_bad_images_give_one_line(run, capsys, name, message):
    fails(capsys, ["caption", str(run / "run"), str(run / name)], message)


def test_bad_options_leave_nothing_behind(run, tmp_path, capsys):
    fails(capsys, ["train", "caption", "--out", str(tmp_path / "a"), *TINY, "--hidden", "0"], "--hidden must be >= 1")
    fails(capsys, ["train", "caption", "--out", str(tmp_path / "b"), "--encoder", "mlp", *TINY], "--no-attention")
    fails(capsys, ["train", "caption", "--out", str(tmp_path / "c"), "--train-scenes", "0"], "--train-scenes must be >= 1")
    assert not any(tmp_path.iterdir())
    before = (run / "run" / "run.json").read_bytes()
    fails(capsys, ["train", "caption", "--out", str(run / "run"), *TINY], "already holds a run")
    assert (run / "run" / "run.json").read_bytes() == before
    fails(capsys, ["evaluate", str(run / "run"), "--split", "holdout"], "--split must be one of train, valid, test, compositional")
    fails(capsys, ["evaluate", str(run / "run"), "--data", "x.txt"], "--data is not used")
    fails(capsys, ["caption", str(run / "run"), str(run / "scene.png"), "--beam", "0"], "--beam must be >= 1")
    fails(capsys, ["caption", str(tmp_path / "nope"), str(run / "scene.png")], "does not exist")


def test_report_shows_words_with_attention_maps(run):
    from rnnlab.analysis.report import build_report

    html = build_report(run / "run").read_text()
    assert "Captions and attention" in html and "data-map=" in html and "localisation" in html


def _params(path):
    return {k: v.clone() for k, v in load_checkpoint(path, which="latest").model.state_dict().items()}


def test_resume_gives_the_same_parameters(tmp_path):
    run = CaptionRunConfig(train_scenes=40, valid_scenes=8, test_scenes=4, batch_size=16, epochs=2, progress=False,
                           patience=5)
    model = model_config_for(run, hidden=12, embed=6, features=8, attention_size=6)
    train_caption(run, model, tmp_path / "whole")
    half = CaptionRunConfig(**{**run.__dict__, "epochs": 1})
    train_caption(half, model, tmp_path / "split")
    train_caption(half, model, tmp_path / "split", resume=True, epochs=2)
    whole, split = _params(tmp_path / "whole"), _params(tmp_path / "split")
    assert whole.keys() == split.keys()
    for key in whole:
        assert torch.equal(whole[key], split[key]), key


def test_scores_against_a_hand_made_case():
    objects = [[S.SceneObject("3", "large", None, (0, 0, 20, 20), (0, 0)),
                S.SceneObject("7", "small", None, (0, 40, 12, 52), (0, 1))],
               [S.SceneObject("1", "small", None, (40, 0, 52, 12), (1, 0)),
                S.SceneObject("0", "large", None, (40, 40, 60, 60), (1, 1))]]
    scenes = S.SceneSet("digits", "test", np.zeros((2, 64, 64, 1), np.uint8), objects,
                        [S.caption_of(S.scene_facts(o)) for o in objects])
    captions = ["a large 3 and a small 7 to the right", "a small 1 and a large 8 below"]
    grid = 8  # 8x8 regions of 8 px; region r, c has its centre at (8r + 4, 8c + 4)
    att = [np.zeros((9, 64)), np.zeros((8, 64))]
    att[0][2, 0 * 8 + 1] = 1     # "3" looks at (4, 12): inside (0, 0, 20, 20)
    att[0][6, 0 * 8 + 0] = 1     # "7" looks at (4, 4): outside (0, 40, 12, 52)
    att[0][5, 0 * 8 + 5] = 2     # ... but "small", in the same phrase, looked at (4, 44): inside the 7's box
    att[1][2, 5 * 8 + 0] = 1     # "1" looks at (44, 4): inside (40, 0, 52, 12)
    att[1][6, 6 * 8 + 6] = 1     # "8" looks at (52, 52): inside the box of the 0
    m = score_captions(scenes, captions, att, grid=grid, size=64)
    assert m["exact"] == 0.5 and m["grammatical"] == 1.0 and m["count"] == 1.0
    assert m["label"] == 0.75 and m["size"] == 1.0 and m["relation"] == 0.5
    assert m["localisation"] == 0.75
    assert m["phrase_localisation"] == 1.0   # "a small 7": the phrase's summed attention peaks in the box
    from sacrebleu.metrics import BLEU

    assert m["bleu4"] == BLEU().corpus_score(captions, [scenes.captions]).score
    unparsable = score_captions(scenes, ["a large 3 and", "seven"])
    assert unparsable["grammatical"] == 0 and unparsable["label"] == 0 and "localisation" not in unparsable
