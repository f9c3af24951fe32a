"""A run on tasks of its own (``folder:``): its suite is named after them, not filed as the default
``glyphs``; a channel mismatch names each task with its role and channel count; and the suite's
``finetune_source`` only counts for the method that trains on it."""
from __future__ import annotations

from pathlib import Path

import pytest

import dataset_fixtures as fx
from helpers import make_config

FAST = ["train.steps=4", "metatest.steps=4", "train.batch_size=8", "metatest.batch_size=8"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for i, name in enumerate(("cub", "birds")):
        fx.write_image_folder(root / name, offset=3 * i)
    fx.write_image_folder(root / "grey", grey=True)
    return root


def own(root: Path, target: str = "birds", *extra: str) -> list[str]:
    return [f"suite.sources=[folder:{root / 'cub'}]", f"suite.targets=[folder:{root / target}]", *FAST, *extra]


def test_a_run_on_its_own_tasks_is_named_after_them(folders):
    assert make_config(*own(folders), "suite.validation=[]").suite.name == "birds"  # not glyphs
    assert make_config(*own(folders), "suite.validation=[]", "suite.name=mine").suite.name == "mine"


def test_the_channel_error_names_each_task_with_its_role(folders):
    with pytest.raises(ValueError) as error:
        make_config(*own(folders, "grey"), "suite.validation=[]")
    message = str(error.value)
    assert "grey (1 channel): folder:grey@32 (suite.targets)" in message, message
    assert "RGB (3 channels): folder:cub@32 (suite.sources)" in message, message
    # the glyph suite's validation scripts are grey: the error says so
    with pytest.raises(ValueError, match=r"grey \(1 channel\): glyphs_lao \(suite.validation\)"):
        make_config(*own(folders))


def test_the_finetune_source_counts_only_for_finetune(folders):
    """glyphs' finetune_source (glyphs_math) is grey; RGB folders run every other method."""
    make_config(*own(folders), "suite.validation=[]", "method=ours")
    with pytest.raises(ValueError, match=r"grey \(1 channel\): glyphs_math \(suite.finetune_source\)"):
        make_config(*own(folders), "suite.validation=[]", "method=finetune")
