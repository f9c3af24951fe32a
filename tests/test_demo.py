"""The README's main job, end to end with its defaults: CTS on the embedded suite must
beat training from scratch by at least 5 points of mean target accuracy (same seed)."""
import json
import time

import pytest

from helpers import cli


@pytest.mark.slow
def test_demo_beats_scratch(tmp_path):
    accuracy, seconds = {}, {}
    for method in ("ours", "scratch"):
        start = time.monotonic()
        out = cli(f"method={method}", f"results_dir={tmp_path}", timeout=900)
        seconds[method] = time.monotonic() - start
        assert out.returncode == 0, out.stderr[-3000:]
        (summary,) = (tmp_path / "glyphs" / method).rglob("summary.json")
        accuracy[method] = json.loads(summary.read_text())["mean_accuracy"]
    print(f"mean target accuracy {accuracy}, wall seconds {seconds}")
    assert accuracy["ours"] >= accuracy["scratch"] + 0.05
