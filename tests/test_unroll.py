"""rnnlab.nn.unroll: the one reference time loop, against the cell stepped by hand."""
import pytest
import torch

from rnnlab.nn.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.nn.unroll import unroll
from rnnlab.nn.variants import PeepholeLSTMCell

D64 = torch.float64


def by_hand(cell, x, lengths, reverse):
    """Each sequence on its own, cut to its length, stepped with ``cell(x_t, state)``."""
    steps, batch = x.shape[:2]
    outs = torch.zeros(steps, batch, cell.hidden_size, dtype=D64)
    finals = []
    for b in range(batch):
        n = int(lengths[b])
        state = None
        for t in (range(n - 1, -1, -1) if reverse else range(n)):
            state = cell(x[t, b:b + 1], state)
            h = state[0] if isinstance(state, tuple) else state
            outs[t, b] = h[0]
        finals.append(state)
    if isinstance(finals[0], tuple):
        return outs, tuple(torch.cat(parts) for parts in zip(*finals))
    return outs, torch.cat(finals)


@pytest.mark.parametrize("make", [lambda: LSTMCell(3, 4), lambda: GRUCell(3, 4), lambda: RNNCell(3, 4),
                                  lambda: PeepholeLSTMCell(3, 4)], ids=["lstm", "gru", "rnn", "peephole"])
@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_equals_stepping_the_cell_by_hand(make, reverse):
    torch.manual_seed(0)
    cell = make().double()
    x = torch.randn(6, 3, 3, dtype=D64)
    lengths = torch.tensor([6, 2, 4])
    outs, final, _ = unroll(cell, x, lengths=lengths, reverse=reverse)
    want_outs, want_final = by_hand(cell, x, lengths, reverse)
    torch.testing.assert_close(outs, want_outs)
    for got, want in zip(final if isinstance(final, tuple) else (final,),
                         want_final if isinstance(want_final, tuple) else (want_final,)):
        torch.testing.assert_close(got, want)


def test_recorded_gates_are_the_cells_own_and_zero_at_padding():
    torch.manual_seed(1)
    cell = LSTMCell(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=D64)
    _, _, record = unroll(cell, x, lengths=torch.tensor([5, 3]), record=True)
    assert set(record) == {"i", "f", "g", "o", "c", "h"} and record["f"].shape == (5, 2, 4)
    state = None
    for t in range(5):
        state, gates = cell(x[t, :1], state, record=True)
        for name, value in gates.items():
            torch.testing.assert_close(record[name][t, 0], value[0])
    assert torch.all(record["f"][3:, 1] == 0) and torch.all(record["h"][3:, 1] == 0)
