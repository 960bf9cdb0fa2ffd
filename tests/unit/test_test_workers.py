"""Each pytest-xdist worker runs torch, and the processes it starts, on its share of the cores
(tests/conftest.py), not a thread per core each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_a_worker_and_its_child_processes_use_their_share_of_the_cores() -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        pytest.skip("not under pytest-xdist (make test runs one worker per core)")
    share = max(1, (os.cpu_count() or 1) // int(workers))
    import torch

    assert torch.get_num_threads() == share
    child = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(child.stdout) == share
