"""The registry's contract: names, errors, None handling, the shared builder, the zoo table."""

from __future__ import annotations

import inspect
import json
import pydoc
import re
import subprocess
import sys
from decimal import Decimal

import pytest
import torch
from torch import nn

import pocketvision
from pocketvision import create_model, list_models, model_info
from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.layers import make_divisible
from pocketvision.models.lenet import LENET, LeNet
from pocketvision.profile import count_params
from pocketvision.registry import Family, ModelInfo, count_text, model_builder, register_model

ALL = list_models()


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
    with pytest.raises(ValueError, match="already registered"):
        register_model(LENET, "lenet5", params=1, macs=1, top1=None, table="again")
    assert model_info("lenet5").params == 61_706


@pytest.mark.parametrize(
    ("fixed", "options", "match"),
    [
        ({"stages": (), "depth": 3}, (), "takes no keyword 'depth'"),
        ({}, ("drop_rate",), "takes no keyword 'drop_rate'"),
        ({"stages": ()}, ("stages",), "both fixed by the name and a caller's option"),
    ],
)
def test_a_family_file_typo_fails_at_registration(
    fixed: dict[str, object], options: tuple[str, ...], match: str
) -> None:
    family = Family(
        name="LeNet",
        model=LeNet,
        paper=LENET.paper,
        small_input="",
        first_conv="features.0",
        classifier="classifier",
        options=options,
    )
    with pytest.raises(ValueError, match=match):
        register_model(family, "lenet_typo", fixed, params=1, macs=1, top1=None, table="-")
    assert "lenet_typo" not in list_models()


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
    # a command that takes a model name: a misspelt one is one line naming it, with a hint
    assert main(["profile", "mobilenet_v9_100", "--runtimes", "eager"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mobilenet_v9_100" in err, err
    assert "Traceback" not in err


def test_cli_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "no-such-command" in capsys.readouterr().err


def test_readme_model_table_is_current() -> None:
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

    out = subprocess.run(
        [sys.executable, "-m", "pocketvision", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("pocketvision ")
    script = shutil.which(
        "pocketvision", path=str(__import__("pathlib").Path(sys.executable).parent)
    )
    assert script is not None


def _help_text(name: str) -> str:
    """What ``help(builder)`` prints, whitespace collapsed."""
    return " ".join(pydoc.plain(pydoc.render_doc(model_builder(name))).split())


def _count(number: str, unit: str) -> int:
    return int(Decimal(number.replace(",", "")) * {"": 1, "M": 10**6, "G": 10**9}[unit])


@pytest.mark.parametrize("name", ALL)
def test_help_shows_the_published_numbers(name: str) -> None:
    # the builder's docstring is made from its ModelInfo: it must carry every number in it
    info = model_info(name)
    text = _help_text(name)
    assert f"{info.params:,} params" in text
    macs = re.search(r"params, (\d[\d,]*(?:\.\d+)?)([MG]?) MACs at ", text)
    assert macs is not None and _count(*macs.groups()) == info.macs
    at = re.findall(r", (\d[\d,]*(?:\.\d+)?)([MG]?) at (\d+) px", text)
    assert {int(r): _count(n, u) for n, u, r in at} == dict(info.macs_at)
    assert (f"top-1 {info.top1}%" in text) == (info.top1 is not None)
    for part in (info.paper, info.table, info.note, info.small_input):
        assert " ".join(part.split()) in text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (416_520, "416,520"),
        (585_000_000, "585M"),
        (818_900_000, "818.9M"),
        (4_090_000_000, "4.09G"),
    ],
)
def test_count_text_is_exact(n: int, text: str) -> None:
    assert count_text(n) == text
    unit = text[-1] if text[-1] in "MG" else ""
    assert _count(text.removesuffix(unit), unit) == n  # what the help test reads back


@pytest.mark.parametrize("name", ALL)
def test_builder_signature_is_what_the_model_takes(name: str) -> None:
    info = model_info(name)
    builder = model_builder(name)
    params = inspect.signature(builder).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert ("width_mult" in params) == (info.width_mult is not None)
    assert params["num_classes"].default == info.num_classes
    assert params["in_chans"].default == info.input_size[0]
    with torch.device("meta"):
        # every keyword in the signature is taken, and its default is what the model uses
        explicit = builder(**{k: p.default for k, p in params.items()})
        assert count_params(explicit) == count_params(builder()) == info.params
        with pytest.raises(TypeError, match=f"^{name}: unexpected keyword argument 'not_one'"):
            builder(not_one=1)


@pytest.mark.parametrize("name", ALL)
def test_first_conv_and_classifier_names(name: str) -> None:
    # the names pretrained loading will use: in_chans adaptation rewrites the first conv,
    # a new num_classes replaces the classifier
    info = model_info(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=7, in_chans=5)
        sees_input = [
            n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 5
        ]
        # the first conv, or (MobileOne) the block whose train-time branches all read the input
        assert sees_input == [info.first_conv] or (
            len(sees_input) > 1 and all(n.startswith(f"{info.first_conv}.") for n in sees_input)
        )
        head = model.get_submodule(info.classifier)
        assert isinstance(head, (nn.Linear, nn.Conv2d))
        assert f"{info.classifier}.weight" in model.state_dict()
        assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 7
        model.reset_classifier(3)
        new = model.get_submodule(info.classifier)
    assert new is not head
    assert (new.out_features if isinstance(new, nn.Linear) else new.out_channels) == 3


def test_the_registry_does_not_import_the_models() -> None:
    # the package imports the families, the families import the registry: never back
    code = (
        "import sys\n"
        "from pocketvision.errors import PocketvisionError\n"
        "import pocketvision.registry as registry\n"
        "assert 'pocketvision.models' not in sys.modules\n"
        "assert registry.list_models() == []\n"
        "try:\n"
        "    registry.create_model('resnet18')\n"
        "except PocketvisionError as err:\n"
        "    assert 'no model is registered yet' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('an empty registry built a model')\n"
        "from pocketvision import create_model\n"
        "assert 'pocketvision.models' in sys.modules\n"
        "assert type(create_model('resnet18')).__name__ == 'ResNet'\n"
        "assert len(registry.list_models()) > 20\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
