"""Converters: each source's key names onto ours, by name (never by position alone).

A converter takes the file's key names and returns ``{source key: our key}`` in our
canonical layout (``small_input=False``). Every source key must map; a key no rule knows means
the file is for another architecture. Index arithmetic is read from the names themselves
(torchvision's ``features.N`` gaps mark its ReLU and pool layers; timm's ``blocks.S.I`` is
numbered by stage and block).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from pocketvision.errors import PocketvisionError

Converter = Callable[[Collection[str]], dict[str, str]]
Rules = list[tuple[str, Callable[[re.Match[str]], str]]]


def _apply(keys: Collection[str], rules: Rules, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in keys:
        for pattern, target in rules:
            match = re.fullmatch(pattern, key)
            if match:
                out[key] = target(match)
                break
        else:
            raise PocketvisionError(f"tensor {key!r} has no place in a {what} layout")
    return out


def _num(m: re.Match[str], group: int, shift: int = 0) -> int:
    return int(m.group(group)) + shift


_RESNET_BODY: Rules = [
    (r"layer(\d)\.(\d+)\.conv(\d)\.weight",
     lambda m: f"stages.{_num(m, 1, -1)}.{m[2]}.conv{m[3]}.0.weight"),
    (r"layer(\d)\.(\d+)\.bn(\d)\.(\w+)",
     lambda m: f"stages.{_num(m, 1, -1)}.{m[2]}.conv{m[3]}.1.{m[4]}"),
    (r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)",
     lambda m: f"stages.{_num(m, 1, -1)}.{m[2]}.shortcut.{m[3]}.{m[4]}"),
]  # fmt: skip


def torchvision_resnet(keys: Collection[str]) -> dict[str, str]:
    rules: Rules = [
        (r"conv1\.weight", lambda m: "conv1.0.weight"),
        (r"bn1\.(\w+)", lambda m: f"conv1.1.{m[1]}"),
        *_RESNET_BODY,
        (r"fc\.(\w+)", lambda m: f"head.fc.{m[1]}"),
    ]
    return _apply(keys, rules, "torchvision ResNet")


def timm_legacy_senet(keys: Collection[str]) -> dict[str, str]:
    rules: Rules = [
        (r"layer0\.conv1\.weight", lambda m: "conv1.0.weight"),
        (r"layer0\.bn1\.(\w+)", lambda m: f"conv1.1.{m[1]}"),
        *_RESNET_BODY,
        (r"layer(\d)\.(\d+)\.se_module\.fc([12])\.(\w+)",
         lambda m: f"stages.{_num(m, 1, -1)}.{m[2]}.se.fc{m[3]}.{m[4]}"),
        (r"last_linear\.(\w+)", lambda m: f"head.fc.{m[1]}"),
    ]  # fmt: skip
    return _apply(keys, rules, "SENet (legacy) ")


def torchvision_squeezenet(keys: Collection[str]) -> dict[str, str]:
    # torchvision's features list is ours layer for layer (conv, ReLU, pool, Fire...).
    rules: Rules = [
        (r"features\.0\.(weight|bias)", lambda m: f"features.0.{m[1]}"),
        (r"features\.(\d+)\.(squeeze|expand1x1|expand3x3)\.(weight|bias)",
         lambda m: f"features.{m[1]}.{m[2]}.{m[3]}"),
        (r"classifier\.1\.(weight|bias)", lambda m: f"conv10.{m[1]}"),
    ]  # fmt: skip
    return _apply(keys, rules, "torchvision SqueezeNet")


def torchvision_vgg(keys: Collection[str]) -> dict[str, str]:
    # torchvision numbers every layer: conv [, BN], ReLU, and a max-pool closing each stack.
    # A conv at index t is followed by BN at t+1 (the _bn variants) and the next conv comes
    # right after its ReLU, or one index later when a pool sits between: ours numbers each
    # conv block and each pool once.
    convs = sorted(
        {int(m[1]) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
        - {int(m[1]) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.running_var", k))}
    )
    has_bn = any(k.endswith("running_var") for k in keys)
    step = 3 if has_bn else 2  # layers of one conv block
    ours: dict[int, int] = {}
    j = 0
    for i, t in enumerate(convs):
        ours[t] = j
        j += 1 + (i + 1 < len(convs) and convs[i + 1] - t > step)
    rules: Rules = [
        (r"features\.(\d+)\.(weight|bias)",
         lambda m: f"features.{ours[int(m[1])]}.0.{m[2]}" if int(m[1]) in ours
         else f"features.{ours[int(m[1]) - 1]}.1.{m[2]}"),
        (r"features\.(\d+)\.(running_mean|running_var|num_batches_tracked)",
         lambda m: f"features.{ours[int(m[1]) - 1]}.1.{m[2]}"),
        (r"classifier\.([03])\.(weight|bias)", lambda m: f"pre_logits.{m[1]}.{m[2]}"),
        (r"classifier\.6\.(weight|bias)", lambda m: f"fc.{m[1]}"),
    ]  # fmt: skip
    return _apply(keys, rules, "torchvision VGG")


def torchvision_mobilenet_v2(keys: Collection[str]) -> dict[str, str]:
    last = max(int(m[1]) for k in keys if (m := re.match(r"features\.(\d+)\.", k)))
    expanded = {
        int(m[1]) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.conv\.3\.weight", k))
    }

    def block(m: re.Match[str]) -> str:
        n, rest = int(m[1]), m[2]
        names = ["conv_pw", "conv_dw", "conv_pwl"] if n in expanded else ["conv_dw", "conv_pwl"]
        parts = rest.split(".")
        index = int(parts[0])
        if index < len(names) - 1:  # conv.I.{0,1}.X: a conv-BN-ReLU6 block
            return f"blocks.{n - 1}.{names[index]}.{'.'.join(parts[1:])}"
        # the linear projection: conv.I.weight (conv), conv.I+1.X (its BN)
        sub = "0" if index == len(names) - 1 else "1"
        return f"blocks.{n - 1}.conv_pwl.{sub}.{'.'.join(parts[1:])}"

    rules: Rules = [
        (r"features\.0\.([01])\.(\w+)", lambda m: f"stem.{m[1]}.{m[2]}"),
        (rf"features\.{last}\.([01])\.(\w+)", lambda m: f"conv_head.{m[1]}.{m[2]}"),
        (r"features\.(\d+)\.conv\.(.+)", block),
        (r"classifier\.1\.(weight|bias)", lambda m: f"head.fc.{m[1]}"),
    ]
    return _apply(keys, rules, "torchvision MobileNetV2")


def _timm_efficientnet(keys: Collection[str], ds_pw: str, what: str) -> dict[str, str]:
    # timm's EfficientNet builder: conv_stem/bn1, blocks.STAGE.BLOCK, conv_head/bn2,
    # classifier. Our blocks are numbered through all stages in (stage, block) order.
    pairs = sorted(
        {(int(m[1]), int(m[2])) for k in keys if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))}
    )
    flat = {pair: i for i, pair in enumerate(pairs)}
    inverted = {
        (int(m[1]), int(m[2]))
        for k in keys
        if (m := re.match(r"blocks\.(\d+)\.(\d+)\.conv_pwl\.", k))
    }
    ir = {"conv_pw": "conv_pw.0", "bn1": "conv_pw.1", "conv_dw": "conv_dw.0",
          "bn2": "conv_dw.1", "conv_pwl": "conv_pwl.0", "bn3": "conv_pwl.1"}  # fmt: skip
    ds = {"conv_dw": "conv_dw.0", "bn1": "conv_dw.1", "conv_pw": f"{ds_pw}.0", "bn2": f"{ds_pw}.1"}

    def block(m: re.Match[str]) -> str:
        pair = (int(m[1]), int(m[2]))
        names = ir if pair in inverted else ds
        if m[3] not in names:
            raise PocketvisionError(f"tensor {m[0]!r} has no place in a {what} layout")
        return f"blocks.{flat[pair]}.{names[m[3]]}.{m[4]}"

    rules: Rules = [
        (r"conv_stem\.weight", lambda m: "stem.0.weight"),
        (r"bn1\.(\w+)", lambda m: f"stem.1.{m[1]}"),
        (r"blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)", block),
        (r"conv_head\.weight", lambda m: "conv_head.0.weight"),
        (r"bn2\.(\w+)", lambda m: f"conv_head.1.{m[1]}"),
        (r"classifier\.(weight|bias)", lambda m: f"head.fc.{m[1]}"),
    ]
    return _apply(keys, rules, what)


def timm_mobilenetv1(keys: Collection[str]) -> dict[str, str]:
    return _timm_efficientnet(keys, "conv_pw", "timm MobileNet v1")


def timm_mobilenetv2(keys: Collection[str]) -> dict[str, str]:
    return _timm_efficientnet(keys, "conv_pwl", "timm MobileNet v2")


def timm_efficientnet_lite(keys: Collection[str]) -> dict[str, str]:
    # the first stage is timm's DepthwiseSeparableConv: its linear 1x1 is our conv_pwl
    return _timm_efficientnet(keys, "conv_pwl", "timm EfficientNet-Lite")


# Table 7's stages 4 and 5 (5 + 5 MobileOne blocks at 256 * alpha_3, the second five with SE
# in S4) are one stage in timm; each MobileOne block is two modules (depthwise, pointwise).
_MOBILEONE_SPLIT = 2 * 5


def _mobileone_block(prefix: str, rest: str, what: str) -> str:
    rules: Rules = [
        (r"conv_kxk\.(\d+)\.conv\.weight", lambda m: f"conv_kxk.{m[1]}.0.weight"),
        (r"conv_kxk\.(\d+)\.bn\.(\w+)", lambda m: f"conv_kxk.{m[1]}.1.{m[2]}"),
        (r"conv_scale\.conv\.weight", lambda m: "conv_scale.0.weight"),
        (r"conv_scale\.bn\.(\w+)", lambda m: f"conv_scale.1.{m[1]}"),
        (r"identity\.(\w+)", lambda m: f"identity.{m[1]}"),
        (r"attn\.fc([12])\.(weight|bias)", lambda m: f"se.fc{m[1]}.{m[2]}"),
    ]
    return f"{prefix}.{_apply([rest], rules, what)[rest]}"


def timm_mobileone(keys: Collection[str]) -> dict[str, str]:
    what = "timm MobileOne"

    def stage(m: re.Match[str]) -> str:
        s, i = int(m[1]), int(m[2])
        if s == 2 and i >= _MOBILEONE_SPLIT:
            s, i = 3, i - _MOBILEONE_SPLIT
        elif s == 3:
            s = 4
        return _mobileone_block(f"stages.{s}.{i}", m[3], what)

    rules: Rules = [
        (r"stem\.(.+)", lambda m: _mobileone_block("stem", m[1], what)),
        (r"stages\.([0-3])\.(\d+)\.(.+)", stage),
        (r"head\.fc\.(weight|bias)", lambda m: f"head.fc.{m[1]}"),
    ]
    return _apply(keys, rules, what)


def timm_mobilenetv4(keys: Collection[str]) -> dict[str, str]:
    # timm's blocks.STAGE.BLOCK is our stages.STAGE.BLOCK; each block's kind is read from its
    # key names: UIB (dw_start / pw_exp / dw_mid / pw_proj, each a ConvNormAct), FusedIB
    # (EdgeResidual: conv_exp, bn1, conv_pwl, bn2) or a plain conv (ConvBnAct: conv, bn1).
    what = "timm MobileNetV4"
    fused = {(m[1], m[2]) for k in keys if (m := re.match(r"blocks\.(\d+)\.(\d+)\.conv_exp\.", k))}
    edge = {"conv_exp": "conv_exp.0", "bn1": "conv_exp.1", "conv_pwl": "conv_pwl.0",
            "bn2": "conv_pwl.1"}  # fmt: skip
    plain = {"conv": "0", "bn1": "1"}

    def block(m: re.Match[str]) -> str:
        names = edge if (m[1], m[2]) in fused else plain
        if m[3] not in names:
            raise PocketvisionError(f"tensor {m[0]!r} has no place in a {what} layout")
        return f"stages.{m[1]}.{m[2]}.{names[m[3]]}.{m[4]}"

    rules: Rules = [
        (r"conv_stem\.weight", lambda m: "stem.0.weight"),
        (r"bn1\.(\w+)", lambda m: f"stem.1.{m[1]}"),
        (r"blocks\.(\d+)\.(\d+)\.(dw_start|pw_exp|dw_mid|pw_proj)\.conv\.weight",
         lambda m: f"stages.{m[1]}.{m[2]}.{m[3]}.0.weight"),
        (r"blocks\.(\d+)\.(\d+)\.(dw_start|pw_exp|dw_mid|pw_proj)\.bn\.(\w+)",
         lambda m: f"stages.{m[1]}.{m[2]}.{m[3]}.1.{m[4]}"),
        (r"blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)", block),
        (r"conv_head\.weight", lambda m: "head.pre.0.weight"),
        (r"norm_head\.(\w+)", lambda m: f"head.pre.1.{m[1]}"),
        (r"classifier\.(weight|bias)", lambda m: f"head.fc.{m[1]}"),
    ]  # fmt: skip
    return _apply(keys, rules, what)


def pocketvision_layout(keys: Collection[str]) -> dict[str, str]:
    """Our own state dicts (a pocketvision run's weights): names are already ours."""
    return {k: k for k in keys}


LAYOUTS: dict[str, Converter] = {
    "torchvision.resnet": torchvision_resnet,
    "torchvision.squeezenet": torchvision_squeezenet,
    "torchvision.vgg": torchvision_vgg,
    "torchvision.mobilenet_v2": torchvision_mobilenet_v2,
    "timm.mobilenetv1": timm_mobilenetv1,
    "timm.mobilenetv2": timm_mobilenetv2,
    "timm.legacy_senet": timm_legacy_senet,
    "timm.efficientnet_lite": timm_efficientnet_lite,
    "timm.mobileone": timm_mobileone,
    "timm.mobilenetv4": timm_mobilenetv4,
    "pocketvision": pocketvision_layout,
}
