"""Readers of the image-folder datasets: which file has which label, in each official layout.

Each ``load_*(data_cfg, task, size, num_classes)`` checks its files exist, then returns the
cached uint8 splits (``tasks.decode``). Layouts, under ``data.root``:

* ``tiny-imagenet-200/``: ``wnids.txt``, ``train/<wnid>/images/*.JPEG``, ``val/images/`` and
  ``val/val_annotations.txt``. Classes are the wnids *sorted*; the two halves take classes
  0-99 and 100-199 (the authors' ``tiny_imagenet_split_1/2``), the whole task all 200 in
  the same order, so its class c is class c of the first half and its class 100 + c class c
  of the second, each with the same images in the same order. Val is the test set.
* ``CUB_200_2011/``: the official tarball (``images.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt``, ``images/``); its train/test split.
* ``stanford_dogs/``: the official ``images.tar`` (``Images/<breed>/``) and ``lists.tar``
  (``train_list.mat``, ``test_list.mat``) extracted into one folder; their split.
* ``flowers-102/`` (torchvision's layout: ``jpg/``, ``imagelabels.mat``, ``setid.mat``):
  read here because torchvision's ``Flowers102`` md5-checks both ``.mat`` files on every
  construction. Train is train + val (2,040 images), test is test (6,149).
* ``food-101/``, ``dtd/dtd/``, ``fgvc-aircraft-2013b/``, ``oxford-iiit-pet/``: read by
  torchvision's own classes, which only check that folders exist. Splits: Food-101
  train/test; DTD partition 1, train + val / test; Aircraft trainval/test at the variant
  level (100 classes; the copyright banner is kept, as torchvision does); Pets trainval/test.

The authors read pre-decoded LMDB/npy copies whose splits are unpublished; the splits
above are each dataset's official ones.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.decode import (OR_DOWNLOAD, data_root, decode_files, decode_items, ensure, fit, load_cached, load_image,
                          torchvision_download)
from tasks.registry import Splits

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

Items = list[tuple[Path, int]]


def _decode(train: Items, test: Items, size: int) -> Splits:
    def one(items: Items) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_files([p for p, _ in items], [label for _, label in items], size)

    return Splits(*one(train), *one(test))


def _table(path: Path) -> dict[str, str]:
    """``<id> <value>`` lines (the CUB index files) as a dict."""
    rows = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    return {row[0]: row[1].strip() for row in rows}


def load_tiny_imagenet(data_cfg: Any, task: str, size: int, num_classes: int, half: int | None = None) -> Splits:
    """All of Tiny ImageNet (``half=None``), or the half 0 or 1 of its sorted classes."""
    how = ("Download tiny-imagenet-200.zip from the official page https://cs231n.stanford.edu/ "
           "(http://cs231n.stanford.edu/tiny-imagenet-200.zip) and unzip it into the data root.")
    root = data_root(data_cfg)
    base = root / "tiny-imagenet-200"
    wnids_file, annotations = base / "wnids.txt", base / "val" / "val_annotations.txt"
    ensure(task, data_cfg, [wnids_file, annotations, base / "val" / "images", base / "train"], how)
    wnids = sorted(wnids_file.read_text().split())
    total = num_classes if half is None else 2 * num_classes
    if len(wnids) != total:
        raise ValueError(f"{task}: {wnids_file} lists {len(wnids)} classes; Tiny ImageNet has {total}")
    mine = wnids if half is None else wnids[half * num_classes:(half + 1) * num_classes]
    label = {wnid: i for i, wnid in enumerate(mine)}
    class_dirs = [base / "train" / wnid / "images" for wnid in mine]
    ensure(task, data_cfg, class_dirs, how)

    def build() -> Splits:
        train = [(d / f, label[w]) for w, d in zip(mine, class_dirs)
                 for f in sorted(os.listdir(d)) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        test = []
        for line in annotations.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1] in label:
                test.append((base / "val" / "images" / fields[0], label[fields[1]]))
        return _decode(train, test, size)

    # The training set has no list file, so its class directories' mtimes stand in for one.
    return load_cached(task, data_cfg, size, num_classes, [wnids_file, annotations, *class_dirs], build)


def load_cub(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    how = ("Download CUB_200_2011.tgz from the official page https://www.vision.caltech.edu/datasets/cub_200_2011/ "
           "(https://data.caltech.edu/records/65de6-vp158) and extract it into the data root.")
    base = data_root(data_cfg) / "CUB_200_2011"
    index = [base / "images.txt", base / "image_class_labels.txt", base / "train_test_split.txt"]
    ensure(task, data_cfg, [*index, base / "images"], how)

    def build() -> Splits:
        paths, labels, is_train = (_table(p) for p in index)
        train: Items = []
        test: Items = []
        for image_id, rel in paths.items():
            item = (base / "images" / rel, int(labels[image_id]) - 1)  # class ids are 1-based
            (train if is_train[image_id] == "1" else test).append(item)
        return _decode(train, test, size)

    return load_cached(task, data_cfg, size, num_classes, index, build)


def load_stanford_dogs(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    base = data_root(data_cfg) / "stanford_dogs"
    how = ("Download images.tar and lists.tar from the official page "
           f"http://vision.stanford.edu/aditya86/ImageNetDogs/ and extract both into {base}/ "
           "(giving Images/<breed>/*.jpg, train_list.mat and test_list.mat).")
    lists = [base / "train_list.mat", base / "test_list.mat"]
    ensure(task, data_cfg, [*lists, base / "Images"], how)

    def read(mat_path: Path) -> Items:
        from scipy.io import loadmat

        mat = loadmat(mat_path, squeeze_me=True)
        files = [str(f) for f in np.atleast_1d(mat["file_list"])]
        labels = np.atleast_1d(mat["labels"]).astype(np.int64) - 1  # 1-based, in sorted breed order
        return [(base / "Images" / f, int(y)) for f, y in zip(files, labels)]

    return load_cached(task, data_cfg, size, num_classes, lists,
                       lambda: _decode(read(lists[0]), read(lists[1]), size))


def load_flowers102(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    base = data_root(data_cfg) / "flowers-102"
    how = ("Get 102flowers.tgz (extract it here), imagelabels.mat and setid.mat from "
           f"https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into {base}/, {OR_DOWNLOAD}")
    mats = [base / "imagelabels.mat", base / "setid.mat"]
    ensure(task, data_cfg, [*mats, base / "jpg"], how, download=torchvision_download("Flowers102"))

    def build() -> Splits:
        from scipy.io import loadmat

        labels = np.atleast_1d(loadmat(mats[0], squeeze_me=True)["labels"]).astype(np.int64)
        ids = loadmat(mats[1], squeeze_me=True)

        def items(*keys: str) -> Items:  # image ids and labels are 1-based
            return [(base / "jpg" / f"image_{int(i):05d}.jpg", int(labels[int(i) - 1]) - 1)
                    for key in keys for i in np.atleast_1d(ids[key])]

        return _decode(items("trnid", "valid"), items("tstid"), size)

    return load_cached(task, data_cfg, size, num_classes, mats, build)


def _torchvision_split(class_name: str, root: Path, size: int, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one split through torchvision's class, which knows the layout and the labels."""
    import inspect

    import torchvision.datasets

    cls = getattr(torchvision.datasets, class_name)
    if "loader" in inspect.signature(cls).parameters:  # decode straight to size (JPEG draft)
        ds = cls(str(root), download=False, loader=partial(load_image, size=size), **kwargs)
    else:  # OxfordIIITPet, older torchvision: the class decodes at full size, we then resize
        ds = cls(str(root), download=False, transform=partial(fit, size=size), **kwargs)
    return decode_items(len(ds), ds.__getitem__, size)


def _torchvision_task(data_cfg: Any, task: str, size: int, num_classes: int, class_name: str, folder: str,
                      index: list[str], how: str, train: list[dict], test: list[dict]) -> Splits:
    """A task read by a torchvision class; ``train``/``test`` are its kwargs per split part."""
    root = data_root(data_cfg)
    defining = [root / folder / f for f in index]
    ensure(task, data_cfg, [root / folder, *defining], f"{how.format(root=root)}, {OR_DOWNLOAD}",
           download=torchvision_download(class_name))

    def part(kwargs_list: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(_torchvision_split(class_name, root, size, **kw) for kw in kwargs_list))
        return torch.cat(xs), torch.cat(ys)

    return load_cached(task, data_cfg, size, num_classes, defining, lambda: Splits(*part(train), *part(test)))


def load_food101(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    return _torchvision_task(
        data_cfg, task, size, num_classes, "Food101", "food-101", ["images", "meta/train.json", "meta/test.json"],
        "Extract food-101.tar.gz from https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ into the data root",
        train=[{"split": "train"}], test=[{"split": "test"}])


def load_dtd(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    return _torchvision_task(
        data_cfg, task, size, num_classes, "DTD", "dtd/dtd",
        ["images", "labels/train1.txt", "labels/val1.txt", "labels/test1.txt"],
        "Extract dtd-r1.0.1.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/dtd/ into {root}/dtd/",
        train=[{"split": "train"}, {"split": "val"}], test=[{"split": "test"}])


def load_fgvc_aircraft(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    return _torchvision_task(
        data_cfg, task, size, num_classes, "FGVCAircraft", "fgvc-aircraft-2013b",
        ["data/images", "data/variants.txt", "data/images_variant_trainval.txt", "data/images_variant_test.txt"],
        "Extract fgvc-aircraft-2013b.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ "
        "into the data root",
        train=[{"split": "trainval", "annotation_level": "variant"}],
        test=[{"split": "test", "annotation_level": "variant"}])


def load_oxford_pets(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    return _torchvision_task(
        data_cfg, task, size, num_classes, "OxfordIIITPet", "oxford-iiit-pet",
        ["images", "annotations/trainval.txt", "annotations/test.txt"],
        "Extract images.tar.gz and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ "
        "into {root}/oxford-iiit-pet/",
        train=[{"split": "trainval"}], test=[{"split": "test"}])
