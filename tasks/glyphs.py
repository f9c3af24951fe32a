"""``glyphs``: the embedded default suite, rendered offline from matplotlib's fonts.

One task per writing system: classify which character an image shows. Nothing is
downloaded; the fonts are the DejaVu (Sans, Serif, Sans Mono) and STIXGeneral files
that ship inside matplotlib, in all their weights and slants. A character is used
only if at least two of those font files cover it (checked with fontTools' cmap), and
each image draws it with a random covering font.

Per-sample variation: font file (family, weight, slant), size, rotation, shear,
translation, stroke thickness and pixel noise. The scripts differ in class count (10
to 55) and style (alphabets, abjads, syllabaries, digits, symbols), so the suite is
heterogeneous the way the paper's source tasks are, at 28 x 28 grey pixels.

Sources have 100 training images per class; targets have 15 (a limited-data
meta-test, as in the paper) and 40 test images per class. Three more scripts (Lao,
Ogham, Old Italic) are the validation tasks, rendered exactly like the targets: runs
meta-test them too, and ``benchmark.tune`` selects hyperparameters on them alone. Rendering is deterministic
given the script, split and seed; the result is cached as uint8 tensors keyed by
everything that determines it, so an inner step never touches PIL.
"""
from __future__ import annotations

import functools
import os
import zlib

import numpy as np
import torch

from tasks.cache import cached_splits
from tasks.registry import Splits, register_suite, register_task

VERSION = 1  # bump when rendering changes: it is part of the cache key
SIZE = 28
SOURCE_SPLIT = (100, 10)  # (train, test) images per class
TARGET_SPLIT = (15, 40)
FONT_FILES = [f"{family}{style}.ttf" for family in ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono")
              for style in ("", "-Bold", "-Oblique" if family != "DejaVuSerif" else "-Italic",
                            "-BoldOblique" if family != "DejaVuSerif" else "-BoldItalic")]
FONT_FILES += ["STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"]


def _span(first: int, last: int, skip: tuple[int, ...] = ()) -> list[int]:
    return [c for c in range(first, last + 1) if c not in skip]


# Candidate code points per script, and the most classes to keep (in code-point order).
CANDIDATES: dict[str, tuple[list[int], int]] = {
    "latin": (_span(0x61, 0x7A), 26),
    "greek": (_span(0x3B1, 0x3C9, skip=(0x3C2,)), 24),  # final sigma is a form of sigma
    "cyrillic": (_span(0x430, 0x44F), 32),
    "armenian": (_span(0x531, 0x556), 38),
    "hebrew": (_span(0x5D0, 0x5EA), 27),
    "arabic": (_span(0x627, 0x64A, skip=(0x640,)), 30),  # tatweel is not a letter
    "math": (_span(0x2200, 0x22FF), 40),
    "digits": (_span(0x30, 0x39), 10),
    "georgian": (_span(0x10D0, 0x10F0), 33),
    "tifinagh": (_span(0x2D30, 0x2D65), 55),
    "nko": (_span(0x7CA, 0x7EA), 33),
    "canadian": (_span(0x1401, 0x1676)[::12], 45),  # every 12th syllable: distinct shapes
    "lao": (_span(0xE81, 0xEAE), 40),
    "ogham": (_span(0x1681, 0x169A), 26),  # the 26 letters; not the space mark or the feather marks
    "old_italic": (_span(0x10300, 0x1031E), 31),
}
SOURCES = ("latin", "greek", "cyrillic", "armenian", "hebrew", "arabic", "math", "digits")
TARGETS = ("georgian", "tifinagh", "nko", "canadian")
VALIDATION = ("lao", "ogham", "old_italic")  # rendered like the targets; only for selecting hyperparameters


@functools.lru_cache(maxsize=None)
def font_dir() -> str:
    # Found without importing matplotlib (slow), only locating its package folder.
    import importlib.util

    (package,) = importlib.util.find_spec("matplotlib").submodule_search_locations
    return os.path.join(package, "mpl-data", "fonts", "ttf")


@functools.lru_cache(maxsize=None)
def _cmap(font: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(os.path.join(font_dir(), font), lazy=True).getBestCmap())


@functools.lru_cache(maxsize=None)
def script_chars(script: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(code point, covering font files) per class: characters covered by >= 2 fonts."""
    candidates, limit = CANDIDATES[script]
    chars = []
    for cp in candidates:
        fonts = tuple(f for f in FONT_FILES if cp in _cmap(f))
        if len(fonts) >= 2:
            chars.append((cp, fonts))
    return tuple(chars[:limit])


@functools.lru_cache(maxsize=64)
def _font(name: str, px: int):
    from PIL import ImageFont

    return ImageFont.truetype(os.path.join(font_dir(), name), px)


def _render_one(char: str, font: str, rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (160, 160), 0)
    stroke = int(rng.integers(0, 3))
    ImageDraw.Draw(canvas).text((80, 80), char, fill=255, font=_font(font, 72), anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    box = canvas.getbbox()
    if box is None:  # the font maps the code point to an empty glyph
        return np.zeros((size, size), np.uint8)
    glyph = canvas.crop(box)
    # Output pixel (u, v) samples glyph point A^-1 (u - c_out - t) + c_glyph, with
    # A = scale * rotation * shear: the glyph's ink box ends up centred, then moved.
    big = 2 * size
    scale = rng.uniform(0.55, 0.9) * big / max(glyph.size)
    theta, shear = np.deg2rad(rng.uniform(-15, 15)), rng.uniform(-0.2, 0.2)
    A = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.array(
        [[1.0, shear], [0.0, 1.0]])
    inv = np.linalg.inv(A)
    shift = rng.uniform(-0.1, 0.1, 2) * big
    centre_in = np.array(glyph.size) / 2
    offset = centre_in - inv @ (np.array([big / 2, big / 2]) + shift)
    img = glyph.transform((big, big), Image.AFFINE, (*inv[0], offset[0], *inv[1], offset[1]),
                          resample=Image.BILINEAR)
    x = np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32)
    x += rng.normal(0, 12, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def render(script: str, per_class: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of every class of ``script``: x uint8 [N, size, size], y int64 [N]."""
    rng = np.random.default_rng([seed, zlib.crc32(script.encode())])
    chars = script_chars(script)
    x = np.empty((len(chars) * per_class, size, size), np.uint8)
    for label, (cp, fonts) in enumerate(chars):
        for i in range(per_class):
            font = fonts[int(rng.integers(len(fonts)))]
            x[label * per_class + i] = _render_one(chr(cp), font, rng, size)
    return x, np.repeat(np.arange(len(chars), dtype=np.int64), per_class)


def _render_splits(script: str, train: int, test: int, size: int) -> Splits:
    # Train and test draw from different seeds: no test image repeats a training image.
    xtr, ytr = render(script, train, seed=0, size=size)
    xte, yte = render(script, test, seed=1, size=size)
    t = lambda a: torch.from_numpy(a).unsqueeze(1)  # noqa: E731  [N, 1, H, W]
    return Splits(t(xtr), torch.from_numpy(ytr), t(xte), torch.from_numpy(yte))


def load(script: str, data_cfg) -> Splits:
    train, test = SOURCE_SPLIT if script in SOURCES else TARGET_SPLIT
    params = {"family": "glyphs", "version": VERSION, "script": script, "chars": script_chars(script),
              "train": train, "test": test, "size": SIZE}
    return cached_splits(data_cfg.cache_dir, f"glyphs-{script}", params,
                         lambda: _render_splits(script, train, test, SIZE))


for _script in SOURCES + TARGETS + VALIDATION:
    register_task(f"glyphs_{_script}", num_classes=len(script_chars(_script)), channels=1, image_size=SIZE,
                  pad=0, flip=False)(functools.partial(load, _script))

# Fine-tuning pre-trains on the largest and most varied source (40 classes, 4000 images),
# as the paper's pre-trains on Tiny ImageNet, the largest of its sources.
register_suite("glyphs", sources=[f"glyphs_{s}" for s in SOURCES], targets=[f"glyphs_{s}" for s in TARGETS],
               validation=[f"glyphs_{s}" for s in VALIDATION], finetune_source="glyphs_math")
