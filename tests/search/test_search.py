"""pocketvision search: real searches on the offline digits set (LeNet-5, a MobileNetV2 that
--max-params rules out before any trial, a VGG-11 over the latency budget), ONNX Runtime
latency, Optuna journal files and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.rundir import is_run_dir, read_summary
from pocketvision.search import search
from pocketvision.search.study import open_storage

SRC = Path(__file__).resolve().parents[2] / "src"
# the two candidates: LeNet-5 (61,706 params at 10 classes) fits, MobileNetV2 (>= 177,386 at
# its narrowest searched width, 0.175) not
QUICK = {
    "models": "lenet5,mobilenet_v2_035",
    "max_params": 100_000,
    "epochs": 1,
    "batch_size": 32,
    "train_limit": 400,
    "seed": 0,
    "log": None,
}
CLI_QUICK = [
    "--data", "digits", "--models", "lenet5,mobilenet_v2_035", "--max-params", "100000",
    "--epochs", "1", "--batch-size", "32", "--train-limit", "400",
]  # fmt: skip


def _onnx_bytes(run_dir: Path, folder: Path) -> int:
    import torch

    from pocketvision.export.onnx_export import to_onnx
    from pocketvision.rundir import load_run

    run = load_run(run_dir)
    x = torch.zeros(1, *run.preprocessing.input_size)
    return to_onnx(run.model.eval(), x, folder / "model.onnx").stat().st_size


def _trials(out: Path) -> list[dict]:
    return json.loads((out / "trials.json").read_text())


def _study(out: Path, name: str = "search") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, out))


@pytest.mark.slow
def test_a_search_respects_the_budget_trains_feasible_trials_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "s"
    lines: list[str] = []
    result = search("digits", trials=3, out=out, **{**QUICK, "log": lines.append})  # type: ignore[arg-type]
    trials = _trials(out)
    # MobileNetV2 breaks --max-params even at its narrowest: left out before any trial, so
    # every one of the 3 trials asked for is a trained model
    assert "mobilenet_v2_035: over the budget even at its narrowest; left out" in lines
    assert [t["state"] for t in trials] == ["complete"] * 3
    # the console names each trial by the number trials.json and its run folder use
    assert any(line.startswith("trial 1 (2 of 3) complete") for line in lines), lines
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0002"]

    for t in trials:  # each feasible trial is a normal run folder, its numbers its own
        run = read_summary(t["run_dir"])
        assert is_run_dir(t["run_dir"]) and run is not None
        assert t["model"] == "lenet5" and t["params"] == run["params"] == 61_706
        # the size is the real deploy file's: the run's model written as ONNX (fp32) has
        # exactly as many bytes (more than its 4-byte weights: the graph is in it too)
        assert t["converted"] and t["size_bytes"] > 4 * 61_706
        assert t["size_bytes"] == _onnx_bytes(Path(t["run_dir"]), tmp_path / f"{t['number']}")
        assert t["accuracy"] == run["best_val_accuracy"]
        assert 0 < t["latency_ms"] < 50
    best = max(trials, key=lambda t: t["accuracy"])
    assert result.best is not None and result.best["run_dir"] == best["run_dir"]
    assert {e["number"] for e in result.summary["pareto_front"]} <= {0, 1, 2}
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"

    # the same command with --trials 4 adds one trial to the same study
    search("digits", trials=4, out=out, **QUICK)  # type: ignore[arg-type]
    assert len(_study(out).trials) == 4 and [t["number"] for t in _trials(out)] == [0, 1, 2, 3]
    assert _trials(out)[:3] == trials

    # another search definition under the same study name is refused and changes nothing
    with pytest.raises(
        PocketvisionError, match=r"exists with another search .*epochs was 1, now 2"
    ):
        search("digits", trials=5, out=out, **{**QUICK, "epochs": 2})  # type: ignore[arg-type]
    assert len(_study(out).trials) == 4


def test_widths_are_cut_to_what_the_budget_allows() -> None:
    from pocketvision.profile.counting import count_params
    from pocketvision.search.budget import Budget, build, fit_widths
    from pocketvision.search.space import SearchSpace, TrialChoice, candidates

    space = SearchSpace(candidates("mobilenet_v1_025,lenet5"), (28,), (0.01, 0.4))
    fitted, notes = fit_widths(space, Budget(max_params=400_000), 10, 1)
    (v1,) = [c for c in fitted.candidates if c.name == "mobilenet_v1_025"]
    # searched from half its narrowest registered width (0.25)
    assert v1.width is not None and v1.width[0] == 0.125 and 0.25 < v1.width[1] < 1.0

    def params(width: float) -> int:
        return count_params(build(TrialChoice(v1.name, width, 28, 0, "", 0), 10, 1))

    # the widest width kept fits, the next step on the sampled grid does not
    assert params(v1.width[1]) <= 400_000 < params(round(v1.width[1] + 0.05, 3))
    assert any(n.startswith("mobilenet_v1_025: widths 0.125-") for n in notes)
    # a model over the budget at any width leaves the space; no budget, no change
    assert [c.name for c in fit_widths(space, Budget(max_params=40_000), 10, 1)[0].candidates] == []
    assert fit_widths(space, Budget(max_latency_ms=1.0), 10, 1) == (space, [])


def test_every_family_runs_at_the_narrowest_searched_width() -> None:
    import torch

    from pocketvision.search.budget import build
    from pocketvision.search.space import TrialChoice, candidates

    narrowest = [c for c in candidates("*") if c.width is not None]
    assert len(narrowest) >= 10  # MobileNet v1-v3, EfficientNet-Lite, ShuffleNet, ...
    for c in narrowest:
        assert c.width is not None
        model = build(TrialChoice(c.name, c.width[0], 28, 0, "", 0), 10, 1).eval()
        with torch.no_grad():
            logits = model(torch.randn(2, 1, 28, 28))
        assert logits.shape == (2, 10) and torch.isfinite(logits).all(), c


@pytest.mark.slow
def test_a_model_over_the_latency_budget_is_infeasible_and_never_trained(tmp_path: Path) -> None:
    # latency is measured per trial on the real runtime: VGG-11 at the digits' input needs at
    # least 6.6 ms at twice this machine's matmul peak, so its floor lets it through to be
    # timed, and it cannot answer in 10 ms on one thread; LeNet-5 (0.4 M MACs) always does
    out = tmp_path / "s"
    quick = {**QUICK, "models": "lenet5,vgg11", "max_params": None, "max_latency_ms": 10.0}
    search("digits", trials=4, out=out, **quick)  # type: ignore[arg-type]
    trials = _trials(out)
    slow = [t for t in trials if t["model"] == "vgg11"]
    assert slow and all(t["state"] == "infeasible" for t in slow)
    for t in slow:  # measured, refused, never trained
        assert t["broke"].startswith("latency ") and "> 10.0 ms on onnxruntime" in t["broke"]
        assert t["latency_ms"] > 10.0 and t["run_dir"] is None and t["seconds"] < 30
    assert all(t["state"] == "complete" for t in trials if t["model"] == "lenet5")
    # a model timed once is not converted and timed again: every later trial of the same
    # model and input size carries the first one's measurement (two timings never agree to 4
    # decimals), however it went
    first: dict[tuple[str, int], float] = {}
    for t in trials:
        key = (t["model"], t["recipe"]["img_size"])
        assert first.setdefault(key, t["latency_ms"]) == t["latency_ms"]
    assert len(first) < len(trials)


def test_a_model_whose_macs_cannot_meet_the_latency_budget_is_refused_without_converting() -> None:
    import time

    import torch

    from pocketvision import create_model
    from pocketvision.search.budget import Budget, convert_and_time, latency_floor_ms, measure

    torch.manual_seed(0)
    vgg = create_model("vgg11", num_classes=10, in_chans=1, small_input=True).eval()
    started = time.perf_counter()
    cost = measure(vgg, (1, 28, 28), Budget(max_latency_ms=0.05))
    assert cost.broke.startswith("latency at least ") and "> 0.05 ms on any runtime" in cost.broke
    assert cost.latency_ms is None  # never converted, never timed
    assert time.perf_counter() - started < 10  # counting, not a conversion (the peak once)
    # the floor is a floor: below what the real runtime measures, for a dense and a depthwise
    # model, at two thread counts
    for name in ("vgg11", "mobilenet_v1_025"):
        model = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
        for threads in (1, 2):
            budget = Budget(threads=threads)
            floor = latency_floor_ms(model, (1, 28, 28), threads)
            latency = convert_and_time(model, (1, 28, 28), budget)[1]
            assert latency is not None and 0 < floor < latency, (name, threads)


def test_the_size_budget_is_the_deploy_files_and_wider_widths_are_not_converted() -> None:
    from pocketvision.search import budget as b
    from pocketvision.search.space import TrialChoice

    limit = b.Budget(max_size_kb=250, runtime="litert", precision="int8")

    def cost(width: float) -> b.Cost:
        choice = TrialChoice("mobilenet_v1_025", width, 28, 0, "", 0)
        model = b.build(choice, 10, 1)
        return b.measure(model, (1, 28, 28), limit, key=b.timing_key(choice, 10, 1, limit))

    narrow = cost(0.25)
    # its int8 weights fit (215 KB), the .tflite file does not: per-channel scales and zero
    # points for every output channel, and the graph
    assert narrow.converted and narrow.params < 250_000 < narrow.size_bytes
    assert narrow.broke.endswith(" KB > 250 KB (the int8 tflite file)"), narrow.broke
    assert narrow.latency_ms is None  # over the size budget: not worth timing
    started = time.perf_counter()
    wider = cost(0.27)  # 248,732 int8 weights: inside the bound
    assert not wider.converted and wider.broke.startswith("size over 250 KB: width 0.25 ")
    assert time.perf_counter() - started < 3  # a build and a count, no conversion


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "s")]
    err = _cli_error(capsys, "--data", "digits", "--models", "nosuchnet*", *out)
    assert "--models 'nosuchnet*' matches no registered model" in err
    err = _cli_error(capsys, "--data", "digits", "--runtime", "tensorrt", *out)
    assert "--runtime 'tensorrt': choose from onnxruntime, litert, executorch" in err
    # a budget no model meets: the message gives the smallest model's own number
    err = _cli_error(capsys, *CLI_QUICK[:4], "--max-params", "1000", *out)
    assert "the smallest, lenet5 at 32px, has params 61,706 > 1,000" in err
    err = _cli_error(capsys, *CLI_QUICK[:4], "--max-size-kb", "100", "--precision", "fp16", *out)
    assert "has size at least 123.4 KB (its weights at fp16) > 100.0 KB" in err
    url = f"postgresql+psycopg://me:secret@127.0.0.1:{_free_port()}/nothing"
    err = _cli_error(capsys, *CLI_QUICK[:4], "--storage", url, *out)
    assert "cannot open (OperationalError" in err and "secret" not in err and "me:***@" in err
    assert not (tmp_path / "s" / "trials.json").exists()


def _cli(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pocketvision", "search", *CLI_QUICK, "--out", str(out), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_killed_search_loses_only_its_running_trial(tmp_path: Path) -> None:
    out = tmp_path / "s"
    cmd = _cli(out, "--trials", "3", "--models", "lenet5", "--epochs", "3")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    victim = None
    deadline = time.monotonic() + 240
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            study = _study(out)
        except KeyError:  # the journal exists a moment before the study is in it
            continue
        done = [t for t in study.trials if t.state.is_finished()]
        training = [
            t for t in study.trials if "run_dir" in t.user_attrs and not t.state.is_finished()
        ]
        if done and training:
            victim = training[0].number
    assert victim is not None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _study(out).trials[victim].state == optuna.trial.TrialState.RUNNING

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True)
    assert "marked 1 trial(s) of a stopped search as failed" in rerun.stdout
    states = [t.state.name for t in _study(out).trials]
    assert states[victim] == "FAIL"
    assert states.count("COMPLETE") + states.count("PRUNED") == 3 and states.count("FAIL") == 1


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 in a temporary folder, for one test."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL not installed ({PG_BIN}: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="pv-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    try:
        subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust"], check=True, capture_output=True)  # fmt: skip
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                        "-l", str(folder / "log"), "start"], check=True, capture_output=True)  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_in_postgresql(tmp_path: Path, postgres: str) -> None:
    args = ("--trials", "4", "--models", "lenet5", "--storage", postgres, "--study", "shared")
    workers = [
        subprocess.Popen(
            _cli(tmp_path / f"w{i}", *args),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for w in workers:
        assert w.wait(timeout=400) == 0, w.stderr.read().decode() if w.stderr else ""
    study = optuna.load_study(study_name="shared", storage=postgres)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # one study: distinct trial numbers from both processes, --trials 4 in total (a worker
    # asking at the same moment as the other's last trial may add one)
    assert 4 <= len(finished) <= 5
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert len({t.user_attrs["pid"] for t in finished}) == 2
    assert {t.user_attrs["pid"] for t in finished} == {w.pid for w in workers}
