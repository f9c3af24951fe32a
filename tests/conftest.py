import os
import sys
from pathlib import Path

# MKL picks its code path by CPU (AVX2, AVX-512, AMX), and the paths round differently: on an
# Intel Xeon with AVX-512 the golden phis of ours and anil missed by up to 1.1e-4. The
# compatible path rounds the same on every x86-64 CPU, and the goldens were recorded on it.
# Set before torch loads MKL, and over any caller's value (MKL_CBWR=AVX2 or AVX512 break the
# goldens); every subprocess a test starts inherits it.
os.environ["MKL_CBWR"] = "COMPATIBLE"

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models: more threads only contend with other processes (spawned ranks,
    subprocess runs) for the 2 cores."""
    torch.set_num_threads(1)
    yield
