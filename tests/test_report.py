"""``rnnlab report``: run-directory checks, what each section shows, and the page's data against its sources."""
import base64
import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch

from rnnlab.analysis.gates import record_language_model
from rnnlab.analysis.next_token import next_tokens
from rnnlab.analysis.report import build_report, read_run
from rnnlab.analysis.report_lm import encode, heldout_text, prompts_from_text
from rnnlab.checkpoint import save_checkpoint
from rnnlab.cli import main
from rnnlab.data.tokenizer import CharTokenizer
from rnnlab.errors import RunDirError
from rnnlab.models.language import LanguageModel, LanguageModelConfig
from rnnlab.rundir import prepare_run_dir

TEXT = ('The function "len(x)" returns the length (a number) of x.\n'
        'A list [1, 2] holds items; call "append(y)" to add one.\n\n') * 40


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_json(path, kind, **extra):
    path.mkdir(parents=True, exist_ok=True)
    info = {"format": "rnnlab-run", "version": 1, "kind": kind, "created": "2026-01-01T00:00:00+00:00",
            "command": "rnnlab test", "config": {}, **extra}
    (path / "run.json").write_text(json.dumps(info))
    return path


@pytest.fixture
def lab_dir(tmp_path):
    d = run_json(tmp_path / "lab", "lab", config={"task": "gap"})
    runs = []
    for model, finals in (("rnn", {5: [1.0, 0.9], 20: [0.3, 0.1]}), ("lstm", {5: [1.0, 1.0], 20: [0.95, 0.85]})):
        for length, values in finals.items():
            for seed, value in enumerate(values):
                runs.append({"task": "gap", "model": model, "length": length, "seed": seed, "hidden": 8, "params": 100,
                             "steps": 200, "solved": value >= 0.99, "solved_step": None, "wall_s": 1.0,
                             "metric": "accuracy", "final": value, "best": value, "chance": 0.2, "curve": []})
    (d / "runs.json").write_text(json.dumps(runs))
    write_csv(d / "metrics.csv", [{"step": s, "epoch": 0, "split": "valid", "loss": 1.0, "accuracy": a, "model": m,
                                   "length": 20, "seed": 0} for m in ("rnn", "lstm") for s, a in ((50, 0.2), (100, 0.5))])
    return d


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A language-model run (untrained small LSTM, its tokenizer, a corpus file) and its report, built once."""
    tmp_path = tmp_path_factory.mktemp("lmrun")
    text_file = tmp_path / "corpus.txt"
    text_file.write_text(TEXT)
    tok = CharTokenizer.fit([TEXT])
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=tok.vocab_size, embed_size=8, hidden_size=12, num_layers=1))
    d = prepare_run_dir(tmp_path / "lm", kind="lm", config={"data": str(text_file)}, command="rnnlab lm train")
    save_checkpoint(d, model, step=0, files={"tokenizer.json": tok.to_json()}, best=True)
    write_csv(d / "metrics.csv", [{"step": 10, "epoch": 0, "split": "train", "loss": 3.0, "bpc": ""},
                                  {"step": 10, "epoch": 0, "split": "valid", "loss": 2.5, "bpc": 3.6}])
    return d, model, tok, build_report(d).read_text()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, message", [
    (lambda p: p / "absent", "does not exist"),
    (lambda p: (p / "file").write_text("x") and p / "file", "it is a file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "is empty"),
    (lambda p: ((p / "other").mkdir(), (p / "other" / "a.txt").write_text("x"), p / "other")[2], "has no run.json"),
    (lambda p: ((p / "bad").mkdir(), (p / "bad" / "run.json").write_text("{not json"), p / "bad")[2], "not valid JSON"),
    (lambda p: run_json(p / "foreign", "lm", format="something-else"), "expected 'rnnlab-run'"),
    (lambda p: run_json(p / "newer", "lm", version=2), "newer than this rnnlab reads"),
    (lambda p: run_json(p / "unknown", "painting"), "kind 'painting'"),
])
def test_bad_run_dirs_raise_one_clear_error(tmp_path, capsys, make, message):
    path = make(tmp_path)
    with pytest.raises(RunDirError, match=message):
        read_run(path)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split()[0] in err and "Traceback" not in err


def test_nothing_is_written_for_a_bad_run_dir(tmp_path):
    d = run_json(tmp_path / "newer", "lm", version=3)
    with pytest.raises(RunDirError):
        build_report(d)
    assert not (d / "report.html").exists()


# ----------------------------------------------------------------------------- partial runs
def test_partial_run_reports_what_it_has(tmp_path, capsys):
    d = run_json(tmp_path / "partial", "lm")
    (d / "metrics.csv").write_text("step,epoch,split,loss,bpc\n50,0,train,3.2,\n50,0,valid,2.9,4.1\n100,0,tr")
    assert main(["report", str(d)]) == 0
    assert "report.html" in capsys.readouterr().out
    html = (d / "report.html").read_text()
    assert "curves" in section_ids(html) and "pending" in section_ids(html)  # no checkpoint yet: said so
    loss = page_data(html)["charts"][0]
    assert {s["name"]: s["y"] for s in loss["series"]} == {"train loss": [3.2], "valid loss": [2.9]}


def test_lm_run_whose_corpus_moved_reports_the_rest(lm_dir, tmp_path):
    d, _, _, _ = lm_dir
    moved = tmp_path / "moved"
    shutil.copytree(d, moved)
    info = json.loads((moved / "run.json").read_text())
    info["config"]["data"] = str(tmp_path / "gone.txt")
    (moved / "run.json").write_text(json.dumps(info))
    html = build_report(moved).read_text()
    assert "curves" in section_ids(html) and "pending" in section_ids(html) and "cannot be read" in html


def test_run_with_only_its_description_says_no_results(tmp_path):
    html = build_report(run_json(tmp_path / "fresh", "forecast")).read_text()
    assert section_ids(html) == ["overview", "empty"]


def test_demo_with_a_missing_part(tmp_path, lab_dir):
    d = run_json(tmp_path / "demo", "demo", parts=[["lab", str(lab_dir)], ["lm", "lm"]],
                 table={"title": "accuracy", "columns": ["model", "gap 5"], "rows": [["lstm", 1.0]]})
    html = build_report(d).read_text()
    ids = section_ids(html)
    assert ids == ["overview", "lab-gap", "lab-steps", "lab-curves", "lab-overview", "lm-missing"] and "does not exist" in html
    assert "<td>lstm</td><td>1.0</td>" in html  # the demo's own table, in its own column order


# ----------------------------------------------------------------------------- sections against their sources
def test_lab_sections_show_the_grid(lab_dir):
    html = build_report(lab_dir).read_text()
    assert {"overview", "curves", "gap"} <= set(section_ids(html))
    charts = page_data(html)["charts"]
    gap = next(c for c in charts if "against gap" in c["title"])
    series = {s["name"]: s for s in gap["series"]}
    assert series["rnn"]["x"] == [5, 20]
    assert series["rnn"]["y"] == pytest.approx([0.95, 0.2]) and series["rnn"]["lo"] == [0.9, 0.1]
    assert series["lstm"]["y"] == pytest.approx([1.0, 0.9]) and series["lstm"]["hi"] == [1.0, 0.95]
    assert gap["hline"]["y"] == 0.2
    curve = next(c for c in charts if c["title"] == "gap = 20")
    assert {s["name"]: s["y"] for s in curve["series"]} == {"rnn": [0.2, 0.5], "lstm": [0.2, 0.5]}


def test_gradflow_section_averages_seeds(tmp_path):
    d = run_json(tmp_path / "gf", "lab", config={"task": "gradflow", "gap": 3})
    rows = [{"model": m, "seed": s, "stage": "init", "step": 3 - k, "distance": k, "norm_h": (s + 1) * 10.0 ** -k,
             "norm_c": "" if m == "rnn" else 0.5} for m in ("rnn", "lstm") for s in (0, 1) for k in range(4)]
    write_csv(d / "gradflow.csv", rows)
    html = build_report(d).read_text()
    assert "gradflow" in section_ids(html)
    chart = page_data(html)["charts"][0]
    series = {s["name"]: s for s in chart["series"]}
    assert chart["logy"] and set(series) == {"rnn", "lstm", "lstm (cell c)"}
    assert series["rnn"]["x"] == [0, 1, 2, 3]
    assert series["rnn"]["y"] == pytest.approx([1.5 * 10.0 ** -k for k in range(4)])


def test_forecast_section(tmp_path):
    d = run_json(tmp_path / "fc", "forecast", config={"level": 0.8})
    write_csv(d / "forecast.csv", [{"time": f"2026-01-0{t + 1}", "co2": t + 0.5, "co2_lower": t, "co2_upper": t + 1}
                                   for t in range(5)])
    html = build_report(d).read_text()
    chart = page_data(html)["charts"][0]
    (forecast,) = chart["series"]  # no checkpoint here: no history, the forecast alone
    assert forecast["x"] == [1, 2, 3, 4, 5] and forecast["y"] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert forecast["lo"] == [0, 1, 2, 3, 4] and forecast["hi"][4] == 5 and "0.8 prediction interval" in forecast["name"]


def test_confusion_section(tmp_path):
    d = run_json(tmp_path / "cls", "classify", results={"split": "test", "accuracy": 0.75, "class_names": ["a", "b"],
                                                          "confusion": [[3, 1], [1, 3]]})
    html = build_report(d).read_text()
    assert "confusion" in section_ids(html)
    assert "<tr><th>a</th>" in html and "accuracy 0.750" in html and "<td>0.750</td>" in html  # recall of a: 3/4


def test_lm_gate_viewer_holds_the_models_gates(lm_dir):
    d, model, tok, html = lm_dir
    assert {"overview", "curves", "gates", "next"} <= set(section_ids(html))
    spec = page_data(html)["gates"][0]
    tokens = "".join(spec["tokens"])
    assert tokens in TEXT
    ids = encode(tok, tokens)
    traces = record_language_model(model, ids)
    assert spec["units"] == 12 and set(spec["signals"]) == {"i", "f", "o", "c", "h"}
    for name in ("c", "f"):
        s = spec["signals"][name]
        codes = np.frombuffer(base64.b64decode(s["data"]), dtype=np.uint8).reshape(len(ids), 12)
        lo, hi = np.array(s["lo"]), np.array(s["hi"])
        decoded = lo + codes / 255 * (hi - lo)
        np.testing.assert_allclose(decoded, traces[name], atol=float((hi - lo).max()) / 255 + 1e-4)
    assert 'class="ranking"' in html and "inside quotes" in html


def test_lm_predictions_are_the_models_probabilities(lm_dir):
    d, model, tok, html = lm_dir
    section = html[html.index('<section id="next">'):]
    probs = [float(p) for p in re.findall(r'<span class="p">([0-9.]+)</span>', section)]
    assert probs and all(0 <= p <= 1 for p in probs)
    prompt = re.search(r"<code>…(.*?)</code>", section, re.S).group(1)
    assert prompt.replace("↵ ", "\n").replace("&quot;", '"') in TEXT
    # the first card's next-character bars are the model's top probabilities after the full prompt
    text, _ = heldout_text(read_run(d))
    full, truth = prompts_from_text(text)[0]
    assert full.endswith(prompt.replace("↵ ", "\n").replace("&quot;", '"')) and truth.isalpha()
    card = section[section.index("next character"):section.index("actual next word")]
    shown = [float(p) for p in re.findall(r'<span class="p">([0-9.]+)</span>', card)]
    expected = [p for _, p in next_tokens(model, encode(tok, full), tok, k=6)]
    assert shown == pytest.approx(expected, abs=5e-4)


def test_page_is_self_contained(lab_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(lab_dir / "plot.png")
    plt.close(fig)
    html = build_report(lab_dir).read_text()
    assert 'src="data:image/png;base64,' in html
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html
    assert "<script src" not in html
