"""The real-dataset loaders, offline, on tiny fixtures written in each dataset's own format.

Every task of the paper loads through the registry: shapes, dtype, the declared class
count, each image paired with its own label (fixture images show their label as a
colour), a second load served by the cache, and a clear error when the data is missing.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import dataset_fixtures as fx
from tasks.decode import check_splits, load_image
from tasks.registry import TASKS, Splits
from tasks.vision import PAPER_SOURCES, PAPER_TARGETS, PAPER_VALIDATION, MissingDataset

REAL_CLASSES = {
    "tiny_imagenet_1": 100, "tiny_imagenet_2": 100, "cifar100": 100, "stanford_dogs": 120, "fgvc_aircraft": 100,
    "cub200": 200, "fashion_mnist": 10, "svhn": 10,
    "stl10": 10, "oxford_pets": 37, "food101": 101, "cifar10": 10, "dtd": 47, "flowers102": 102,
    "tiny_imagenet": 200,
}
PAPER_SIZES = {"tiny_imagenet_1": 64, "tiny_imagenet_2": 64, "cifar100": 32, "stanford_dogs": 84,
               "fgvc_aircraft": 84, "cub200": 84, "fashion_mnist": 28, "svhn": 32, "tiny_imagenet": 64}
FINETUNE_SOURCE = "tiny_imagenet"  # all 200 classes: what the fine-tuning baseline pre-trains on
ALL = [*PAPER_SOURCES, *PAPER_TARGETS, *PAPER_VALIDATION, FINETUNE_SOURCE]
EXPECTED = {**fx.EXPECTED, FINETUNE_SOURCE: (400, 200, 0)}  # both halves' images


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return fx.write_all(tmp_path_factory.mktemp("real-data"))


def cfg(root: Path, cache: Path) -> SimpleNamespace:
    return SimpleNamespace(root=str(root), cache_dir=str(cache), download=False)


def test_paper_tasks_are_registered_with_the_paper_facts():
    assert (len(PAPER_SOURCES), len(PAPER_TARGETS), len(PAPER_VALIDATION)) == (8, 3, 3)
    assert set(ALL) == set(REAL_CLASSES)
    assert FINETUNE_SOURCE not in (*PAPER_SOURCES, *PAPER_TARGETS, *PAPER_VALIDATION)
    for name in ALL:
        spec = TASKS.get(name)
        size = PAPER_SIZES.get(name, 32)  # every target is meta-tested at 32 px
        assert (spec.num_classes, spec.channels, spec.image_size) == (REAL_CLASSES[name], 3, size), name
        assert (spec.pad, spec.flip, spec.mean, spec.std) == (4 if size == 32 else 8, True, 0.5, 0.5), name


@pytest.mark.parametrize("name", ALL)
def test_loads_offline_pairs_labels_and_caches(name, data_root, tmp_path):
    spec = TASKS.get(name)
    splits = spec.load(cfg(data_root, tmp_path))
    n_train, n_test, offset = EXPECTED[name]
    s = spec.image_size
    for part, n in (("train", n_train), ("test", n_test)):
        x, y = getattr(splits, f"{part}_x"), getattr(splits, f"{part}_y")
        assert x.dtype == torch.uint8 and tuple(x.shape) == (n, 3, s, s), (part, x.shape)
        assert y.dtype == torch.int64 and tuple(y.shape) == (n,)
        assert 0 <= int(y.min()) and int(y.max()) < spec.num_classes
        # Top rows white, the label's colour below: catches transposed and mislabelled decodes.
        assert (x[:, :, 0, s // 2] > 225).all(), f"{part}: the white top rows are not on top"
        body = x[:, :, (3 * s) // 4, s // 2]
        if name == "fashion_mnist":
            assert (body[:, 0] == body[:, 1]).all() and (body[:, 0] == body[:, 2]).all()
            got = torch.round((body[:, 0].float() - 20) / 20).long()
        else:
            got = torch.tensor([fx.decode_code(rgb) for rgb in body.tolist()])
        assert torch.equal(got, y + offset), f"{part}: images not paired with their labels"
    assert len(torch.unique(splits.train_y)) == spec.num_classes

    cached = list(tmp_path.glob(f"{name}-*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = spec.load(cfg(data_root, tmp_path))
    assert list(tmp_path.glob(f"{name}-*.pt")) == cached and cached[0].stat().st_mtime_ns == stamp
    for key in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(again, key), getattr(splits, key)), key


@pytest.mark.parametrize("name", ALL)
def test_missing_data_fails_early_naming_dataset_path_and_source(name, tmp_path):
    root = tmp_path / "no-data-here"
    with pytest.raises(MissingDataset) as err:
        TASKS.get(name).load(cfg(root, tmp_path / "cache"))
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert message.startswith(f"{name}: expected {root}{os.sep}") and "http" in message, message
    assert not (tmp_path / "cache").exists()  # failed before any decoding


def test_whole_tiny_imagenet_is_its_two_halves(data_root, tmp_path):
    """Class c < 100 of the whole task is class c of the first half, class 100 + c is class c
    of the second, with the same images in the same order, so a body pre-trained on the
    whole agrees with the halves on what every label means."""
    specs = [TASKS.get(n) for n in ("tiny_imagenet", "tiny_imagenet_1", "tiny_imagenet_2")]
    assert len({(s.image_size, s.channels, s.pad, s.flip, s.mean, s.std) for s in specs}) == 1
    assert specs[0].num_classes == specs[1].num_classes + specs[2].num_classes
    whole, first, second = (s.load(cfg(data_root, tmp_path)) for s in specs)
    split = specs[1].num_classes
    for part in ("train", "test"):
        x, y = getattr(whole, f"{part}_x"), getattr(whole, f"{part}_y")
        for half, low in ((first, y < split), (second, y >= split)):
            hx, hy = getattr(half, f"{part}_x"), getattr(half, f"{part}_y")
            assert torch.equal(x[low], hx), f"{part}: images differ from the half's"
            assert torch.equal(y[low] - (0 if half is first else split), hy), f"{part}: labels differ"
        assert len(y) == sum(len(getattr(half, f"{part}_y")) for half in (first, second))
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.pt")) == sorted(s.name for s in specs)  # one each


def test_a_changed_dataset_misses_the_cache(data_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root / "cifar-10-batches-py", root / "cifar-10-batches-py")
    cache = tmp_path / "cache"
    first = TASKS.get("cifar10").load(cfg(root, cache))
    batch = root / "cifar-10-batches-py" / "test_batch"
    st = batch.stat()
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a re-extraction would
    second = TASKS.get("cifar10").load(cfg(root, cache))
    assert len(list(cache.glob("cifar10-*.pt"))) == 2
    assert torch.equal(first.test_x, second.test_x)


def test_fixture_exercises_both_idx_forms(data_root):
    raw = data_root / "FashionMNIST" / "raw"  # so the fashion_mnist load above reads .gz and extracted
    assert (raw / "train-images-idx3-ubyte.gz").exists() and (raw / "t10k-images-idx3-ubyte").exists()


def test_load_image_handles_modes_shapes_and_large_jpegs(tmp_path):
    from PIL import Image

    colour = (200, 80, 40)
    cases = {
        "grey.jpg": Image.new("L", (20, 10), 128),
        "rgba.png": Image.new("RGBA", (9, 30), (*colour, 255)),
        "cmyk.jpg": Image.new("CMYK", (40, 40), (0, 0, 0, 0)),
        "large.jpg": Image.new("RGB", (640, 480), colour),  # decoded at reduced scale (draft)
    }
    for file, img in cases.items():
        img.save(tmp_path / file, quality=95)
        out = load_image(tmp_path / file, 32)
        assert out.dtype == np.uint8 and out.shape == (32, 32, 3), file
    assert np.abs(load_image(tmp_path / "large.jpg", 32).astype(int) - colour).max() <= 6
    assert np.abs(load_image(tmp_path / "rgba.png", 84).astype(int) - colour).max() == 0


def test_an_incomplete_dataset_is_refused():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="training set has 2 classes, the real dataset 3"):
        check_splits("toy", Splits(x, torch.tensor([0, 1, 0, 1]), x, torch.tensor([0, 1, 2, 2])), 8, 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        check_splits("toy", Splits(x, torch.tensor([0, 1, 2, 3]), x, torch.tensor([0, 1, 2, 2])), 8, 3)
