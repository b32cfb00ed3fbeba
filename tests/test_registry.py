"""The registry's contract: names, errors, None handling, the zoo table."""

from __future__ import annotations

import json

import pytest
import torch

import pocketvision
from pocketvision import create_model, list_models, model_info
from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.layers import make_divisible
from pocketvision.registry import ModelInfo, register_model


def test_unknown_name_lists_closest() -> None:
    with pytest.raises(PocketvisionError, match="lenet5"):
        create_model("lenet")


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="width_mult"):
        create_model("lenet5", width_mult=0)
    with pytest.raises(ValueError, match="in_chans"):
        create_model("lenet5", in_chans=0)
    with pytest.raises(TypeError, match="no_such_option"):
        create_model("lenet5", no_such_option=1)


def test_none_arguments_are_ignored() -> None:
    model = create_model("lenet5", num_classes=None, in_chans=None, width_mult=None)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_registering_twice_raises() -> None:
    info = model_info("lenet5")
    with pytest.raises(ValueError, match="already registered"):
        register_model(info)(lambda **kw: torch.nn.Identity())


def test_model_info_is_frozen_and_complete() -> None:
    for name in list_models():
        info = model_info(name)
        assert isinstance(info, ModelInfo) and info.name == name
        assert info.paper and info.authors and info.year >= 1998 and info.table
        with pytest.raises(AttributeError):
            info.params = 0  # type: ignore[misc]


def test_list_models_pattern() -> None:
    assert pocketvision.list_models("lenet*") == ["lenet5"]
    assert pocketvision.list_models("nothing*") == []


@pytest.mark.parametrize(
    ("value", "expected"), [(32 * 0.35, 16), (24 * 0.75, 24), (1280, 1280), (96 * 0.5, 48)]
)
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def test_models_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "lenet*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "lenet5"
    assert rows[0]["params"] == 61_706 and rows[0]["macs"] == 416_520
    assert rows[0]["input_size"] == [1, 32, 32]


def test_cli_unknown_model_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from pocketvision.cli import build_parser

    parser = build_parser()
    assert parser.prog == "pocketvision"
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_readme_model_table_is_current() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "gen_model_table.py"),
            str(root / "README.md"),
            "--check",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_python_dash_m_and_console_script() -> None:
    import shutil
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pocketvision", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("pocketvision ")
    script = shutil.which(
        "pocketvision", path=str(__import__("pathlib").Path(sys.executable).parent)
    )
    assert script is not None
