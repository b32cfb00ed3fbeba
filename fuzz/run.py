"""Run the fuzz harnesses under atheris (coverage-guided, libFuzzer) and record what happened.

    python fuzz/run.py --seconds 30 --jobs 2 # every harness, 30 s each, two at once (`make test`)
    python fuzz/run.py --seconds 600         # the long run (`make fuzz-long`)
    python fuzz/run.py image csv_manifest --seconds 30 --json benchmarks/results/fuzz.json

Each harness runs in its own process, starting from a copy of its seed corpus in
fuzz/corpus/NAME (the copy grows; the committed seeds do not change). A crash writes the
input to fuzz/crashes/NAME/ and makes this command exit 1; copy it into fuzz/corpus/NAME/ as
``regress-WHAT`` once fixed, so tests/test_fuzz.py replays it forever.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
NAMES = ("image", "folder", "run_files", "safetensors", "last_pt", "csv_manifest", "idx")


def child(name: str, libfuzzer_args: list[str]) -> None:
    """Inside the fuzzing process: instrument pocketvision and Pillow, then fuzz one harness."""
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["pocketvision", "PIL", "harnesses"]):
        import harnesses
    target = harnesses.HARNESSES[name]
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


def _stat(text: str, key: str) -> int | None:
    found = re.findall(rf"stat::{key}:\s+(\d+)", text)
    return int(found[-1]) if found else None


def run_one(name: str, seconds: int, rss_mb: int) -> dict[str, Any]:
    """Fuzz one harness for ``seconds`` in a subprocess; its executions, corpus and crashes."""
    crash_dir = CRASHES / name
    crash_dir.mkdir(parents=True, exist_ok=True)
    before = set(crash_dir.iterdir())
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
        args = [
            f"-max_total_time={seconds}",
            f"-rss_limit_mb={rss_mb}",
            "-timeout=30",
            "-print_final_stats=1",
            f"-artifact_prefix={crash_dir}/",
            work,
            str(CORPUS / name),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 300,
        )
        wall = time.monotonic() - start
        corpus = len(list(Path(work).iterdir()))
    log = proc.stdout + proc.stderr
    crashes = sorted(str(p.relative_to(ROOT)) for p in set(crash_dir.iterdir()) - before)
    result = {
        "harness": name,
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "executions": _stat(log, "number_of_executed_units"),
        "peak_rss_mb": _stat(log, "peak_rss_mb"),
        "new_corpus_units": corpus,
        "seeds": len(list((CORPUS / name).iterdir())),
        "exit_code": proc.returncode,
        "crashes": crashes,
    }
    if proc.returncode != 0:
        lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith("INFO:")]
        start = next((i for i, ln in enumerate(lines) if "Uncaught Python exception" in ln), -40)
        result["log_tail"] = lines[start:][:60]
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*NAMES, []], help="harnesses (default all)")
    parser.add_argument("--seconds", type=int, default=10, help="fuzzing time per harness")
    parser.add_argument("--rss-mb", type=int, default=3072, help="libFuzzer's memory limit")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--jobs", type=int, default=1, help="harnesses fuzzed at once")
    args = parser.parse_args(argv)
    results = []
    names = args.names or NAMES
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each harness is its own process
        running = [pool.submit(run_one, name, args.seconds, args.rss_mb) for name in names]
        for name, future in zip(names, running, strict=True):
            result = future.result()
            results.append(result)
            status = "ok" if result["exit_code"] == 0 else f"CRASH {result['crashes']}"
            print(
                f"{name:13s} {result['executions'] or 0:>9,} executions in "
                f"{result['wall_s']:6.1f} s  corpus +{result['new_corpus_units']}  {status}",
                flush=True,
            )
            if result["exit_code"] != 0:
                print("\n".join(result["log_tail"]), file=sys.stderr)
    if args.json:
        sys.path.insert(0, str(ROOT / "src"))
        from importlib.metadata import version

        from pocketvision.environment import environment

        env = {**environment(), "atheris": version("atheris"), "pillow": version("pillow")}
        payload = {"environment": env, "harnesses": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
