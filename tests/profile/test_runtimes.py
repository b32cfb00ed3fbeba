"""Every installed runtime converts a real model, computes what eager PyTorch computes, and is
timed consistently; runtimes that cannot run here are skipped with a reason."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketvision import create_model
from pocketvision.profile import runtimes
from pocketvision.profile.profiler import OutputMismatchError, check_output, profile
from pocketvision.timing import time_calls

CPU_RUNTIMES = ("compile", "onnxruntime", "litert", "litert_loop", "executorch")
INSTALLED = [name for name in CPU_RUNTIMES if not runtimes.RUNTIMES[name].missing()]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("lenet5", in_chans=1).eval()
    return model


@pytest.mark.slow
def test_every_installed_runtime_matches_eager_and_times_consistently() -> None:
    # One conversion per runtime (the expensive part); batch 3 also checks that LiteRT's
    # batch-1 file resized to 3 and ExecuTorch's static-shape program at 3 compute the same.
    names = ("eager", *CPU_RUNTIMES)
    result = profile("lenet5", batches=(3,), threads=1, runtime_names=names, runs=30)
    by_name = {r.runtime: r for r in result.runtimes}
    assert sorted(by_name) == sorted(names)
    with torch.no_grad():
        scale = float(_model()(torch.randn(3, 1, 32, 32)).abs().max())
    for name in names:
        r = by_name[name]
        if runtimes.RUNTIMES[name].missing():
            assert r.status == "skipped" and "not installed" in r.reason
            continue
        assert r.status == "ok", f"{name}: {r.reason}"
        # profile() compared this runtime's output with eager on the timed batch
        assert r.max_abs_diff is not None and r.max_abs_diff <= 1e-5 * scale
        assert r.median_ms is not None and r.p90_ms is not None and r.gflops is not None
        assert 0 < r.median_ms <= r.p90_ms
        # median_ms is rounded to 0.1 us: ~0.3 % of LeNet's 0.04 ms in ONNX Runtime
        assert r.images_per_s == pytest.approx(3 / (r.median_ms / 1e3), rel=1e-2)
        assert r.gflops == pytest.approx(2 * result.macs * 3 / r.median_ms / 1e6, rel=1e-2)
        assert r.peak_fraction == pytest.approx(r.gflops / result.peak_gflops, rel=1e-2)
    assert by_name["eager"].max_abs_diff == 0.0


def test_prepared_call_returns_the_model_output(tmp_path: Path) -> None:
    model = _model()
    x = torch.randn(2, 1, 32, 32)
    call = runtimes.RUNTIMES["eager"].prepare(model, x, tmp_path, 1)
    with torch.no_grad():
        np.testing.assert_array_equal(runtimes.output_array(call()), model(x).numpy())


def test_gpu_runtimes_skip_with_a_reason_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the GPU runtimes run instead")
    for name in runtimes.GPU_RUNTIMES:
        reason = runtimes.RUNTIMES[name].missing()
        assert reason and ("CUDA" in reason or "not installed" in reason)
    result = profile("lenet5", batches=(1,), runtime_names=runtimes.GPU_RUNTIMES, runs=1)
    assert [r.status for r in result.runtimes] == ["skipped"] * len(runtimes.GPU_RUNTIMES)
    assert all(r.reason for r in result.runtimes)


def test_check_output_catches_a_runtime_that_computes_something_else() -> None:
    model = _model()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        right = model(x)
    assert check_output(model, x, right.numpy()) == 0.0
    wrong = right.clone()
    wrong[1, 7] += 1e-2 * right.abs().max()  # one logit of the second image off by 1% of scale
    with pytest.raises(OutputMismatchError, match="differs from eager"):
        check_output(model, x, wrong)
    with pytest.raises(OutputMismatchError, match="shape"):
        check_output(model, x, right[:1])  # a graph with batch 1 baked in


def test_time_budget_stops_after_the_minimum_runs() -> None:
    def slow() -> None:
        time.sleep(0.01)

    capped = time_calls(slow, runs=30, warmup=5, budget_s=0.02, min_runs=5)
    assert capped.runs == 5 and capped.median_ms >= 10
    assert time_calls(slow, runs=12, warmup=1).runs == 12  # no budget: every run


@pytest.mark.slow
@pytest.mark.skipif(bool(runtimes.RUNTIMES["litert"].missing()), reason="LiteRT not installed")
def test_litert_loop_runs_a_graph_with_the_batch_baked_in() -> None:
    # ShuffleNet's channel shuffle reshapes with the batch of the traced example: the batch-1
    # file cannot be resized to 2, but invoked once per image it computes the batch.
    result = profile(
        "shufflenet_v1_g3_050",
        input_size=28,
        in_chans=1,
        num_classes=10,
        model_kwargs={"small_input": True},
        batches=(2,),
        threads=1,
        runtime_names=("litert", "litert_loop"),
        runs=30,
    )
    litert, loop = result.runtimes
    assert litert.status == "failed", litert
    assert loop.status == "ok" and loop.max_abs_diff is not None and loop.max_abs_diff < 1e-4


@pytest.mark.parametrize("before", [True, False])
def test_strict_fp32_restores_the_tf32_flags(before: bool) -> None:
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = before
    torch.backends.cuda.matmul.allow_tf32 = before
    try:
        with runtimes.strict_fp32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 is before
        assert torch.backends.cuda.matmul.allow_tf32 is before
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_runtimes_leave_the_tf32_flags_as_they_were(tmp_path: Path) -> None:
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    call = runtimes.RUNTIMES["eager_cuda"].prepare(_model(), torch.randn(2, 1, 32, 32), tmp_path, 1)
    call()
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags
