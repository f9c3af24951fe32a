"""The command line: bad input fails before any compute, naming the key; a smoke run
writes a complete run folder."""
import json

import pytest
import torch

from helpers import cli, make_config

TOY = ["suite=toy"]


@pytest.mark.parametrize(
    "override,expected",
    [
        ("method=foo", ["method: unknown choice 'foo'", "ours", "reptile"]),
        ("suite=foo", ["suite: unknown choice 'foo'", "glyphs", "toy"]),
        ("model=foo", ["model: unknown choice 'foo'", "convnet"]),
        ("method.meta_lr=-1", ["method.meta_lr"]),
        ("method.no_such_key=1", ["no_such_key"]),
    ],
)
def test_cli_bad_input_exits_nonzero_and_writes_nothing(override, expected, tmp_path):
    out = cli(*TOY, f"results_dir={tmp_path}", override)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    for piece in expected:
        assert piece in text, text
    assert not any(tmp_path.iterdir()), "nothing may be written on bad input"


@pytest.mark.parametrize(
    "override,key",
    [
        ("method.meta_lr=-1", "method.meta_lr"),
        ("method.aggregate_every=500", "method.aggregate_every"),
        ("method.reset_every=0", "method.reset_every"),
        ("method.aggregate_every=0", "method.aggregate_every"),
        ("train.steps=0", "train.steps"),
        ("train.inner_lr=0", "train.inner_lr"),
        ("train.batch_size=-3", "train.batch_size"),
        ("metatest.steps=0", "metatest.steps"),
        ("metatest.lr=-1", "metatest.lr"),
        ("suite.sources=[toy_a,nope]", "unknown task 'nope'; valid task names: .*toy_a"),
        ("suite.targets=[nope]", "suite.targets"),
        ("runner.world_size=0", "runner.world_size"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        make_config(*TOY, override)


def test_cfg_job_prints_resolved_config():
    out = cli("--cfg", "job", "method=reptile", "method.reset_every=7")
    assert out.returncode == 0, out.stderr
    assert "reset_every: 7" in out.stdout and "name: reptile" in out.stdout


def test_reptile_aggregate_every_follows_k():
    cfg = make_config(*TOY, "method=reptile", "method.reset_every=9")
    assert cfg.method.aggregate_every == 9


def test_smoke_run_writes_a_complete_folder(tmp_path):
    out = cli(*TOY, f"results_dir={tmp_path}", "metatest.at_steps=[10]", "checkpoint.phi_every=5")
    assert out.returncode == 0, out.stderr
    (run,) = list((tmp_path / "toy" / "ours").iterdir())
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "metatest.jsonl", "summary.json", "done", "checkpoints"} <= names
    assert not [p for p in run.rglob("*.tmp")]
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"phi_5.pt", "phi_10.pt", "phi_15.pt", "phi_final.pt"} == ckpts
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "ours" and summary["suite"] == "toy" and summary["seed"] == 0
    assert summary["inner_steps"] == 20 * 4
    assert set(summary["target_accuracy"]) == {"toy_e", "toy_f"}
    assert all(0 <= a <= 1 for a in summary["target_accuracy"].values())
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows} == {"toy_a", "toy_b", "toy_c", "toy_d"}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    mt = [json.loads(l) for l in (run / "metatest.jsonl").read_text().splitlines()]
    assert {(r["target"], r["role"], r["phi_step"]) for r in mt} == {
        *((t, "target", s) for t in ("toy_e", "toy_f") for s in (10, "final")), ("toy_v", "validation", "final")}
    assert "toy_e" in out.stdout and "mean" in out.stdout
    # A finished run is not run again.
    again = cli(*TOY, f"results_dir={tmp_path}", "metatest.at_steps=[10]", "checkpoint.phi_every=5")
    assert again.returncode == 0 and "already done" in again.stderr  # INFO on the log
