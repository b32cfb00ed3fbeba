"""Fixtures shared by the export tests (helpers live in export_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from export_support import make_run


@pytest.fixture(scope="session")
def lenet_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """lenet5 exported to every format at fp32, with app code (shared by several tests)."""
    from pocketvision.export import export_run

    root = tmp_path_factory.mktemp("lenet_export")
    run = make_run(root, "lenet5")
    results = export_run(run, quantize="none", verify_images=500, isolate=False)
    return run / "export", results
