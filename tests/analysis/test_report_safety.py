"""A report that cannot mislead: runs on a tuning seed are left out (they belong to --tune), runs
at two horizons are two rows unless pooled on request, a regenerated report keeps its provenance
and the raw runs archived beside it, and no link points at a PDF that git leaves out."""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pandas as pd
import yaml

from analysis.report import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_runs import TARGETS, make_run  # noqa: E402

def report(root: Path, out: Path, *extra: str) -> pd.DataFrame:
    assert main([str(root), "--out", str(out), *extra]) == 0
    return pd.read_csv(out / "runs.csv")


def test_the_report_says_how_its_runs_ran_and_warns_when_layouts_mix(tmp_path):
    root = tmp_path / "results"
    compiled = {"world_size": 1, "threads": 1, "device": "auto", "compile": True, "cpu": "AMD EPYC 7B13"}
    for seed in (0, 1):
        make_run(root, seed, layout=compiled)
    runs = report(root, tmp_path / "one")
    assert runs[["compile", "threads", "cpu"]].drop_duplicates().values.tolist() == [[True, 1, "AMD EPYC 7B13"]]
    line = "How the runs ran (runs.csv's `compile`, `threads`, `cpu`): 2 runs compiled, 1 torch thread, CPU AMD EPYC 7B13."
    assert line + "\n" in (tmp_path / "one" / "summary.md").read_text()

    make_run(root, 2, layout={**compiled, "compile": False, "threads": 2})
    make_run(root, 3)  # a summary from before the layout was recorded
    report(root, tmp_path / "mixed")
    text = (tmp_path / "mixed" / "summary.md").read_text()
    assert ("2 runs compiled, 1 torch thread, CPU AMD EPYC 7B13; 1 run eager, 2 torch threads, CPU AMD EPYC 7B13; "
            "1 run compile not recorded, threads not recorded, CPU not recorded. Wall times (`wall_seconds`) "
            "compare only within one of these") in text


def test_runs_on_tuning_seeds_are_left_out(tmp_path, capsys):
    root = tmp_path / "results"
    for seed in (0, 1, 100, 7):
        make_run(root, seed)
    # 100: a tuning seed of the committed selections (benchmark/conf/selected); 7: of a tune in the folder
    selected = root / "tune" / "selected" / "toy"
    selected.mkdir(parents=True)
    (selected / "ours.yaml").write_text(yaml.safe_dump({"method": "ours", "tuning_seeds": [7]}))
    runs = report(root, tmp_path / "r")
    assert sorted(runs["seed"].unique()) == [0, 1]
    assert "left out 2 runs on tuning seeds [7, 100]" in capsys.readouterr().err


def test_horizons_are_rows_of_their_own_unless_pooled(tmp_path):
    root = tmp_path / "results"
    for seed in (0, 1):
        make_run(root, seed, steps=20, reset_every=10)
        make_run(root, seed, steps=40, reset_every=5)  # K and steps change together: steps still named
    runs = report(root, tmp_path / "r")
    assert sorted(runs["variant"].unique()) == ["K=10, steps=20", "K=5, steps=40"]
    pooled = report(root, tmp_path / "p", "--pool", "train.steps")
    assert sorted(pooled["variant"].unique()) == ["K=10", "K=5"]


def test_regenerating_in_place_keeps_provenance_and_archive_and_links_no_pdf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(Path("results"), 0)
    report(Path("results"), Path("ref"))
    before = (Path("ref") / "summary.md").read_text()
    assert "From `results`:" in before
    assert main(["ref"]) == 0  # regenerated from its own CSVs
    assert (Path("ref") / "summary.md").read_text() == before
    with tarfile.open("ref/runs.tar.gz", "w:gz") as tar:  # its raw runs beside it
        tar.add("results", arcname="results")
    archived = (Path("ref") / "runs.tar.gz").read_bytes()
    assert main(["ref"]) == 0  # regenerated from them
    assert (Path("ref") / "summary.md").read_text() == before
    assert (Path("ref") / "runs.tar.gz").read_bytes() == archived
    assert ".pdf)" not in before and "(also `training_loss.pdf`)" in before
