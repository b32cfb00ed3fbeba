"""The ONNX file the browser runs with onnxruntime-web, exported once and cached in the run.

``pocketvision serve`` calls :func:`ensure_onnx` at start-up: it reuses RUN/web/model.onnx
when that file is newer than the checkpoint, and otherwise exports the model again and checks
the file in onnxruntime against PyTorch before the page may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from pocketvision.errors import PocketvisionError
from pocketvision.rundir import BEST, LoadedRun

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: Largest |PyTorch - onnxruntime| logit difference accepted for the cached file.
TOLERANCE = 1e-3


def export_onnx(run: LoadedRun, path: Path) -> None:
    """Export ``run.model`` with torch.onnx's dynamo exporter: opset 18, dynamic batch.

    Labels and preprocessing go into the file's metadata, so the file alone says how to feed
    it. Written to a temp file first, so a crash never leaves a half-written model behind.
    """
    import onnx

    c, h, w = run.preprocessing.input_size
    example = torch.zeros(2, c, h, w)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        program = torch.onnx.export(
            run.model,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model.", suffix=".onnx")
    os.close(fd)
    try:
        program.save(tmp, external_data=False)
        model = onnx.load(tmp)
        prep = run.preprocessing
        meta = {
            "labels": json.dumps(run.labels),
            "mean": json.dumps(list(prep.mean)),
            "std": json.dumps(list(prep.std)),
            "input_size": json.dumps(list(prep.input_size)),
            "color_mode": prep.color_mode,
            "model": run.spec.name,
            "producer": "pocketvision serve",
        }
        del model.metadata_props[:]
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the export is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def max_difference(run: LoadedRun, path: Path, seed: int = 0) -> float:
    """Largest logit difference between onnxruntime and PyTorch on 4 random inputs."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).standard_normal((4, *run.preprocessing.input_size))
    x = x.astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    with torch.no_grad():
        want = run.model(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


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
        if not fresh:
            export_onnx(run, path)
        diff = max_difference(run, path)
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
