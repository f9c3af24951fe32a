"""One error contract for every entry point: a bad key, an unknown choice or a bad value is one
line on stderr naming the key and what it accepts, exit code 2, no Hydra message, no traceback,
and nothing written."""
import pytest

from benchmark import episodes, sweep, tune
from benchmark.runtime.execute import execute
from helpers import cli, make_config

# (override, what the line must hold: the key, then the valid choices)
BAD = [
    ("train.stepz=20", ["train.stepz: unknown key", "valid keys of train: steps, batch_size"]),
    ("+train.stepz=20", ["train.stepz: unknown key", "valid keys of train: steps, batch_size"]),
    ("method=reptil", ["method: unknown", "'reptil'", "valid: ", "ours", "reptile", "scratch"]),
    ("train.steps=abc", ["train.steps: must be an integer, got 'abc'"]),
]
TINY = ["suite=toy", "train.steps=2", "metatest.steps=2"]


def assert_one_line(code: int, stderr: str, expected: list[str]) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr
    for piece in expected:
        assert piece in lines[0], lines[0]


@pytest.mark.parametrize("override,expected", BAD)
def test_run(override, expected, tmp_path):
    out = cli(*TINY, f"results_dir={tmp_path}", override)
    assert_one_line(out.returncode, out.stderr, expected)
    assert not any(tmp_path.iterdir())


def test_run_multirun_checks_every_job_first(tmp_path):
    """-m: the second job's bad value fails the command before the first job runs."""
    out = cli("-m", *TINY, f"results_dir={tmp_path}", "method=ours,reptile", "method.reset_every=abc")
    assert_one_line(out.returncode, out.stderr, ["method.reset_every: must be an integer, got 'abc'"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("override,expected", BAD)
def test_sweep(override, expected, tmp_path, capsys):
    code = sweep.main(["-", *TINY, f"results_dir={tmp_path}", override])
    assert_one_line(code, capsys.readouterr().err, expected)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("override,expected", BAD)
def test_tune(override, expected, tmp_path, capsys):
    code = tune.main([*TINY, "trials=1", f"results_dir={tmp_path}", override])
    assert_one_line(code, capsys.readouterr().err, expected)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("override,expected", BAD)
def test_episodes(override, expected, tmp_path, capsys):
    """benchmark.episodes changes only the episodic, machine and log keys of a finished run."""
    key = override.lstrip("+").split("=")[0]
    code = episodes.main([str(tmp_path), override])
    assert_one_line(code, capsys.readouterr().err, [key, "valid: metatest.episode", "runner.threads"])


def test_episodes_bad_values_of_its_own_keys(tmp_path, capsys):
    run = execute(make_config(*TINY, f"results_dir={tmp_path}"), progress=False)
    for override, expected in [("metatest.episodes=abc", ["metatest.episodes: must be an integer, got 'abc'"]),
                               ("metatest.episodez=3", ["metatest.episodez: unknown key", "episode_ways"]),
                               ("metatest.episode_body=thaw", ["metatest.episode_body: must be frozen or finetune"])]:
        code = episodes.main([str(run.path), override])
        assert_one_line(code, capsys.readouterr().err, expected)
