"""Tasks named on the command line: ``folder:<path>[@px]`` and ``torchvision:<Name>[?k=v&...][@px]``.

A suite may name, besides registered tasks, any image folder or torchvision
classification dataset. :func:`resolve_suite` runs in ``benchmark.config.validate``,
before any compute: it checks the data, and rewrites each such name into a short,
path-free one that is registered like any task (so the runner, the seeds and the result
rows never see a path):

* ``folder:/data/birds@64`` -> ``folder:birds@64``; ``suite.paths`` records the path.
  Layout ``<path>/train/<class>/*`` and ``<path>/test/<class>/*`` (torchvision's
  ``ImageFolder``; class folders may nest). Classes are the ``train/`` folder names, sorted.
  Without ``test/``, a seeded, stratified split takes ``data.test_fraction`` of each class.
* ``torchvision:EMNIST?split=letters`` -> ``torchvision:EMNIST?split=letters@32``: the class
  reads ``data.root`` with its own train/test split; only keywords the class accepts.

Image size: ``@<px>``, else ``data.image_size``. Grey or RGB is detected (grey if every
image is grey). Augmentation: ``data.pad`` and ``data.flip``, else the real datasets' rule
(crop padding 4 at 32 px and 8 otherwise, flip).

Files that are not images by their suffix (``.txt``, ``.DS_Store``, ...) are skipped, with
one warning giving their count; a file with an image suffix that PIL cannot open is an
error naming it (a broken image is damaged data, not clutter). Validation reads headers only;
an image cut short is named when the cache is built, whose decode is the check (a full decode
here would cost 15 times the header read on every start; the cache decodes once). A link to
a folder is never followed (out of the task's folder, or back into it: a loop); one warning
names the first. 16-bit grey images are scaled to 8 bits; 32-bit and float ones are refused.

Identity: ``suite.fingerprints`` maps each such task to a hash of its file list and sizes
(relative paths: a moved or copied folder keeps it), plus the test fraction when the split
is drawn. The run id hashes the path-free names and these fingerprints, never the path.
The decoded uint8 cache is keyed by the files' sizes and mtimes as well (``tasks.decode``).
"""
from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.seeding import generator
from tasks.cache import cached_splits
from tasks.decode import (DECODE_VERSION, DamagedImage, check_splits, data_root, decode_files, decode_items,
                          eight_bit_mode, fit)
from tasks.names import Ref, TaskError, parse, scheme
from tasks.registry import TASKS, Splits, TaskSpec

log = logging.getLogger("lsml")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
# Keywords the task sets itself: never from the query string.
TORCHVISION_OWN = {"root", "train", "download", "transform", "target_transform", "transforms", "loader"}


@dataclass(frozen=True)
class Resolved:
    name: str  # path-free: what the suite's lists hold after validation
    spec: TaskSpec
    fingerprint: str
    path: str  # the folder (folder:) or data.root (torchvision:)


def resolve_suite(suite: Any, data: Any, method: Any = None) -> None:
    """Resolve every scheme-named task of ``suite`` (and ``method.source``) in place: path-free
    names, ``suite.paths``, ``suite.fingerprints``; register their specs. Raises TaskError."""
    paths, prints, seen = {}, {}, {}

    def one(name: str, key: str) -> str:
        if scheme(name) is None:
            return name
        ref = parse(name, key)
        path = suite.paths.get(name, ref.target) if ref.scheme == "folder" else str(data_root(data))
        found = _resolve(name, key, ref, path, _settings(data))
        if seen.setdefault(found.name, found.path) != found.path:
            raise TaskError(f"{key}: task {name!r}: {found.path} and {seen[found.name]} are both named "
                            f"{found.name!r}; rename one folder (a symlink with another name works)")
        TASKS.put(found.name, found.spec)
        prints[found.name] = found.fingerprint
        if ref.scheme == "folder":
            paths[found.name] = found.path
        return found.name

    for key in ("sources", "targets", "validation"):
        setattr(suite, key, [one(n, f"suite.{key}") for n in getattr(suite, key)])
    if suite.finetune_source:
        suite.finetune_source = one(suite.finetune_source, "suite.finetune_source")
    if getattr(method, "source", ""):
        method.source = one(method.source, "method.source")
    suite.paths, suite.fingerprints = paths, prints


def _settings(data: Any) -> tuple:
    return (int(data.image_size), float(data.test_fraction), data.pad, data.flip, bool(data.download),
            str(data.cache_dir))


# One scan per task and settings per process (a sweep composes many runs), kept while the
# folder's directories are unchanged (an added, removed or renamed file changes its directory).
_RESOLVED: dict[tuple, tuple[tuple, Resolved]] = {}


def _resolve(name: str, key: str, ref: Ref, path: str, settings: tuple) -> Resolved:
    memo, stamp = (ref, path, settings), _stamp(ref, path)
    if memo not in _RESOLVED or _RESOLVED[memo][0] != stamp:
        size, fraction, pad, flip, download, _ = settings
        px = ref.size or size
        aug = {"pad": (4 if px == 32 else 8) if pad is None else int(pad), "flip": True if flip is None else bool(flip)}
        reader = _folder if ref.scheme == "folder" else _torchvision
        _RESOLVED[memo] = (stamp, reader(name, key, ref, path, px, fraction, download, aug))
    return _RESOLVED[memo][1]


def _stamp(ref: Ref, path: str) -> tuple:
    """Every directory of a folder task with its mtime (a listing, no file is opened)."""
    if ref.scheme != "folder":
        return ()
    walk = os.walk(os.path.abspath(os.path.expanduser(path)), followlinks=False)
    return tuple(sorted((here, os.stat(here).st_mtime_ns) for here, _, _ in walk))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _safe(name: str) -> str:
    """A task name as a cache file name."""
    return "".join(c if c.isalnum() or c in "@-_." else "_" for c in name)


# ---------------------------------------------------------------- folder:
def _images(folder: Path, skipped: list[Path], links: list[Path]) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted); other files go to ``skipped``. A link to a
    folder is never followed (it goes out of the task's folder, or back into it: a loop, or the
    images of another class again); it goes to ``links``."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=False):
        links += [Path(here) / d for d in sorted(dirs) if os.path.islink(os.path.join(here, d))]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(here, d)))
        for f in sorted(files):
            (found if Path(f).suffix.lower() in IMAGE_SUFFIXES else skipped).append(Path(here) / f)
    return found


def _folder(name: str, key: str, ref: Ref, path: str, px: int, fraction: float, download: bool,
            aug: dict) -> Resolved:
    from PIL import Image

    root = Path(os.path.abspath(os.path.expanduser(path)))
    where = f"{key}: task {name!r}"
    if not root.is_dir():
        raise TaskError(f"{where}: {root} does not exist (or is not a folder)")
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir():
        raise TaskError(f"{where}: {train_dir} does not exist; expected {root}/train/<class>/<images> "
                        "(and optionally test/<class>/)")
    links: list[Path] = []  # folder links inside the task's folder: never followed
    classes = _class_folders(train_dir, links)
    if not classes:
        raise TaskError(f"{where}: no images in {root}: {train_dir} holds no class folders")
    has_test = test_dir.is_dir()
    test_classes = _class_folders(test_dir, links) if has_test else []
    for c in test_classes:
        if c not in classes:
            raise TaskError(f"{where}: class {c!r} is in {test_dir / c} but not in {train_dir}")
    skipped: list[Path] = []
    train = {c: _images(train_dir / c, skipped, links) for c in classes}
    test = {c: _images(test_dir / c, skipped, links) for c in test_classes}
    if links:
        log.warning("%s: not following %d link(s) to folders (e.g. %s -> %s): a task's images are the files "
                    "inside its folder", where, len(links), links[0], os.path.realpath(links[0]))
    if not any(train.values()):
        raise TaskError(f"{where}: no images in {root} (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    for part, folders in (("train", train), ("test", test)):
        for c, files in folders.items():
            if not files:
                raise TaskError(f"{where}: the class folder {root / part / c} holds no images")
    if skipped:
        log.warning("%s: skipped %d files that are not images (e.g. %s)", where, len(skipped), skipped[0])
    grey = True
    for f in [f for files in (*train.values(), *test.values()) for f in files]:
        try:
            with Image.open(f) as img:  # the header only: a truncated file is found when the cache is built
                grey = grey and img.mode in GREY_MODES
                eight_bit_mode(img)
        except DamagedImage as e:
            raise TaskError(f"{where}: {f}: {e}") from None
        except Exception as e:  # PIL raises several types for a file it cannot read
            raise TaskError(f"{where}: {f} is not a readable image ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not has_test:
        train, test = _split(train, fraction, where, train_dir)
    label = {c: i for i, c in enumerate(classes)}
    items = {part: [(f, label[c]) for c, files in folders.items() for f in files]
             for part, folders in (("train", train), ("test", test))}

    def rows(stat_mtime: bool) -> dict:
        return {part: [[f.relative_to(root).as_posix(), *([st.st_size, st.st_mtime_ns] if stat_mtime
                                                           else [st.st_size])]
                       for f, _ in its for st in [f.stat()]] for part, its in items.items()}

    fingerprint = _digest({"classes": classes, "files": rows(False), "test_fraction": None if has_test else fraction})
    task = f"folder:{root.name}@{px}"
    channels = 1 if grey else 3
    cache = {"kind": "folder", "version": DECODE_VERSION, "image_size": px, "channels": channels,
             "classes": classes, "files": rows(True), "test_fraction": None if has_test else fraction}

    def load(data_cfg: Any) -> Splits:
        def build() -> Splits:
            log.info("%s: decoding %s at %d px (once; cached in %s)", task, root, px, data_cfg.cache_dir)
            parts = [decode_files([f for f, _ in items[p]], [y for _, y in items[p]], px) for p in ("train", "test")]
            splits = Splits(*(t for x, y in parts for t in (x[:, :channels].contiguous(), y)))
            check_splits(task, splits, px, len(classes), channels)
            return splits

        return cached_splits(data_cfg.cache_dir, _safe(task), cache, build)

    spec = TaskSpec(task, num_classes=len(classes), channels=channels, image_size=px, load=load, **aug)
    return Resolved(task, spec, fingerprint, str(root))


def _class_folders(part: Path, links: list[Path]) -> list[str]:
    """The class folders of ``train/`` or ``test/``, sorted; links to folders go to ``links``."""
    found = sorted(d for d in part.iterdir() if d.is_dir() and not d.name.startswith("."))
    links += [d for d in found if d.is_symlink()]
    return [d.name for d in found if not d.is_symlink()]


def _split(train: dict[str, list[Path]], fraction: float, where: str, train_dir: Path
           ) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """A stratified split of each class: ``fraction`` of its images (at least one each way) to test,
    drawn by a generator seeded by the class name alone (the same on every machine)."""
    kept, held = {}, {}
    for c, files in train.items():
        if len(files) < 2:
            raise TaskError(f"{where}: class {c!r} has {len(files)} image in {train_dir / c}; with no test/ "
                            "folder each class needs 2 or more to split")
        n_test = min(len(files) - 1, max(1, round(len(files) * fraction)))
        order = torch.randperm(len(files), generator=generator("test-split", c)).tolist()
        held[c] = sorted(files[i] for i in order[:n_test])
        kept[c] = sorted(files[i] for i in order[n_test:])
    return kept, held


# ---------------------------------------------------------------- torchvision:
def _torchvision(name: str, key: str, ref: Ref, path: str, px: int, fraction: float, download: bool,
                 aug: dict) -> Resolved:
    import torchvision.datasets as datasets
    import yaml

    root, where = Path(path), f"{key}: task {name!r}"
    cls = getattr(datasets, ref.target, None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.utils.data.Dataset)):
        known = [n for n in datasets.__all__ if inspect.isclass(getattr(datasets, n, None))]
        close = difflib.get_close_matches(ref.target, known, n=3)
        raise TaskError(f"{where}: unknown torchvision dataset class {ref.target!r} (data.root {root})"
                        + (f"; did you mean {', '.join(close)}?" if close else "; see torchvision.datasets"))
    params = _parameters(cls)
    allowed = sorted(set(params) - TORCHVISION_OWN - ({"split"} if "train" not in params else set()))
    kwargs = {}
    for k, v in ref.kwargs:
        if k not in allowed:
            raise TaskError(f"{where}: {ref.target} takes no keyword {k!r} (data.root {root}); it takes: "
                            f"{', '.join(allowed) or 'none'}")
        kwargs[k] = yaml.safe_load(v)
    if "train" in params:
        parts = ({"train": True}, {"train": False})
    elif "split" in params:
        parts = ({"split": "train"}, {"split": "test"})
    else:
        raise TaskError(f"{where}: {ref.target} has no train/test split (no train= or split= keyword)")
    extra = {"download": download} if "download" in params else {}
    try:
        train_ds, test_ds = (cls(str(root), **kwargs, **part, **extra) for part in parts)
    except Exception as e:  # torchvision raises RuntimeError, FileNotFoundError, ValueError...
        hint = "" if download else "; put the dataset there or run with data.download=true"
        raise TaskError(f"{where}: {ref.target} cannot read {root} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}){hint}") from None
    y_train, y_test = _labels(train_ds, where), _labels(test_ds, where)
    classes = sorted(set(y_train.tolist()))
    unseen = sorted(set(y_test.tolist()) - set(classes))
    if unseen:
        raise TaskError(f"{where}: labels {unseen[:5]} of the test split never occur in training ({root})")
    dense = np.full(max(classes + [int(y_test.max(initial=0))]) + 1, -1, dtype=np.int64)
    dense[classes] = np.arange(len(classes))  # e.g. EMNIST letters: labels 1..26 -> 0..25
    first = train_ds[0][0]
    channels = 1 if getattr(first, "mode", "RGB") in GREY_MODES else 3
    canonical = "torchvision:" + ref.target + ("?" + "&".join(f"{k}={v}" for k, v in ref.kwargs) if ref.kwargs
                                               else "") + f"@{px}"
    folder = next((Path(p) for p in (getattr(train_ds, "raw_folder", None), getattr(train_ds, "_base_folder", None),
                                     root / str(getattr(train_ds, "base_folder", "")), root / ref.target)
                   if p and Path(p).is_dir() and Path(p) != root), root)
    # A class that keeps its files in root itself (SVHN, USPS): root's own files, not every
    # other dataset under it, which would change the run id whenever one is added.
    files = sorted(p for p in (folder.iterdir() if folder == root else folder.rglob("*")) if p.is_file())
    listing = [[p.relative_to(root).as_posix(), p.stat().st_size] for p in files]
    fingerprint = _digest({"class": ref.target, "kwargs": kwargs, "files": listing})
    cache = {"kind": "torchvision", "version": DECODE_VERSION, "class": ref.target, "kwargs": kwargs, "image_size": px,
             "channels": channels, "files": [[*row, p.stat().st_mtime_ns] for row, p in zip(listing, files)]}

    def load(data_cfg: Any) -> Splits:
        def decode(ds, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            ds.transform = partial(fit, size=px)
            x, _ = decode_items(len(ds), lambda i: (ds[i][0], 0), px)
            return x[:, :channels].contiguous(), torch.from_numpy(dense[y])

        def build() -> Splits:
            log.info("%s: decoding %s at %d px (once; cached in %s)", canonical, folder, px, data_cfg.cache_dir)
            splits = Splits(*decode(train_ds, y_train), *decode(test_ds, y_test))
            check_splits(canonical, splits, px, len(classes), channels)
            return splits

        return cached_splits(data_cfg.cache_dir, _safe(canonical), cache, build)

    spec = TaskSpec(canonical, num_classes=len(classes), channels=channels, image_size=px, load=load, **aug)
    return Resolved(canonical, spec, fingerprint, str(root))


def _parameters(cls: type) -> set[str]:
    """The keywords a class accepts, through ``**kwargs`` passed up to its bases (EMNIST takes
    ``split`` and hands ``train`` on to MNIST)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def _labels(ds: Any, where: str) -> np.ndarray:
    """Every label of a split, from the class's label list when it keeps one (no decoding)."""
    for attr in ("targets", "labels", "_labels", "y"):
        labels = getattr(ds, attr, None)
        if labels is not None and len(labels) == len(ds):
            return np.asarray(labels, dtype=np.int64).reshape(-1)
    labels = [ds[i][1] for i in range(len(ds))]
    if not all(isinstance(y, (int, np.integer)) or (torch.is_tensor(y) and y.numel() == 1) for y in labels):
        raise TaskError(f"{where}: not a classification dataset (its targets are not class numbers)")
    return np.asarray([int(y) for y in labels], dtype=np.int64)


def with_channels(spec: TaskSpec, channels: int | None) -> TaskSpec:
    """The spec as a run sees it under ``data.channels`` (None: as the task is)."""
    return replace(spec, channels=channels) if channels and channels != spec.channels else spec
