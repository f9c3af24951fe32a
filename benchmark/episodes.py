"""``python -m benchmark.episodes <run folder>... [metatest.episode_*=...]``: score the final phi of
finished runs in few-shot episodes (``benchmark.core.episodes``), without training them again."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark import atomic, logs
from benchmark.compose import explain
from benchmark.config import Config, DataConfig, cores, from_container
from benchmark.core.episodes import check, rows, same_settings
from benchmark.runtime import distributed
from benchmark.runtime.storage import RunBusy, RunDir
from tasks.decode import to_channels
from tasks.registry import TASKS

log = logging.getLogger("lsml")

# Exit codes: 0 done, 1 failed, 2 a bad key, folder or impossible request (nothing written), 75 busy.
USAGE = ("usage: python -m benchmark.episodes <run folder>... [metatest.episodes=600] [metatest.episode_*=...] "
         "[runner.device=...] [runner.threads=N] [data.cache_dir=...] [log.level=...]")
MACHINE_KEYS = ("root", "cache_dir", "download")  # data keys that say where this machine keeps the data
EDITABLE = ("metatest.episode", "runner.device", "runner.threads", *(f"data.{k}=" for k in MACHINE_KEYS), "log.")


def _config(folder: Path, overrides: list[str]) -> tuple[RunDir, Config]:
    """The run of ``folder`` (its id from its own config.yaml) and the config to score it with:
    the run's, with this machine's data and device keys and the episodic overrides."""
    if not (folder / "done").exists():
        raise ValueError(f"{folder}: not a finished run folder (no done marker)")
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    run = RunDir({**saved, "results_dir": str(folder.parents[2])})
    if run.path.resolve() != folder.resolve():
        raise ValueError(f"{folder}: its config.yaml gives run id {run.id}, not the folder's name")
    defaults = OmegaConf.to_container(OmegaConf.structured(DataConfig), resolve=True)
    machine = {k: defaults[k] for k in MACHINE_KEYS}  # this machine's, unless given; every other data key is the run's
    merged = OmegaConf.merge(saved, {"data": machine,
                                     "runner": {"world_size": 1}, "metatest": {"episodes": 600},
                                     "results_dir": str(folder.parents[2])},
                             OmegaConf.from_dotlist(overrides))
    try:
        cfg = from_container(OmegaConf.to_container(merged, resolve=True))
    except OmegaConfBaseException as e:  # a key the schema does not have (metatest.episode_shot=5), a bad value
        raise ValueError(explain(e)) from None
    if cfg.metatest.episodes < 1:  # 0 turns episodes off in a run; here there would be nothing to score
        raise ValueError(f"metatest.episodes: must be >= 1 to score episodes, got {cfg.metatest.episodes}")
    return run, cfg


def score_run(folder: Path, overrides: list[str], progress: bool = True) -> list[dict]:
    """Score a finished run's final phi in episodes and put the rows into its metatest.jsonl,
    replacing any of the same settings. Other files are untouched: phi, the summary and the
    other rows do not depend on the episodes, and each row carries its own settings."""
    run, cfg = _config(folder, overrides)
    data = {t: to_channels(TASKS.get(t).load(cfg.data), cfg.data.channels) for t in cfg.suite.targets}
    check(cfg, data)
    distributed.check_device(cfg.runner.device)
    torch.set_num_threads(cfg.runner.threads or cores())
    device = distributed.device_for(cfg.runner.device, None)
    with run.lock():
        new = rows(cfg, run.load_phi("final"), data, device, run.summary()["inner_steps"], progress)
        kept = [r for r in run.read("metatest")
                if r.get("protocol") != "episodes" or not any(same_settings(r, n) for n in new)]
        atomic.write_text(run.path / "metatest.jsonl", "".join(atomic.dumps(r) + "\n" for r in kept + new))
    log.info(f"{len(new)} episodic rows written to {run.path / 'metatest.jsonl'}")
    return new


def print_rows(folder: Path, new: list[dict]) -> None:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    print(f"\n{config['method']['name']}, seed {config['seed']}: {folder}")
    for r in new:
        print(f"  {r['target']:<24} {r['ways']}-way {r['shots']}-shot  {100 * r['accuracy']:6.2f} ± "
              f"{100 * r['ci95']:.2f}  ({r['episodes']} episodes, body {r['body']})")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    overrides = [a for a in argv if "=" in a]
    folders = [Path(a) for a in argv if "=" not in a]
    wrong = [o for o in overrides if not o.startswith(EDITABLE)]
    if wrong:
        print(f"error: {wrong[0].lstrip('+~').split('=')[0]}: not a key benchmark.episodes changes in a finished run; "
              "valid: metatest.episodes, metatest.episode_*, runner.device, runner.threads, "
              f"{', '.join('data.' + k for k in MACHINE_KEYS)}, log.level (--help)", file=sys.stderr)
        return 2
    if not folders:
        print("error: no run folder (--help)", file=sys.stderr)
        return 2
    try:
        logs.setup(logs.level_from(overrides))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    code = 0
    for folder in folders:
        try:
            print_rows(folder, score_run(folder, overrides))
        except (ValueError, FileNotFoundError, OmegaConfBaseException) as e:  # ImpossibleEpisodes, a bad key or folder
            print(f"error: {explain(e) if isinstance(e, OmegaConfBaseException) else e}", file=sys.stderr)
            code = code or 2
        except RunBusy as e:
            print(f"error: {e}", file=sys.stderr)
            code = code or 75
    return code


if __name__ == "__main__":
    sys.exit(main())
