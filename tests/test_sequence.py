import torch

from rnnlab.nn.sequence import last_valid, lengths_to_mask, reverse_padded


def test_mask_last_valid_and_reverse():
    lengths = torch.tensor([3, 1, 2])
    assert lengths_to_mask(lengths, 3).tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    x = torch.arange(9.0).view(3, 3, 1)  # (B, T, 1)
    assert last_valid(x, lengths).flatten().tolist() == [2.0, 3.0, 7.0]
    assert reverse_padded(x, lengths).flatten().tolist() == [2, 1, 0, 3, 4, 5, 7, 6, 8]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)
