"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread_seeded():
    """One torch thread and seed 0 for the test, restored afterwards: the networks in these tests are
    small, so extra threads only add overhead on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)
