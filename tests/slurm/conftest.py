"""`slurm_cluster`: a real one-node SLURM cluster (tests/slurm/cluster.sh) for the session.

Skipped when SLURM is not installed (scripts/install_system.sh installs it), unless
LSML_REQUIRE_SLURM=1, where a missing cluster is a failure rather than a silent skip.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).resolve().parent / "cluster.sh"
# The daemons live in /usr/sbin, which a non-login PATH may lack.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


@dataclass
class SlurmCluster:
    state_dir: Path
    conf: Path

    def squeue(self, *args: str) -> str:
        """Output of `squeue ARGS` against this cluster."""
        return subprocess.run(["squeue", *args], env={**os.environ, "SLURM_CONF": str(self.conf)},
                              capture_output=True, text=True, check=True, timeout=30).stdout


def _unavailable(reason: str) -> None:
    if os.environ.get("LSML_REQUIRE_SLURM") == "1":
        pytest.fail(f"LSML_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if shutil.which("slurmctld", path=SBIN_PATH) is None:
        _unavailable("SLURM is not installed (run scripts/install_system.sh)")
    if os.geteuid() != 0:
        _unavailable("the test SLURM cluster runs its daemons as root")

    state_dir = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PATH": SBIN_PATH, "SLURM_TEST_DIR": str(state_dir),
           # Own ports, so a cluster someone started by hand (default 6817/6818) doesn't clash.
           "SLURM_TEST_CTLD_PORT": str(_free_port()), "SLURM_TEST_SLURMD_PORT": str(_free_port())}
    conf = state_dir / "slurm.conf"
    old_conf = os.environ.get("SLURM_CONF")
    try:
        start = subprocess.run(["bash", str(CLUSTER_SH), "start"], env=env, capture_output=True,
                               text=True, timeout=120)
        if start.returncode != 0:
            pytest.fail(f"cluster.sh start failed ({start.returncode}):\n{start.stdout}\n{start.stderr}",
                        pytrace=False)
        # sbatch/squeue (also those submitit runs) find the cluster through SLURM_CONF.
        os.environ["SLURM_CONF"] = str(conf)
        yield SlurmCluster(state_dir=state_dir, conf=conf)
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True, timeout=120)
