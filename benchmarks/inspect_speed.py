"""How fast ``pocketvision inspect`` reads a data set: target 10,000 images in under a minute
on 2 cores (issue 18).

Writes a folder of real JPEG files (train/ and test/, 10 classes, sides drawn from 200-500 px,
like phone photos scaled down for a data set), with planted exact copies and re-encoded near
copies, then times :func:`pocketvision.data.inspection.inspect_data` over it with 2 reading
threads, several times (the files are in the page cache after writing, as on a second look at
a data set). Also checks that every planted pair was found.

    python benchmarks/inspect_speed.py                 # 10,000 images, 3 repeats
    python benchmarks/inspect_speed.py --images 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pocketvision.data.inspection import inspect_data, to_json
from pocketvision.environment import environment
from pocketvision.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _photo(rng: np.random.Generator) -> Image.Image:
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    w, h = (int(v) for v in rng.integers(200, 501, 2))
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def write_folder(root: Path, n: int, planted: int, seed: int = 0) -> None:
    """``n`` JPEGs: ``planted`` exact copies and ``planted`` re-encoded copies among them."""
    rng = np.random.default_rng(seed)
    originals = n - 2 * planted
    paths = []
    for i in range(originals):
        split = "test" if (i // 10) % 10 == 0 else "train"
        folder = root / split / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i}.jpg"
        img = _photo(rng)
        img.save(path, quality=90)
        paths.append((path, img))
    for k in range(planted):
        path, img = paths[k * 7]
        (path.parent / f"copy{k}.jpg").write_bytes(path.read_bytes())
        img.save(path.parent / f"reencoded{k}.jpg", quality=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "inspect_speed.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        t0 = time.perf_counter()
        write_folder(root, args.images, args.planted)
        print(f"wrote {args.images} JPEGs in {time.perf_counter() - t0:.1f} s")
        seconds = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            report = to_json(inspect_data(str(root), workers=args.workers))
            seconds.append(time.perf_counter() - t0)
            print(f"inspected in {seconds[-1]:.1f} s")
    counted = sum(c["total"] for c in report["classes"]["counts"].values())
    result = {
        "benchmark": "inspect_speed",
        "images": counted,
        "workers": args.workers,
        "seconds_median": round(statistics.median(seconds), 2),
        "seconds_min": round(min(seconds), 2),
        "seconds_max": round(max(seconds), 2),
        "seconds": [round(s, 2) for s in seconds],
        "images_per_s": round(counted / statistics.median(seconds), 1),
        "target_seconds": 60,
        "planted_exact": args.planted,
        "found_exact_groups": len(report["duplicates"]),
        "planted_near": args.planted,
        "found_near_groups": len(report["near_duplicates"]),
        "leakage_groups": len(report["leakage"]),
        # other work on the machine during the run (1, 5, 15 minute load averages at the end)
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "environment": environment(),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
