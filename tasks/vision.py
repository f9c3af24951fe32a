"""The paper's real tasks: 8 meta-training sources, the 3 meta-test targets the paper shows,
and 3 validation tasks from the authors' other targets (Shin et al. 2021).

Sources at the paper's sizes (Tiny ImageNet split by class into two tasks, 64 px; CIFAR-100
and SVHN 32 px; Stanford Dogs, FGVC Aircraft and CUB-200 84 px; Fashion-MNIST 28 px, grey
repeated to 3 channels). Targets all at 32 px, the meta-test size. Augmentation is declared,
not applied: the runner crops with padding 4 at 32 px and 8 otherwise (the authors' rule,
so Fashion-MNIST gets 8), flips horizontally, and normalizes with mean 0.5, std 0.5.

This file reads the datasets stored as arrays (CIFAR-10/100 pickles, SVHN ``.mat``,
Fashion-MNIST idx, STL10 binaries) and registers every task; image folders are in
``tasks.folders``, the shared decode/cache path in ``tasks.decode``. The array readers
are our own, not torchvision's classes: ``CIFAR10/100``, ``SVHN`` and ``STL10`` md5-check
every data file on each construction, which rehashes up to ~0.6 GB per start and rejects
any file that is not the original (such as the test fixtures); the decoded cache already
makes the files a one-time read. ``FashionMNIST`` reads only the extracted idx files, not
the ``.gz`` ones as distributed; ours reads either. With ``data.download=true`` a missing
dataset is fetched by torchvision's class, which does check the archive's md5. Layouts
under ``data.root`` are torchvision's: ``cifar-10-batches-py/``, ``cifar-100-python/``,
``FashionMNIST/raw/``, ``stl10_binary/``; except SVHN, whose two ``.mat`` files torchvision
drops straight into its root, and which we keep in ``svhn/``.
"""
from __future__ import annotations

import gzip
import struct
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tasks import folders
from tasks.decode import (OR_DOWNLOAD, MissingDataset, data_root, ensure, from_array,  # noqa: F401 (re-export)
                          load_cached, torchvision_download)
from tasks.registry import Splits, register_suite, register_task

PAPER_SOURCES = ("tiny_imagenet_1", "tiny_imagenet_2", "cifar100", "stanford_dogs", "fgvc_aircraft", "cub200",
                 "fashion_mnist", "svhn")
PAPER_TARGETS = ("stl10", "oxford_pets", "food101")  # the targets the paper shows
PAPER_VALIDATION = ("cifar10", "dtd", "flowers102")  # from the authors' other targets: for selection only

CIFAR = {  # variant: (folder, train files, test files, label key, torchvision class)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", "CIFAR100"),
}


def load_cifar(data_cfg: Any, task: str, size: int, num_classes: int, variant: str) -> Splits:
    folder, train_files, test_files, key, tv_class = CIFAR[variant]
    base = data_root(data_cfg) / folder
    files = [base / f for f in (*train_files, *test_files)]
    ensure(task, data_cfg, files, f"Extract https://www.cs.toronto.edu/~kriz/{folder}.tar.gz into the data root, "
           + OR_DOWNLOAD, download=torchvision_download(tv_class))

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        import pickle

        xs, ys = [], []
        for name in names:  # the official python pickles; the same trust as torchvision's reader
            with open(base / name, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[key], dtype=np.int64))
        return from_array(np.concatenate(xs), size), torch.from_numpy(np.concatenate(ys))

    return load_cached(task, data_cfg, size, num_classes, files, lambda: Splits(*read(train_files), *read(test_files)))


def load_svhn(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    base = data_root(data_cfg) / "svhn"
    files = [base / "train_32x32.mat", base / "test_32x32.mat"]

    def download(root: Path) -> None:
        for split in ("train", "test"):
            torchvision_download("SVHN", split=split)(root / "svhn")

    ensure(task, data_cfg, files, "Get train_32x32.mat and test_32x32.mat from "
           f"http://ufldl.stanford.edu/housenumbers/ into {base}/, {OR_DOWNLOAD}", download=download)

    def read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        from scipy.io import loadmat

        mat = loadmat(path)
        x = np.transpose(mat["X"], (3, 2, 0, 1))  # [H, W, C, N] -> [N, C, H, W]
        y = mat["y"].astype(np.int64).ravel()
        y[y == 10] = 0  # the digit 0 is stored as label 10
        return from_array(x, size), torch.from_numpy(y)

    return load_cached(task, data_cfg, size, num_classes, files, lambda: Splits(*read(files[0]), *read(files[1])))


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte idx file (the MNIST format), gzip'd or not."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file (magic {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    raw = data_root(data_cfg) / "FashionMNIST" / "raw"
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    # Either the extracted file or the .gz as distributed; the extracted one wins.
    files = [raw / s if (raw / s).exists() or not (raw / f"{s}.gz").exists() else raw / f"{s}.gz" for s in stems]
    ensure(task, data_cfg, files, "Get the four idx files (.gz or extracted) from "
           f"https://github.com/zalandoresearch/fashion-mnist into {raw}/, {OR_DOWNLOAD}",
           download=torchvision_download("FashionMNIST"))

    def read(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
        x = read_idx(images)[:, None]  # [N, 1, 28, 28]; from_array repeats grey to 3 channels
        return from_array(x, size), torch.from_numpy(read_idx(labels).astype(np.int64))

    return load_cached(task, data_cfg, size, num_classes, files,
                       lambda: Splits(*read(files[0], files[1]), *read(files[2], files[3])))


def load_stl10(data_cfg: Any, task: str, size: int, num_classes: int) -> Splits:
    base = data_root(data_cfg) / "stl10_binary"
    files = [base / f for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")]
    ensure(task, data_cfg, files, "Extract stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ "
           f"into the data root, {OR_DOWNLOAD}", download=torchvision_download("STL10", split="train"))

    def read(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
        # Column-major 3x96x96 per image: swap H and W to get rows first. The unlabelled
        # split (2.6 GB) is never read.
        x = np.fromfile(images, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        y = np.fromfile(labels, dtype=np.uint8).astype(np.int64) - 1  # labels are 1..10
        return from_array(x, size), torch.from_numpy(y)

    return load_cached(task, data_cfg, size, num_classes, files,
                       lambda: Splits(*read(files[0], files[1]), *read(files[2], files[3])))


REAL_TASKS: list[tuple[str, Callable[..., Splits], int, int]] = [  # name, reader, classes, image size
    ("tiny_imagenet_1", partial(folders.load_tiny_imagenet, half=0), 100, 64),
    ("tiny_imagenet_2", partial(folders.load_tiny_imagenet, half=1), 100, 64),
    ("tiny_imagenet", folders.load_tiny_imagenet, 200, 64),  # all 200 classes: the fine-tuning baseline's source
    ("cifar100", partial(load_cifar, variant="cifar100"), 100, 32),
    ("stanford_dogs", folders.load_stanford_dogs, 120, 84),
    ("fgvc_aircraft", folders.load_fgvc_aircraft, 100, 84),
    ("cub200", folders.load_cub, 200, 84),
    ("fashion_mnist", load_fashion_mnist, 10, 28),
    ("svhn", load_svhn, 10, 32),
    ("stl10", load_stl10, 10, 32),
    ("oxford_pets", folders.load_oxford_pets, 37, 32),
    ("food101", folders.load_food101, 101, 32),
    ("cifar10", partial(load_cifar, variant="cifar10"), 10, 32),
    ("dtd", folders.load_dtd, 47, 32),
    ("flowers102", folders.load_flowers102, 102, 32),
]

for _name, _reader, _classes, _size in REAL_TASKS:
    register_task(_name, num_classes=_classes, channels=3, image_size=_size, pad=4 if _size == 32 else 8, flip=True,
                  mean=0.5, std=0.5)(partial(_reader, task=_name, size=_size, num_classes=_classes))


# The paper's setting (Shin et al. 2021 and the authors' scripts): 200K inner steps per
# task, K = 1000, beta = 1e-2, batch 128, SGD 1e-2 / 0.9 / 5e-4; meta-test with Adam 1e-3
# for 1000 steps, x0.3 at 40/70/90%. Use with model=resnet20 and runner.world_size=8.
register_suite(
    "paper", sources=list(PAPER_SOURCES), targets=list(PAPER_TARGETS), validation=list(PAPER_VALIDATION),
    finetune_source="tiny_imagenet",
    train={"steps": 200_000, "batch_size": 128, "inner_lr": 1e-2, "momentum": 0.9, "weight_decay": 5e-4,
           "log_every": 500},
    metatest={"steps": 1000, "batch_size": 128, "lr": 1e-3, "weight_decay": 5e-4, "milestones": [0.4, 0.7, 0.9],
              "gamma": 0.3},
    checkpoint={"every": 5000, "phi_every": 5000},
    model="resnet20",
)
