"""``python -m benchmark.run [key=value ...]``: meta-train one method, meta-test phi, write a run folder.

Examples::

    python -m benchmark.run method=ours
    python -m benchmark.run method=reptile seed=3 train.steps=2000 method.meta_lr=0.1 method.reset_every=100
    python -m benchmark.run --cfg job          # print the resolved config
"""
from __future__ import annotations

import itertools
import sys
import traceback

import hydra
from hydra import initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from benchmark import atomic, logs
from benchmark.compose import compose_run, explain
from benchmark.config import validate
from benchmark.core.compiled import check_compile
from benchmark.core.metatest import TooFewImages
from benchmark.core.train import Diverged
from benchmark.runtime import distributed
from benchmark.runtime.execute import (EXIT_BUSY, EXIT_CONFIG, EXIT_DIVERGED, EXIT_FAILED, RunFailed, execute,
                                       print_table)
from benchmark.runtime.storage import BadPath, RunBusy
from benchmark.sweeps.grid import config_dir_override
from tasks.decode import DamagedImage


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> int:
    """Run one job and exit with its code; a job of a multirun returns it instead, so the
    multirun goes on to the next job (``benchmark.runtime.multirun`` reports them all at the end)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN and distributed.place_from_env() is None:
        try:
            return job(cfg)
        except Exception:  # noqa: BLE001  (a bug in one job: its traceback, and the next job)
            traceback.print_exc()
            return EXIT_FAILED
    code = job(cfg)
    if distributed.place_from_env() is not None:  # a rank under torchrun or srun
        distributed.exit_rank(code)
    sys.exit(code)


def job(cfg: DictConfig) -> int:
    """Validate, run and print one run's table; its exit code."""
    try:
        typed = validate(cfg)
        distributed.check_device(typed.runner.device)  # this machine's devices, before any compute
        if typed.runner.compile:
            check_compile(distributed.device_for(typed.runner.device, distributed.place_from_env()))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(typed.log.level)
    code = EXIT_FAILED
    try:
        run = execute(typed)
        code = 0
    except Diverged as e:
        code = EXIT_DIVERGED
        print(f"error: {e}", file=sys.stderr)
    except RunBusy as e:
        code = EXIT_BUSY
        print(f"error: {e}", file=sys.stderr)
    except (TooFewImages, BadPath, DamagedImage) as e:  # a key that does not fit the data or the disk: nothing was written
        code = EXIT_CONFIG
        print(f"error: {e}", file=sys.stderr)
    except (RunFailed, FileNotFoundError) as e:  # FileNotFoundError: a dataset is missing
        print(f"error: {e}", file=sys.stderr)
    except OSError as e:  # a full disk: one line naming the file (atomic.DiskFull), else a traceback
        if e.errno not in atomic.FULL:
            raise
        print(f"error: {e if isinstance(e, atomic.DiskFull) else atomic.DiskFull(e.filename, e.strerror)}",
              file=sys.stderr)
    if code == 0 and run.done:
        print_table(run)
    return code


def check_overrides(argv: list[str]) -> None:
    """Compose the command line's config before Hydra does, so that a bad key, an unknown
    choice or a bad value is one line naming the key and what it accepts, and exit code 2
    (Hydra's own message runs over several lines, with exit code 1). Under ``-m`` every job
    of the multirun is composed and validated first, so none runs if one is bad."""
    if any(a.split("=")[0] in ("-h", "--help", "--hydra-help", "-i", "--info", "--shell-completion", "-sc",
                               "--config-name", "-cn", "--config-path", "-cp") for a in argv):
        return  # Hydra's own flags, or another primary config than the one composed here
    folder = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config-dir", "-cd")), None)
    folder = next((a.split("=", 1)[1] for a in argv if a.startswith("--config-dir=")), folder)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    try:
        parser = OverridesParser.create()
        parsed = []
        for text in overrides:
            try:
                parsed.append(parser.parse_override(text))
            except HydraException as e:
                raise ValueError(f"{text}: cannot parse ({str(e).splitlines()[0]})") from None
        axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if multirun and o.is_sweep_override()
                else [o.input_line] for o in parsed]
        extra = [config_dir_override(folder)] if folder else []
        with initialize_config_module("benchmark.conf", version_base="1.3"):
            for point in itertools.product(*axes):
                cfg = compose_run([*point, *extra])
                if multirun:  # a single run validates in main, before any compute
                    validate(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {explain(e)}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":
    check_overrides(sys.argv[1:])
    main()
