"""MobileOne (Vasu et al. 2023): Table 7 as built, timm's train-form counts, the fold.

The fold (``reparameterize()``) is checked as micrograd would: the same function computed by
two structures, the train-time branches and the one conv per block, on random weights with
BN statistics that are neither the defaults nor the batch's own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pocketvision import create_model, list_models, model_info
from pocketvision.layers import SqueezeExcite, deploy_form
from pocketvision.models.mobileone import (
    MOBILEONE_S0,
    MOBILEONE_S4,
    MOBILEONE_STAGES,
    MobileOneBlock,
)
from pocketvision.profile import count_macs, count_params
from pocketvision.weights.convert import timm_mobileone

NAMES = [f"mobileone_s{i}" for i in range(5)]
MANIFESTS = Path(__file__).resolve().parents[2] / "src" / "pocketvision" / "weights" / "manifests"

# timm 1.0.31 mobileone_sX as built (train form, every branch), and after
# timm.utils.reparameterize_model: params, MACs at 224 px (FlopCounterMode / 2).
TIMM_TRAIN = {
    "mobileone_s0": (5_293_272, 1_051_935_232),
    "mobileone_s1": (4_825_192, 830_062_080),
    "mobileone_s2": (7_884_648, 1_304_027_392),
    "mobileone_s3": (10_170_600, 1_902_112_768),
    "mobileone_s4": (14_951_248, 2_986_802_432),
}
TIMM_FUSED = {
    "mobileone_s0": (2_078_504, 275_110_400),
    "mobileone_s1": (4_764_840, 825_057_024),
    "mobileone_s2": (7_808_168, 1_298_426_496),
    "mobileone_s3": (10_078_312, 1_895_790_592),
    "mobileone_s4": (14_838_352, 2_979_269_760),
}


def test_table_has_the_papers_shape() -> None:
    assert list_models("mobileone*") == NAMES
    assert [r.n for r in MOBILEONE_STAGES] == [2, 8, 5, 5, 1]
    # stride 2 in the stem and every stage but the fifth: total stride 32
    assert [r.s for r in MOBILEONE_STAGES] == [2, 2, 2, 1, 2]
    assert [r.se for r in MOBILEONE_STAGES] == [False, False, False, True, True]
    assert (MOBILEONE_S0.k, MOBILEONE_S4.k, MOBILEONE_S0.se, MOBILEONE_S4.se) == (4, 1, False, True)


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("mobileone_s0", [48, 48, 128, 256, 256, 1024]),
        ("mobileone_s1", [64, 96, 192, 512, 512, 1280]),
        ("mobileone_s4", [64, 192, 448, 896, 896, 2048]),
    ],
)
def test_stem_and_stage_widths(name: str, widths: list[int]) -> None:
    with torch.device("meta"):
        model = create_model(name)
    stem = model.stem.conv_kxk[0][0].out_channels
    assert [stem] + [s[-1].conv_kxk[0][0].out_channels for s in model.stages] == widths
    assert model.num_features == widths[-1]
    assert len(model.stem.conv_kxk) == 1  # the stem has one branch even where k = 4


def test_branches_follow_the_rules() -> None:
    with torch.device("meta"):
        s0 = create_model("mobileone_s0")
    first_dw, first_pw, second_dw = s0.stages[1][0], s0.stages[1][1], s0.stages[1][2]
    assert len(first_dw.conv_kxk) == 4 and first_dw.conv_scale is not None
    assert first_dw.identity is None  # stride 2: no skip
    assert first_pw.conv_scale is None and first_pw.identity is None  # 1x1, 48 -> 128
    assert second_dw.identity is not None and second_dw.conv_kxk[0][0].groups == 128
    assert not any(isinstance(m, SqueezeExcite) for m in s0.modules())


def test_se_only_in_s4s_last_six_blocks() -> None:
    with torch.device("meta"):
        model = create_model("mobileone_s4")
    hidden = [
        m.fc1.out_channels
        for stage in model.stages
        for block in stage
        if isinstance(m := block.se, SqueezeExcite)
    ]
    # 5 blocks at 896 (depthwise and pointwise), then 896 (depthwise) and 2048 (pointwise): C / 16
    assert hidden == [56] * 11 + [128]
    assert all(isinstance(b.se, nn.Identity) for s in model.stages[:3] for b in s)


@pytest.mark.parametrize("name", NAMES)
def test_counts_are_timms_in_both_forms(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert (
        count_params(model, deployed=False),
        count_macs(model, (3, 224, 224), deployed=False),
    ) == (TIMM_TRAIN[name])
    assert (count_params(model), count_macs(model, (3, 224, 224))) == TIMM_FUSED[name]
    assert model_info(name).params == TIMM_FUSED[name][0]
    # the paper's Table 9 (inference form): 2.1 / 4.8 / 7.8 / 10.1 / 14.8 M params
    assert round(TIMM_FUSED[name][0] / 1e6, 1) == [2.1, 4.8, 7.8, 10.1, 14.8][NAMES.index(name)]


def _randomise(model: nn.Module, x: torch.Tensor) -> None:
    """Random affine BN with the running statistics of ``x`` (not the defaults 0 and 1).

    Statistics that do not fit the activations (random ones, or another batch's) make a
    random 43-block net chaotic: its float32 logits then miss float64 by ~100 in either
    form, and no comparison means anything. Even with these, float32 rounding moves the
    logits (~0.5) by 2e-5 to 6e-5 from float64, in the train form as much as in the fused
    one; the fold's own arithmetic is checked in float64.
    """
    g = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.momentum = None  # cumulative: this batch's statistics
        model.train()
        model(x)
    model.eval()


@pytest.mark.parametrize("name", ["mobileone_s0", "mobileone_s4"])  # k = 4; SE
def test_reparameterize_computes_the_same_function(name: str) -> None:
    model = create_model(name, num_classes=10)
    x = torch.randn(16, 3, 64, 64)
    _randomise(model, x)
    fused = copy.deepcopy(model).reparameterize()
    blocks = [m for m in fused.modules() if isinstance(m, MobileOneBlock)]
    assert all(b.reparam_conv is not None and not b.conv_kxk for b in blocks)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert count_params(fused, deployed=False) == count_params(model)  # what profile counts
    with torch.no_grad():
        # block by block, on the inputs each block really sees: within 1e-5 of its outputs
        seen: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        hooks = [
            b.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
            for b in model.modules()
            if isinstance(b, MobileOneBlock)
        ]
        y = model(x)
        for hook in hooks:
            hook.remove()
        for block, given, out in seen:
            alone = copy.deepcopy(block)
            alone.reparameterize()
            assert (alone(given) - out).abs().max() <= 1e-5 * max(1.0, out.abs().max().item())
        # the whole net: exact in float64; in float32 no further from the train form than
        # float32 rounding already puts the train form from float64
        wide = copy.deepcopy(model).double()
        y64 = wide(x.double())
        exact = (copy.deepcopy(wide).reparameterize()(x.double()) - y64).abs().max().item()
        rounding = (y.double() - y64).abs().max().item()
        drift = (fused(x) - y).abs().max().item()
    assert y.abs().max() > 0.1  # a real signal, not vanished activations
    assert exact < 1e-10 * y.abs().max().item()
    assert drift <= max(1e-5, 3 * rounding)


def test_fuse_is_an_idempotent_alias_and_deploy_form_copies() -> None:
    model = create_model("mobileone_s1", num_classes=3)
    assert type(model).fuse is type(model).reparameterize
    deployed = deploy_form(model)
    assert deployed is not model and not deployed.training
    assert model.stem.reparam_conv is None and model.stem.conv_scale is not None  # untouched
    before = {k: v.clone() for k, v in deployed.state_dict().items()}
    deployed.fuse()
    assert all(torch.equal(v, deployed.state_dict()[k]) for k, v in before.items())
    lenet = create_model("lenet5")
    assert deploy_form(lenet) is lenet  # nothing to fold: no copy


def test_profile_runs_the_inference_form() -> None:
    from pocketvision.profile.profiler import resolve_model

    _, model, size = resolve_model("mobileone_s0", 32, 1, 4, {"small_input": True})
    assert size == (1, 32, 32)
    assert all(m.reparam_conv is not None for m in model.modules() if isinstance(m, MobileOneBlock))


def test_exported_onnx_is_single_branch_and_matches_pytorch(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from pocketvision.export.onnx_export import run_session, session, to_onnx

    model = create_model("mobileone_s0", num_classes=5, small_input=True)
    x = torch.randn(16, 3, 32, 32)
    _randomise(model, x)
    path = to_onnx(model, x[:1], tmp_path / "m.onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    blocks = sum(isinstance(m, MobileOneBlock) for m in model.modules())
    trained = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    # trained: stem 1 + 1, 21 depthwise blocks of 4 + 1 convs, 21 pointwise ones of 4
    assert trained == 2 + 21 * 5 + 21 * 4 == 191
    assert ops.count("Conv") == blocks == 43  # one conv per block
    assert "Add" not in ops and "BatchNormalization" not in ops  # no branch sums, BN folded
    with torch.no_grad():
        trained = model(x).numpy()
        exact = copy.deepcopy(model).double()(x.double()).numpy()
    got = run_session(session(path), x.numpy())
    # float32 rounding alone moves this random net's logits by ~5e-5 (see _randomise);
    # onnxruntime's kernels round differently from PyTorch's, by as much again
    rounding = abs(trained - exact).max()
    assert abs(got - exact).max() <= max(1e-5, 3 * rounding)
    assert abs(got - trained).max() <= max(1e-5, 4 * rounding) < 1e-3


def test_timm_keys_map_onto_the_papers_stages() -> None:
    keys = [
        "stem.conv_scale.bn.running_var",
        "stages.2.9.conv_kxk.0.conv.weight",
        "stages.2.10.identity.weight",
        "stages.3.1.attn.fc2.bias",
        "stages.1.3.conv_kxk.0.bn.num_batches_tracked",
    ]
    assert list(timm_mobileone(keys).values()) == [
        "stem.conv_scale.1.running_var",
        "stages.2.9.conv_kxk.0.0.weight",  # timm's stage 2 is Table 7's stages 4 and 5
        "stages.3.0.identity.weight",
        "stages.4.1.se.fc2.bias",
        "stages.1.3.conv_kxk.0.1.num_batches_tracked",
    ]


def test_grayscale_checkpoint_adapts_both_stem_branches() -> None:
    # timm's real key names and shapes (the parity manifest), planned onto in_chans=1
    from pocketvision.weights.load import Target, canonical_to_model, plan

    manifest = json.loads((MANIFESTS / "timm.mobileone.mobileone_s0.json").read_text())
    source = {k: tuple(s) for k, s in manifest["keys"]}
    with torch.device("meta"):
        model = create_model("mobileone_s0", in_chans=1, num_classes=10, small_input=True)
        canonical = create_model("mobileone_s0", in_chans=1, num_classes=10)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    info = model_info("mobileone_s0")
    target = Target("mobileone_s0", info.first_conv, info.classifier, lambda: canonical)
    _, steps = plan(
        source, shapes, target, ["timm.mobileone"], canonical_to_model(canonical, model)
    )
    hows = {key: how for key, (_, how) in steps.items()}
    assert {k for k, h in hows.items() if h == "in_chans"} == {
        "stem.conv_kxk.0.0.weight",
        "stem.conv_scale.0.weight",
    }
    assert {k for k, h in hows.items() if h == "skip"} == {"head.fc.weight", "head.fc.bias"}
    assert {h for h in hows.values()} == {"copy", "in_chans", "skip"}
