"""Hydra's multirun (``python -m benchmark.run -m key=a,b ...``): every job runs, and the
command's exit code says how they all ended.

Each job's ``main`` returns its exit code instead of exiting (an exit would end the whole
multirun after its first job, and under ``hydra/launcher=submitit_local`` turn every job into
an ``UncompletedJobError``). :class:`Outcomes`, a Hydra callback named in ``conf/config.yaml``,
records each job's code in its job folder, ``<hydra.sweep.dir>/<job number>/outcome.json``
(written in the process that ran the job, which for submitit is not this one), and once the
multirun ends names the jobs that did not succeed and exits as ``benchmark.sweep`` does: 1 if
any failed, 3 if some diverged and none failed, 0 when all are done.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

OUTCOME = "outcome.json"
EXIT_FAILED, EXIT_DIVERGED = 1, 3


class Outcomes(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        ok = job_return.status == JobStatus.COMPLETED and isinstance(job_return._return_value, int)
        code = job_return._return_value if ok else EXIT_FAILED
        record = {"job": config.hydra.job.num, "overrides": list(job_return.overrides or []), "code": code}
        (Path(config.hydra.runtime.output_dir) / OUTCOME).write_text(json.dumps(record) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        records = [json.loads(p.read_text()) for p in Path(config.hydra.sweep.dir).glob(f"*/{OUTCOME}")]
        bad = sorted((r for r in records if r["code"]), key=lambda r: r["job"])
        for r in bad:
            print(f"error: multirun job #{r['job']} ({' '.join(r['overrides'])}) ended with exit code {r['code']}",
                  file=sys.stderr)
        print(f"{len(records) - len(bad)} of {len(records)} multirun jobs done", file=sys.stderr)
        codes = {r["code"] for r in bad}
        if codes:
            sys.exit(EXIT_DIVERGED if codes == {EXIT_DIVERGED} else EXIT_FAILED)
