"""Fixtures of the data tests: a folder of real photos in every mode, with broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_files import write_bad_files, write_good_images


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/cat, root/dog with 7 good files each (+1 extra cat) and 4 bad files in cat."""
    root = tmp_path_factory.mktemp("photos")
    write_good_images(root / "cat", seed=1)
    write_good_images(root / "cat" / "more", seed=3)  # nested folders count too
    write_good_images(root / "dog", seed=2)
    write_bad_files(root / "cat")
    (root / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden files are ignored
    return root
