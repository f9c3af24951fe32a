"""One rank of a self-spawned multi-process run: ``python -m benchmark.worker <config.yaml>``.

``benchmark.distributed.spawn`` starts these with RANK / WORLD_SIZE / MASTER_* set;
the config is the parent's resolved config, so every rank runs exactly the same one.
"""
from __future__ import annotations

import sys

from omegaconf import OmegaConf

from benchmark import logs
from benchmark.config import from_container
from benchmark.distributed import exit_rank


def main(path: str) -> None:
    from benchmark.run import EXIT_DIVERGED, Diverged, execute

    cfg = from_container(OmegaConf.to_container(OmegaConf.load(path)))
    logs.setup(cfg.log.level)  # a worker is a process of its own: its messages need the handler too
    try:
        execute(cfg)
    except Diverged as e:  # rank 0 has recorded it; the parent reports it
        print(f"rank error: {e}", file=sys.stderr)
        exit_rank(EXIT_DIVERGED)
    exit_rank(0)


if __name__ == "__main__":
    main(sys.argv[1])
