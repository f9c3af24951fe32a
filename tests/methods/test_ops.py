"""The pure parameter-space operations against numbers computed by hand."""
import torch

from methods import ops


def test_reptile_delta_by_hand():
    phi = torch.tensor([0.0, 1.0])
    mean = torch.tensor([2.0, 5.0])
    # beta * (mean - phi) = 0.5 * [2, 4]
    assert torch.equal(ops.reptile_delta(phi, mean, 0.5), torch.tensor([1.0, 2.0]))
    assert torch.equal(phi, torch.tensor([0.0, 1.0])), "phi must not be modified"


def test_shift_by_hand():
    theta = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    ops.shift_(theta, torch.tensor([0.5, -1.0]))
    assert torch.equal(theta, torch.tensor([[1.5, 1.0], [3.5, 3.0]]))
