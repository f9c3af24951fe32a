"""Where to find an image cut short: a full decode at validation, or the cache build's decode.

``python -m benchmark.perf.truncation [--images N] [--repeats R]`` writes ``--images`` JPEGs of
320x240 (``benchmark.perf.decode.write_folder``) and times, per image (median over repeats):
the header read that validation does today; a full decode, at full size and with the JPEG
draft to 32 px, which checking at validation would add to every process start; and the
cache build's decode to 32 px without and with the check (``tasks.decode.load_image``, which
turns PIL's "image file is truncated" into a DamagedImage naming the file). The check at the
cache build is the decode the cache needs anyway, once per cache.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmark.perf.decode import write_folder
from tasks.decode import load_image

SIZE = 32


def header(path: Path) -> None:
    with Image.open(path) as img:
        img.mode


def full(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def full_draft(path: Path) -> None:
    with Image.open(path) as img:
        img.draft("RGB", (SIZE, SIZE))
        img.load()


def unchecked(path: Path) -> None:
    with Image.open(path) as img:
        img.draft("RGB", (SIZE, SIZE))
        img.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)


CASES = {"header only (validation today)": header, "full decode at validation, full size": full,
         f"full decode at validation, JPEG draft to {SIZE} px": full_draft,
         f"cache build, decode to {SIZE} px, unchecked": unchecked,
         f"cache build, decode to {SIZE} px, checked (load_image)": lambda p: load_image(p, SIZE)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.truncation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="JPEGs (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("images", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(write_folder(Path(tmp) / "jpegs", args.images).rglob("*.jpg"))
        print(f"{len(files)} JPEGs of 320x240; median of {args.repeats} passes, microseconds per image")
        for name, fn in CASES.items():
            passes = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for path in files:
                    fn(path)
                passes.append((time.perf_counter() - start) / len(files))
            print(f"  {name:52s} {1e6 * statistics.median(passes):7.1f}", flush=True)


if __name__ == "__main__":
    main()
