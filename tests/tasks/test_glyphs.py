"""The embedded glyphs suite: deterministic, covered by its fonts, legible, heterogeneous."""
import numpy as np
import pytest

from tasks import glyphs
from tasks.registry import SUITES, TASKS


def test_suite_shape_and_heterogeneity():
    suite = SUITES.get("glyphs")
    assert len(suite.sources) >= 8 and len(suite.targets) >= 4
    assert len(suite.validation) >= 3
    roles = [*suite.sources, *suite.targets, *suite.validation]
    assert len(set(roles)) == len(roles), "a script in two roles"
    counts = [TASKS.get(n).num_classes for n in roles]
    assert all(10 <= c <= 60 for c in counts), counts
    assert max(counts) - min(counts) >= 30, "class counts should range from about 10 to about 60"


@pytest.mark.parametrize("script", glyphs.SOURCES + glyphs.TARGETS + glyphs.VALIDATION)
def test_every_character_is_covered_by_two_fonts(script):
    for cp, fonts in glyphs.script_chars(script):
        assert len(fonts) >= 2
        for font in fonts:
            assert cp in glyphs._cmap(font), (script, hex(cp), font)


def test_render_is_deterministic_and_seeded():
    a = glyphs.render("greek", 2, seed=0)
    b = glyphs.render("greek", 2, seed=0)
    c = glyphs.render("greek", 2, seed=1)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert a[0].tobytes() != c[0].tobytes()


@pytest.mark.parametrize("script", glyphs.SOURCES + glyphs.TARGETS + glyphs.VALIDATION)
def test_images_have_ink_in_frame(script):
    x, y = glyphs.render(script, 2, seed=0)
    n = len(glyphs.script_chars(script))
    assert x.shape == (2 * n, glyphs.SIZE, glyphs.SIZE) and x.dtype == np.uint8
    assert y.tolist() == sorted(y.tolist()) and set(y.tolist()) == set(range(n))
    ink = x.reshape(len(x), -1).max(1)
    assert (ink > 100).all(), "blank images"
    bright = x > 128
    border = np.concatenate([bright[:, 0], bright[:, -1], bright[:, :, 0], bright[:, :, -1]], 1)
    assert border.mean() < 0.05, "glyphs run off the frame"


def test_loader_caches_uint8_tensors(tmp_path):
    class Data:
        cache_dir = str(tmp_path)

    first = TASKS.get("glyphs_digits").load(Data)
    assert first.train_x.dtype.is_floating_point is False and first.train_x.shape[1:] == (1, 28, 28)
    assert len(first.train_y) == 10 * glyphs.SOURCE_SPLIT[0]
    assert len(list(tmp_path.glob("glyphs-digits-*.pt"))) == 1
    again = TASKS.get("glyphs_digits").load(Data)
    assert (again.train_x == first.train_x).all() and (again.test_y == first.test_y).all()


def test_validation_scripts_are_rendered_like_the_targets(tmp_path):
    """Same per-class train and test sizes as the targets (a limited-data meta-test)."""
    class Data:
        cache_dir = str(tmp_path)

    for script in glyphs.VALIDATION:
        splits = TASKS.get(f"glyphs_{script}").load(Data)
        n = len(glyphs.script_chars(script))
        assert (len(splits.train_y), len(splits.test_y)) == (n * glyphs.TARGET_SPLIT[0], n * glyphs.TARGET_SPLIT[1])
        assert np.bincount(splits.train_y.numpy(), minlength=n).tolist() == [glyphs.TARGET_SPLIT[0]] * n
