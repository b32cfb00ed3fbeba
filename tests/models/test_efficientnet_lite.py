"""EfficientNet-Lite (Tan & Le 2019, the TF lite README): the Lite changes, depths, widths,
TF SAME padding, the README's numbers, timm's key names and an ONNX / int8 round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pocketvision import create_model, model_info
from pocketvision.layers import SqueezeExcite
from pocketvision.models.efficientnet_lite import (
    EFFICIENTNET_B0_STAGES,
    LITE_VARIANTS,
    MBConv,
    SamePad2d,
    stage_depths,
)
from pocketvision.profile import count_macs, count_params
from pocketvision.weights.convert import timm_efficientnet_lite

NAMES = list(LITE_VARIANTS)
MANIFESTS = Path(__file__).resolve().parents[2] / "src" / "pocketvision" / "weights" / "manifests"

# timm 1.0.31 tf_efficientnet_lite0..4: blocks per stage (len of each model.blocks[i]).
TIMM_DEPTHS = {
    "efficientnet_lite0": [1, 2, 2, 3, 3, 4, 1],
    "efficientnet_lite1": [1, 3, 3, 4, 4, 5, 1],
    "efficientnet_lite2": [1, 3, 3, 4, 4, 5, 1],
    "efficientnet_lite3": [1, 3, 3, 5, 5, 6, 1],
    "efficientnet_lite4": [1, 4, 4, 6, 6, 8, 1],
}


def test_b0_table_has_the_papers_shape() -> None:
    # Table 1: 16 MBConv blocks, the first MBConv1, total stride 32 with the stem
    assert sum(st.n for st in EFFICIENTNET_B0_STAGES) == 16
    assert [st.e for st in EFFICIENTNET_B0_STAGES] == [1, 6, 6, 6, 6, 6, 6]
    assert sum(st.s == 2 for st in EFFICIENTNET_B0_STAGES) == 4


@pytest.mark.parametrize("name", NAMES)
def test_depths_fix_first_and_last_stage_and_match_timm(name: str) -> None:
    depths = stage_depths(EFFICIENTNET_B0_STAGES, LITE_VARIANTS[name].depth)
    assert depths == TIMM_DEPTHS[name]
    with torch.device("meta"):
        model = create_model(name)
    assert len(model.blocks) == sum(depths)


@pytest.mark.parametrize("name", NAMES)
def test_lite_changes_no_se_relu6_only_fixed_stem_and_head(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert not [m for m in model.modules() if isinstance(m, SqueezeExcite | nn.Sigmoid)]
    acts = {type(m) for m in model.modules() if isinstance(m, nn.ReLU | nn.ReLU6 | nn.SiLU)}
    assert acts == {nn.ReLU6}
    assert model.stem[0].out_channels == 32 and model.conv_head[0].out_channels == 1280
    width = LITE_VARIANTS[name].width
    last = model.blocks[-1].conv_pwl[0].out_channels
    assert last == {1.0: 320, 1.1: 352, 1.2: 384, 1.4: 448}[width]
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_residuals_follow_the_rule() -> None:
    model = create_model("efficientnet_lite0")
    blocks = [b for b in model.blocks if isinstance(b, MBConv)]
    # 16 blocks, 7 stages: the first block of each stage changes shape, the other 9 add
    assert [b.use_residual for b in blocks].count(True) == 9
    assert isinstance(blocks[0].conv_pw, nn.Identity)  # MBConv1: no expansion


@pytest.mark.parametrize("name", NAMES)
def test_readme_params_and_madds(name: str) -> None:
    """The README rounds params to 0.1M; its MAdds are TF's profiler count, which adds about
    3 ops per conv output element (BN scale and shift, ReLU6) to the conv / FC MACs that
    ModelInfo records: that convention reproduces every README figure within 0.5%."""
    variant, info = LITE_VARIANTS[name], model_info(name)
    model = create_model(name).eval()
    assert round(count_params(model) / 1e6, 1) == variant.params_m
    outputs = [0]
    hooks = [
        m.register_forward_hook(
            lambda _m, _a, out: outputs.__setitem__(0, outputs[0] + out.numel())
        )
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, *info.input_size))
    for hook in hooks:
        hook.remove()
    macs = count_macs(model, info.input_size)
    assert macs + 3 * outputs[0] == pytest.approx(variant.madds, rel=0.005)
    assert macs < 0.97 * variant.madds  # so ModelInfo records the conv + FC count, not this


@pytest.mark.parametrize("size", [8, 9, 224, 233])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_same_padding_is_tensorflows(size: int, kernel_size: int) -> None:
    # A ones kernel over a ones image counts the real pixels under each window: TF SAME puts
    # the odd padding pixel at the bottom / right and gives ceil(size / 2) outputs.
    conv = nn.Conv2d(1, 1, kernel_size, 2, bias=False)
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        out = conv(SamePad2d(kernel_size, 2)(torch.ones(1, 1, size, size)))[0, 0]
    total = max((-(-size // 2) - 1) * 2 + kernel_size - size, 0)
    before, after = total // 2, total - total // 2
    assert out.shape == (-(-size // 2),) * 2
    assert out[0, 0] == (kernel_size - before) ** 2
    assert out[-1, -1] == (kernel_size - after) ** 2
    if size % 2 == 0:
        assert after == before + 1  # asymmetric: where PyTorch's padding would differ


def test_symmetric_padding_is_another_function_of_the_same_weights() -> None:
    torch.manual_seed(0)
    tf_form = create_model("efficientnet_lite0", num_classes=10).eval()
    torch_form = create_model("efficientnet_lite0", num_classes=10, same_padding=False)
    torch_form.load_state_dict(tf_form.state_dict())
    torch_form.eval()
    with torch.no_grad():
        even, odd = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 65, 65)
        assert not torch.allclose(tf_form(even), torch_form(even), atol=1e-4)
        # odd sizes pad symmetrically under SAME too: the two forms agree
        assert torch.allclose(tf_form(odd), torch_form(odd), atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite4"])
def test_timm_keys_map_one_to_one(name: str) -> None:
    # the manifest lists timm's own tf_efficientnet_lite state dict (written by make parity):
    # conv_stem/bn1, blocks.STAGE.BLOCK (the first a DepthwiseSeparableConv: conv_dw, bn1,
    # conv_pw, bn2), conv_head/bn2, classifier
    source = f"tf_{name}"
    path = MANIFESTS / f"timm.efficientnet_lite.{source}.json"
    keys = [k for k, _ in json.loads(path.read_text())["keys"]]
    with torch.device("meta"):
        ours = create_model(name).state_dict()
    mapping = timm_efficientnet_lite(keys)
    assert sorted(mapping.values()) == sorted(ours)
    assert mapping["blocks.0.0.conv_pw.weight"] == "blocks.0.conv_pwl.0.weight"
    last = sum(TIMM_DEPTHS[name]) - 1
    assert mapping["blocks.6.0.bn3.running_var"] == f"blocks.{last}.conv_pwl.1.running_var"


@pytest.mark.slow
def test_onnx_fp32_and_int8_agree_with_pytorch(tmp_path: Path) -> None:
    import onnx

    from pocketvision.export.agreement import agreement
    from pocketvision.export.onnx_export import run_session, session, to_onnx

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=10, small_input=True).eval()
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        reference = model(x).numpy()
    fp32 = to_onnx(model, x[:1], tmp_path / "lite0.onnx")
    int8 = to_onnx(
        model, x[:1], tmp_path / "lite0_int8.onnx", precision="int8", calibration=x.numpy()
    )
    ops = {node.op_type for node in onnx.load(str(fp32)).graph.node}
    # int8-friendly: convs, ReLU6 as Clip, adds, the pads of SAME, the pool and the FC only
    assert not ops & {"Sigmoid", "HardSwish", "HardSigmoid", "Mul"}, ops
    assert {"Conv", "Clip"} <= ops
    exact = agreement(reference, run_session(session(fp32), x.numpy()))
    rounded = agreement(reference, run_session(session(int8), x.numpy()))
    assert exact.within(1e-4) and exact.top1_agreement == 1.0
    assert not rounded.within(1e-6)  # really quantized
    # random weights give near-tied logits, so top-1 agreement says little (it fell to 0.44 on
    # a loaded 2-core run); the error relative to the outputs' scale is the real bound
    assert rounded.max_abs_diff < 0.5 * rounded.scale, rounded
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
