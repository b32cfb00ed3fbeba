"""What a search writes and prints: trials.json, summary.json, pareto.png, the front's table
and one progress line per trial. Everything is read back from the study, so any worker's
files show every worker's trials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pocketvision.files import write_json

TRIALS = "trials.json"
SUMMARY = "summary.json"
PARETO = "pareto.png"
# converted: size_bytes and latency_ms are the deploy file's (else size_bytes is the weights'
# lower bound of a trial refused before converting)
FIELDS = (
    "model",
    "kwargs",
    "params",
    "size_bytes",
    "converted",
    "latency_ms",
    "accuracy",
    "seconds",
)


def status(trial: FrozenTrial) -> str:
    """complete / pruned / infeasible / failed / running."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "infeasible" if trial.user_attrs.get("broke") else "pruned"
    return "running" if trial.state == TrialState.RUNNING else "failed"


def record(trial: FrozenTrial) -> dict[str, Any]:
    """One trials.json entry."""
    attrs = trial.user_attrs
    entry: dict[str, Any] = {"number": trial.number, "state": status(trial)}
    entry.update({k: attrs.get(k) for k in FIELDS})
    entry["run_dir"] = attrs.get("run_dir")
    entry["recipe"] = attrs.get("recipe")
    if attrs.get("broke"):
        entry["broke"] = attrs["broke"]
    if attrs.get("error"):
        entry["error"] = attrs["error"]
    return entry


def _best(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [e for e in entries if e["state"] == "complete" and e["accuracy"] is not None]
    if not done:
        return None
    top = max(done, key=lambda e: (e["accuracy"], -e["latency_ms"], -e["size_bytes"]))
    keys = ("number", "run_dir", "model", "kwargs", "params", "size_bytes", "latency_ms")
    return {**{k: top[k] for k in keys}, "accuracy": top["accuracy"]}


def write_reports(study: optuna.Study, out: Path, definition: dict[str, Any]) -> dict[str, Any]:
    """Write trials.json and summary.json; return the summary."""
    trials = study.get_trials(deepcopy=False)
    entries = [record(t) for t in trials]
    front = sorted(t.number for t in study.best_trials)
    summary = {
        "study": study.study_name,
        "trials": len(entries),
        "states": {s: sum(e["state"] == s for e in entries) for s in _STATES},
        "best": _best(entries),
        "pareto_front": [e for e in entries if e["number"] in front],
        "definition": definition,
    }
    write_json(out / TRIALS, entries)
    write_json(out / SUMMARY, summary)
    return summary


_STATES = ("complete", "pruned", "infeasible", "failed", "running")


def plot_pareto(entries: list[dict[str, Any]], front: list[int], path: Path) -> None:
    """Accuracy against latency for every measured trial, size as marker area, front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sized = [e for e in entries if e["latency_ms"] is not None]
    biggest = max([e["size_bytes"] for e in sized] or [1])
    for state, color in (("complete", "tab:blue"), ("pruned", "tab:orange")):
        pts = [e for e in sized if e["state"] == state and e["accuracy"] is not None]
        ax.scatter(
            [e["latency_ms"] for e in pts],
            [100 * e["accuracy"] for e in pts],
            s=[20 + 300 * e["size_bytes"] / biggest for e in pts],
            alpha=0.6,
            color=color,
            label=state,
        )
    bad = [e for e in sized if e["state"] == "infeasible"]
    ax.scatter([e["latency_ms"] for e in bad], [0] * len(bad), marker="x", color="tab:red",
               label="infeasible (no accuracy)")  # fmt: skip
    on = sorted((e for e in entries if e["number"] in front), key=lambda e: e["latency_ms"])
    ax.plot([e["latency_ms"] for e in on], [100 * e["accuracy"] for e in on], "k--", lw=1,
            marker="*", ms=12, label="Pareto front")  # fmt: skip
    ax.set_xlabel("latency, batch 1 (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("search: accuracy vs latency (marker area: file size)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _model_text(entry: dict[str, Any]) -> str:
    width = (entry.get("kwargs") or {}).get("width_mult")
    recipe = entry.get("recipe") or {}
    return (
        f"{entry['model']}" + (f" w{width:g}" if width is not None else "")
        + (f" {recipe['img_size']}px" if recipe.get("img_size") else "")
    )  # fmt: skip


def progress_line(entry: dict[str, Any], total: int) -> str:
    """``trial 2 (3 of 20) complete  lenet5 32px  61,706 params  247 KB  0.06 ms  acc 93.1%``

    The trial's number is Optuna's (from 0), the one trials.json, the front table and the run
    folder ``trials/0002`` use.
    """
    head = f"trial {entry['number']} ({entry['number'] + 1} of {total})"
    parts = [f"{head} {entry['state']:<10}", _model_text(entry)]
    if entry["params"] is not None:
        parts.append(f"{entry['params']:,} params  {entry['size_bytes'] / 1000:,.1f} KB")
    if entry["latency_ms"] is not None:
        parts.append(f"{entry['latency_ms']:.3f} ms")
    if entry["accuracy"] is not None:
        parts.append(f"acc {100 * entry['accuracy']:.2f}%")
    if entry.get("broke"):
        parts.append(f"({entry['broke']})")
    if entry.get("error"):
        parts.append(f"({entry['error']})")
    if entry["seconds"] is not None:
        parts.append(f"{entry['seconds']:.1f} s")
    return "  ".join(parts)


def front_table(summary: dict[str, Any]) -> str:
    """The Pareto front as a fixed-width table, most accurate first."""
    header = ("trial", "model", "params", "size KB", "latency ms", "accuracy", "run")
    rows = [header]
    for e in sorted(summary["pareto_front"], key=lambda e: -e["accuracy"]):
        rows.append(
            (
                str(e["number"]),
                _model_text(e),
                f"{e['params']:,}",
                f"{e['size_bytes'] / 1000:,.1f}",
                f"{e['latency_ms']:.3f}",
                f"{100 * e['accuracy']:.2f}%",
                str(e["run_dir"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
