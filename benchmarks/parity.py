"""Proof that every row of the weights table loads function-exact (``make parity``).

Two virtualenvs, two halves:

1. ``--reference DIR`` runs in the reference venv (torchvision + timm; PARITY_VENV): for every
   row it builds the source's own model with random weights (BN statistics randomised too),
   saves its state dict in the source's file format, runs it on a fixed random 224 px batch
   and saves input and output, and writes the key manifest of each layout into
   src/pocketvision/weights/manifests/.
2. Without ``--reference`` (our venv): each file goes through
   ``create_model(name, pretrained=FILE)`` and the outputs are compared; results go to
   benchmarks/results/parity.json. It fails unless every row is within 1e-5.

``--only PATTERN`` (shell-style, on our model names) runs just those rows in both halves and
replaces only their rows in parity.json. Rows whose checkpoint is evaluated at another size than
224 px (``Checkpoint.input_size``) are compared at that size too (``max_abs_diff_at_SIZE``,
within the same tolerance). Re-parameterisable sources (MobileOne) get BN
statistics measured on the input (see ``_calibrate``), and their inference form (what export
and profile run, after ``reparameterize()``) is checked too: against the trained form in
float64 (asserted, the fold is exact arithmetic) and against the source in float32
(``max_abs_diff_deployed``, recorded: float32 rounding of either form).

Rows whose source architecture differs from ours (``Checkpoint.differs``) are compared twice:
against the source patched to our architecture (must be exact: proves the converter) and
unpatched (the measured difference is recorded, not asserted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MANIFESTS = ROOT / "src" / "pocketvision" / "weights" / "manifests"
TOL = 1e-5

if TYPE_CHECKING:
    from pocketvision.weights.table import Checkpoint


def _randomise(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _calibrate(model: torch.nn.Module, x: torch.Tensor) -> None:
    """BN running statistics from ``x`` itself (affine parameters stay random).

    Re-parameterisable nets (MobileOne) sum k + 2 BN'd branches per block with no residual
    to renormalise: with ``_randomise``'s statistics their logits reach ~1e16, where a 1e-5
    relative check says little. Statistics measured on the input keep activations O(1).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative: exactly this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _reference_model(row: dict) -> torch.nn.Module:
    if row["source"] == "torchvision":
        import torchvision

        return torchvision.models.get_model(row["source_name"], weights=None)
    import timm

    return timm.create_model(row["source_name"], pretrained=False)


def _to_ours(model: torch.nn.Module, layout: str) -> torch.nn.Module:
    """The source model patched to our architecture where the table says they differ."""
    if layout == "timm.mobilenetv1":  # ReLU6 -> ReLU
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if isinstance(child, torch.nn.ReLU6):
                    setattr(parent, name, torch.nn.ReLU(inplace=True))
    if layout == "timm.legacy_senet":  # ceil_mode pool -> padded pool
        model.pool0 = torch.nn.MaxPool2d(3, 2, padding=1)
    return model


def _rows(only: str | None) -> list[Checkpoint]:
    from pocketvision.weights.table import checkpoints

    return checkpoints(only)


def _input(out: Path, size: int) -> torch.Tensor:
    """The fixed random batch at ``size`` px (saved beside the 224 px one)."""
    path = out / f"input_{size}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    torch.save(x, path)
    return x


def reference(out: Path, only: str | None = None) -> None:

    out.mkdir(parents=True, exist_ok=True)
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    torch.save(x, out / "input.pt")
    import timm
    import torchvision

    for i, ckpt in enumerate(_rows(only)):
        row = {**ckpt.row(), "source_name": ckpt.source_name, "layout": ckpt.layout}
        torch.manual_seed(i)
        model = _reference_model(row).eval()
        _randomise(model)
        if any(hasattr(m, "reparameterize") for m in model.modules()):
            _calibrate(model, x)
        state = model.state_dict()
        suffix = Path(ckpt.url).suffix
        path = out / f"{ckpt.model}.{ckpt.tag}{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            torch.save(state, path)
        with torch.no_grad():
            outputs = {"source": model(x)}
            size = ckpt.input_size[1]
            if size != x.shape[-1]:  # also at the checkpoint's own resolution
                outputs[f"source_{size}"] = model(_input(out, size))
            if ckpt.differs:
                outputs["ours"] = _to_ours(model, ckpt.layout)(x)
        torch.save(outputs, out / f"{ckpt.model}.{ckpt.tag}.out.pt")
        manifest = {
            "layout": ckpt.layout,
            "model": ckpt.model,
            "source_name": ckpt.source_name,
            "reference": f"torchvision {torchvision.__version__}, timm {timm.__version__}, "
            f"torch {torch.__version__}",
            "keys": [[k, list(v.shape)] for k, v in state.items()],
        }
        name = f"{ckpt.layout}.{ckpt.source_name}.json"
        (MANIFESTS / name).write_text(json.dumps(manifest, indent=0) + "\n")
        print(f"reference {ckpt.model} {ckpt.tag}: {path.name}", flush=True)


def compare(out: Path, only: str | None = None) -> int:
    from pocketvision import create_model
    from pocketvision.environment import environment
    from pocketvision.layers import deploy_form

    x = torch.load(out / "input.pt", weights_only=True)
    results, worst = [], 0.0
    for ckpt in _rows(only):
        start = time.perf_counter()
        path = out / f"{ckpt.model}.{ckpt.tag}{Path(ckpt.url).suffix}"
        model = create_model(ckpt.model, pretrained=str(path)).eval()
        with torch.no_grad():
            y = model(x)
        ref = torch.load(out / f"{ckpt.model}.{ckpt.tag}.out.pt", weights_only=True)
        exact = ref["ours"] if "ours" in ref else ref["source"]
        diff = (y - exact).abs().max().item()
        scale = exact.abs().max().item()
        rel = diff / max(1.0, scale)
        size = ckpt.input_size[1]
        if f"source_{size}" in ref:  # the checkpoint's own resolution, asserted as well
            with torch.no_grad():
                y_size = model(torch.load(out / f"input_{size}.pt", weights_only=True))
            at_size = (y_size - ref[f"source_{size}"]).abs().max().item()
            rel = max(rel, at_size / max(1.0, ref[f"source_{size}"].abs().max().item()))
        deployed = deploy_form(model)
        if deployed is not model:
            # the fold is exact arithmetic: asserted in float64, where rounding cannot hide it;
            # in float32 it differs by what either form's rounding does (recorded)
            with torch.no_grad():
                fused = (deployed(x) - exact).abs().max().item()
                wide = model.double()
                fused64 = (deploy_form(wide)(x.double()) - wide(x.double())).abs().max().item()
            rel = max(rel, fused64 / max(1.0, scale))
        worst = max(worst, rel)
        result = {
            "model": ckpt.model, "source": ckpt.source, "tag": ckpt.tag, "layout": ckpt.layout,
            "max_abs_diff": diff, "max_abs_output": scale, "rel_diff": rel, "ok": rel <= TOL,
            "seconds": round(time.perf_counter() - start, 2),
        }  # fmt: skip
        if f"source_{size}" in ref:
            result[f"max_abs_diff_at_{size}"] = at_size
        if deployed is not model:
            result["max_abs_diff_deployed"] = fused
            result["max_abs_diff_deployed_vs_trained_fp64"] = fused64
        if "ours" in ref:
            result["differs"] = ckpt.differs
            result["max_abs_diff_vs_unpatched_source"] = (y - ref["source"]).abs().max().item()
        results.append(result)
        print(json.dumps(result), flush=True)
    report = {
        "what": "create_model(name, pretrained=FILE) vs the source's own model, random weights, "
        "random 2x3x224x224 input; ok when max|diff| / max(1, max|output|) <= 1e-5",
        "tolerance": TOL,
        "environment": environment(),
        "rows": results,
        "all_ok": all(r["ok"] for r in results),
    }
    dest = ROOT / "benchmarks" / "results" / "parity.json"
    if only is not None and dest.exists():  # keep the other rows of the last full run
        ran = {(r["model"], r["tag"]) for r in results}
        kept = [
            r for r in json.loads(dest.read_text())["rows"] if (r["model"], r["tag"]) not in ran
        ]
        report["rows"] = kept + results
        report["all_ok"] = all(r["ok"] for r in report["rows"])
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{sum(r['ok'] for r in results)}/{len(results)} rows exact; worst {worst:.2e} -> {dest}")
    return 0 if report["all_ok"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="the reference venv's half")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pocketvision-parity"))
    parser.add_argument("--only", help="shell-style pattern of our model names, e.g. 'mobileone*'")
    args = parser.parse_args()
    if args.reference:
        reference(args.dir, args.only)
        return 0
    return compare(args.dir, args.only)


if __name__ == "__main__":
    sys.exit(main())
