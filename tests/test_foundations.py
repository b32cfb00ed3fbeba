"""The neutral modules every area shares: the machine record, the device resolver, atomic
files, the run folder's names and readers, preprocessing.json's parser."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from pocketvision.environment import environment, resolve_device
from pocketvision.errors import PocketvisionError
from pocketvision.files import read_json, write_atomic, write_json
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import (
    MODEL,
    free_run_dir,
    is_run_dir,
    read_config,
    read_labels,
    read_summary,
)


def test_environment_is_one_record_with_cores_and_threads_apart() -> None:
    env = environment()
    assert {"pocketvision", "python", "torch", "numpy", "platform", "cpu"} <= set(env)
    assert env["cpu_count"] == os.cpu_count()  # the machine's cores ...
    assert env["torch_threads"] == torch.get_num_threads()  # ... not PyTorch's threads
    assert json.loads(json.dumps(env)) == env
    assert ("gpu" in env) == torch.cuda.is_available()


def test_resolve_device_auto_and_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(PocketvisionError, match="--device cuda: no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(PocketvisionError, match="--device tpu: unknown; use auto, cpu, cuda, mps"):
        resolve_device("tpu")


def test_write_atomic_leaves_no_temp_file_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"a": 1})
    write_atomic(target, b'{"a": 2}')
    assert read_json(target) == {"a": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_read_json_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(PocketvisionError, match=r"x.json: missing; hint"):
        read_json(tmp_path / "x.json", "hint")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(PocketvisionError, match=r"bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PocketvisionError, match=r"bin.json: not valid JSON \(not UTF-8 text\)"):
        read_json(tmp_path / "bin.json")


def test_free_run_dir_numbers_past_existing_runs(tmp_path: Path) -> None:
    base = tmp_path / "run"
    assert free_run_dir(base) == base
    for folder in (base, tmp_path / "run-2"):
        folder.mkdir()
        (folder / MODEL).write_text("{}")
    (tmp_path / "run-3").mkdir()  # a folder without model.json is not a run: reused
    assert is_run_dir(base) and not is_run_dir(tmp_path / "run-3")
    assert free_run_dir(base) == tmp_path / "run-3"


def test_read_config_and_summary(tmp_path: Path) -> None:
    assert read_config(tmp_path) is None and read_summary(tmp_path) is None
    write_json(tmp_path / "config.json", {"data": "digits"})
    assert read_config(tmp_path) == {"data": "digits"}
    write_json(tmp_path / "summary.json", [1, 2])
    with pytest.raises(PocketvisionError, match=r"summary\.json: expected a JSON object, got list"):
        read_summary(tmp_path)


def test_read_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cat\n\ndog\n")
    assert read_labels(path) == ["cat", "dog"]
    path.write_text("\n\n")
    with pytest.raises(PocketvisionError, match=r"labels\.txt: no labels"):
        read_labels(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(PocketvisionError, match=r"labels\.txt: not UTF-8 text"):
        read_labels(path)


GOOD = {"input_size": [1, 28, 28], "mean": [0.5], "std": [0.25]}


def test_preprocessing_round_trip() -> None:
    prep = Preprocessing.from_json(GOOD)
    assert prep == Preprocessing((1, 28, 28), (0.5,), (0.25,)) and prep.color_mode == "L"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object"),
        ({"mean": [0.5], "std": [0.5]}, "no 'input_size' field"),
        ({**GOOD, "input_size": "28"}, "lists of numbers"),
        ({**GOOD, "input_size": [2, 28, 28]}, r"input_size must be \[1 or 3, H, W\]"),
        ({**GOOD, "input_size": [1, 0, 28]}, "input_size must be"),
        ({**GOOD, "input_size": [1, 100000, 28]}, "input_size must be"),
        ({**GOOD, "mean": [0.5, 0.5]}, "mean and std need 1 values"),
        ({**GOOD, "std": [0.0]}, "std finite and > 0"),
        ({**GOOD, "mean": [float("nan")]}, "mean must be finite"),
        ({**GOOD, "resize": "crop"}, "unknown resize 'crop'"),
    ],
)
def test_preprocessing_rejects_what_does_not_fit(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Preprocessing.from_json(data)
