"""--log tensorboard / --log mlflow: what a run writes, read back with TensorBoard's own
EventAccumulator and MLflow's own client, equals the run's metrics.jsonl and summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pocketvision.cli import main
from pocketvision.train import TrainConfig, train

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A 3-epoch digits run logged to both trackers; MLflow's store left at its default."""
    root = tmp_path_factory.mktemp("tracked")
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the default MLflow store is ./mlruns
        summary = train(
            TrainConfig(
                data="digits", model="lenet5", epochs=3, batch_size=64, train_limit=400,
                out=str(out), quiet=True, threads=1, checkpoint_seconds=1e9,
                log="tensorboard,mlflow",
            )
        )  # fmt: skip
    return out, root / "mlruns", summary


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_events_hold_metrics_config_card_and_confusion_matrix(
    tracked: tuple[Path, Path, dict],
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, summary = tracked
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    history = _history(out)
    for tag, key in (("val/accuracy", "val_accuracy"), ("train/loss", "train_loss"), ("lr", "lr")):
        logged = [(s.step, s.value) for s in events.Scalars(tag)]
        assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in history]
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"model": "lenet5"' in config and '"log": "tensorboard,mlflow"' in config
    card = events.Tensors("model_card/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"test accuracy: {summary['test_accuracy']}" in card
    assert f"macro recall: {summary['per_class_recall']['macro_recall']}" in card
    image = events.Images("confusion_matrix")[0]
    assert image.width >= 200 and image.height >= 200
    assert image.encoded_image_string.startswith(b"\x89PNG")


def test_mlflow_run_holds_metrics_params_and_artifacts(tracked: tuple[Path, Path, dict]) -> None:
    from mlflow.tracking import MlflowClient

    out, store, summary = tracked
    assert store.is_dir()
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("pocketvision")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["run"]
    run = runs[0]
    assert run.info.run_id == json.loads((out / "mlflow_run.json").read_text())["run_id"]
    assert run.info.status == "FINISHED"
    history = _history(out)
    logged = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in logged] == [(r["epoch"], r["val_accuracy"]) for r in history]
    assert run.data.params["model"] == "lenet5" and run.data.params["epochs"] == "3"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"config.json", "model_card.md", "summary.json", "confusion_matrix.png"}
    local = Path(client.download_artifacts(run.info.run_id, "summary.json", str(out.parent)))
    assert json.loads(local.read_text())["test_accuracy"] == summary["test_accuracy"]


def test_any_tracking_uri_and_a_bad_log_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "elsewhere").as_uri()
    argv = ["train", "--data", "digits", "--model", "lenet5", "--epochs", "1",
            "--train-limit", "200", "--quiet", "--threads", "1", "--out", str(tmp_path / "r"),
            "--log", "mlflow", "--tracking-uri", store]  # fmt: skip
    assert main(argv) == 0
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("pocketvision").experiment_id])
    assert len(runs) == 1 and "val_accuracy" in runs[0].data.metrics
    assert main([*argv[:-4], "--log", "wandb"]) == 2
    assert "--log wandb: use tensorboard or mlflow" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_run_resumed_continues_its_mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 inside epoch 2, then --resume: one MLflow run, FINISHED, each epoch's metrics
    at its step with the values metrics.jsonl holds, the params logged once."""
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient
    from train_support import kill_inside_second_epoch

    out, store = tmp_path / "run", (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    argv = [sys.executable, "-m", "pocketvision", "train", "--data", "digits", "--model", "lenet5",
            "--epochs", "3", "--batch-size", "16", "--train-limit", "480", "--threads", "1",
            "--quiet", "--checkpoint-steps", "5", "--checkpoint-seconds", "1e9", "--out", str(out),
            "--log", "mlflow", "--tracking-uri", store]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_inside_second_epoch(proc, out)
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("pocketvision").experiment_id
    (killed,) = client.search_runs([experiment])
    assert killed.info.status == "RUNNING"  # nobody told MLflow: the process died
    resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    runs = client.search_runs([experiment])
    assert [r.info.run_id for r in runs] == [killed.info.run_id]  # the same run, continued
    assert runs[0].info.status == "FINISHED"
    history = _history(out)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    logged = client.get_metric_history(killed.info.run_id, "val_accuracy")
    by_step = {m.step: m.value for m in sorted(logged, key=lambda m: m.timestamp)}
    assert by_step == {r["epoch"]: pytest.approx(r["val_accuracy"]) for r in history}
    assert runs[0].data.params["epochs"] == "3" and runs[0].data.params["log"] == "mlflow"
