"""The long-term dependency lab: budgets, readouts checked with oracle models, early stop, the CLI end to end."""
import csv
import json

import pytest
import torch
from torch import nn

from rnnlab.cli import main
from rnnlab.data.synthetic import AddingProblem, CopyMemory, LongGapCue
from rnnlab.errors import ConfigError
from rnnlab.models.sequence_model import SequenceModel
from rnnlab.tasks.lab import MODELS, LabSettings, LabTask, build_lab_model, count_parameters, hidden_for_budget, run_one


@pytest.mark.parametrize("name", MODELS)
def test_hidden_size_is_the_largest_within_the_budget(name):
    settings = LabSettings(budget=20_000, embedding=16)
    task = LongGapCue(30, seed=0)
    hidden, params = hidden_for_budget(name, task, settings)
    assert params == count_parameters(build_lab_model(name, task, hidden, settings)) <= 20_000
    assert count_parameters(build_lab_model(name, task, hidden + 1, settings)) > 20_000


def test_chrono_model_uses_the_task_length_and_plain_lstm_forget_bias_one():
    settings = LabSettings(embedding=8)
    task = LongGapCue(50, seed=0)
    H = 12
    lstm = build_lab_model("lstm", task, H, settings).layer
    chrono = build_lab_model("lstm_chrono", task, H, settings).layer
    f = slice(H, 2 * H)
    torch.testing.assert_close(lstm.bias_ih_l0[f] + lstm.bias_hh_l0[f], torch.ones(H))
    b_f = chrono.bias_ih_l0[f] + chrono.bias_hh_l0[f]
    assert (b_f >= 0).all() and (b_f <= torch.log(torch.tensor(task.max_length - 1.0))).all()


def test_sequence_model_equals_its_parts_and_reads_variable_lengths():
    torch.manual_seed(0)
    model = SequenceModel("gru", 4, 6, 3, num_embeddings=10)
    x = torch.randint(1, 10, (2, 7))
    lengths = torch.tensor([7, 4])
    out = model(x, lengths)
    alone = model(x[1:, :4])  # the short sequence on its own
    torch.testing.assert_close(out[1, :4], alone[0])
    torch.testing.assert_close(out[0], model.head(model.layer(model.embedding(x[:1]))[0])[0])


class AddingOracle(nn.Module):
    """Running sum of marked values; garbage (+100) on padded steps, so a wrong readout shows."""

    def forward(self, x, lengths=None):
        running = (x[..., 0] * x[..., 1]).cumsum(1)  # (B, T)
        if lengths is not None:
            running = running + 100.0 * (torch.arange(x.shape[1])[None] >= lengths[:, None])
        return running[..., None]


class CueOracle(nn.Module):
    """Logits: one-hot of the country seen at position 4, at every step."""

    def __init__(self, task):
        super().__init__()
        self.first, self.k = task.index[task.countries[0]], task.num_countries

    def forward(self, x, lengths=None):
        hot = nn.functional.one_hot(x[:, 4] - self.first, self.k).float() * 10  # (B, K)
        return hot[:, None].expand(-1, x.shape[1], -1)


class CopyOracle(nn.Module):
    def forward(self, x, lengths=None):
        out = torch.zeros(x.shape[0], x.shape[1], 10)
        out[:, :, 0] = 10.0  # blank
        out[:, -10:] = nn.functional.one_hot(x[:, :10], 10).float() * 10
        return out


def test_readouts_and_metrics_with_oracles():
    adding = LabTask(AddingProblem(30, min_length=12, seed=0), 8, 64, seed=0)
    metrics = adding.evaluate(AddingOracle(), "valid")
    assert metrics["mse"] == pytest.approx(0.0, abs=1e-10)
    assert adding.evaluate(lambda x, lengths=None: torch.ones(x.shape[0], x.shape[1], 1), "valid")["mse"] > 0.05

    cue_task = LongGapCue(20, min_gap=3, seed=1)
    cue = LabTask(cue_task, 8, 128, seed=1)
    assert cue.evaluate(CueOracle(cue_task), "valid")["accuracy"] == 1.0
    batch = next(iter(cue.train_batches(0)))
    loss, state, items = cue.loss(CueOracle(cue_task), batch, None)
    assert state is None and items == 8 and float(loss) < 1e-3

    copy = LabTask(CopyMemory(15, seed=2), 8, 32, seed=2)
    metrics = copy.evaluate(CopyOracle(), "valid")
    assert metrics["copy_accuracy"] == 1.0 and metrics["loss"] < 1e-3


def test_a_solved_run_stops_early():
    # Adding with T = 2: both values are marked, the target is their sum, a linear map an MLP fits fast.
    settings = LabSettings(budget=2000, steps=1500, eval_every=25, eval_size=128, lr=1e-2, window=2)
    result, model, task = run_one("adding", "mlp", 2, 0, settings, progress=False)
    assert result.solved and result.steps == result.solved_step < 1500
    assert result.final < 0.01 and result.curve[-1] == (result.steps, result.final)


TINY = ["--seeds", "0", "--steps", "4", "--eval-every", "2", "--eval-size", "16", "--budget", "6000",
        "--embedding", "8", "--no-progress"]


@pytest.mark.parametrize("task,lengths", [("gap", ["--gaps", "12,20", "--min-gap", "6"]), ("adding", ["--lengths", "12"]),
                                          ("copy", ["--lengths", "6"]), ("order", ["--lengths", "12"])])
def test_each_lab_command_runs_end_to_end(tmp_path, task, lengths, capsys):
    out = tmp_path / task
    assert main(["lab", task, "--out", str(out), "--models", "mlp,rnn,lstm_chrono", "--window", "5", *lengths, *TINY]) == 0
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * len(lengths[1].split(","))
    assert {r["model"] for r in rows} == {"mlp", "rnn", "lstm_chrono"}
    assert all(int(r["steps"]) <= 4 and float(r["wall_s"]) > 0 and int(r["params"]) <= 6000 for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "rnnlab-run" and run["kind"] == "lab" and run["config"]["task"] == task
    assert (out / "metrics.csv").exists() and (out / "summary.md").read_text().startswith(f"Task `{task}`")
    assert list(out.glob("*.png"))
    from rnnlab.analysis.lab import load_results, summary_markdown

    assert summary_markdown(load_results(out)) == (out / "summary.md").read_text()  # JSON round trip


def test_gradflow_command_writes_norms_factors_and_plots(tmp_path):
    out = tmp_path / "gf"
    assert main(["lab", "gradflow", "--out", str(out), "--models", "rnn,lstm", "--gap", "6", *TINY]) == 0
    with open(out / "gradflow_factors.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["model"], r["stage"]) for r in rows} == {("rnn", "init"), ("rnn", "trained"), ("lstm", "init"),
                                                         ("lstm", "trained")}
    assert all(0 < float(r["factor_h"]) for r in rows)
    with open(out / "gradflow.csv") as handle:
        norms = list(csv.DictReader(handle))
    assert len(norms) == 4 * 14  # 2 models x 2 stages x T = 6 + 8 steps
    assert (out / "gradflow_init.png").exists() and (out / "gradflow_trained.png").exists()


@pytest.mark.parametrize("argv,needle", [
    (["lab", "gap", "--gaps", "0"], "positive integer"),
    (["lab", "adding", "--lengths", "-5"], "positive integer"),
    (["lab", "gap", "--models", "lstm,transformer"], "unknown lab model 'transformer'"),
    (["lab", "gap", "--countries", "99"], "num_countries must be <= 40"),
    (["lab", "order", "--lengths", "12", "--window", "20", "--models", "mlp"], "window (20) is larger"),
    (["lab", "gradflow", "--models", "mlp"], "needs a recurrent model"),
    (["lab", "gradflow", "--gap", "0"], "gap must be a positive integer"),
    (["lab", "copy", "--steps", "0"], "steps must be a positive integer"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, capsys, argv, needle):
    out = tmp_path / "bad"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (out / "run.json").exists()  # nothing written for a rejected grid


def test_existing_results_are_never_overwritten(tmp_path, capsys):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "runs.csv").write_text("precious\n")
    assert main(["lab", "adding", "--out", str(out), "--lengths", "12", "--models", "lstm", *TINY]) == 2
    assert (out / "runs.csv").read_text() == "precious\n"
    assert "already holds lab results" in capsys.readouterr().err


def test_library_rejects_unknown_model_with_typed_error():
    with pytest.raises(ConfigError, match="unknown lab model"):
        build_lab_model("cnn", LongGapCue(5), 4, LabSettings())


def test_curriculum_lengths_double_up_to_the_target():
    from rnnlab.tasks.lab import curriculum_lengths

    assert curriculum_lengths(100) == [10, 20, 40, 80, 100]
    assert curriculum_lengths(40) == [10, 20, 40]
    assert curriculum_lengths(3) == [3]


def test_curriculum_trains_on_the_current_stage_and_advances_when_it_is_solved():
    from rnnlab.tasks.lab import curriculum_lengths, make_task

    target = 40
    stages = [(n, make_task("gap", n, 0)) for n in curriculum_lengths(target)[:-1]]
    task = LabTask(make_task("gap", target, 0), 4, 16, 0, stages=stages, length=target)
    inputs, _, _ = next(task.train_batches(0))
    assert inputs.shape[1] == stages[0][1].max_length < task.task.max_length  # first the shortest gap

    class Oracle(torch.nn.Module):  # always right: every stage is solved at once
        def forward(self, x, lengths=None):
            return self.answers

    oracle = Oracle()
    for expected in (20, 40, 40):
        batch = task.stage_evals[task.stage] if task.stage < len(task.stage_evals) else task.eval_batch
        logits = torch.full((batch.inputs.shape[0], batch.inputs.shape[1], task.task.output_size), -9.0)
        logits[torch.arange(len(batch.targets)), :, batch.targets] = 9.0
        oracle.answers = logits
        assert task.evaluate(oracle, "valid")["curriculum_length"] == expected
    assert task.state_dict() == {"stage": 2}


def test_steps_to_solve_table_and_plot_mark_unsolved_runs(tmp_path):
    from rnnlab.analysis.lab import plot_grid, solved_step_table
    from rnnlab.tasks.lab import RunResult

    def row(model, length, seed, solved_step):
        solved = solved_step is not None
        return RunResult("gap", model, length, seed, 8, 900, solved_step or 1000, solved, solved_step, 1.0,
                         "accuracy", 1.0 if solved else 0.05, 1.0 if solved else 0.05, 0.05,
                         [(100, 0.05), (solved_step or 1000, 1.0 if solved else 0.05)])

    rows = [row("lstm", 10, 0, 200), row("lstm", 10, 1, 300), row("lstm", 100, 0, 900), row("lstm", 100, 1, None),
            row("rnn", 10, 0, 500), row("rnn", 10, 1, None), row("rnn", 100, 0, None), row("rnn", 100, 1, None)]
    table = solved_step_table(rows)
    assert table["lstm"].tolist()[0] == [200.0, 300.0] and table["lstm"][1, 0] == 900
    assert table["lstm"][1, 1] == float("inf") and (table["rnn"][1] == float("inf")).all()
    rows.append(row("lstm", 1000, 0, 950))  # only lstm seed 0 ran at 1000: the rest is "not run" (NaN)
    table = solved_step_table(rows)
    assert table["lstm"][2, 0] == 950 and torch.isnan(torch.tensor(table["lstm"][2, 1]))
    assert torch.isnan(torch.tensor(table["rnn"][2])).all()
    paths = plot_grid(rows, tmp_path, budget=1000)
    assert [p.name for p in paths] == ["gap_accuracy.png", "gap_curves.png", "gap_steps.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
