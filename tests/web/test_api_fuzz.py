"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis) against `pocketvision serve`.

The server is the real `pocketvision serve` process of tests/web/conftest.py, serving a trained
LeNet-5 run on 127.0.0.1. Every operation in /openapi.json gets schema-valid (positive) and
schema-breaking (negative) requests; about a third of the positive uploads are real encoded
images (PNG, JPEG, GIF, BMP, WebP, TIFF in several modes, some cut short), so the 200 answers
are checked too, not only the refusals. schemathesis's checks hold every answer to the schema:
no 5xx, a declared status code, content type and body schema, positive data accepted (2xx, or
413/415: a schema cannot say "a decodable image"), negative data refused with a 4xx. Each
request has a timeout, so a hang fails the test instead of stalling it.

Cases are derandomized (fixed by the schema and hypothesis' seed): the same cases every run.
POCKETVISION_API_FUZZ_EXAMPLES raises the examples per operation and mode for a long run
(`make api-fuzz`). The second test runs schemathesis's own CLI (its coverage phase adds
boundary values and unsupported methods) against the same server.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image
from web_support import ARTIFACTS, Server

schemathesis = pytest.importorskip("schemathesis")

pytestmark = [pytest.mark.xdist_group("web"), pytest.mark.slow]

#: Examples per operation and generation mode (positive, negative).
EXAMPLES = int(os.environ.get("POCKETVISION_API_FUZZ_EXAMPLES", "300"))
#: Seconds one request may take before it counts as a hang.
REQUEST_TIMEOUT = 20
#: A schema-valid upload may still not be an image: 413 and 415 are the right answers then.
CONFIG = {
    "seed": 15,
    "request-timeout": REQUEST_TIMEOUT,
    "generation": {"deterministic": True},
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "413", "415"]}},
}
FORMATS = {"PNG": ("L", "RGB", "RGBA", "P", "I;16", "1"), "JPEG": ("L", "RGB", "CMYK")}
FORMATS |= {"GIF": ("L", "P"), "BMP": ("RGB", "1"), "WEBP": ("RGB", "RGBA"), "TIFF": ("L", "RGB")}


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    """An encoded image of 1-64 px a side in a random format and mode, sometimes cut short."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data) - 1)))
    return data if cut is None else data[:cut]


def fuzz(operation: object, mode: str, counts: Counter[str]) -> str | None:
    """Run EXAMPLES cases of one operation in one mode; the failure's text, or None."""
    positive = mode == "positive"
    has_file = any("file" in body.form_properties for body in operation.body)  # type: ignore[attr-defined]
    images = st.one_of(st.none(), st.none(), encoded_images())
    uploads = images if positive and has_file else st.none()
    strategy = operation.as_strategy(schemathesis.GenerationMode(mode))  # type: ignore[attr-defined]

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=strategy, upload=uploads)
    def run(case: schemathesis.Case, upload: bytes | None) -> None:
        excluded = []
        if upload is not None and isinstance(case.body, dict):
            case.body = {**case.body, "file": upload}
            counts[f"{case.operation.label} image"] += 1
            # bytes in place of the generated string look schema-breaking to schemathesis (not
            # a JSON string), but they are the real thing: every other check still applies
            excluded = schemathesis.checks.CHECKS.get_by_names(["negative_data_rejection"])
        counts[case.operation.label] += 1
        case.call_and_validate(timeout=REQUEST_TIMEOUT, excluded_checks=excluded)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert not positive  # an operation without parameters has no negative cases
    except Exception as err:  # every failure is collected and reported below
        return f"{operation.label} ({mode}): {type(err).__name__}: {err}"  # type: ignore[attr-defined]
    return None


def test_every_operation_fuzzed_from_the_openapi_schema(server: Server) -> None:
    schema = schemathesis.openapi.from_url(
        server.url + "/openapi.json", config=schemathesis.Config.from_dict(CONFIG)
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /api/predict", "POST /api/convolve", "GET /api/model"} <= labels
    counts: Counter[str] = Counter()
    failures = [
        failure
        for op in operations
        for mode in ("positive", "negative")
        if (failure := fuzz(op, mode, counts)) is not None
    ]
    total = sum(n for key, n in counts.items() if not key.endswith(" image"))
    report = {"examples_per_mode": EXAMPLES, "cases": total, "per_operation": dict(counts)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "api_fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nAPI fuzz: {json.dumps(report)}")
    assert not failures, "\n\n".join(failures)
    assert set(counts) >= labels  # every operation was called
    assert total >= min(1000, 3 * EXAMPLES), report
    # the image uploads reached the model: predictions were checked against the schema too
    assert counts["POST /api/predict image"] >= EXAMPLES // 10, report


def test_schemathesis_cli_all_phases_and_checks(server: Server, tmp_path: Path) -> None:
    """schemathesis's own runner: examples, coverage (boundaries, wrong methods) and fuzzing."""
    config = tmp_path / "schemathesis.toml"
    lines = [f"seed = {CONFIG['seed']}", f"request-timeout = {REQUEST_TIMEOUT}"]
    lines += ["[generation]", "deterministic = true", "max-examples = 50"]
    lines += ["[checks.positive_data_acceptance]", 'expected-statuses = ["2xx", "413", "415"]']
    config.write_text("\n".join(lines) + "\n")
    cli = Path(sys.executable).parent / "schemathesis"
    command = [str(cli), "--config-file", str(config), "run", server.url + "/openapi.json"]
    command += ["--checks", "all", "--workers", "1", "--no-color"]
    # run in tmp_path: the CLI writes its cache (.schemathesis/) into the working directory
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    generated = re.search(r"(\d+) generated", result.stdout)
    print(f"\nschemathesis CLI: {generated.group(0) if generated else '?'}")
    assert result.returncode == 0, result.stdout[-6000:]
    assert generated and int(generated.group(1)) >= 100, result.stdout[-3000:]
