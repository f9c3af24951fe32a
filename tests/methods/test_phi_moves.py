"""No silent no-op: each method says when it first updates phi (``Method.first_update``), and a
run that would end before it is refused, naming the keys. The declaration is exact: at that step
phi has moved, one step earlier it has not."""
import dataclasses

import pytest
import torch

from benchmark.core.train import initial_body
from benchmark.models import build_body, flat_params
from benchmark.runtime.execute import execute
from helpers import make_config
from methods.base import METHODS

TOY = ["suite=toy", "metatest.steps=1", "train.log_every=1"]


def has(name: str, key: str) -> bool:
    return key in {f.name for f in dataclasses.fields(METHODS.get(name).config)}


def test_reptile_with_k_beyond_the_horizon_is_refused():
    with pytest.raises(ValueError, match=r"^method\.reset_every: .*train\.steps = 20"):
        make_config(*TOY, "method=reptile", "train.steps=20", "method.reset_every=100")


@pytest.mark.parametrize("name", [n for n in METHODS.names() if has(n, "aggregate_every")])
def test_aggregate_every_beyond_the_horizon_is_refused(name):
    with pytest.raises(ValueError, match=r"^method\.aggregate_every: .*train\.steps = 4"):
        make_config(*TOY, f"method={name}", "train.steps=4", "method.reset_every=10", "method.aggregate_every=5")


def test_cts_without_a_reset_in_the_horizon_still_moves_phi_and_is_valid():
    make_config(*TOY, "method=ours", "train.steps=20", "method.reset_every=100")


def test_scratch_never_moves_phi_by_design_and_is_valid():
    assert METHODS.get("scratch").build.first_update(make_config(*TOY, "method=scratch").method) is None
    make_config(*TOY, "method=scratch", "train.steps=1")


def final_phi(cfg):
    body = build_body(cfg, 1)
    body.load_state_dict(execute(cfg, progress=False).load_phi("final"))
    return flat_params(body)


@pytest.mark.parametrize("name", METHODS.names())
def test_first_update_is_exact(name, tmp_path):
    """phi has moved at the declared first update; a run one step shorter (built past the check)
    leaves phi at phi_0."""
    every = ["method.reset_every=3", "method.aggregate_every=3"] if has(name, "aggregate_every") else []
    cfg = make_config(*TOY, f"method={name}", "train.steps=3", *every, f"results_dir={tmp_path / 'a'}")
    first = METHODS.get(name).build.first_update(cfg.method)
    phi0 = flat_params(initial_body(cfg, 1))
    if first is None:
        assert torch.equal(final_phi(cfg), phi0)
        return
    cfg.train.steps = first
    assert not torch.equal(final_phi(cfg), phi0), f"{name}: phi must move by step {first}"
    if first > 1:
        short = make_config(*TOY, f"method={name}", "train.steps=3", *every, f"results_dir={tmp_path / 'b'}")
        short.train.steps = first - 1
        assert torch.equal(final_phi(short), phi0), f"{name}: phi moved before step {first}"
