"""Profiler and compare: real measurements on small models, schema, and failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pocketvision import create_model
from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.profile import runtimes
from pocketvision.profile.compare import compare, pareto_front
from pocketvision.profile.measure import activation_peak_bytes, file_sizes
from pocketvision.profile.profiler import profile
from pocketvision.timing import time_calls


def test_activation_peak_is_the_largest_live_pair() -> None:
    # LeNet-5 at 1x32x32: C1's output (6x28x28 fp32) is alive while S2's (6x14x14) is made.
    model = create_model("lenet5", in_chans=1).eval()
    assert (
        activation_peak_bytes(model, torch.randn(1, 1, 32, 32)) == (6 * 28 * 28 + 6 * 14 * 14) * 4
    )


def test_file_sizes_scale_with_precision() -> None:
    model = create_model("lenet5", in_chans=1)
    sizes = file_sizes(model)
    raw = sum(t.numel() for t in model.state_dict().values()) * 4
    assert raw <= sizes["fp32"] < raw + 8192
    assert sizes["fp16"] == pytest.approx(sizes["fp32"] / 2, rel=0.05)
    assert sizes["int8"] <= 0.3 * sizes["fp32"]


def test_time_calls_orders_statistics() -> None:
    timing = time_calls(lambda: sum(range(1000)), runs=31)
    assert timing.runs == 31 and 0 < timing.min_ms <= timing.median_ms <= timing.p90_ms


def test_profile_eager_numbers_are_consistent() -> None:
    result = profile("lenet5", batches=(1, 4), runtime_names=("eager",), threads=1, runs=30)
    assert result.params == 61_706  # the paper's 10 classes, as model_info records
    assert result.input_size == [1, 32, 32]
    assert [r.batch for r in result.runtimes] == [1, 4]
    for r in result.runtimes:
        assert r.status == "ok" and r.median_ms is not None and r.gflops is not None
        assert r.images_per_s == pytest.approx(r.batch / (r.median_ms / 1e3), rel=1e-3)
        assert r.peak_fraction == pytest.approx(r.gflops / result.peak_gflops, rel=1e-2)
        assert r.p90_ms is not None and r.p90_ms >= r.median_ms


def test_unknown_runtime_lists_known_ones() -> None:
    with pytest.raises(PocketvisionError, match="known: eager, compile, onnxruntime"):
        profile("lenet5", runtime_names=("tensorflow",))


def test_missing_runtime_is_skipped_and_failing_one_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> runtimes.Call:
        raise RuntimeError("converter cannot handle aten.foo\nlong detail")

    monkeypatch.setitem(
        runtimes.RUNTIMES, "absent", runtimes.RuntimeSpec("absent", ("no_such_module_xyz",), broken)
    )
    monkeypatch.setitem(
        runtimes.RUNTIMES, "broken", runtimes.RuntimeSpec("broken", ("torch",), broken)
    )
    result = profile("lenet5", batches=(1,), runtime_names=("absent", "broken", "eager"), runs=30)
    status = {r.runtime: r for r in result.runtimes}
    assert status["absent"].status == "skipped" and "no_such_module_xyz" in status["absent"].reason
    assert status["broken"].status == "failed"
    assert status["broken"].reason == "RuntimeError: converter cannot handle aten.foo"
    assert status["eager"].status == "ok"


def test_pareto_front() -> None:
    # (latency, accuracy): the third is slower and worse than the first
    assert pareto_front([(1.0, 0.7), (2.0, 0.8), (3.0, 0.6), (0.5, 0.5)]) == [
        True,
        True,
        False,
        True,
    ]


def test_profile_cli_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["profile", "lenet5", "--runtimes", "eager", "--batch", "1", "--json", "--threads", "1"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {"model", "params", "macs", "input_size", "peak_gflops", "runtimes"} <= set(data)
    run = data["runtimes"][0]
    keys = {"runtime", "batch", "median_ms", "p90_ms", "images_per_s", "gflops", "peak_fraction"}
    assert keys | {"status"} <= set(run) and run["status"] == "ok"
    assert data["macs"] == 416_520


def test_compare_writes_tables_and_plots(tmp_path: Path) -> None:
    rows = compare(["lenet5", "lenet5"], runtime_names=("eager",), out=tmp_path, runs=30, threads=1)
    assert len(rows) == 2
    for name in ("compare.md", "compare.html", "compare.json", "latency_vs_macs.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "lenet5" in (tmp_path / "compare.md").read_text()
    assert json.loads((tmp_path / "compare.json").read_text())[0]["macs"] == rows[0]["macs"]


def test_gpu_runtimes_are_measured_against_the_gpu_peak() -> None:
    result = profile("lenet5", batches=(1,), runtime_names=("eager_cuda", "eager"), runs=30)
    gpu, cpu = result.runtimes
    assert cpu.peak_fraction == pytest.approx(cpu.gflops / result.peak_gflops, rel=1e-2)
    if not torch.cuda.is_available():
        assert gpu.status == "skipped" and "CUDA" in gpu.reason
        assert result.gpu_peak_gflops is None
    else:
        assert result.gpu_peak_gflops is not None and result.gpu_peak_gflops > result.peak_gflops
        assert gpu.peak_fraction == pytest.approx(gpu.gflops / result.gpu_peak_gflops, rel=1e-2)
