"""Loading real files into real models: the adaptations against oracles, and bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from weights_support import source_state

import pocketvision as pv
from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.weights.load import adapt_in_chans


def test_torchvision_file_loads_tensor_for_tensor(squeezenet_file: Path) -> None:
    state = torch.load(squeezenet_file, weights_only=True)
    model = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file))
    ours = model.state_dict()
    assert torch.equal(ours["features.0.weight"], state["features.0.weight"])
    assert torch.equal(ours["features.12.expand3x3.bias"], state["features.12.expand3x3.bias"])
    assert torch.equal(ours["conv10.weight"], state["classifier.1.weight"])
    assert model.pretrained.source == "torchvision" and model.pretrained.tag == "file"


def test_in_chans_1_sums_rgb_filters_so_gray_equals_gray_rgb(squeezenet_file: Path) -> None:
    rgb = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file)).eval()
    gray = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file), in_chans=1).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)


def test_in_chans_other_counts_tile_and_scale() -> None:
    w = torch.randn(4, 3, 3, 3)
    five = adapt_in_chans(w, 5)
    assert five.shape == (4, 5, 3, 3)
    torch.testing.assert_close(five[:, 3], w[:, 0] * 3 / 5)


def test_new_num_classes_keeps_the_backbone_and_a_fresh_head(squeezenet_file: Path) -> None:
    full = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file)).eval()
    ten = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file), num_classes=10)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ten.eval().forward_features(x), full.forward_features(x))
    assert ten(x).shape == (1, 10)


def test_small_input_keeps_every_weight_for_squeezenet(squeezenet_file: Path) -> None:
    small = pv.create_model("squeezenet1_1", pretrained=str(squeezenet_file), small_input=True)
    state = torch.load(squeezenet_file, weights_only=True)
    # the dropped pool renumbers features: fire at features.3 is ours at features.2
    assert torch.equal(
        small.state_dict()["features.2.squeeze.weight"], state["features.3.squeeze.weight"]
    )


def test_resnet_small_input_crops_conv1_to_its_centre(tmp_path: Path) -> None:
    path = tmp_path / "r.pth"
    state = source_state("torchvision.resnet", "resnet18")
    torch.save(state, path)
    model = pv.create_model("resnet18", pretrained=str(path), small_input=True, num_classes=10)
    assert torch.equal(model.conv1[0].weight, state["conv1.weight"][:, :, 2:5, 2:5])
    assert torch.equal(model.stages[3][1].conv2[1].running_var, state["layer4.1.bn2.running_var"])


def test_timm_safetensors_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = source_state("timm.mobilenetv2", "mobilenetv2_050")
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    model = pv.create_model("mobilenet_v2_050", pretrained=str(path))
    assert torch.equal(
        model.blocks[1].conv_pwl[1].running_mean, state["blocks.1.0.bn3.running_mean"]
    )
    assert torch.equal(model.conv_head[0].weight, state["conv_head.weight"])
    assert model.pretrained.source == "timm"


def test_unknown_tag_lists_the_tags() -> None:
    with pytest.raises(
        PocketvisionError, match=r"unknown tag 'nope' for resnet50; its tags: tv_in1k, tv2_in1k"
    ):
        pv.create_model("resnet50", pretrained="nope")


def test_model_without_weights_names_models_that_have_some() -> None:
    with pytest.raises(PocketvisionError, match=r"lenet5 has no published weights.*resnet18"):
        pv.create_model("lenet5", pretrained=True)


def test_file_for_another_architecture_names_the_tensor(squeezenet_file: Path) -> None:
    with pytest.raises(
        PocketvisionError,
        match=r"not a resnet18 checkpoint: tensor 'features\.0\.weight' has no place",
    ):
        pv.create_model("resnet18", pretrained=str(squeezenet_file))


def test_wrong_shape_names_tensor_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    state = source_state("torchvision.squeezenet", "squeezenet1_1")
    state["features.3.squeeze.weight"] = torch.zeros(8, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(
        PocketvisionError,
        match=r"squeezenet1_1: tensor 'features\.3\.squeeze\.weight' has shape \[8, 64, 1, 1\] in the file, the model expects \[16, 64, 1, 1\]",
    ):
        pv.create_model("squeezenet1_1", pretrained=str(path))


def test_truncated_file_is_one_line(squeezenet_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pth"
    cut.write_bytes(squeezenet_file.read_bytes()[:5000])
    with pytest.raises(PocketvisionError, match="truncated or not a checkpoint") as err:
        pv.create_model("squeezenet1_1", pretrained=str(cut))
    assert "\n" not in str(err.value)


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (Path(self.target), "pwned"))


def test_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil(str(marker))}, evil)
    with pytest.raises(PocketvisionError, match="refused"):
        pv.create_model("squeezenet1_1", pretrained=str(evil))
    assert not marker.exists()
    plain = tmp_path / "evil.pkl.pth"
    plain.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(PocketvisionError):
        pv.create_model("squeezenet1_1", pretrained=str(plain))
    assert not marker.exists()
    # the payload is real: an unrestricted load would have written the file
    torch.load(evil, weights_only=False)
    assert marker.read_text() == "pwned"


def test_cli_weights_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["weights", "vgg*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["vgg11", "vgg11_bn", "vgg16", "vgg16_bn"]
    assert set(rows[0]) == {"model", "source", "tag", "url", "sha256", "size_bytes", "license",
                            "top1", "input_size", "mean", "std"}  # fmt: skip
    assert rows[2]["url"].endswith("vgg16-397923af.pth") and rows[2]["sha256"] == "397923af"
    assert main(["weights", "resnet18"]) == 0
    assert "f37072fd" in capsys.readouterr().out
