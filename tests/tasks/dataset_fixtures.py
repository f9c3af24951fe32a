"""Tiny copies of the paper's real datasets, in each one's real on-disk format.

Every class is present (the loaders check the real class count), with 2 training and 1
test image, except where the official split says otherwise (DTD and Flowers: 1 train +
1 val + 1 test). Each image shows its label: the top quarter is white (so a transposed
or flipped decode is caught) and the rest is the solid colour ``code(label)``, which a
test reads back, so an image paired with the wrong label is caught too.

``write_all(root)`` writes everything; ``EXPECTED[task] = (n_train, n_test, code_offset)``
where the colour code of an image is its label plus ``code_offset`` (Tiny ImageNet's
second task holds the classes 100-199).
"""
from __future__ import annotations

import gzip
import json
import pickle
import random
import struct
from pathlib import Path

import numpy as np

EXPECTED = {
    "tiny_imagenet_1": (200, 100, 0), "tiny_imagenet_2": (200, 100, 100), "cifar100": (200, 100, 0),
    "stanford_dogs": (240, 120, 0), "fgvc_aircraft": (200, 100, 0), "cub200": (400, 200, 0),
    "fashion_mnist": (20, 10, 0), "svhn": (20, 10, 0), "stl10": (20, 10, 0), "oxford_pets": (74, 37, 0),
    "food101": (202, 101, 0), "cifar10": (20, 10, 0), "dtd": (94, 47, 0), "flowers102": (204, 102, 0),
}
STEP = 40  # colour levels 40, 80, ..., 240: far apart enough to survive JPEG and resizing


def code(label: int) -> tuple[int, int, int]:
    """A distinct RGB colour for each label < 216."""
    return (STEP * (1 + label % 6), STEP * (1 + label // 6 % 6), STEP * (1 + label // 36))


def decode_code(rgb) -> int:
    r, g, b = (int(round(int(v) / STEP)) - 1 for v in rgb)
    return r + 6 * g + 36 * b


def grey_level(label: int) -> int:
    return 20 + 20 * label


def image(label: int, size: int = 16, grey: bool = False) -> np.ndarray:
    """uint8 [size, size, 3] (or [size, size] if grey): white top quarter, label colour below."""
    img = np.empty((size, size) if grey else (size, size, 3), dtype=np.uint8)
    img[...] = grey_level(label) if grey else code(label)
    img[: size // 4] = 255
    return img


def _jpeg(path: Path, label: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image(label)).save(path, format="JPEG", quality=100, subsampling=0)


def _chw(labels: list[int], size: int) -> np.ndarray:
    return np.stack([image(c, size).transpose(2, 0, 1) for c in labels])


def _per_class(classes: int, per: int) -> list[int]:
    return [c for c in range(classes) for _ in range(per)]


def write_cifar(root: Path) -> None:
    def batch(path: Path, labels: list[int], key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _chw(labels, 32).reshape(len(labels), -1)
        with open(path, "wb") as f:
            pickle.dump({"data": data, key: labels, "batch_label": path.name}, f)

    train = _per_class(10, 2)
    for i in range(5):
        batch(root / "cifar-10-batches-py" / f"data_batch_{i + 1}", train[4 * i:4 * i + 4], "labels")
    batch(root / "cifar-10-batches-py" / "test_batch", _per_class(10, 1), "labels")
    batch(root / "cifar-100-python" / "train", _per_class(100, 2), "fine_labels")
    batch(root / "cifar-100-python" / "test", _per_class(100, 1), "fine_labels")


def write_svhn(root: Path) -> None:
    from scipy.io import savemat

    (root / "svhn").mkdir(parents=True, exist_ok=True)
    for name, per in (("train_32x32.mat", 2), ("test_32x32.mat", 1)):
        labels = _per_class(10, per)
        x = _chw(labels, 32).transpose(2, 3, 1, 0)  # [H, W, C, N] as in the official files
        y = np.array([c if c else 10 for c in labels], dtype=np.uint8).reshape(-1, 1)  # digit 0 is 10
        savemat(root / "svhn" / name, {"X": x, "y": y})


def _idx(data: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, data.ndim]) + struct.pack(f">{data.ndim}I", *data.shape) + data.tobytes()


def write_fashion_mnist(root: Path) -> None:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, per, gz in (("train", 2, True), ("t10k", 1, False)):  # both forms torchvision leaves
        labels = _per_class(10, per)
        blobs = {"images-idx3-ubyte": _idx(np.stack([image(c, 28, grey=True) for c in labels])),
                 "labels-idx1-ubyte": _idx(np.array(labels, dtype=np.uint8))}
        for stem, blob in blobs.items():
            if gz:
                (raw / f"{prefix}-{stem}.gz").write_bytes(gzip.compress(blob))
            else:
                (raw / f"{prefix}-{stem}").write_bytes(blob)


def write_stl10(root: Path) -> None:
    base = root / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    for split, per in (("train", 2), ("test", 1)):
        labels = _per_class(10, per)
        # Column-major per image: the official files store W before H.
        (base / f"{split}_X.bin").write_bytes(_chw(labels, 96).transpose(0, 1, 3, 2).tobytes())
        (base / f"{split}_y.bin").write_bytes((np.array(labels, dtype=np.uint8) + 1).tobytes())  # 1..10
    (base / "class_names.txt").write_text("\n".join(f"class{c}" for c in range(10)) + "\n")


def write_tiny_imagenet(root: Path) -> None:
    base = root / "tiny-imagenet-200"
    wnids = [f"n{1000000 + 7 * c:08d}" for c in range(200)]  # label = index in sorted order
    shuffled = wnids[:]
    random.Random(0).shuffle(shuffled)  # the official wnids.txt is not sorted
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(shuffled) + "\n")
    rows = []
    for c, wnid in enumerate(wnids):
        for k in range(2):
            _jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", c)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        _jpeg(base / "val" / "images" / f"val_{c}.JPEG", c)
        rows.append(f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")


def write_cub(root: Path) -> None:
    base = root / "CUB_200_2011"
    images, labels, split = [], [], []
    image_id = 0
    for c in range(200):
        for k in range(3):
            image_id += 1
            rel = f"{c + 1:03d}.Bird_{c}/Bird_{c}_{k}.jpg"
            _jpeg(base / "images" / rel, c)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c + 1}")
            split.append(f"{image_id} {int(k < 2)}")
    for name, rows in (("images.txt", images), ("image_class_labels.txt", labels), ("train_test_split.txt", split)):
        (base / name).write_text("\n".join(rows) + "\n")


def write_stanford_dogs(root: Path) -> None:
    from scipy.io import savemat

    base = root / "stanford_dogs"
    lists: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for c in range(120):
        breed = f"n{2085620 + c:08d}-Breed_{c}"
        for k in range(3):
            rel = f"{breed}/{breed[:9]}_{k}.jpg"
            _jpeg(base / "Images" / rel, c)
            files, labels = lists["train" if k < 2 else "test"]
            files.append(rel)
            labels.append(c + 1)
    for split, (files, labels) in lists.items():
        cell = np.empty((len(files), 1), dtype=object)  # a MATLAB cell array of strings, as official
        cell[:, 0] = files
        savemat(base / f"{split}_list.mat", {"file_list": cell, "annotation_list": cell,
                                             "labels": np.array(labels, dtype=np.float64).reshape(-1, 1)})


def write_fgvc_aircraft(root: Path) -> None:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = [f"Variant {c:03d}/X" for c in range(100)]  # real names have spaces and slashes
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    rows: dict[str, list[str]] = {"trainval": [], "test": []}
    for c, variant in enumerate(variants):
        for k in range(3):
            image_id = f"{1000000 + 3 * c + k:07d}"
            _jpeg(data / "images" / f"{image_id}.jpg", c)
            rows["trainval" if k < 2 else "test"].append(f"{image_id} {variant}")
    for split, lines in rows.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")


def write_oxford_pets(root: Path) -> None:
    base = root / "oxford-iiit-pet"
    rows: dict[str, list[str]] = {"trainval": [], "test": []}
    for c in range(37):
        breed = f"Breed_{c}" if c < 12 else f"breed_{c}"  # cats are capitalised in the real lists
        for k in range(3):
            _jpeg(base / "images" / f"{breed}_{k}.jpg", c)
            rows["trainval" if k < 2 else "test"].append(f"{breed}_{k} {c + 1} {1 + (c >= 12)} {k + 1}")
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def write_food101(root: Path) -> None:
    base = root / "food-101"
    meta: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for c in range(101):
        dish = f"dish_{c:03d}"  # label = index in sorted order
        for k in range(3):
            _jpeg(base / "images" / dish / f"{k}.jpg", c)
            meta["train" if k < 2 else "test"].setdefault(dish, []).append(f"{dish}/{k}")
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, entries in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(entries))


def write_dtd(root: Path) -> None:
    data = root / "dtd" / "dtd"
    rows: dict[str, list[str]] = {"train1": [], "val1": [], "test1": []}
    for c in range(47):
        texture = f"texture_{c:02d}"
        for k, split in enumerate(rows):
            _jpeg(data / "images" / texture / f"{texture}_{k:04d}.jpg", c)
            rows[split].append(f"{texture}/{texture}_{k:04d}.jpg")
    (data / "labels").mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        (data / "labels" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def write_flowers102(root: Path) -> None:
    from scipy.io import savemat

    base = root / "flowers-102"
    labels = []
    ids: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    for c in range(102):
        for k, key in enumerate(ids):
            image_id = 3 * c + k + 1  # 1-based, as the official ids
            _jpeg(base / "jpg" / f"image_{image_id:05d}.jpg", c)
            ids[key].append(image_id)
            labels.append(c + 1)
    savemat(base / "imagelabels.mat", {"labels": np.array(labels, dtype=np.uint8).reshape(1, -1)})
    savemat(base / "setid.mat", {k: np.array(v, dtype=np.uint16).reshape(1, -1) for k, v in ids.items()})


WRITERS = [write_cifar, write_svhn, write_fashion_mnist, write_stl10, write_tiny_imagenet, write_cub,
           write_stanford_dogs, write_fgvc_aircraft, write_oxford_pets, write_food101, write_dtd, write_flowers102]


def write_all(root: Path) -> Path:
    for write in WRITERS:
        write(root)
    return root


# ---------------------------------------------------------------- tasks named on the command line
FOLDER_SIZES = ((16, 16), (24, 18), (40, 30))  # a few shapes, squashed to the task's size when decoded


def write_image_folder(root: Path, classes: int = 3, train: int = 10, test: int | None = 5, grey: bool = False,
                       offset: int = 0) -> Path:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (no ``test/`` if ``test`` is None):
    PNG and JPEG files in turn, of a few sizes, RGB or palette (or grey, L and LA, if ``grey``);
    each shows its label as in :func:`image` (label + ``offset``, so tasks differ)."""
    from PIL import Image

    for part, per in (("train", train), ("test", test)):
        for c in range(classes if per else 0):
            folder = root / part / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                w, h = FOLDER_SIZES[i % len(FOLDER_SIZES)]
                img = Image.fromarray(image(c + offset, 16, grey=grey)).resize((w, h), Image.NEAREST)
                if i % 2:
                    img.save(folder / f"{i:03d}.jpg", quality=95)
                else:
                    img = img.convert("LA" if grey else "P") if i % 4 == 2 else img
                    img.save(folder / f"{i:03d}.png")
    return root


def write_kmnist(root: Path) -> Path:
    """KMNIST as torchvision keeps it: ``root/KMNIST/raw/*-ubyte`` (10 classes, 2 train and 1 test each)."""
    raw = root / "KMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, per in (("train", 2), ("t10k", 1)):
        labels = _per_class(10, per)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(np.stack([image(c, 28, grey=True) for c in labels])))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.array(labels, dtype=np.uint8)))
    return root
