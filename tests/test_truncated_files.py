"""A run folder's file cut short by a killed process (not written through write_atomic, say,
or copied half-way) is refused with one line naming it, never loaded silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import BEST, LAST, ModelSpec, load_run, save_weights, write_run_files
from pocketvision.train.checkpoint import load_state, save_state

FILES = ["model.json", "preprocessing.json", "labels.txt", BEST, LAST]


def _run(folder: Path) -> Path:
    spec = ModelSpec("lenet5", {"num_classes": 10, "in_chans": 1, "small_input": True})
    model = spec.build()
    save_weights(model, folder / BEST)
    write_run_files(
        folder, spec, [str(i) for i in range(10)], Preprocessing((1, 32, 32), (0.5,), (0.5,))
    )
    save_state(folder / LAST, {"model": model.state_dict(), "config": {}, "state": {}})
    return folder


@pytest.mark.parametrize("name", FILES)
def test_half_written_run_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    run = _run(tmp_path / "run")
    load_run(run)  # whole, it loads
    target = run / name
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(PocketvisionError) as caught:
        load_state(target) if name == LAST else load_run(run)
    message = str(caught.value)
    assert "\n" not in message and str(target) in message
