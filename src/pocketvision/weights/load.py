"""Reading a checkpoint file safely and loading it into a built model.

Loading never executes code: ``.safetensors`` through safetensors, anything else through
``torch.load(weights_only=True)``, whose restricted unpickler refuses any pickle that would
call a function. The file's keys go through the source's converter (see ``convert``), then
onto this model's own names, then each tensor is checked against the model's shape:

- the first conv's RGB filters are summed for ``in_chans=1`` (timm's rule; for other channel
  counts they are tiled and scaled by 3 / in_chans);
- the classifier stays fresh when ``num_classes`` differs from the file's;
- ``small_input=True`` keeps every other weight. Two families change a weight's shape there:
  ResNet / SE-ResNet's conv1 becomes 3x3 (the checkpoint's 7x7 is cropped to its central
  3x3) and VGG's first FC reads a 1x1 pool (its 25088 = 512 x 7 x 7 inputs are summed over
  the 49 positions, exact when the last conv map is 1x1, i.e. 28-32 px inputs).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pocketvision.errors import PocketvisionError
from pocketvision.weights.convert import LAYOUTS

Shape = tuple[int, ...]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .pth / .pt / .bin / .safetensors file; one-line errors otherwise."""
    if not path.is_file():
        raise PocketvisionError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as err:
            raise PocketvisionError(
                f"{path}: truncated or not a safetensors file ({err})"
            ) from None
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:120]
        raise PocketvisionError(
            f"{path}: refused: the pickle would run code or load non-tensor objects ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise PocketvisionError(f"{path}: truncated or not a checkpoint ({first})") from None
    return _unwrap(path, obj)


def _unwrap(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    # a bare state dict, or one inside {"state_dict": ...} / {"model": ...}
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise PocketvisionError(f"{path}: holds no state dict of tensors")
    tensors = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(obj):
        raise PocketvisionError(f"{path}: holds entries that are not tensors")
    return tensors


@dataclass(frozen=True)
class Target:
    """What the loader needs to know about the model it loads into."""

    name: str
    first_conv: str  # module path, e.g. "conv1.0"
    classifier: str  # module path, e.g. "head.fc"
    canonical: Callable[[], nn.Module]  # the same model with small_input=False (meta device)


def canonical_to_model(canonical: nn.Module, model: nn.Module) -> dict[str, str]:
    """Our canonical (small_input=False) names onto this model's: the same modules in order.

    small_input drops a pool in SqueezeNet and VGG, which renumbers ``features``; both
    builds hold the same parameterised modules in the same order, checked by type."""

    def owners(m: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(n, mod) for n, mod in m.named_modules()
                if list(mod.parameters(recurse=False)) or list(mod.buffers(recurse=False))]  # fmt: skip

    a, b = owners(canonical), owners(model)
    if [type(m) for _, m in a] != [type(m) for _, m in b]:
        raise PocketvisionError("small_input build differs from the canonical one")  # a bug
    out = {}
    for (na, ma), (nb, _) in zip(a, b, strict=True):
        for key in ma.state_dict():
            out[f"{na}.{key}"] = f"{nb}.{key}"
    return out


def plan(
    source: Mapping[str, Shape],
    model_shapes: Mapping[str, Shape],
    target: Target,
    layouts: list[str],
    rename: Mapping[str, str],
) -> tuple[str, dict[str, tuple[str, str]]]:
    """The first layout that fits: (layout, {our key: (source key, how)}), how one of copy,
    in_chans, crop, crop+in_chans, fold, skip; else the first layout's reason, in one line."""
    errors = []
    for layout in layouts:
        try:
            ours = _fit(source, model_shapes, layout, rename)
        except (PocketvisionError, ValueError, KeyError) as err:  # not this layout
            errors.append(str(err))
            continue
        steps = {}
        for key, src in ours.items():
            steps[key] = (src, _how(key, tuple(source[src]), tuple(model_shapes[key]), target))
        return layout, steps
    raise PocketvisionError(f"not a {target.name} checkpoint: {errors[0]}")


def _fit(
    source: Mapping[str, Shape],
    model_shapes: Mapping[str, Shape],
    layout: str,
    rename: Mapping[str, str],
) -> dict[str, str]:
    ours = {rename.get(v, v): k for k, v in LAYOUTS[layout](list(source)).items()}
    counters = {k for k in model_shapes if k.endswith("num_batches_tracked")}
    missing = sorted(set(model_shapes) - set(ours) - counters)
    if missing:
        raise PocketvisionError(f"the file lacks {missing[0]!r} ({layout} layout)")
    extra = sorted(set(ours) - set(model_shapes))
    if extra:
        raise PocketvisionError(f"tensor {ours[extra[0]]!r} has no place in it ({layout} layout)")
    return ours


def _how(key: str, have: Shape, want: Shape, target: Target) -> str:
    if have == want:
        return "copy"
    module = key.rsplit(".", 1)[0]
    if (module == target.classifier and have[1:] == want[1:]) or (
        module == target.classifier and len(have) == 1
    ):
        return "skip"  # a fresh head for another num_classes
    # first_conv names the conv, or the block of convs that read the input (MobileOne's stem)
    reads_input = module == target.first_conv or module.startswith(f"{target.first_conv}.")
    if reads_input and key.endswith("weight") and len(have) == 4:
        if have[2:] != want[2:] and want[2] == 3 and have[2] == 7 and have[0] == want[0]:
            return "crop" if have[1] == want[1] else "crop+in_chans"
        if have[0] == want[0] and have[2:] == want[2:]:
            return "in_chans"
    if len(have) == 2 and len(want) == 2 and have[0] == want[0] and have[1] == want[1] * 49:
        return "fold"
    raise PocketvisionError(
        f"{target.name}: tensor {key!r} has shape {list(have)} in the file, the model expects {list(want)}"
    )


def adapt_in_chans(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """timm's rule: sum RGB filters for 1 channel; else tile them, scaled by 3 / in_chans."""
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = -(-in_chans // weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def _convert(tensor: torch.Tensor, how: str, want: Shape) -> torch.Tensor:
    if "crop" in how:
        c = (tensor.shape[2] - 3) // 2
        tensor = tensor[:, :, c : c + 3, c : c + 3]
    if "in_chans" in how:
        tensor = adapt_in_chans(tensor, want[1])
    if how == "fold":  # (out, C * 49) read as (out, C, 7, 7), summed over the 49 positions
        tensor = tensor.reshape(want[0], want[1], -1).sum(-1)
    return tensor


def load_into(
    model: nn.Module, state: Mapping[str, torch.Tensor], target: Target, layouts: list[str]
) -> str:
    """Load ``state`` into ``model`` (see the module docstring); returns the layout used."""
    own = model.state_dict()
    with torch.device("meta"):
        canonical = target.canonical()
    rename = canonical_to_model(canonical, model)
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    layout, steps = plan(
        {k: tuple(v.shape) for k, v in state.items()}, shapes, target, layouts, rename
    )
    new = {}
    for key, (src, how) in steps.items():
        if how != "skip":
            new[key] = _convert(state[src], how, shapes[key]).to(own[key].dtype)
    model.load_state_dict(new, strict=False)
    return layout
