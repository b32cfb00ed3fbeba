"""Run every benchmark script under benchmarks/ and write benchmarks/results/SUMMARY.md.

Each script (every ``benchmarks/*.py`` except this one) writes its own JSON into
benchmarks/results/; this runner runs them one after another (never in parallel: they measure
time), then summarises every ``results/*.json`` it finds into SUMMARY.md, so the summary also
covers results recorded earlier or on other machines.

    python benchmarks/run_all.py                       # everything (what `make bench` runs)
    python benchmarks/run_all.py --only latency        # scripts whose name contains "latency"
    python benchmarks/run_all.py --list                # what would run
    python benchmarks/run_all.py --summary-only        # rewrite SUMMARY.md from results/*.json
    python benchmarks/run_all.py --only latency -- --parts target   # pass arguments on
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def scripts(only: list[str] | None) -> list[Path]:
    """The benchmark scripts, alphabetically; ``only`` keeps names containing any of its words."""
    found = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    if only:
        found = [p for p in found if any(word in p.stem for word in only)]
    return found


def run(paths: list[Path], extra: list[str]) -> list[dict[str, Any]]:
    """Run each script with this interpreter; a failing script is recorded, the rest go on."""
    outcomes = []
    for path in paths:
        print(f"== {path.name} {' '.join(extra)}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(path), *extra], cwd=HERE.parent)
        wall = round(time.perf_counter() - start, 1)
        outcomes.append({"script": path.name, "returncode": code, "wall_s": wall})
        print(f"== {path.name}: exit {code} after {wall} s", flush=True)
    return outcomes


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f} %"


def latency_section(name: str, data: dict[str, Any]) -> list[str]:
    """Markdown for a latency_*.json: the target check, then one row per model and size."""
    machine = data.get("machine", {})
    lines = [
        f"### {name}",
        "",
        f"`{data.get('command', '')}` on {machine.get('cpu', '?')} "
        f"({machine.get('machine', '?')}), {data.get('threads')} thread(s), "
        f"load average at start {data.get('load_at_start')} / end {data.get('load_at_end')}, "
        f"{_fmt(data.get('wall_s'), '.0f')} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())
        + ".",
        "",
        "| part | model | input | batch | eager ms | onnxruntime ms | litert ms | executorch ms"
        " | fastest deploy | speedup vs eager | fastest / matmul peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data.get("rows", []):
        if "error" in row:
            lines.append(f"| {row['part']} | {row['model']} | error: {row['error'][:80]} |")
            continue
        c, h, w = row["input_size"]
        for batch, s in row["summary"].items():
            times = {
                r["runtime"]: r
                for r in row["runtimes"]
                if str(r["batch"]) == batch  # summary keys are strings in JSON
            }

            def cell(rt: str, times: dict[str, Any] = times) -> str:
                r = times.get(rt)
                if r is None:
                    return "-"
                if r["status"] != "ok":
                    return r["status"]
                return f"{r['median_ms']:.2f} (p90 {r['p90_ms']:.2f})"

            lines.append(
                f"| {row['part']} | {row['model']} | {c}x{h}x{w} | {batch} | {cell('eager')} "
                f"| {cell('onnxruntime')} | {cell('litert')} | {cell('executorch')} "
                f"| {s['fastest_deploy'] or '-'} | {_fmt(s['speedup_vs_eager'])}x "
                f"| {_percent(s['fastest_deploy_peak_fraction'])} |"
            )
    peaks = sorted({row["peak_gflops"] for row in data.get("rows", []) if "peak_gflops" in row})
    if peaks:
        lines += [
            "",
            f"Measured fp32 matmul peak (1024x1024, best of 10) per model: "
            f"{peaks[0]:.1f} to {peaks[-1]:.1f} GFLOP/s. Timings: median and p90 of "
            "the timed runs (`runs` in the JSON: 30 at batch 1).",
        ]
    failed = [
        f"{row['model']} {r['runtime']} b{r['batch']}: {r['reason']}"
        for row in data.get("rows", [])
        for r in row.get("runtimes", [])
        if r["status"] != "ok"
    ]
    if failed:
        lines += ["", "Not measured:", ""] + [f"- {f}" for f in failed]
    return lines


def generic_section(name: str, data: Any) -> list[str]:
    """Any other result file: its top-level scalar fields, so nothing goes unmentioned."""
    lines = [f"### {name}", ""]
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str | int | float | bool) or value is None:
                lines.append(f"- {key}: {value}")
        lines.append(f"- (full record: [{name}]({name}))")
    else:
        lines.append(f"See [{name}]({name}).")
    return lines


def profile_section(name: str, data: dict[str, Any]) -> list[str]:
    """Markdown for a `pocketvision profile --json` file: one row per runtime and batch."""
    machine = data.get("machine", {})
    device = machine.get("gpu") or machine.get("cpu") or "CPU"
    lines = [
        f"### {name}",
        "",
        f"`pocketvision profile {data['model']}` at {'x'.join(map(str, data['input_size']))} on "
        f"{device}: {data['params']:,} params, {data['macs'] / 1e6:.1f}M MACs; measured fp32 "
        f"matmul peak {_fmt(data['peak_gflops'], '.0f')} GFLOP/s CPU"
        + (
            f", {_fmt(data['gpu_peak_gflops'], '.0f')} GFLOP/s GPU (TF32 off)"
            if data.get("gpu_peak_gflops")
            else ""
        ),
        "",
        "| runtime | batch | status | median ms | p90 ms | images/s | of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data.get("runtimes", []):
        lines.append(
            f"| {r['runtime']} | {r['batch']} | {r['status']} | {_fmt(r['median_ms'])} | "
            f"{_fmt(r['p90_ms'])} | {_fmt(r['images_per_s'], '.0f')} | "
            f"{_percent(r['peak_fraction'])} |"
        )
    return lines


def summary(outcomes: list[dict[str, Any]]) -> str:
    """SUMMARY.md: every result file, latency ones as tables."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run_all.py` (`make bench`) from benchmarks/results/*.json;"
        " every number below is in those files with the machine, versions and thread count.",
        "",
    ]
    if outcomes:
        lines += ["Last run:", ""] + [
            f"- {o['script']}: exit {o['returncode']}, {o['wall_s']} s" for o in outcomes
        ]
        lines.append("")
    for path in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            lines += [f"### {path.name}", "", f"unreadable: {err}", ""]
            continue
        if isinstance(data, dict) and data.get("benchmark") == "latency":
            lines += latency_section(path.name, data)
        elif isinstance(data, dict) and "runtimes" in data and "macs" in data:
            lines += profile_section(path.name, data)
        else:
            lines += generic_section(path.name, data)
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run scripts whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite SUMMARY.md")
    parser.add_argument("extra", nargs="*", help="arguments after -- go to every script")
    args = parser.parse_args()
    chosen = scripts(args.only)
    if args.list:
        print("\n".join(p.name for p in chosen))
        return 0
    outcomes = [] if args.summary_only else run(chosen, args.extra)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "SUMMARY.md").write_text(summary(outcomes))
    print(f"wrote {RESULTS / 'SUMMARY.md'}")
    return max((o["returncode"] for o in outcomes), default=0)


if __name__ == "__main__":
    sys.exit(main())
