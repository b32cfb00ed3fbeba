"""Data sources from real files on disk: folders, manifests, IDX, built-ins, bad files, cache."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from image_files import SIZE, write_bad_files, write_good_images
from PIL import Image

from pocketvision.data import builtin, load_data, stratified_split
from pocketvision.data.decode import decode_files
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing, decode_uint8

RGB = Preprocessing((3, SIZE, SIZE), (0.5,) * 3, (0.5,) * 3)
GRAY = Preprocessing((1, 28, 28), (0.5,), (0.5,))


def _all(splits):  # every image of train + val, as {path: (tensor, label)}
    out = {}
    for s in (splits.train, splits.val):
        for i, p in enumerate(s.paths):
            out[p] = (s.images[i], int(s.labels[i]))
    return out


def test_folder_decodes_every_mode_and_lists_every_bad_file(photo_folder: Path) -> None:
    splits = load_data(str(photo_folder), RGB, val_fraction=0.25, workers=2)
    assert splits.classes == ["cat", "dog"]
    images = _all(splits)
    assert len(images) == 14 + 7  # 7 kinds x (cat, cat/more, dog); bad and hidden files skipped
    for path, (tensor, label) in images.items():
        assert tensor.dtype == torch.uint8 and tensor.shape == (3, SIZE, SIZE)
        # the oracle: the one decoding rule prediction and export also use
        assert torch.equal(tensor, torch.from_numpy(decode_uint8(path, RGB)))
        assert label == (0 if "/cat/" in path else 1)
    bad = {Path(p).name: reason for p, reason in splits.bad_files}
    assert set(bad) == {"truncated.jpg", "empty.png", "notes.jpg", "bomb.png"}
    expected = {
        "truncated.jpg": "truncated",
        "empty.png": "empty",
        "notes.jpg": "not an image",
        "bomb.png": "decompression bomb",
    }
    for name, word in expected.items():
        assert word in bad[name], (name, bad[name])
    assert splits.test is None


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    write_good_images(tmp_path / "a", seed=5)
    write_good_images(tmp_path / "b", seed=6)
    prep = Preprocessing((3, 32, 24), (0.5,) * 3, (0.5,) * 3)  # portrait target: H=32, W=24
    splits = load_data(str(tmp_path), prep, val_fraction=0.3)
    images = _all(splits)
    portrait = next(t for p, (t, _) in images.items() if p.endswith("a/portrait.jpg"))
    # orientation 6 = stored rotated; displayed upright it is the landscape image turned 90 deg
    stored = np.asarray(Image.open(tmp_path / "a" / "rgb.jpg"))
    turned = np.asarray(
        Image.fromarray(stored).transpose(Image.Transpose.ROTATE_270).resize((24, 32))
    )
    diff = np.abs(portrait.permute(1, 2, 0).numpy().astype(int) - turned.astype(int)).mean()
    unturned = np.asarray(Image.fromarray(stored).resize((24, 32)))
    diff_unturned = np.abs(
        portrait.permute(1, 2, 0).numpy().astype(int) - unturned.astype(int)
    ).mean()
    assert diff < 6 < diff_unturned


def test_grayscale_model_gets_one_channel(photo_folder: Path) -> None:
    splits = load_data(str(photo_folder), Preprocessing((1, 8, 8), (0.5,), (0.5,)))
    assert splits.train.images.shape[1:] == (1, 8, 8)


def test_class_folder_without_usable_image_is_an_error(tmp_path: Path) -> None:
    write_good_images(tmp_path / "cat", seed=1)
    write_bad_files(tmp_path / "dog")
    with pytest.raises(PocketvisionError, match=r"class 'dog' has no usable image"):
        load_data(str(tmp_path), RGB)


def test_fewer_than_two_classes_empty_and_missing_are_errors(tmp_path: Path) -> None:
    with pytest.raises(PocketvisionError, match="empty folder"):
        load_data(str(tmp_path), RGB)
    write_good_images(tmp_path / "cat", seed=1)
    with pytest.raises(PocketvisionError, match="at least 2 classes"):
        load_data(str(tmp_path), RGB)
    with pytest.raises(PocketvisionError, match="no such file or folder"):
        load_data(str(tmp_path / "nope"), RGB)


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 3)
    a = stratified_split(labels, 0.2, seed=7)
    b = stratified_split(labels, 0.2, seed=7)
    c = stratified_split(labels, 0.2, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])
    keep, held = a
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert sorted(keep.tolist() + held.tolist()) == list(range(83))
    assert torch.bincount(labels[held]).tolist() == [10, 6, 1]  # 20% per class, >= 1 each


def test_train_val_test_folders_and_csv_manifest(tmp_path: Path) -> None:
    for split, seed in (("train", 1), ("val", 2), ("test", 3)):
        write_good_images(tmp_path / "set" / split / "cat", seed)
        write_good_images(tmp_path / "set" / split / "dog", seed + 10)
    splits = load_data(str(tmp_path / "set"), RGB)
    assert (len(splits.train), len(splits.val), len(splits.test or [])) == (14, 14, 14)
    assert all("/val/" in p for p in splits.val.paths or [])

    rows = ["path,label,split"]
    for split in ("train", "val", "test"):
        for label in ("cat", "dog"):
            for f in sorted((tmp_path / "set" / split / label).iterdir()):
                rows.append(f"set/{split}/{label}/{f.name},{label},{split}")
    rows.append("set/missing.jpg,cat,train")
    manifest = tmp_path / "data.csv"
    manifest.write_text("\n".join(rows) + "\n")
    m = load_data(str(manifest), RGB)
    assert m.classes == ["cat", "dog"]
    assert (len(m.train), len(m.val), len(m.test or [])) == (14, 14, 14)
    assert torch.equal(m.test.images, splits.test.images)  # type: ignore[union-attr]
    assert [Path(p).name for p, _ in m.bad_files] == ["missing.jpg"]


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_idx_folder_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, compress=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:8], compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:8], compress=True)
    splits = load_data(str(tmp_path), GRAY, val_fraction=0.1)
    assert splits.classes == ["0", "1", "2", "3"]
    merged = torch.cat([splits.train.images, splits.val.images])
    order = torch.cat([*stratified_split(torch.from_numpy(labels.astype(np.int64)), 0.1, 0)])
    assert torch.equal(merged[:, 0], torch.from_numpy(images)[order])
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(images[:8]))  # type: ignore[union-attr]
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\x28" + b"\0" * 5)
    with pytest.raises(PocketvisionError, match="truncated IDX"):
        load_data(str(tmp_path), GRAY)


def test_memory_mapped_cache_matches_ram_and_is_reused(tmp_path: Path) -> None:
    paths = [str(p) for p in write_good_images(tmp_path / "img", seed=4)]
    paths.append(str(tmp_path / "missing.png"))
    in_ram = decode_files(paths, RGB)
    mapped = decode_files(paths, RGB, cache_dir=tmp_path / "cache", limit_bytes=0)
    assert in_ram.memmap is None and mapped.memmap is not None and mapped.memmap.exists()
    assert torch.equal(in_ram.images, mapped.images)
    assert in_ram.kept == mapped.kept and len(mapped.bad) == 1
    stamp = mapped.memmap.stat().st_mtime_ns
    again = decode_files(paths, RGB, cache_dir=tmp_path / "cache", limit_bytes=0)
    assert again.memmap == mapped.memmap and again.memmap.stat().st_mtime_ns == stamp
    assert torch.equal(again.images, in_ram.images)


def test_digits_has_fixed_test_split_and_upsampled_images() -> None:
    prep = Preprocessing((1, 32, 32), (0.5,), (0.5,))
    a = load_data("digits", prep, seed=0)
    b = load_data("digits", prep, seed=1)
    assert a.test is not None and b.test is not None
    assert torch.equal(a.test.images, b.test.images)  # seed moves val, never test
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert a.train.images.shape[1:] == (1, 32, 32) and a.train.images.max() > 200


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Fashion-MNIST anywhere we look, and the download URL on a closed local port."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("POCKETVISION_DATA", raising=False)
    monkeypatch.setattr(builtin, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(builtin, "FASHION_MNIST_URL", "http://127.0.0.1:9/")
    return tmp_path


def test_fashion_mnist_offline_error_says_how_to_get_it(offline_home: Path) -> None:
    with pytest.raises(PocketvisionError) as err:
        load_data("fashion-mnist", GRAY)
    message = str(err.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(offline_home / ".cache" / "pocketvision" / "fashion-mnist") in message


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_fashion_mnist_download_checks_checksums(
    offline_home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path_factory.mktemp("mirror")
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(
            mirror / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), True
        )
        _write_idx(mirror / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, True)
    server, url = _serve(mirror)
    try:
        monkeypatch.setattr(builtin, "FASHION_MNIST_URL", url)
        # the official sums do not match our mirror's files: refused, nothing kept
        with pytest.raises(PocketvisionError, match="checksum"):
            load_data("fashion-mnist", GRAY)
        sums = {
            name: hashlib.md5((mirror / name).read_bytes()).hexdigest()
            for name in builtin.FASHION_MNIST_MD5
        }
        monkeypatch.setattr(builtin, "FASHION_MNIST_MD5", sums)
        splits = load_data("fashion-mnist", GRAY)
    finally:
        server.shutdown()
    assert len(splits.train) + len(splits.val) == 30 and len(splits.test or []) == 10
    assert (
        offline_home / ".cache" / "pocketvision" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    ).exists()
    assert splits.classes[0] == "T-shirt/top"


@pytest.mark.skipif(
    not any((d / "train-images-idx3-ubyte.gz").exists() for d in builtin.fashion_mnist_dirs()),
    reason="Fashion-MNIST not installed (make data)",
)
def test_fashion_mnist_from_disk() -> None:
    splits = load_data("fashion-mnist", GRAY)
    assert (len(splits.train), len(splits.val), len(splits.test or [])) == (54_000, 6_000, 10_000)
    assert torch.bincount(splits.val.labels).tolist() == [600] * 10
    assert splits.train.images.dtype == torch.uint8


def test_folder_larger_than_memory_stays_memory_mapped_through_the_split(
    photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_ram = load_data(str(photo_folder), RGB, val_fraction=0.25)
    monkeypatch.setenv("POCKETVISION_MEMORY_LIMIT", "1")  # every folder is "larger than RAM"
    mapped = load_data(str(photo_folder), RGB, val_fraction=0.25, cache_dir=tmp_path)
    for a, b in ((in_ram.train, mapped.train), (in_ram.val, mapped.val)):
        assert a.backing is None and b.backing is not None and b.backing.parent == tmp_path
        assert a.paths == b.paths and torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels)
    assert mapped.bad_files == in_ram.bad_files
