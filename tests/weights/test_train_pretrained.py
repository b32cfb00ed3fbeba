"""`pocketvision train --pretrained`: published weights in a source's own file start a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from weights_support import source_state

from pocketvision.cli import main
from pocketvision.train.config import TrainConfig, resolve
from pocketvision.weights import find_checkpoint
from pocketvision.weights.download import sha256_of


@pytest.mark.slow
def test_a_timm_file_starts_a_frozen_run_and_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = source_state("timm.mobilenetv2", "mobilenetv2_050")
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--model", "mobilenet_v2_050", "--pretrained", str(path),
            "--freeze-backbone", "--img-size", "32", "--epochs", "1", "--train-limit", "200",
            "--batch-size", "32", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0

    record = json.loads((out / "config.json").read_text())
    assert record["pretrained"] == str(path)
    weights = record["pretrained_weights"]
    assert weights["sha256"] == sha256_of(path) and weights["tag"] == "file"
    assert weights["source"] == "timm"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pretrained"]["sha256"] == weights["sha256"]
    from pocketvision.train.tracking import model_card

    assert f"started from timm weights file (sha256 {weights['sha256'][:16]}" in model_card(summary)
    # the frozen backbone is the file's, tensor for tensor; grayscale digits: RGB filters summed
    best = load_file(str(out / "checkpoints" / "best.safetensors"))
    assert torch.equal(best["conv_head.0.weight"], state["conv_head.weight"])
    assert torch.allclose(best["stem.0.weight"], state["conv_stem.weight"].sum(1, keepdim=True))
    _every_command_works_on(out, tmp_path, capsys)


def _every_command_works_on(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """evaluate, predict, export, profile and serve take a pretrained run like any other."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from pocketvision.web.served import load_served

    digit = (load_digits().images[0] * 255 / 16).astype(np.uint8)
    image = tmp_path / "digit.png"
    Image.fromarray(digit).save(image)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0
    assert main(["predict", str(run), str(image), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert len(row["predictions"]) == 3
    assert main(["export", str(run), "--format", "onnx", "--quantize", "none", "--no-code",
                 "--verify-images", "50"]) == 0  # fmt: skip
    report = json.loads((run / "export" / "export_report.json").read_text())
    assert report[0]["status"] == "ok" and report[0]["top1_agreement"] == 1.0
    capsys.readouterr()
    assert main(["profile", str(run), "--runtimes", "eager", "--runs", "30", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    served = load_served(run)
    assert served.onnx_path is not None and served.onnx_path.is_file()
    answer = served.predict(image.read_bytes(), top_k=2)
    assert answer["predictions"][0]["label"] == row["predictions"][0]["label"]


def test_the_default_checkpoint_sets_size_and_normalisation_defaults() -> None:
    ckpt = find_checkpoint("mobilenet_v2_050", True)
    config = resolve(TrainConfig(data="digits", model="mobilenet_v2_050", pretrained="default"))
    assert ckpt.input_size is not None and config.img_size == ckpt.input_size[1] == 224
    assert config.small_input is False
    # a given --img-size wins (small_input then keeps every weight, only strides change)
    small = resolve(TrainConfig(data="digits", model="mobilenet_v2_050", pretrained="default",
                                img_size=32))  # fmt: skip
    assert small.img_size == 32 and small.small_input is True


def test_pretrained_with_init_or_unknown_tag_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "--data", "digits", "--model", "mobilenet_v2_050", "--out", str(tmp_path)]
    assert main([*base, "--pretrained", "--init", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--pretrained and --init" in err
    assert main([*base, "--pretrained", "NO_SUCH_TAG"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NO_SUCH_TAG" in err
