"""Same seed, same phi bit for bit; meta_lr = 0 leaves phi at phi_0; methods share phi_0."""
import pytest
import torch

from benchmark.core.train import initial_body
from benchmark.models import flat_params
from benchmark.runtime.execute import execute
from helpers import make_config


def phi_final(tmp_path, *overrides):
    cfg = make_config("suite=toy", f"results_dir={tmp_path}", *overrides)
    run = execute(cfg, progress=False)
    return torch.nn.utils.parameters_to_vector(
        [v for k, v in run.load_phi("final").items() if "running" not in k and "num_batches" not in k]
    ), cfg


def test_same_seed_same_phi_bit_for_bit(tmp_path):
    a, _ = phi_final(tmp_path / "a", "seed=3")
    b, _ = phi_final(tmp_path / "b", "seed=3")
    c, _ = phi_final(tmp_path / "c", "seed=4")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("method", ["ours", "reptile"])
def test_meta_lr_zero_leaves_phi_at_phi0(tmp_path, method):
    phi, cfg = phi_final(tmp_path, f"method={method}", "method.meta_lr=0", "method.reset_every=4")
    phi0 = flat_params(initial_body(cfg, 1))
    assert torch.equal(phi, phi0)
    moved, _ = phi_final(tmp_path / "moved", f"method={method}", "method.reset_every=4")
    assert not torch.equal(moved, phi0)


def test_validation_split_is_fixed_by_seed_and_recorded(tmp_path):
    from benchmark.core.data import val_indices

    cfg = make_config("suite=toy", "method=fomaml", f"results_dir={tmp_path}", "train.steps=4")
    run = execute(cfg, progress=False)
    recorded = torch.load(run.path / "val_split.pt")
    assert set(recorded) == set(cfg.suite.sources)
    n = 24 * 3  # toy_a: 3 classes x 24 training images
    assert torch.equal(recorded["toy_a"], val_indices(n, 0.25, cfg.seed, "toy_a"))
    assert len(recorded["toy_a"]) == 18
    assert not torch.equal(val_indices(n, 0.25, 1, "toy_a"), recorded["toy_a"])
