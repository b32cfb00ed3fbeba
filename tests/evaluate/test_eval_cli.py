"""The evaluate / predict command lines: real output, and one-line errors for broken runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from eval_support import CLASSES, DigitsRun, write_digit_file

from pocketvision import create_model
from pocketvision.cli import main
from pocketvision.evaluate import evaluate
from pocketvision.rundir import BEST, save_weights


def test_evaluate_json_and_table(digits_run: DigitsRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(digits_run.path), "--split", "test", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    again = evaluate(digits_run.path, split="test", write=False, device="cpu")
    assert printed["accuracy"] == again["accuracy"]
    assert printed["num_images"] == again["num_images"] > 300  # digits: fixed 20% test split
    assert [r["label"] for r in printed["per_class"]] == CLASSES

    assert main(["evaluate", str(digits_run.path)]) == 0
    table = capsys.readouterr().out
    assert (
        f"{100 * json.loads((digits_run.path / 'metrics.json').read_text())['accuracy']:.2f}%"
        in table
    )
    for word in ("accuracy", "top-5", "macro F1", "log loss", "ECE", "per class"):
        assert word in table


def _break_missing_dir(run: Path) -> None:
    shutil.rmtree(run)


def _break_no_checkpoint(run: Path) -> None:
    (run / BEST).unlink()


def _break_corrupt_checkpoint(run: Path) -> None:
    (run / BEST).write_bytes(b"\x13\x37" * 100)


def _break_truncated_checkpoint(run: Path) -> None:
    data = (run / BEST).read_bytes()
    (run / BEST).write_bytes(data[: len(data) // 2])


def _break_other_model(run: Path) -> None:
    save_weights(create_model("squeezenet1_1", num_classes=10, in_chans=1), run / BEST)


def _break_other_head(run: Path) -> None:
    save_weights(create_model("lenet5", num_classes=3, in_chans=1), run / BEST)


def _break_no_model_json(run: Path) -> None:
    (run / "model.json").unlink()


BREAKAGES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (how to break the run, the thing the message names, what it says)
    "missing run": (_break_missing_dir, "", "no such run directory"),
    "no checkpoint": (_break_no_checkpoint, BEST, "no checkpoint"),
    "corrupt checkpoint": (_break_corrupt_checkpoint, BEST, "corrupt checkpoint"),
    "truncated checkpoint": (_break_truncated_checkpoint, BEST, "corrupt checkpoint"),
    "another model": (_break_other_model, BEST, "does not fit model LeNet"),
    "another head": (_break_other_head, BEST, "does not fit model LeNet"),
    "no model.json": (_break_no_model_json, "model.json", "missing"),
}


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_run_is_one_line_error(
    digits_run: DigitsRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    breakage: str,
    command: str,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(digits_run.path, run)
    image = write_digit_file(tmp_path / "x.png", digits_run.raw[0])
    breaker, thing, says = BREAKAGES[breakage]
    breaker(run)
    argv = [command, str(run)] + ([str(image)] if command == "predict" else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("pocketvision: error: ")
    assert str(run / thing if thing else run) in lines[0]
    assert says in lines[0]
    assert captured.out == ""


def test_data_problems_are_one_line_errors(
    digits_run: DigitsRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a folder per class with no test split, and classes the run was not trained on
    folder = tmp_path / "letters"
    for c, cls in enumerate(("a", "b")):
        for i in range(6):
            write_digit_file(folder / cls / f"{i}.png", digits_run.raw[c * 6 + i])
    cases = [
        (["--data", str(folder), "--split", "test"], "no test split"),
        (["--data", str(folder)], "classes a, b are not among the 10 labels"),
        (["--data", str(tmp_path / "nowhere")], "no such file or folder"),
    ]
    for extra, says in cases:
        assert main(["evaluate", str(digits_run.path), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    # a run without config.json (built by hand) must be told where its data is
    bare = tmp_path / "bare_run"
    shutil.copytree(digits_run.path, bare)
    (bare / "config.json").unlink()
    assert main(["evaluate", str(bare)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no data; pass --data" in err[0], err
    assert main(["evaluate", str(bare), "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "digits"


def test_subset_of_classes_in_a_folder_evaluates(digits_run: DigitsRun, tmp_path: Path) -> None:
    """Class folders "3" and "7" map onto the run's labels by name; mistakes name their files."""
    folder = tmp_path / "digits37"
    threes = [i for i, y in enumerate(digits_run.labels) if y == 3][:12]
    sevens = [i for i, y in enumerate(digits_run.labels) if y == 7][:8]
    # four threes filed under "7": mislabelled data, so there are mistakes to point at
    placed = {"3": threes[:8], "7": sevens + threes[8:]}
    for c, idx in placed.items():
        for i in idx:
            write_digit_file(folder / c / f"{i}.png", digits_run.raw[i])
    run = tmp_path / "run"
    shutil.copytree(digits_run.path, run)
    result = evaluate(run, data=str(folder), split="all", device="cpu")
    assert result["num_images"] == 20
    support = {r["label"]: r["support"] for r in result["per_class"]}
    assert support["3"] == 8 and support["7"] == 12 and sum(support.values()) == 20
    # same images, same answers as the in-memory held-out tensor with the folder's labels
    idx = placed["3"] + placed["7"]
    labels = np.array([3] * 8 + [7] * 12)
    assert result["accuracy"] == pytest.approx(evaluate_reference(digits_run, idx, labels))
    assert len(result["mistakes"]) >= 4
    for mistake in result["mistakes"]:
        path = Path(mistake["path"])
        assert path.is_file() and path.parent.name == mistake["true"]
    assert {Path(m["path"]).stem for m in result["mistakes"]} >= {str(i) for i in threes[8:]}


def evaluate_reference(run: DigitsRun, idx: list[int], labels: np.ndarray) -> float:
    import torch

    from pocketvision.rundir import load_run

    model = load_run(run.path).model
    x = (torch.from_numpy(run.images[idx]).float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        pred = model(x).argmax(dim=1).numpy()
    return float((pred == labels).mean())


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pocketvision", "evaluate", str(tmp_path / "no_run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pocketvision: error: {tmp_path / 'no_run'}: no such run directory"
    ]
