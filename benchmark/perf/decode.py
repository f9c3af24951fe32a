"""Decoding speed of a folder task (``folder:<path>@<px>``, ``tasks/user.py``).

It writes ``--images`` JPEGs of 320x240 (seeded colour fields with noise, 10 classes) into
a temporary folder without ``test/`` (the split is drawn), and for each ``--sizes`` px, in a
fresh process each time (the way each run meets it), times the two things a run does with
such a folder: the check at validation (every file listed and its image header read) and the
load, first into an empty cache (every image decoded and resized) and then cached. Prints
one line per size: images per second of each, the medians over ``--repeats`` (each repeat
with a new empty cache).
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

CLASSES = 10


def write_folder(root: Path, images: int, seed: int = 0) -> Path:
    """``images`` JPEGs of 320x240 in ``root/train/<class>/`` (ImageFolder, no ``test/``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    for i in range(images):
        folder = root / "train" / f"class_{i % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0.005, 0.05, 3)
        field = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], axis=-1)
        pixels = np.clip(127.5 * (field + 1) + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def time_once(folder: str, px: int, cache_dir: str) -> tuple[float, float]:
    """In this (fresh) process: seconds of the validation check, and of the load."""
    from omegaconf import OmegaConf

    from benchmark.config import DataConfig
    from tasks.registry import TASKS
    from tasks.user import resolve_suite

    data = OmegaConf.structured(DataConfig(cache_dir=cache_dir))
    suite = SimpleNamespace(sources=[f"folder:{folder}@{px}"], targets=[], validation=[], finetune_source="",
                            paths={}, fingerprints={})
    start = time.perf_counter()
    resolve_suite(suite, data)
    checked = time.perf_counter()
    TASKS.get(suite.sources[0]).load(data)
    return checked - start, time.perf_counter() - checked


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.decode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="JPEGs in the folder (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 84], help="task sizes in px (default: 32 84)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per size (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("images", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.images < 2 * CLASSES:
        parser.error(f"--images must be at least {2 * CLASSES} (two per class, for the drawn split), got {args.images}")
    if min(args.sizes) < 1:
        parser.error(f"--sizes must be at least 1, got {min(args.sizes)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per measurement
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "jpegs", args.images)
        print(f"{args.images} JPEGs of 320x240 in {CLASSES} classes, no test/; {args.repeats} repeats per size, "
              f"each in fresh processes with a new empty cache", flush=True)
        for px in args.sizes:
            runs = {"first": [], "cached": []}  # (check, load) seconds per repeat
            for r in range(args.repeats):
                cache = str(Path(tmp) / f"cache-{px}-{r}")
                for run in runs.values():
                    with spawn.Pool(1) as pool:
                        run.append(pool.apply(time_once, (str(folder), px, cache)))
            line = []
            for name, run in runs.items():
                check, load = (statistics.median(t) for t in zip(*run))
                line.append(f"{name} run {args.images / (check + load):6.0f} img/s "
                            f"(check {args.images / check:6.0f}, load {args.images / load:6.0f})")
            print(f"{px:3d} px: " + "; ".join(line), flush=True)


if __name__ == "__main__":
    main()
