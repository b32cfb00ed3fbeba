"""The published checkpoints pocketvision knows: one row per (model, source, tag).

URLs, hashes, sizes and top-1 come from the sources' own code: torchvision 0.29's
``models/*.py`` Weights enums (the URL's ``-xxxxxxxx.pth`` suffix is the first 8 hex digits of
the file's sha256, which is all torchvision publishes; ``_file_size`` is MiB to 3 decimals,
so ``size_bytes`` is good to about 1 KiB) and timm 1.0's pretrained cfgs (Hugging Face hub
``timm/<name>.<tag>``; the hub publishes no hash in timm's cfg, so ``sha256`` is None and the
download records the hash it got and checks it on every later use).
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any

from pocketvision.errors import PocketvisionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
_TV = "https://download.pytorch.org/models/"
_HF = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint and what loading it into our model needs.

    Attributes:
        model: Our registered name.
        source: torchvision, timm or original.
        tag: Name of this checkpoint among the model's (``pretrained="TAG"``).
        url: Where the file is published.
        sha256: The published sha256 or its published prefix; None where none is published.
        size_bytes: File size as published.
        license: The weights' licence as the source states it.
        top1: The source's published ImageNet top-1 (%).
        input_size: (C, H, W) the weights were evaluated at.
        mean: Normalisation mean the weights expect.
        std: Normalisation std.
        layout: The converter that maps the file's key names onto ours.
        source_name: The model's name at the source (timm and torchvision names differ).
        default: The checkpoint ``pretrained=True`` picks for this model.
        differs: Where the source's architecture is not ours, in a sentence ("" if it is).
    """

    model: str
    source: str
    tag: str
    url: str
    sha256: str | None
    size_bytes: int | None
    license: str
    top1: float
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str
    source_name: str
    default: bool = False
    differs: str = ""

    def row(self) -> dict[str, Any]:
        """The public record (``pocketvision weights --json``)."""
        keys = [
            "model",
            "source",
            "tag",
            "url",
            "sha256",
            "size_bytes",
            "license",
            "top1",
            "input_size",
            "mean",
            "std",
        ]
        full = asdict(self)
        return {k: list(full[k]) if isinstance(full[k], tuple) else full[k] for k in keys}


def _tv(
    model: str, file: str, top1: float, mib: float, tag: str = "tv_in1k", **kw: Any
) -> Checkpoint:
    return Checkpoint(
        model=model,
        source="torchvision",
        tag=tag,
        url=_TV + file,
        sha256=file.rsplit("-", 1)[1].removesuffix(".pth"),
        size_bytes=round(mib * _MIB),
        license="bsd-3-clause",
        top1=top1,
        input_size=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        layout=kw.pop("layout"),
        source_name=kw.pop("source_name", model),
        **kw,
    )


def _timm(model: str, hub: str, top1: float, **kw: Any) -> Checkpoint:
    mean, std = kw.pop("norm", (IMAGENET_MEAN, IMAGENET_STD))
    return Checkpoint(
        model=model,
        source="timm",
        tag=hub.split(".", 1)[1],
        url=kw.pop("url", _HF.format(hub)),
        sha256=kw.pop("sha256", None),
        size_bytes=None,
        license=kw.pop("license", "apache-2.0"),
        top1=top1,
        input_size=kw.pop("input_size", (3, 224, 224)),
        mean=mean,
        std=std,
        layout=kw.pop("layout"),
        source_name=hub.split(".", 1)[0],
        default=kw.pop("default", True),
        **kw,
    )


_V = "torchvision.vgg"
# top-1: torchvision's acc@1; timm's from its results-imagenet.csv as recorded in the model
# cards (rounded to 0.1).
CHECKPOINTS: tuple[Checkpoint, ...] = (
    _tv(
        "squeezenet1_0",
        "squeezenet1_0-b66bff10.pth",
        58.092,
        4.778,
        layout="torchvision.squeezenet",
        default=True,
    ),
    _tv(
        "squeezenet1_1",
        "squeezenet1_1-b8a52dc0.pth",
        58.178,
        4.729,
        layout="torchvision.squeezenet",
        default=True,
    ),
    _tv(
        "mobilenet_v2_100",
        "mobilenet_v2-b0353104.pth",
        71.878,
        13.555,
        layout="torchvision.mobilenet_v2",
        source_name="mobilenet_v2",
    ),
    _tv(
        "mobilenet_v2_100",
        "mobilenet_v2-7ebf99e0.pth",
        72.154,
        13.598,
        tag="tv2_in1k",
        layout="torchvision.mobilenet_v2",
        source_name="mobilenet_v2",
        default=True,
    ),
    _tv(
        "resnet18",
        "resnet18-f37072fd.pth",
        69.758,
        44.661,
        layout="torchvision.resnet",
        default=True,
    ),
    _tv("resnet50", "resnet50-0676ba61.pth", 76.130, 97.781, layout="torchvision.resnet"),
    _tv(
        "resnet50",
        "resnet50-11ad3fa6.pth",
        80.858,
        97.790,
        tag="tv2_in1k",
        layout="torchvision.resnet",
        default=True,
    ),
    _tv("vgg11", "vgg11-8a719046.pth", 69.020, 506.840, layout=_V, default=True),
    _tv("vgg11_bn", "vgg11_bn-6002323d.pth", 70.370, 506.881, layout=_V, default=True),
    _tv("vgg16", "vgg16-397923af.pth", 71.592, 527.796, layout=_V, default=True),
    _tv("vgg16_bn", "vgg16_bn-6c64b313.pth", 73.360, 527.866, layout=_V, default=True),
    _timm(
        "mobilenet_v1_100",
        "mobilenetv1_100.ra4_e3600_r224_in1k",
        75.4,
        layout="timm.mobilenetv1",
        norm=(INCEPTION_MEAN, INCEPTION_STD),
        differs="timm's MobileNet v1 uses ReLU6, ours the paper's ReLU: the same tensors, "
        "outputs equal while no activation exceeds 6",
    ),
    _timm(
        "mobilenet_v2_050",
        "mobilenetv2_050.lamb_in1k",
        65.9,
        layout="timm.mobilenetv2",
        url="https://github.com/rwightman/pytorch-image-models/releases/download/"
        "v0.1-weights/mobilenetv2_050-3d30d450.pth",
        sha256="3d30d450",
    ),
    _timm(
        "mobilenet_v2_100",
        "mobilenetv2_100.ra_in1k",
        72.9,
        layout="timm.mobilenetv2",
        url="https://github.com/rwightman/pytorch-image-models/releases/download/"
        "v0.1-weights/mobilenetv2_100_ra-b33bc2c4.pth",
        sha256="b33bc2c4",
        default=False,
    ),
    _timm(
        "mobilenet_v2_140",
        "mobilenetv2_140.ra_in1k",
        76.5,
        layout="timm.mobilenetv2",
        url="https://github.com/rwightman/pytorch-image-models/releases/download/"
        "v0.1-weights/mobilenetv2_140_ra-21a4e913.pth",
        sha256="21a4e913",
    ),
    *(
        _timm(
            f"efficientnet_lite{i}",
            f"tf_efficientnet_lite{i}.in1k",
            top1,
            layout="timm.efficientnet_lite",
            url="https://github.com/rwightman/pytorch-image-models/releases/download/"
            f"v0.1-weights/tf_efficientnet_lite{i}-{sha}.pth",
            sha256=sha,
            norm=(INCEPTION_MEAN, INCEPTION_STD),
            input_size=(3, size, size),
        )
        # Google's TF checkpoints as ported by timm; size is timm's eval resolution (lite3
        # and lite4 evaluate above the README's 280 / 300 px)
        for i, sha, top1, size in (
            (0, "0aa007d2", 74.8, 224),
            (1, "bde8b488", 76.6, 240),
            (2, "dcccb7df", 77.5, 260),
            (3, "b733e338", 79.8, 300),
            (4, "741542c3", 81.5, 380),
        )
    ),
    # Apple's MobileOne weights as timm republished them (train form: every branch); top-1
    # is Apple's (paper Table 9 / ml-mobileone README), evaluated on the fused model.
    *(
        _timm(
            f"mobileone_{variant}",
            f"mobileone_{variant}.apple_in1k",
            top1,
            layout="timm.mobileone",
            license="mobileone-license",
        )
        for variant, top1 in (("s0", 71.4), ("s1", 75.9), ("s2", 77.4), ("s3", 78.1), ("s4", 79.4))
    ),
    # Ross Wightman's MobileNetV4 trainings (timm's own recipes; Google published no weights).
    # top-1: the model cards' comparison table at the row's input size (train = eval size);
    # timm evaluates them at a larger test size too (256 for r224, 320 for r256).
    *(
        _timm(
            f"mobilenet_v4_conv_{size_name}",
            f"mobilenetv4_conv_{size_name}.{tag}",
            top1,
            layout="timm.mobilenetv4",
            input_size=(3, res, res),
            default=default,
        )
        for size_name, tag, top1, res, default in (
            ("small", "e2400_r224_in1k", 73.8, 224, True),
            ("small", "e1200_r224_in1k", 73.5, 224, False),
            ("medium", "e500_r256_in1k", 79.9, 256, True),
            ("medium", "e500_r224_in1k", 79.1, 224, False),
        )
    ),
    Checkpoint(
        model="se_resnet50",
        source="original",
        tag="in1k",
        url="https://github.com/rwightman/pytorch-image-models/releases/download/"
        "v0.1-cadene/se_resnet50-ce0d4300.pth",
        sha256="ce0d4300",
        size_bytes=None,
        license="apache-2.0",
        top1=77.6,
        input_size=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        layout="timm.legacy_senet",
        source_name="legacy_seresnet50",
        default=True,
        differs="the SENet authors' Caffe release (via Cadene, timm legacy_seresnet50) is "
        "ResNet v1 with SE like ours, but its stem max-pool is 3x3/2 ceil_mode without "
        "padding where ours pads by 1: same output size, windows shifted by one pixel",
    ),
)


def checkpoints(pattern: str | None = None) -> list[Checkpoint]:
    """Known checkpoints, optionally only models matching a shell-style pattern."""
    return [c for c in CHECKPOINTS if pattern is None or fnmatch.fnmatch(c.model, pattern)]


def models_with_weights() -> list[str]:
    return sorted({c.model for c in CHECKPOINTS})


def find_checkpoint(model: str, tag: str | bool = True) -> Checkpoint:
    """The checkpoint ``pretrained=tag`` means for ``model`` (True: the default one)."""
    rows = [c for c in CHECKPOINTS if c.model == model]
    if not rows:
        raise PocketvisionError(
            f"{model} has no published weights we know; models with some: "
            f"{', '.join(models_with_weights())} (or pass pretrained=FILE)"
        )
    for row in rows:
        if (tag is True and row.default) or row.tag == tag:
            return row
    raise PocketvisionError(
        f"unknown tag {tag!r} for {model}; its tags: {', '.join(r.tag for r in rows)}"
    )


def layouts_for(model: str) -> list[str]:
    """The key layouts a file for ``model`` may be in: its sources' and our own."""
    found = [c.layout for c in CHECKPOINTS if c.model == model]
    return list(dict.fromkeys([*found, "pocketvision"]))


def markdown_table(rows: list[Checkpoint] | None = None) -> str:
    """The README's weights table."""
    lines = [
        "| model | source | tag | top-1 | size | input | mean / std | licence | sha256 | url |",
        "|---|---|---|---:|---:|---|---|---|---|---|",
    ]
    for c in CHECKPOINTS if rows is None else rows:
        size = f"{c.size_bytes / _MIB:.1f} MiB" if c.size_bytes else "?"
        default = " (default)" if c.default else ""
        norm = "imagenet" if c.mean == IMAGENET_MEAN else f"{c.mean[0]} / {c.std[0]}"
        lines.append(
            f"| {c.model} | {c.source} ({c.source_name}) | {c.tag}{default} | {c.top1} | "
            f"{size} | {c.input_size[1]} px | {norm} | {c.license} | {c.sha256 or 'none published'} "
            f"| {c.url} |"
        )
    return "\n".join(lines)
