"""rnnlab.nn.scan: the parallel scans of h_t = a_t h_{t-1} + b_t against the sequential loop (values and gradients)."""
import pytest
import torch

from rnnlab.nn.minimal_scan import gated_scan
from rnnlab.nn.scan import chunked_scan, log_scan, scan_forward, sequential_scan

D64 = torch.float64


@pytest.mark.parametrize("steps", [1, 2, 5, 16, 37])
@pytest.mark.parametrize("chunk", [None, 3])
def test_chunked_scan_equals_loop_values_and_gradients(steps, chunk):
    torch.manual_seed(steps)
    a = torch.rand(steps, 2, 3, dtype=D64, requires_grad=True)
    b = torch.randn(steps, 2, 3, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=D64, requires_grad=True)
    ref = sequential_scan(a, b, h0)
    got = chunked_scan(a, b, h0, chunk=chunk)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    for x, y in zip(torch.autograd.grad(ref, (a, b, h0), grad), torch.autograd.grad(got, (a, b, h0), grad)):
        torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)


def test_chunked_scan_gradcheck():
    torch.manual_seed(0)
    a = torch.rand(11, 2, dtype=D64, requires_grad=True)
    b = torch.randn(11, 2, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h0: chunked_scan(a, b, h0, chunk=4), (a, b, h0))


def test_log_scan_equals_loop_with_signed_initial_state():
    torch.manual_seed(1)
    a, b = torch.rand(40, 3, dtype=D64) * 0.98 + 0.01, torch.rand(40, 3, dtype=D64) + 0.1
    h0 = torch.tensor([-2.0, 0.0, 3.0], dtype=D64)  # any sign: added outside the logarithm
    torch.testing.assert_close(log_scan(a.log(), b.log(), h0), sequential_scan(a, b, h0), rtol=1e-10, atol=1e-12)


def test_chunked_scan_float32_long_sequence_stays_accurate():
    torch.manual_seed(2)
    a = torch.rand(4096, 8, dtype=D64) * 0.2 + 0.8
    b = torch.rand(4096, 8, dtype=D64)
    ref = sequential_scan(a, b)
    got = chunked_scan(a.float(), b.float()).double()
    assert ((got - ref).abs() / ref.abs()).max() < 1e-5




def test_scan_forward_reverse_is_the_loop_run_backwards():
    torch.manual_seed(3)
    a, b = torch.rand(9, 2, 3, dtype=D64), torch.randn(9, 2, 3, dtype=D64)
    backwards = scan_forward(a, b, None, 4, reverse=True)
    want = sequential_scan(a.flip(0), b.flip(0)).flip(0)  # h_t = a_t h_{t+1} + b_t from the end
    torch.testing.assert_close(backwards, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, gates", [("gru", 2), ("lstm", 3)])
def test_gated_scan_equals_autograd_through_the_gates(kind, gates):
    """The fused minGRU/minLSTM scan (hand-written backward) equals the gates computed under autograd."""
    torch.manual_seed(4)
    proj = torch.randn(13, 2, gates * 3, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=D64, requires_grad=True)

    def g(x):
        return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))

    if kind == "gru":
        k_z, k_n = proj.chunk(2, -1)
        z = torch.sigmoid(k_z)
        a, b = 1 - z, z * g(k_n)
    else:
        k_f, k_i, k_g = proj.chunk(3, -1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        a, b = f / (f + i), i / (f + i) * g(k_g)
    ref = sequential_scan(a, b, h0)
    got = gated_scan(proj, h0, kind)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(ref)
    for x, y in zip(torch.autograd.grad(ref, (proj, h0), grad), torch.autograd.grad(got, (proj, h0), grad)):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-12)
