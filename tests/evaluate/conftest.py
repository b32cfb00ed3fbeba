"""A small trained run directory shared by the evaluate/predict tests (trained once per worker)."""

from __future__ import annotations

import pytest
from eval_support import DigitsRun, make_digits_run


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> DigitsRun:
    """A lenet5 run trained on digits with plain PyTorch; held-out images come with it."""
    return make_digits_run(tmp_path_factory.mktemp("run"))
