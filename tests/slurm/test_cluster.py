"""Smoke test: a submitit job array really runs on the local SLURM cluster."""
from __future__ import annotations

import os
import sys
import time

import cloudpickle
import pytest
import submitit


def square(x: int) -> tuple[int, str | None, str | None]:
    return x * x, os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")


def wait_all(jobs, cluster, timeout: float = 120.0) -> None:
    # The cluster has no accounting (sacct), so submitit cannot see a job that died
    # without writing its result: job.result() would wait forever. Bound the wait.
    deadline = time.monotonic() + timeout
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {job.job_id}\n{job.stdout()}\n{job.stderr()}" for job in jobs)
            pytest.fail(f"jobs not done after {timeout}s\n{cluster.squeue()}\n{logs}", pytrace=False)
        time.sleep(0.5)


@pytest.mark.slurm
def test_submitit_job_array(slurm_cluster, tmp_path):
    # The job imports this module by name, which the job's python can't (tests/ is not
    # on its sys.path): ship `square` by value instead.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        executor = submitit.AutoExecutor(folder=tmp_path / "submitit" / "%j")
        assert executor.cluster == "slurm"
        executor.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1)
        jobs = executor.map_array(square, [1, 2, 3])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    wait_all(jobs, slurm_cluster)
    results = [job.result() for job in jobs]
    array_id = jobs[0].job_id.split("_")[0]
    assert results == [(1, array_id, "0"), (4, array_id, "1"), (9, array_id, "2")]
