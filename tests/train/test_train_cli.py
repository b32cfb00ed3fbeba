"""The train CLI: flags map 1:1 onto TrainConfig, and bad input is one line with exit code 2."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from pocketvision.cli import build_parser, main
from pocketvision.train import TrainConfig
from pocketvision.train.commands import _field_comments, config_from_args

QUICK = ["--quiet", "--threads", "1", "--checkpoint-seconds", "1e9"]


def test_every_config_field_is_a_documented_flag() -> None:
    helps = _field_comments()
    assert set(helps) == {f.name for f in fields(TrainConfig)}  # every field commented
    args = build_parser().parse_args(
        ["train", "--data", "x", "--lr", "0.3", "--ema", "--no-hflip", "--img-size", "40"]
    )
    config = config_from_args(args)
    assert (config.data, config.lr, config.ema, config.hflip, config.img_size) == (
        "x",
        0.3,
        True,
        False,
        40,
    )
    assert config.epochs == TrainConfig().epochs  # flags not given keep the defaults
    parser = argparse.ArgumentParser()
    from pocketvision.train.commands import add_train_arguments

    add_train_arguments(parser)
    dests = {a.dest for a in parser._actions} - {"help"}
    assert dests == {f.name for f in fields(TrainConfig)}


def test_help_that_names_choices_names_them_all() -> None:
    # a help text listing some presets of a choice would hide the rest from --help readers
    from pocketvision.train.commands import CHOICES

    for name, text in _field_comments().items():
        choices = CHOICES.get(name, ())
        named = [c for c in choices if re.search(rf"\b{c}\b", text)]
        assert not named or len(named) == len(choices), (name, text)


def test_resume_reports_settings_this_version_does_not_know(tmp_path: Path) -> None:
    saved = {**TrainConfig().to_dict(), "from_the_future": 1, "another": "x"}
    assert TrainConfig.unknown_keys(saved) == ["another", "from_the_future"]
    assert TrainConfig.from_dict(saved) == TrainConfig()


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["train", *argv, *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pocketvision: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert (
        main(
            [
                "train",
                "--data",
                "digits",
                "--model",
                "lenet5",
                "--epochs",
                "1",
                "--train-limit",
                "100",
                "--out",
                str(out),
                *QUICK,
            ]
        )
        == 0
    )
    return out


def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lenet_run: Path
) -> None:
    assert "unknown model 'mobilenet_v9'" in _error(
        capsys, "--data", "digits", "--model", "mobilenet_v9"
    )
    assert "no such file or folder" in _error(capsys, "--data", str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    assert "empty folder" in _error(capsys, "--data", str(tmp_path / "empty"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    for bad in ("bad.safetensors", "bad.pt"):
        msg = _error(capsys, "--data", "digits", "--model", "lenet5", "--init", str(tmp_path / bad))
        assert "corrupt" in msg and bad in msg
    msg = _error(
        capsys, "--data", "digits", "--model", "mobilenet_v1_025", "--init", str(lenet_run)
    )
    assert "does not fit mobilenet_v1_025" in msg
    # a run folder that is already there is never overwritten silently
    assert "--resume" in _error(
        capsys, "--data", "digits", "--model", "lenet5", "--out", str(lenet_run)
    )
    assert "--epochs must be >= 1" in _error(capsys, "--epochs", "0")
    assert "--resume needs --out" in _error(capsys, "--resume")


def test_corrupt_last_checkpoint_on_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lenet_run: Path
) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(lenet_run, run)
    (run / "checkpoints" / "last.pt").write_bytes(b"\x80\x04garbage")
    assert "corrupt" in _error(capsys, "--out", str(run), "--resume")


def test_plain_torch_state_dict_init(tmp_path: Path, lenet_run: Path) -> None:
    """--init accepts a plain state dict saved by torch.save, loaded with weights_only=True."""
    from safetensors.torch import load_file

    state = load_file(str(lenet_run / "checkpoints" / "best.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "plain.pt")
    out = tmp_path / "ft"
    assert (
        main(
            [
                "train",
                "--data",
                "digits",
                "--model",
                "lenet5",
                "--epochs",
                "1",
                "--train-limit",
                "100",
                "--lr",
                "1e-12",
                "--init",
                str(tmp_path / "plain.pt"),
                "--out",
                str(out),
                *QUICK,
            ]
        )
        == 0
    )
    tuned = load_file(str(out / "checkpoints" / "best.safetensors"))
    # same labels (digits -> digits) would keep the head, but a bare .pt has no labels.txt
    for name, tensor in tuned.items():
        same = torch.allclose(tensor, state[name], atol=1e-6)
        assert same != name.startswith("classifier."), name
