"""Image data that would corrupt training silently, or stop it with a traceback: a folder task's
links are never followed, 16-bit grey images are scaled to 8 bits (or refused by name), a
truncated image is named before any compute, and a damaged cache file is rebuilt."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

import dataset_fixtures as fx
from helpers import cli, make_config
from tasks.decode import DamagedImage, load_image
from tasks.registry import TASKS


@pytest.fixture
def lsml_log(caplog):
    """The ``lsml`` logger's records, whether or not an entry point set it not to propagate."""
    logger = logging.getLogger("lsml")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.WARNING)
    yield caplog
    logger.removeHandler(caplog.handler)


def folder_task(root, tmp_path, *extra):
    cfg = make_config("suite=toy", f"suite.targets=[toy_e,folder:{root}]", "data.channels=3",
                      f"data.cache_dir={tmp_path / 'cache'}", *extra)
    return TASKS.get(cfg.suite.targets[1]), cfg


def test_a_link_loop_in_a_folder_task_is_not_followed_and_is_named(tmp_path, lsml_log):
    root = fx.write_image_folder(tmp_path / "loop", test=None)  # 3 classes x 10 images, split 8 / 2
    os.symlink("..", root / "train" / "class_0" / "up")  # ln -s .. D/train/c0/up
    os.symlink(tmp_path, root / "train" / "class_1" / "out")  # a link out of the task's folder
    os.symlink(root / "train" / "class_2", root / "train" / "class_3")  # a class folder that is a link
    spec, cfg = folder_task(root, tmp_path)
    splits = spec.load(cfg.data)
    assert spec.num_classes == 3 and len(splits.train_y) + len(splits.test_y) == 30
    assert torch.bincount(splits.train_y).tolist() == [8, 8, 8]
    warning = lsml_log.text
    assert "not following 3 link(s) to folders" in warning and str(root / "train") in warning


def gradient_png(path):
    """A real 16-bit grey PNG, written with PIL: pixel values 0..65535 across the image."""
    from PIL import Image

    values = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(values).save(path)  # uint16: mode I;16
    return values


def test_a_16_bit_grey_png_is_scaled_to_8_bits(tmp_path):
    from PIL import Image

    values = gradient_png(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode == "I;16"  # what PIL makes of it: PIL's convert("RGB") would clip it at 255
    got = load_image(tmp_path / "deep.png", 32)[:, :, 0].astype(int)
    expected = np.round(values.astype(float) * 255 / 65535).astype(int)
    assert np.abs(got - expected).max() <= 0 and (got == 255).mean() < 0.01


def test_a_folder_of_16_bit_pngs_decodes_to_their_8_bit_values(tmp_path):
    root = tmp_path / "deep"
    for part, n in (("train", 3), ("test", 2)):
        for c in range(2):
            (root / part / f"c{c}").mkdir(parents=True)
            for i in range(n):
                gradient_png(root / part / f"c{c}" / f"{i}.png")
    spec, cfg = folder_task(root, tmp_path, "data.image_size=32")
    x = spec.load(cfg.data).train_x.float()
    assert spec.channels == 1 and (x == 255).float().mean() < 0.01 and abs(x.mean().item() - 127.5) < 1


def test_a_floating_point_image_is_refused_by_name_at_validation(tmp_path):
    from PIL import Image

    root = fx.write_image_folder(tmp_path / "float")
    bad = root / "train" / "class_0" / "float.tif"
    Image.fromarray(np.random.rand(16, 16).astype(np.float32), "F").save(bad)
    with pytest.raises(ValueError, match=r"float\.tif: mode F") as error:
        folder_task(root, tmp_path)
    assert "\n" not in str(error.value) and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_a_truncated_image_is_named_in_one_line_before_any_compute(tmp_path, suffix):
    root = fx.write_image_folder(tmp_path / f"cut_{suffix}")
    whole = sorted((root / "train" / "class_1").glob(f"*.{suffix}"))[0]
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])  # its header is intact: validation passes
    proc = cli("suite=toy", f"suite.targets=[toy_e,folder:{root}]", "data.channels=3", "train.steps=2",
               "metatest.steps=1", f"results_dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("error: ") and str(whole) in lines[-1], proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.pt"))
    assert not list((tmp_path / "cache").glob("*.pt")), "no cache of a damaged folder"


def test_load_image_names_a_truncated_file(tmp_path):
    from PIL import Image

    path = tmp_path / "cut.jpg"
    Image.fromarray((np.random.rand(64, 64, 3) * 255).astype(np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(DamagedImage, match="cut.jpg: does not decode"):
        load_image(path, 32)


@pytest.mark.parametrize("damage", ["half", "garbage", "empty"])
def test_a_damaged_cache_file_is_named_and_rebuilt(tmp_path, lsml_log, damage):
    root = fx.write_image_folder(tmp_path / "cached")
    spec, cfg = folder_task(root, tmp_path)
    first = spec.load(cfg.data)
    (cache,) = (tmp_path / "cache").glob("*.pt")
    blob = cache.read_bytes()
    cache.write_bytes({"half": blob[: len(blob) // 2], "garbage": b"\0" * len(blob), "empty": b""}[damage])
    again = spec.load(cfg.data)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    assert f"damaged cache file {cache}" in lsml_log.text and "building it again" in lsml_log.text
    assert cache.read_bytes() == blob, "rebuilt to the same bytes"
