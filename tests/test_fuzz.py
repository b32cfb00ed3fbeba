"""The fuzz harnesses' inputs, replayed: every seed and every crash the fuzzer found (fixed).

fuzz/corpus/HARNESS/ holds small valid files (seed-*) and the inputs that once crashed a
loader (regress-*). Each goes through the same harness atheris runs (fuzz/harnesses.py):
success, or a PocketvisionError of one line naming the file. The explicit tests below pin
each fix's message; tests/test_fuzz_run.py runs atheris itself for a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pocketvision.data.builtin import read_idx
from pocketvision.data.datasets import load_manifest
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import BadImageError, Preprocessing, open_image
from pocketvision.train.checkpoint import load_state

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))

import harnesses  # noqa: E402

INPUTS = sorted((FUZZ / "corpus").glob("*/*"))


def test_every_harness_has_seeds_and_the_runner_knows_it() -> None:
    import run

    assert set(harnesses.HARNESSES) == set(run.NAMES)
    for name in harnesses.HARNESSES:
        assert any(p.name.startswith("seed-") for p in (FUZZ / "corpus" / name).iterdir()), name


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_input_gives_success_or_a_one_line_error_naming_the_file(path: Path) -> None:
    harnesses.HARNESSES[path.parent.name](path.read_bytes())


def test_seeds_are_accepted_not_just_refused(tmp_path: Path) -> None:
    # a harness that refused everything would pass the replay; the seeds must load
    prep = Preprocessing((3, 8, 8), (0.5,) * 3, (0.5,) * 3)
    for path in sorted((FUZZ / "corpus" / "image").glob("seed-*")):
        assert open_image(path.read_bytes()).mode == "RGB", path.name
    manifest = tmp_path / "m.csv"
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes((harnesses._manifest_images() / name).read_bytes())
    manifest.write_bytes((FUZZ / "corpus/csv_manifest/seed-header_split.csv").read_bytes())
    sets, classes, bad = load_manifest(manifest, prep, workers=1)
    assert (classes, sorted(sets), bad) == (["cat", "dog"], ["test", "train", "val"], [])


def test_a_harness_reports_an_error_that_does_not_name_the_file() -> None:
    with pytest.raises(harnesses.FuzzFailure, match="does not name"):
        harnesses.expect_named(PocketvisionError("something is wrong"), "/x/model.json")
    with pytest.raises(harnesses.FuzzFailure, match="multi-line"):
        harnesses.expect_named(PocketvisionError("/x/model.json: a\nb"), "/x/model.json")


# One test per crash the fuzzer found, with the message the fix gives.


def test_manifest_row_shorter_than_the_header_is_a_training_row(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes((harnesses._manifest_images() / name).read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\na.png,cat,val\nb.png,dog\na.png,cat\n")
    prep = Preprocessing((1, 8, 8), (0.5,), (0.5,))
    sets, _, _ = load_manifest(manifest, prep, workers=1)  # was IndexError
    assert (len(sets["train"]), len(sets["val"])) == (2, 1)


def test_idx_header_announcing_more_dimensions_than_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 34, 0, 0, 0, 2]))  # was ValueError from numpy
    with pytest.raises(PocketvisionError, match=r"truncated IDX header \(34 dimensions"):
        read_idx(path)


def test_idx_shape_whose_product_overflows_int64_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    dims = [2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1]  # np.prod wraps to a small number
    path.write_bytes(bytes([0, 0, 8, 4]) + b"".join(d.to_bytes(4, "big") for d in dims) + b"\1")
    with pytest.raises(PocketvisionError, match="truncated IDX file"):
        read_idx(path)


def test_idx_folder_without_images_or_with_labels_past_the_classes(tmp_path: Path) -> None:
    from pocketvision.data.builtin import load_idx_folder

    prep = Preprocessing((1, 8, 8), (0.5,), (0.5,))
    images = tmp_path / "train-images-idx3-ubyte"
    labels = tmp_path / "train-labels-idx1-ubyte"
    images.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3]))
    labels.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 0]))
    with pytest.raises(PocketvisionError, match="holds no images"):  # was RuntimeError
        load_idx_folder(tmp_path, prep)
    images.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6]))
    labels.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 0, 7]))
    with pytest.raises(PocketvisionError, match="label 7, past the 2 classes"):
        load_idx_folder(tmp_path, prep, ["a", "b"])


def test_empty_upload_bytes_are_a_pocketvision_error() -> None:
    with pytest.raises(PocketvisionError, match="<bytes>: not an image") as info:
        open_image(b"")
    assert isinstance(info.value, BadImageError) and isinstance(info.value, ValueError)


def test_last_pt_whose_tensor_record_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes((FUZZ / "corpus/last_pt/regress-rebuild-typeerror").read_bytes())
    with pytest.raises(PocketvisionError, match="corrupt or unsafe checkpoint"):
        load_state(path)  # was TypeError from torch's unpickler


def test_run_whose_labels_do_not_match_its_logits_is_refused(tmp_path: Path) -> None:
    import shutil

    from pocketvision.rundir import load_run

    run = tmp_path / "run"
    shutil.copytree(harnesses._run_template(), run)
    assert load_run(run).labels == ["cat", "dog", "fox"]
    (run / "labels.txt").write_text("cat\ndog\n")  # loaded before, then predicted index 2
    with pytest.raises(PocketvisionError, match=r"labels.txt: 2 labels for a model with 3 classes"):
        load_run(run)


def test_tiff_whose_strip_offsets_are_a_rational_is_a_bad_image(tmp_path: Path) -> None:
    path = tmp_path / "strip.tif"
    path.write_bytes((FUZZ / "corpus/image/regress-tiff-rational-stripoffsets").read_bytes())
    with pytest.raises(BadImageError, match=r"strip.tif: unreadable .*TypeError: 'IFDRational'"):
        open_image(path)  # was TypeError from Pillow's map_buffer
