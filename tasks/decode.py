"""What every real-image task shares: missing-data errors, cache keys and one decode path.

A real dataset is decoded once, at its task's image size, into uint8 [N, 3, S, S] and
cached by ``tasks.cache.cached_splits``; later runs memory-map the cached tensors. The
readers in ``tasks.vision`` (array files) and ``tasks.folders`` (image folders) only say
where the files are and which image has which label; this module does the rest.

Cache key: task name, image size, ``DECODE_VERSION`` and a fingerprint of the files that
define the dataset, as (path under the data root, size, mtime). For array datasets those
are the data files themselves; for image folders they are the index files (the lists of
images and labels) and the image folder, or for Tiny ImageNet, whose training set has no
list, its class directories. A replaced or re-extracted dataset therefore misses the
cache; copying it without keeping mtimes costs one re-decode; editing one JPEG in place
is not noticed. The root path is not in the key, so moving the data does not re-decode.
Hashing contents instead would read gigabytes (STL10, SVHN) on every start.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from tasks.cache import cached_splits
from tasks.registry import Splits

log = logging.getLogger("lsml")

# Bump when decoding changes (resize filter, JPEG draft, channel handling) so old caches miss.
# v2: 16-bit grey images are scaled to 8 bits (v1 clipped them at 255).
DECODE_VERSION = "real-v2:pil-draft-bilinear-squash-16bit-scaled"


OR_DOWNLOAD = "or run with data.download=true where the network allows."


class MissingDataset(FileNotFoundError):
    """A dataset's files are not where its loader looks; the message says how to get them."""


def data_root(data_cfg: Any) -> Path:
    return Path(os.path.expanduser(str(data_cfg.root))).resolve()


def ensure(task: str, data_cfg: Any, required: Sequence[Path], how: str,
           download: Callable[[Path], None] | None = None) -> None:
    """Fail fast, before any decoding, when a required path is missing.

    With ``data.download`` true and a ``download`` function (torchvision's, which checks
    the archive's md5), fetch first and check again.
    """
    missing = [p for p in required if not p.exists()]
    if missing and data_cfg.download and download is not None:
        log.info("%s: downloading into %s", task, data_root(data_cfg))
        download(data_root(data_cfg))
        missing = [p for p in required if not p.exists()]
    if missing:
        hint = how if download is not None else f"{how} (data.download=true cannot fetch this dataset)"
        raise MissingDataset(f"{task}: expected {missing[0]}, which does not exist. {hint}")


def torchvision_download(class_name: str, **kwargs: Any):
    """``root -> None`` that lets torchvision fetch (and md5-check) the official archive."""

    def download(root: Path) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, class_name)(str(root), download=True, **kwargs)

    return download


def fingerprint(root: Path, paths: Iterable[Path]) -> list[list]:
    """(path under root, size, mtime_ns) of each file or directory that defines a dataset."""
    rows = []
    for p in paths:
        st = p.stat()
        rows.append([p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return rows


def load_cached(task: str, data_cfg: Any, image_size: int, num_classes: int,
                defining: Iterable[Path], build: Callable[[], Splits]) -> Splits:
    """``build()`` once per fingerprint, then the memory-mapped cache; checks what it builds."""
    root = data_root(data_cfg)
    params = {"task": task, "image_size": image_size, "version": DECODE_VERSION,
              "files": fingerprint(root, defining)}

    def checked_build() -> Splits:
        start = time.perf_counter()
        log.info("%s: decoding %s at %d px (once; cached in %s)", task, root, image_size, data_cfg.cache_dir)
        splits = build()
        check_splits(task, splits, image_size, num_classes)
        log.info("%s: %d train / %d test images in %.1f s", task, len(splits.train_y), len(splits.test_y),
                 time.perf_counter() - start)
        return splits

    return cached_splits(data_cfg.cache_dir, task, params, checked_build)


def check_splits(task: str, splits: Splits, image_size: int, num_classes: int, channels: int = 3) -> None:
    """A wrong layout (a partial extraction, a mislabelled list) fails here, not mid-training."""
    for part in ("train", "test"):
        x, y = getattr(splits, f"{part}_x"), getattr(splits, f"{part}_y")
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (channels, image_size, image_size) or len(x) != len(y):
            raise ValueError(f"{task}: {part} images decoded as {x.dtype} {tuple(x.shape)} "
                             f"for {len(y)} labels; expected uint8 [N, {channels}, {image_size}, {image_size}]")
        if len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= num_classes:
            raise ValueError(f"{task}: {part} labels must lie in [0, {num_classes}); got {len(y)} labels "
                             f"in [{int(y.min()) if len(y) else '-'}, {int(y.max()) if len(y) else '-'}]")
    found = len(torch.unique(splits.train_y))
    if found != num_classes:
        raise ValueError(f"{task}: the training set has {found} classes, the real dataset {num_classes}; "
                         "is the dataset complete?")


def workers() -> int:
    # PIL releases the GIL while decoding and resizing, so threads scale without pickling images.
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class DamagedImage(ValueError):
    """An image file that does not decode (cut short, corrupt) or holds pixels with no 8-bit
    meaning; the message names the file."""


def eight_bit_mode(img: Any) -> None:
    """DamagedImage unless :func:`eight_bit` can read ``img``'s mode (from its header alone)."""
    if img.mode in ("I", "F") and not (img.mode == "I" and img.format == "PNG"):
        raise DamagedImage(f"mode {img.mode} ({'32-bit integer' if img.mode == 'I' else 'floating-point'} pixels "
                           "of no fixed range); convert it to 8 or 16 bits")


def eight_bit(img: Any) -> Any:
    """A PIL image whose pixels fit 8 bits: 16-bit grey (``I;16*``, and ``I`` read from a PNG,
    which holds at most 16 bits) scaled by 255/65535; other ``I`` and ``F`` images, whose range
    the file does not say, are refused. PIL's own ``convert`` would clip them at 255."""
    from PIL import Image

    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        pixels = np.asarray(img).astype(np.int64)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise DamagedImage(f"mode {img.mode} pixels outside 0..65535")
        return Image.fromarray(((pixels * 255 + 32767) // 65535).astype(np.uint8), "L")
    eight_bit_mode(img)
    return img


def fit(img: Any, size: int) -> np.ndarray:
    """A PIL image as uint8 [size, size, 3]: any mode to RGB (16-bit grey scaled, see :func:`eight_bit`),
    squashed (not cropped) like the authors' ``transforms.Resize((s, s))``, with an antialiased bilinear filter."""
    from PIL import Image

    img = eight_bit(img).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode one image file to uint8 [size, size, 3]; DamagedImage naming the file if it does not
    decode whole. The decode that fills the cache is the check: a truncated file fails here,
    before any compute, at no extra cost (a second, full decode at validation would cost more
    than the header check on every start; see ``tasks.user``)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            # JPEG only: decode at 1/2, 1/4 or 1/8 scale (never below ``size``) through the
            # DCT; several times faster for Food-101 or CUB photos going to 32-84 px.
            img.draft("RGB", (size, size))
            return fit(img, size)
    except DamagedImage as e:
        raise DamagedImage(f"{path}: {e}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's decode errors
        raise DamagedImage(f"{path}: does not decode ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'damaged'}); replace or remove it") from None


def decode_items(n: int, get: Callable[[int], tuple[np.ndarray, int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``get(i) -> (uint8 [size, size, 3], label)`` for i < n on a thread pool."""
    x = np.empty((n, 3, size, size), dtype=np.uint8)
    y = np.empty(n, dtype=np.int64)

    def put(i: int) -> None:
        img, label = get(i)
        x[i] = img.transpose(2, 0, 1)
        y[i] = label

    with ThreadPoolExecutor(workers()) as pool:
        for _ in pool.map(put, range(n)):
            pass
    return torch.from_numpy(x), torch.from_numpy(y)


def decode_files(paths: Sequence[Path], labels: Sequence[int], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return decode_items(len(paths), lambda i: (load_image(paths[i], size), labels[i]), size)


def from_array(x: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] with C in (1, 3) -> uint8 [N, 3, size, size]."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 [N, 1|3, H, W], got {x.dtype} {x.shape}")
    if x.shape[1] == 1:  # grey (Fashion-MNIST): the paper repeats it to 3 channels
        x = np.repeat(x, 3, axis=1)
    if x.shape[2:] == (size, size):
        return torch.from_numpy(np.require(x, requirements=["C", "W"]))  # copies read-only buffers
    from PIL import Image

    hwc = x.transpose(0, 2, 3, 1)
    out, _ = decode_items(len(x), lambda i: (fit(Image.fromarray(hwc[i]), size), 0), size)
    return out


def to_channels(splits: Splits, channels: int | None) -> Splits:
    """``data.channels``: grey repeated to RGB, or RGB to grey (ITU-R 601 luma, as PIL's "L");
    None or the task's own count leaves the splits as they are."""
    def convert(x: torch.Tensor) -> torch.Tensor:
        if not channels or x.shape[1] == channels:
            return x
        if channels == 3:
            return x.expand(-1, 3, -1, -1).contiguous()
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)

    return Splits(convert(splits.train_x), splits.train_y, convert(splits.test_x), splits.test_y)
