"""What each route of ``pocketvision serve`` answers, as pydantic models.

They make the OpenAPI schema at /openapi.json say exactly what a client receives, error
statuses included, so a client generator or a schema-driven fuzzer (tests/web/test_api_fuzz.py
runs schemathesis against it) can hold the server to it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Every error the app raises itself (404, 413, 415): one line saying what went wrong."""

    detail: str = Field(description="the reason, naming the upload or file concerned")


class Health(BaseModel):
    status: str
    model: str
    run: str


class Prediction(BaseModel):
    label: str
    index: int
    probability: float


class InputStats(BaseModel):
    shape: list[int]
    min: float
    max: float
    mean: float


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    latency_ms: float
    model_ms: float
    model_input: str = Field(description="the model's view: a data:image/png;base64 URL")
    input_stats: InputStats


class ConvolveResponse(BaseModel):
    kernel: str
    weights: list[list[float]]
    meaning: str
    is_edge: bool
    stride: int
    padding: str
    pool: bool
    input_shape: list[int]
    response_shape: list[int]
    output_shape: list[int]
    response_min: float
    response_max: float
    input: str
    output: str


class Kernel(BaseModel):
    name: str
    weights: list[list[float]]
    meaning: str
    is_edge: bool


class Kernels(BaseModel):
    kernels: list[Kernel]
    max_side: int


class Published(BaseModel):
    params: int
    macs: int
    input_size: list[int]
    num_classes: int
    top1: float | None


class RunFiles(BaseModel):
    checkpoint_bytes: int | None
    onnx_bytes: int | None


class ModelCard(BaseModel):
    """The model card (:func:`pocketvision.web.served.model_card`) plus the page's runtime."""

    run: str
    model: str
    kwargs: dict[str, Any]
    family: str
    paper: str
    authors: str
    year: int
    arxiv: str
    table: str
    published: Published
    params: int
    macs: int
    input_size: list[int]
    color_mode: str
    mean: list[float]
    std: list[float]
    resize: str
    pillow_version: str
    labels: list[str]
    files: RunFiles
    onnx: bool
    onnx_error: str | None
    training: dict[str, Any] = Field(description="from summary.json; a key is null when absent")
    evaluation: dict[str, Any] | None = Field(description="from metrics.json, when evaluated")
    confusion_png: bool
    browser_runtime: bool = Field(description="onnxruntime-web is served under /static/vendor/")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses answered with a :class:`Problem`."""
    meaning = {
        400: "the multipart body could not be parsed",
        404: "the run has no such file",
        413: "the request body is over the upload limit (refused before it is parsed)",
        415: "the upload is not a usable image (not an image, truncated, empty or a bomb)",
    }
    return {status: {"model": Problem, "description": meaning[status]} for status in statuses}
