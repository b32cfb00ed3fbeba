"""predict on real PNG / JPEG files: same answers as the model on the in-memory tensor,
bad files reported and skipped, JSON / CSV / table output through the real CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_support import CLASSES, DigitsRun, write_digit_file

from pocketvision.cli import main
from pocketvision.evaluate import predict
from pocketvision.rundir import load_run


def _in_memory_probs(run: DigitsRun, idx: np.ndarray) -> np.ndarray:
    model = load_run(run.path).model
    x = (torch.from_numpy(run.images[idx]).float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        return torch.softmax(model(x).double(), dim=1).numpy()


def test_png_and_jpeg_files_give_the_in_memory_top1(digits_run: DigitsRun, tmp_path: Path) -> None:
    idx = np.arange(30)
    paths = []
    for i in idx:
        # PNG grayscale, PNG RGB (converted back to L by preprocessing) and JPEG in turn
        suffix, mode = [(".png", "L"), (".png", "RGB"), (".jpg", "L")][i % 3]
        name = f"{i:02d}_{mode}{suffix}"
        paths.append(write_digit_file(tmp_path / "imgs" / name, digits_run.raw[i], mode))
    results = predict(digits_run.path, [tmp_path / "imgs"], topk=3, device="cpu")
    assert [r["path"] for r in results] == [str(p) for p in sorted(paths)]
    expected = _in_memory_probs(digits_run, idx)
    for i, entry in zip(idx, sorted(paths), strict=True):
        result = next(r for r in results if r["path"] == str(entry))
        preds = result["predictions"]
        assert len(preds) == 3
        assert preds[0]["label"] == CLASSES[int(expected[i].argmax())], entry.name
        probs = [p["probability"] for p in preds]
        assert probs == sorted(probs, reverse=True)
        if entry.suffix == ".png":
            # lossless: the file path feeds the model exactly the in-memory numbers
            top3 = np.sort(expected[i])[::-1][:3]
            np.testing.assert_allclose(probs, top3, rtol=0, atol=1e-6)


def test_bad_files_are_reported_and_the_rest_predicted(
    digits_run: DigitsRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    good = [write_digit_file(folder / f"good{i}.png", digits_run.raw[i]) for i in range(3)]
    good.append(write_digit_file(folder / "sub" / "deep.jpg", digits_run.raw[3]))
    full = good[0].read_bytes()
    (folder / "truncated.png").write_bytes(full[: len(full) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image at all\n")
    (folder / "readme.txt").write_text("skipped by the walk: not an image extension\n")
    (folder / "._good0.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork: hidden
    missing = tmp_path / "missing.png"

    rc = main(["predict", str(digits_run.path), str(folder), str(missing), "--json"])
    captured = capsys.readouterr()
    assert rc == 0
    results = json.loads(captured.out)
    by_name = {Path(r["path"]).name: r for r in results}
    assert set(by_name) == {
        "good0.png", "good1.png", "good2.png", "deep.jpg",
        "truncated.png", "empty.png", "notes.jpg", "missing.png",
    }  # fmt: skip
    for p in good:
        assert len(by_name[p.name]["predictions"]) == 3 and "error" not in by_name[p.name]
    assert "truncated" in by_name["truncated.png"]["error"]
    assert "empty" in by_name["empty.png"]["error"]
    assert "not an image" in by_name["notes.jpg"]["error"]
    assert by_name["missing.png"]["error"] == "no such file or directory"
    for name in ("truncated.png", "empty.png", "notes.jpg", "missing.png"):
        assert "predictions" not in by_name[name]
    assert "skipped 4 of 8 files" in captured.err
    assert "Traceback" not in captured.err


def test_csv_and_table_output(
    digits_run: DigitsRun, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps long paths at the terminal width
    files = [str(write_digit_file(tmp_path / f"d{i}.png", digits_run.raw[i])) for i in range(4)]
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files.append(str(tmp_path / "bad.png"))
    out_csv = tmp_path / "out" / "predictions.csv"
    assert (
        main(["predict", str(digits_run.path), *files, "--topk", "2", "--csv", str(out_csv)]) == 0
    )
    with out_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "path",
        "label_1",
        "probability_1",
        "label_2",
        "probability_2",
        "error",
    ]
    assert [r["path"] for r in rows] == files
    reference = predict(digits_run.path, files, topk=2, device="cpu")
    for row, ref in zip(rows[:4], reference[:4], strict=True):
        assert row["label_1"] == ref["predictions"][0]["label"]
        assert float(row["probability_1"]) == pytest.approx(
            ref["predictions"][0]["probability"], abs=1e-6
        )
        assert row["error"] == ""
    assert rows[4]["label_1"] == "" and rows[4]["error"]
    capsys.readouterr()

    # square brackets in a name are printed as they are, not read as rich markup
    tagged = write_digit_file(tmp_path / "[red]x.png", digits_run.raw[0])
    assert main(["predict", str(digits_run.path), str(tagged), "--topk", "50"]) == 0
    table = capsys.readouterr().out
    assert "[red]x.png" in table
    # --topk above the class count gives all 10 classes, whose probabilities sum to 1
    full = predict(digits_run.path, [files[0]], topk=50)[0]["predictions"]
    assert sorted(p["label"] for p in full) == sorted(CLASSES)
    assert sum(p["probability"] for p in full) == pytest.approx(1.0, abs=1e-9)


def test_nothing_predictable_exits_1(digits_run: DigitsRun, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    rc = main(["predict", str(digits_run.path), str(tmp_path / "empty"), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert results[0]["error"].startswith("folder has no image files")
