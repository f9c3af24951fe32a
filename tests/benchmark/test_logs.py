"""Logs a person reads: one handler on stderr at log.level, set up by each entry point."""
import io
import logging
import sys

import pytest

from benchmark import logs
from benchmark.compose import compose_config
from tasks.registry import TASKS


class Data:
    def __init__(self, cache_dir):
        self.cache_dir = str(cache_dir)


def test_a_cold_cache_says_so_at_info_and_not_at_warning(tmp_path, capfd):
    logs.setup("WARNING")
    TASKS.get("glyphs_digits").load(Data(tmp_path / "warning"))
    assert "cache" not in capfd.readouterr().err
    logs.setup("INFO")
    TASKS.get("glyphs_digits").load(Data(tmp_path / "info"))
    err = capfd.readouterr().err
    assert "glyphs-digits: building its uint8 cache" in err and " INFO " in err
    TASKS.get("glyphs_digits").load(Data(tmp_path / "info"))  # warm: nothing to say
    assert "cache" not in capfd.readouterr().err


def test_messages_go_to_the_stderr_of_the_moment(monkeypatch):
    """Set up under one stderr, then another one (a later test's capture): the message reaches
    the second. The handler used to keep the stream it was set up with."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.setup("INFO")
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger(logs.LOGGER).warning("where does this go")
    assert "where does this go" in second.getvalue() and not first.getvalue()


def test_setup_installs_one_handler_and_names_a_bad_level():
    for _ in range(3):
        logs.setup("INFO")
    assert sum(getattr(h, "_lsml", False) for h in logging.getLogger("lsml").handlers) == 1
    with pytest.raises(ValueError, match="log.level: must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"):
        logs.setup("LOUD")
    with pytest.raises(ValueError, match="log.level"):
        compose_config(["log.level=LOUD"])
    assert logs.level_from(["seed=1", "log.level=DEBUG", "log.level=ERROR"]) == "ERROR"
    assert logs.level_from(["seed=1"]) == "INFO"


def test_the_log_level_is_not_part_of_a_run_id():
    from omegaconf import OmegaConf

    from benchmark.runtime.storage import run_id

    ids = {run_id(OmegaConf.to_container(OmegaConf.structured(compose_config([f"log.level={level}"])), resolve=True))
           for level in ("INFO", "DEBUG")}
    assert len(ids) == 1


def test_the_entry_points_refuse_a_bad_level_before_any_compute(tmp_path, capsys):
    from benchmark import sweep, tune

    assert sweep.main(["-", "method=ours", "suite=toy", "log.level=LOUD", f"results_dir={tmp_path}"]) == 2
    assert tune.main(["method=ours", "suite=toy", "log.level=LOUD", f"results_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.count("log.level") == 2
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.slow
def test_the_workers_of_a_self_spawned_run_log_too(tmp_path):
    """"resuming ... from step N" is said by rank 0, a worker process: it needs the handler too."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    args = [sys.executable, "-m", "benchmark.run", "suite=toy", "runner.world_size=2", "runner.threads=1",
            "train.steps=20", "checkpoint.every=5", "metatest.steps=2", f"results_dir={tmp_path}"]
    crash = subprocess.run(args, cwd=ROOT, env={**os.environ, "LSML_FAULT": "0:12"}, capture_output=True, text=True,
                           timeout=300)
    assert crash.returncode != 0 and "injected fault at step 12" in crash.stderr, crash.stderr[-2000:]
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert " INFO resuming " in again.stderr and "from step 10" in again.stderr, again.stderr[-2000:]
    assert "resuming" not in again.stdout  # stdout keeps the result table only
