import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models: more threads only contend with other processes (spawned ranks,
    subprocess runs) for the 2 cores."""
    torch.set_num_threads(1)
    yield
