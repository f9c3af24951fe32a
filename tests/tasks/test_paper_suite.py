"""suite=paper end to end on fixtures in the real on-disk formats, and its failure mode."""
import json

import dataset_fixtures
from helpers import cli


def test_missing_data_root_fails_before_compute_and_leaves_no_folder(tmp_path):
    out = cli("suite=paper", f"data.root={tmp_path / 'nowhere'}", f"data.cache_dir={tmp_path / 'cache'}",
              f"results_dir={tmp_path / 'results'}")
    assert out.returncode != 0
    assert "tiny_imagenet_1" in out.stderr and str(tmp_path / "nowhere") in out.stderr
    assert "http" in out.stderr, "the error says how to obtain the data"
    assert not (tmp_path / "results").exists()


def test_paper_suite_dry_run_on_fixtures(tmp_path):
    root = tmp_path / "data"
    dataset_fixtures.write_all(root)
    out = cli("suite=paper", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
              f"results_dir={tmp_path / 'results'}", "train.steps=3", "train.batch_size=4", "metatest.steps=2",
              "metatest.batch_size=4", "method.reset_every=2", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "results" / "paper" / "ours").iterdir()
    assert (run / "done").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["target_accuracy"]) == {"stl10", "oxford_pets", "food101"}  # the targets the paper shows
    assert set(summary["validation_accuracy"]) == {"cifar10", "dtd", "flowers102"}  # for selection only
    assert "resnet20" in (run / "config.yaml").read_text()
