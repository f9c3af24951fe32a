"""Tasks named on the command line (``folder:<path>``, ``torchvision:<Name>``) and suites in
YAML files: runs end done, a second run decodes nothing, a moved folder keeps its run id,
and every bad input is one line naming the key, the task and the path, before anything is
written. Fixtures are tiny PNG/JPEG folders (3 classes, 10 train and 5 test images each, a
few sizes and colour modes) and KMNIST's idx files."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import dataset_fixtures as fx
from benchmark import sweep, tune
from benchmark.compose import compose_config
from benchmark.runtime.execute import execute
from benchmark.runtime.storage import RunDir
from helpers import ROOT, make_config
from tasks.registry import TASKS

FAST = ["train.steps=4", "metatest.steps=4", "train.batch_size=8", "metatest.batch_size=8", "suite.validation=[]",
        "suite.finetune_source=''"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for i, name in enumerate(("cub", "dogs", "birds", "herons")):
        fx.write_image_folder(root / name, offset=3 * i)
    fx.write_image_folder(root / "grey", grey=True)
    fx.write_image_folder(root / "nosplit", test=None)
    return root


def suite(root: Path, *extra: str, sources=("cub", "dogs"), targets=("birds",)) -> list[str]:
    return [f"suite.sources=[{','.join(f'folder:{root / s}' for s in sources)}]",
            f"suite.targets=[{','.join(f'folder:{root / t}' for t in targets)}]", *FAST, *extra]


def run_id(cfg) -> str:
    return RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)).id


def test_a_folder_task_pairs_images_with_labels_detects_grey_and_splits_without_test(folders, tmp_path):
    cfg = make_config(*suite(folders, targets=("grey", "nosplit")), f"data.cache_dir={tmp_path}", "data.channels=3")
    assert cfg.suite.sources == ["folder:cub@32", "folder:dogs@32"]
    assert cfg.suite.paths["folder:cub@32"] == str(folders / "cub")
    rgb, grey, nosplit = (TASKS.get(n) for n in ("folder:cub@32", "folder:grey@32", "folder:nosplit@32"))
    assert (rgb.num_classes, rgb.channels, grey.channels, rgb.pad, rgb.flip) == (3, 3, 1, 4, True)
    splits = rgb.load(cfg.data)
    assert tuple(splits.train_x.shape) == (30, 3, 32, 32) and tuple(splits.test_x.shape) == (15, 3, 32, 32)
    body = splits.train_x[:, :, 28, 16]  # below the white top quarter: the label's colour
    assert torch.equal(torch.tensor([fx.decode_code(c) for c in body.tolist()]), splits.train_y)
    g = grey.load(cfg.data)
    assert g.train_x.shape[1] == 1 and torch.equal(((g.train_x[:, 0, 28, 16].float() - 20) / 20).round().long(),
                                                   g.train_y)
    n = nosplit.load(cfg.data)  # data.test_fraction 0.2 of each class, seeded by the class name
    assert torch.bincount(n.test_y).tolist() == [2, 2, 2] and torch.bincount(n.train_y).tolist() == [8, 8, 8]
    assert torch.equal(nosplit.load(cfg.data).test_x, n.test_x)


def test_a_run_over_folders_ends_done_and_a_second_run_decodes_nothing(folders, tmp_path, monkeypatch):
    args = suite(folders, f"data.cache_dir={tmp_path / 'cache'}", f"results_dir={tmp_path / 'runs'}")
    first = execute(make_config(*args), progress=False)
    assert first.done and set(first.summary()["target_accuracy"]) == {"folder:birds@32"}
    assert "folder:cub@32: " + str(folders / "cub") in (first.path / "config.yaml").read_text()

    def no_decoding(*a, **k):
        raise AssertionError("decoded again: the cache missed")

    monkeypatch.setattr("tasks.user.decode_files", no_decoding)
    second = execute(make_config(*args, "seed=1"), progress=False)
    assert second.done and second.id != first.id


def test_a_moved_folder_keeps_its_run_id_and_the_config_records_its_new_path(folders, tmp_path):
    shutil.copytree(folders / "birds", tmp_path / "here" / "birds")  # a copy: new mtimes, same files
    before = make_config(*suite(folders, targets=()), f"suite.targets=[folder:{tmp_path / 'here' / 'birds'}]")
    shutil.move(tmp_path / "here", tmp_path / "there")
    after = make_config(*suite(folders, targets=()), f"suite.targets=[folder:{tmp_path / 'there' / 'birds'}]")
    assert run_id(before) == run_id(after)
    assert after.suite.paths["folder:birds@32"] == str(tmp_path / "there" / "birds")
    (tmp_path / "there" / "birds" / "test" / "class_0" / "000.png").unlink()  # other content: another run
    changed = make_config(*suite(folders, targets=()), f"suite.targets=[folder:{tmp_path / 'there' / 'birds'}]")
    assert run_id(changed) != run_id(after)


def test_new_keys_at_their_defaults_keep_every_existing_run_id():
    plain = make_config("suite=toy")
    assert run_id(plain) == run_id(make_config("suite=toy", "data.image_size=64", "data.test_fraction=0.3"))
    assert run_id(plain) != run_id(make_config("suite=toy", "data.pad=2"))


def test_a_torchvision_task_reads_kmnist_idx_files(tmp_path):
    root = fx.write_kmnist(tmp_path / "data")
    cfg = make_config("suite=toy", "suite.sources=[toy_a,torchvision:KMNIST@28]", f"data.root={root}",
                      f"data.cache_dir={tmp_path / 'cache'}")
    spec = TASKS.get("torchvision:KMNIST@28")
    assert (spec.num_classes, spec.channels, spec.image_size) == (10, 1, 28)
    splits = spec.load(cfg.data)
    assert tuple(splits.train_x.shape) == (20, 1, 28, 28) and len(splits.test_y) == 10
    assert torch.equal(((splits.train_x[:, 0, 20, 14].float() - 20) / 20).round().long(), splits.train_y)


def test_a_non_image_file_is_skipped_with_a_warning_and_a_count(tmp_path, caplog):
    root = fx.write_image_folder(tmp_path / "notes")
    (root / "train" / "class_0" / "README.txt").write_text("not an image")
    (root / "train" / ".DS_Store").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="lsml"):
        cfg = make_config("suite=toy", f"suite.sources=[toy_a,folder:{root}]", "data.channels=3")
    assert TASKS.get("folder:notes@32").num_classes == 3 and cfg.suite.sources[1] == "folder:notes@32"
    assert "skipped 1 files that are not images" in caplog.text and "README.txt" in caplog.text


def _bad(tmp_path: Path, case: str) -> tuple[str, str]:
    """(the task as given, a path the error must name) for each bad folder."""
    root = fx.write_image_folder(tmp_path / case)
    if case == "missing":
        return f"folder:{tmp_path / 'nowhere'}", str(tmp_path / "nowhere")
    if case == "empty_class":
        shutil.rmtree(root / "train" / "class_1")
        (root / "train" / "class_1").mkdir()
        return f"folder:{root}", str(root / "train" / "class_1")
    if case == "broken_image":
        (root / "train" / "class_2" / "bad.jpg").write_bytes(b"not a jpeg")
        return f"folder:{root}", str(root / "train" / "class_2" / "bad.jpg")
    if case == "no_images":
        for f in root.rglob("*.*"):
            f.unlink()
        return f"folder:{root}", str(root)
    if case == "test_class_not_in_train":
        shutil.copytree(root / "test" / "class_0", root / "test" / "heron")
        return f"folder:{root}", str(root / "test" / "heron")
    if case == "size_zero":
        return f"folder:{root}@0", "@0"
    if case == "size_text":
        return f"folder:{root}@big", "@big"
    if case == "unknown_scheme":
        return f"s3:{root}", "s3:"
    if case == "unknown_torchvision_class":
        return "torchvision:KMNISTT", "KMNIST"  # with a suggestion
    if case == "unknown_torchvision_keyword":
        fx.write_kmnist(tmp_path / "data")
        return "torchvision:KMNIST?colour=1", str(tmp_path / "data")
    raise KeyError(case)


BAD = ["missing", "empty_class", "broken_image", "no_images", "test_class_not_in_train", "size_zero", "size_text",
       "unknown_scheme", "unknown_torchvision_class", "unknown_torchvision_keyword"]


@pytest.mark.parametrize("role", ["sources", "validation"])
@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_key_the_task_and_the_path(tmp_path, case, role):
    task, path = _bad(tmp_path, case)
    with pytest.raises(ValueError) as error:
        make_config("suite=toy", f"suite.{role}=[{'toy_a,' if role == 'sources' else ''}'{task}']",
                    f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'cache'}")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"suite.{role}:"), message
    assert repr(task) in message and path in message, message
    assert not (tmp_path / "cache").exists()


def test_mixed_channels_fail_unless_data_channels_converts_them(folders):
    mixed = suite(folders, targets=("grey",))
    with pytest.raises(ValueError, match=r"mix channel counts: grey.*RGB.*data.channels"):
        make_config(*mixed)
    assert make_config(*mixed, "data.channels=1").data.channels == 1


def test_the_cli_refuses_a_missing_folder_before_writing_anything(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmark.run", "suite=toy", f"suite.targets=[folder:{tmp_path}/no]",
                          f"results_dir={tmp_path / 'runs'}", "runner.threads=1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and f"error: suite.targets: task 'folder:{tmp_path}/no'" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def conf(folders, tmp_path) -> Path:
    (tmp_path / "conf" / "suite").mkdir(parents=True)
    (tmp_path / "conf" / "suite" / "mine.yaml").write_text(
        f"sources: [folder:{folders / 'cub'}, folder:{folders / 'dogs'}]\ntargets: [folder:{folders / 'birds'}]\n"
        f"validation: [folder:{folders / 'herons'}]\n")
    (tmp_path / "conf" / "suite" / "typo.yaml").write_text("sources: [toy_a]\ntargets: [toy_e]\ntarget: [toy_f]\n")
    return tmp_path / "conf"


def test_a_suite_file_composes_for_run_sweep_and_tune_and_is_named_after_the_file(conf, tmp_path, capsys):
    where = f"hydra.searchpath=[file://{conf}]"
    cfg = compose_config([where, "suite=mine", "runner.threads=1"])
    assert (cfg.suite.name, cfg.suite.targets) == ("mine", ["folder:birds@32"])
    args = ["--config-dir", str(conf), "suite=mine", "method=ours,reptile", "method.reset_every=2", *FAST[:4],
            f"results_dir={tmp_path / 'r'}"]
    assert sweep.main(["-", "--status", *args]) == 0
    assert "2 runs: 2 missing" in capsys.readouterr().out
    assert tune.main(["--config-dir", str(conf), "suite=mine", "method=ours", "trials=2", "--status", *args[5:]]) == 0
    assert "tune" not in capsys.readouterr().err


def test_an_unknown_key_in_a_suite_file_is_one_line_naming_it_and_the_file(conf, tmp_path, capsys):
    with pytest.raises(ValueError) as error:
        compose_config([f"hydra.searchpath=[file://{conf}]", "suite=typo"])
    message = str(error.value)
    assert "\n" not in message and message.startswith("suite.target: unknown key in the suite file suite/typo.yaml")
    assert str(conf / "suite" / "typo.yaml") in message
    assert sweep.main(["-", "--config-dir", str(conf), "suite=typo", f"results_dir={tmp_path / 'r'}"]) == 2
    assert "suite.target: unknown key" in capsys.readouterr().err and not (tmp_path / "r").exists()
    out = subprocess.run([sys.executable, "-m", "benchmark.run", "--config-dir", str(conf), "suite=typo",
                          f"results_dir={tmp_path / 'r'}"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("error: suite.target: unknown key in the suite file suite/typo.yaml")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_sweep_runs_a_grid_over_a_suite_file(conf, tmp_path, capsys):
    args = ["-", "--config-dir", str(conf), "suite=mine", "method=ours,reptile", "method.reset_every=2", *FAST[:4],
            "runner.threads=1", f"results_dir={tmp_path / 'r'}", f"data.cache_dir={tmp_path / 'cache'}"]
    assert sweep.main(args) == 0
    assert len(list((tmp_path / "r" / "mine").rglob("done"))) == 2
