"""The ONNX file the browser runs with onnxruntime-web, exported once and cached in the run.

``pocketvision serve`` calls :func:`ensure_onnx` at start-up: it reuses RUN/web/model.onnx
when that file is newer than the checkpoint, and otherwise exports the model again and checks
the file in onnxruntime against PyTorch before the page may use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from pocketvision.console import captured
from pocketvision.errors import PocketvisionError
from pocketvision.rundir import BEST, LoadedRun

#: Largest |PyTorch - onnxruntime| logit difference accepted for the cached file.
TOLERANCE = 1e-3


def export_onnx(run: LoadedRun, path: Path) -> None:
    """Export with pocketvision.export's ONNX core (the file ``pocketvision export`` makes).

    torch.onnx's dynamo exporter, opset 18, dynamic batch, labels and preprocessing in the
    metadata. Written to a temp file first, so a crash never leaves a half-written model.
    """
    from pocketvision.export.onnx_export import onnx_metadata, to_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, *run.preprocessing.input_size)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model.", suffix=".onnx")
    os.close(fd)
    try:
        to_onnx(
            run.model,
            example,
            tmp,
            metadata=onnx_metadata(run.spec.name, run.labels, run.preprocessing),
        )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the export is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def max_difference(run: LoadedRun, path: Path, seed: int = 0) -> float:
    """Largest logit difference between onnxruntime and PyTorch on 4 random inputs."""
    from pocketvision.export.agreement import agreement
    from pocketvision.export.onnx_export import run_session, session

    x = np.random.default_rng(seed).standard_normal((4, *run.preprocessing.input_size))
    x = x.astype(np.float32)
    got = run_session(session(path), x)
    with torch.no_grad():
        want = run.model(torch.from_numpy(x)).numpy()
    return agreement(want, got).max_abs_diff


def ensure_onnx(run: LoadedRun, path: Path) -> Path:
    """The run's ONNX file at ``path``, exported now unless a fresh one is already there.

    Raises:
        PocketvisionError: the model cannot be exported, the file disagrees with PyTorch, or
            the run directory is not writable.
    """
    checkpoint = run.path / BEST
    fresh = (
        path.is_file()
        and checkpoint.is_file()
        and path.stat().st_mtime >= checkpoint.stat().st_mtime
    )
    try:
        with captured():  # the exporter's and onnxruntime's own warnings (see console)
            if not fresh:
                export_onnx(run, path)
            diff = max_difference(run, path)
    except PocketvisionError:
        raise  # a write that failed (write_atomic names the file), already one line
    except OSError as err:
        raise PocketvisionError(f"{path}: cannot write the ONNX export ({err})") from None
    except Exception as err:  # exporter failures come as many types; name the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PocketvisionError(f"{run.spec.name}: ONNX export failed ({first})") from None
    if diff > TOLERANCE:
        path.unlink(missing_ok=True)
        raise PocketvisionError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.2g} (> {TOLERANCE}); removed"
        )
    return path
