"""pocketvision inspect: planted duplicates, near duplicates and leaks in real image files are
found, and nothing else is; bad files are exactly the ones training skips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pocketvision.cli import main
from pocketvision.data import load_data
from pocketvision.data.inspection import inspect_data, summarize_splits, to_json
from pocketvision.preprocess import Preprocessing

pytest.importorskip("imagehash")


def _photo(seed: int) -> Image.Image:
    """A smooth random colour field: distinct seeds give unrelated perceptual hashes."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((48, 40), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/{cat,dog} x 8 and test/{cat,dog} x 3 distinct images, plus, planted:
    an exact copy within cat, an exact copy of a training dog in test (a leak), a JPEG
    re-encode of a cat filed under dog (label noise), a 2x-resized cat, and a text file."""
    root = tmp_path_factory.mktemp("planted")
    for split, n, base in (("train", 8, 0), ("test", 3, 500)):
        for c, name in enumerate(("cat", "dog")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                _photo(base + 100 * c + i).save(root / split / name / f"{i}.png")
    cat, dog = root / "train" / "cat", root / "train" / "dog"
    (cat / "copy.png").write_bytes((cat / "0.png").read_bytes())
    (root / "test" / "dog" / "leak.png").write_bytes((dog / "1.png").read_bytes())
    _photo(2).save(dog / "relabelled.jpg", quality=85)
    _photo(3).resize((96, 80)).save(cat / "big.png")
    (cat / "notes.jpg").write_text("not a picture\n")
    return root


def _names(group: dict) -> set[str]:
    return {str(Path(f["path"]).relative_to(Path(f["path"]).parents[2])) for f in group["files"]}


def test_finds_exactly_the_planted_groups(planted: Path) -> None:
    report = to_json(inspect_data(str(planted)))
    assert list(report) == ["duplicates", "near_duplicates", "leakage", "classes", "bad_files"]
    assert {frozenset(_names(g)) for g in report["duplicates"]} == {
        frozenset({"train/cat/0.png", "train/cat/copy.png"}),
        frozenset({"train/dog/1.png", "test/dog/leak.png"}),
    }
    near = {frozenset(_names(g)): g for g in report["near_duplicates"]}
    assert set(near) == {
        frozenset({"train/cat/2.png", "train/dog/relabelled.jpg"}),
        frozenset({"train/cat/3.png", "train/cat/big.png"}),
    }
    noisy = near[frozenset({"train/cat/2.png", "train/dog/relabelled.jpg"})]
    assert noisy["across_classes"] and noisy["classes"] == ["cat", "dog"]
    assert [(g["match"], _names(g), g["splits"]) for g in report["leakage"]] == [
        ("exact", {"train/dog/1.png", "test/dog/leak.png"}, ["train", "test"])
    ]


def test_class_counts_sizes_modes_and_bad_files(planted: Path) -> None:
    report = to_json(inspect_data(str(planted)))
    classes = report["classes"]
    assert classes["counts"]["cat"] == {"train": 10, "val": 0, "test": 3, "total": 13}
    assert classes["counts"]["dog"] == {"train": 9, "val": 0, "test": 4, "total": 13}
    assert classes["imbalance_ratio"] == pytest.approx(10 / 9, abs=1e-3)
    assert classes["sizes"]["most_common"] == {"48x40": 25, "96x80": 1}
    assert classes["modes"] == {"RGB": 26}
    # the bad files are the ones training skips, with training's reasons
    splits = load_data(str(planted), Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3))
    assert [(b["path"], b["reason"]) for b in report["bad_files"]] == splits.bad_files


def test_training_summary_sees_the_leak(planted: Path) -> None:
    splits = load_data(str(planted), Preprocessing((3, 16, 16), (0.5,) * 3, (0.5,) * 3))
    found = summarize_splits(splits)
    assert found["cross_split_duplicate_groups"] == 1
    assert found["cross_split_duplicate_images"] == 2
    # two exact copies; at 16x16 the 2x-resized cat is not byte-identical to its original
    assert found["duplicate_groups"] == 2
    assert found["bad_files"] == 1


def test_array_source_duplicates_are_equal_images() -> None:
    found = inspect_data("digits")
    report = to_json(found)
    assert sum(c["total"] for c in report["classes"]["counts"].values()) == 1797
    for group in found.duplicates:  # the oracle: the pixels really are equal
        rows = [found.arrays["train"].images[int(found.items[i].key[6:-1])] for i in group.members]
        assert all(bool((r == rows[0]).all()) for r in rows)


def test_cli_json_sheet_and_errors(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.png"
    assert main(["inspect", str(planted), "--json", "--sheet", str(sheet)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["leakage"]) == 1
    with Image.open(sheet) as img:
        assert img.height == 4 * (64 + 14 + 6) + 6  # one row per group
    assert main(["inspect", str(planted)]) == 0
    text = capsys.readouterr().out
    assert "leakage across splits: 1 group(s)" in text and "notes.jpg" in text
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    lone = tmp_path / "lone"
    (lone / "only").mkdir(parents=True)
    assert main(["inspect", str(lone)]) == 2
    assert "need at least 2 classes" in capsys.readouterr().err


def test_train_warns_once_and_the_model_card_records_it(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pocketvision.rundir import load_run
    from pocketvision.train import TrainConfig, train
    from pocketvision.web.served import ServedModel, model_card

    out = tmp_path / "run"
    config = TrainConfig(
        data=str(planted), model="lenet5", img_size=32, epochs=1, batch_size=8, out=str(out)
    )
    summary = train(config)
    lines = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(lines) == 1 and "2 images in 1 group(s) are exact copies across" in lines[0]
    assert summary["data_inspection"]["cross_split_duplicate_groups"] == 1
    card = model_card(ServedModel(load_run(out)))
    assert card["training"]["data_inspection"] == summary["data_inspection"]
