"""Function-exactness of the post-2018 families against their reference implementations.

Run with a Python that has torchvision (the reference venv), with our sources on the path:

    PYTHONPATH=src /work/refvenv/bin/python benchmarks/reference_parity.py

For each pair it builds the reference with random weights (and randomised BN statistics),
renames its state dict into ours with the family's key-mapping function, loads it strictly,
and compares eval-mode outputs on a random 224 px batch. Writes
benchmarks/results/reference_parity.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import pocketvision as pv
from pocketvision.environment import environment
from pocketvision.files import write_json
from pocketvision.models.mobilenet_v3 import torchvision_key


def _randomise_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _mobilenet_v3_pairs() -> list[tuple[str, torch.nn.Module]]:
    import torchvision.models as tvm

    return [
        ("mobilenet_v3_large_100", tvm.mobilenet_v3_large()),
        ("mobilenet_v3_large_075", tvm.mobilenet_v3_large(width_mult=0.75)),
        ("mobilenet_v3_small_100", tvm.mobilenet_v3_small()),
        ("mobilenet_v3_small_075", tvm.mobilenet_v3_small(width_mult=0.75)),
    ]


def check(name: str, reference: torch.nn.Module) -> dict[str, object]:
    """Load ``reference``'s random weights into ``name`` and compare outputs."""
    torch.manual_seed(0)
    _randomise_bn(reference)
    reference.eval()
    ours = pv.create_model(name).eval()
    num_blocks = len(ours.blocks)
    state = {torchvision_key(k, num_blocks): v for k, v in reference.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    ref_params = sum(p.numel() for p in reference.parameters())
    return {
        "name": name,
        "reference_params": ref_params,
        "our_params": sum(p.numel() for p in ours.parameters()),
        "max_abs_diff": diff,
        "ok": diff < 1e-5 and ref_params == pv.model_info(name).params,
    }


def main() -> int:
    import torchvision

    results = [check(name, ref) for name, ref in _mobilenet_v3_pairs()]
    record = {
        "environment": environment(),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "results": results,
    }
    out = Path(__file__).parent / "results" / "reference_parity.json"
    write_json(out, record)
    for r in results:
        print(r)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
