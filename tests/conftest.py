import os
from pathlib import Path

import numpy as np
import pytest
import torch

MEMBRANE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "membrane"

# Two cores: keep torch from oversubscribing when tests run.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def membrane_dir():
    """Path of the membrane data set; skips the test where it is absent."""
    path = Path(os.environ.get("SKSEGMENT_MEMBRANE", MEMBRANE))
    if not (path / "images").is_dir() or not (path / "masks").is_dir():
        pytest.skip(f"membrane data not found at {path}")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
