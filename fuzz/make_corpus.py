"""Write the seed corpus, fuzz/corpus/HARNESS/NAME: small valid files of every kind.

    python fuzz/make_corpus.py

The files are committed; tests/test_fuzz.py replays them (and every regression input beside
them) through the harnesses, so a fresh clone tests the same inputs without atheris.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harnesses import seed_files

CORPUS = Path(__file__).resolve().parent / "corpus"


def main() -> None:
    for harness, files in seed_files().items():
        folder = CORPUS / harness
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{folder}: {len(files)} seed file(s)")


if __name__ == "__main__":
    main()
