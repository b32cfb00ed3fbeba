"""The FastAPI app of ``pocketvision serve``: a JSON API and one page.

Routes (the OpenAPI schema is at /openapi.json)::

    GET  /                   the page
    GET  /static/NAME        the page's files (a fixed list made at start-up)
    GET  /api/health         {"status": "ok", "model": ...}
    GET  /api/model          the model card (architecture, paper, params, MACs, accuracy, ...)
    GET  /api/model.onnx     the run's ONNX export, for onnxruntime-web in the browser
    GET  /api/confusion.png  the run's confusion matrix, when `pocketvision evaluate` made one
    GET  /api/kernels        the playground's named 3x3 kernels
    POST /api/predict        multipart field `file` -> top-k labels, latency, the model's view
    POST /api/convolve       multipart `file`, `kernel`, `stride`, `padding`, `pool` -> images

Safety: request bodies over the upload limit get 413 as they stream in, and slow clients meet
a deadline (:mod:`pocketvision.web.limits`); files that are not images (or are truncated, or
decompression bombs) get 415 with the reason; decoding and inference run in worker threads (at
most ``workers`` at a time, and at most twice that many uploads held in memory), so the event
loop keeps answering; and no request path is ever joined onto a folder: static files are looked up in a
dict of the files that existed at start-up, and the run's files are fixed names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.datastructures import MutableHeaders

from pocketvision.preprocess import BadImageError
from pocketvision.web.api_models import (
    ConvolveResponse,
    Health,
    Kernels,
    ModelCard,
    PredictResponse,
    problems,
)
from pocketvision.web.limits import (
    BODY_OVERHEAD,
    MAX_UPLOAD_BYTES,
    REQUEST_TIMEOUT,
    ASGIApp,
    BodyLimit,
    Message,
    Receive,
    Scope,
    Send,
)
from pocketvision.web.playground import (
    KERNEL_PATTERN,
    MAX_SIDE,
    STRIDES,
    Padding,
    convolve,
    kernel_list,
    playground_image,
    resolve_kernel,
)
from pocketvision.web.served import CONFUSION_FILE, ServedModel

STATIC_DIR = Path(__file__).parent / "static"
# The 200 bodies of the two file routes, for the OpenAPI schema.
ONNX_CONTENT = {"content": {"application/octet-stream": {}}, "description": "the ONNX file"}
PNG_CONTENT = {"content": {"image/png": {}}, "description": "the confusion matrix"}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# Everything the page loads comes from this server; 'wasm-unsafe-eval' lets onnxruntime-web
# compile its WebAssembly, and data:/blob: images are the model's view and the playground.
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """ASGI middleware: the CSP and nosniff headers on every response that has none.

    Plain ASGI rather than ``@app.middleware("http")``: that one runs the app in a task group,
    so an HTTPException raised while the body streams in (BodyLimit's 413 and 408) would reach
    FastAPI wrapped in an ExceptionGroup and come out as 400.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def static_files(folder: Path = STATIC_DIR) -> dict[str, Path]:
    """Every file under ``folder`` by its relative POSIX name: the only files a URL can reach."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


async def read_upload(file: UploadFile) -> bytes:
    """The uploaded file's bytes; 413 past the limit, 415 when empty."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"upload is over the {MAX_UPLOAD_BYTES // 2**20} MB limit")
    if not data:
        raise HTTPException(415, f"{file.filename or 'upload'}: empty file (0 bytes)")
    return data


def unsupported(err: BadImageError, filename: str | None) -> HTTPException:
    """415 naming the upload and why it is not a usable image."""
    reason = str(err).removeprefix("<bytes>: ")
    return HTTPException(415, f"{filename or 'upload'}: {reason}")


def invalid(field: str, err: Exception, value: Any) -> RequestValidationError:
    """422 for a form field the route itself refuses, in the body FastAPI's own validation
    errors have, so one OpenAPI schema (HTTPValidationError) describes every 422."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": str(err), "input": value}]
    )


def create_app(
    served: ServedModel,
    *,
    workers: int | None = None,
    timeout: float = REQUEST_TIMEOUT,
    cors: Sequence[str] = (),
) -> FastAPI:
    """The app serving one loaded run.

    Args:
        served: From :func:`pocketvision.web.served.load_served`.
        workers: Decode/inference jobs running at once (in threads); None: the CPU count.
        timeout: Seconds a request's body may take to arrive (then 408).
        cors: Origins (``https://app.example``) whose pages may call the API from a browser;
            none by default, so no other site's script can read the answers.
    """
    static = static_files()
    # No /docs or /redoc: FastAPI's Swagger page loads its scripts from a CDN.
    app = FastAPI(
        title="pocketvision serve",
        description=f"{served.card['model']} from run {served.card['run']}",
        docs_url=None,
        redoc_url=None,
    )
    _add_static_routes(app, static)
    _add_run_routes(app, served, static)
    _add_upload_routes(app, served, _Workers(workers or os.cpu_count() or 1))
    app.add_middleware(BodyLimit, max_bytes=MAX_UPLOAD_BYTES + BODY_OVERHEAD, timeout=timeout)
    if cors:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"])
    app.add_middleware(SecurityHeaders)  # outermost: its headers go on BodyLimit's answers too
    return app


class _Workers:
    """Where uploads are decoded and run: a bounded thread pool, and a cap on bodies in memory."""

    def __init__(self, workers: int) -> None:
        self.limiter = anyio.CapacityLimiter(workers)
        # uploads read into memory at once; the others wait in the multipart parser's spool files
        self.in_memory = anyio.Semaphore(2 * workers)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # decoding and the forward pass release the GIL: the loop keeps serving meanwhile
        call = functools.partial(fn, *args)
        return await anyio.to_thread.run_sync(call, limiter=self.limiter)


def _add_static_routes(app: FastAPI, static: dict[str, Path]) -> None:
    """The page and its files, from the packaged static folder only (no listing, no paths)."""

    def static_response(name: str) -> FileResponse:
        path = static.get(name)
        if path is None:
            raise HTTPException(404, f"no static file {name!r}")
        media = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        cache = "public, max-age=86400" if name.startswith("vendor/") else "no-cache"
        return FileResponse(path, media_type=media, headers={"Cache-Control": cache})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return static_response("index.html")

    @app.get("/static/{name:path}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        return static_response(name)


def _add_run_routes(app: FastAPI, served: ServedModel, static: dict[str, Path]) -> None:
    """What the run is: health, model card, its ONNX file, its confusion matrix, the kernels."""
    card = served.card

    @app.get("/api/health", response_model=Health)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": card["model"], "run": card["run"]}

    @app.get("/api/model", response_model=ModelCard)
    async def model() -> dict[str, Any]:
        return {**card, "browser_runtime": "vendor/ort.wasm.min.js" in static}

    @app.get(
        "/api/model.onnx",
        response_class=FileResponse,
        responses={200: ONNX_CONTENT, **problems(404)},
    )
    async def model_onnx() -> FileResponse:
        if served.onnx_path is None:
            raise HTTPException(404, served.onnx_error or "no ONNX export")
        return FileResponse(served.onnx_path, media_type="application/octet-stream")

    @app.get(
        "/api/confusion.png",
        response_class=FileResponse,
        responses={200: PNG_CONTENT, **problems(404)},
    )
    async def confusion() -> FileResponse:
        path = served.path / CONFUSION_FILE
        if not path.is_file():
            raise HTTPException(404, f"no {CONFUSION_FILE}; run `pocketvision evaluate RUN`")
        return FileResponse(path, media_type="image/png")

    @app.get("/api/kernels", response_model=Kernels)
    async def kernels() -> dict[str, Any]:
        return {"kernels": kernel_list(), "max_side": MAX_SIDE}


def _add_upload_routes(app: FastAPI, served: ServedModel, workers: _Workers) -> None:
    """The two routes that take an image: classify it, or convolve it in the playground."""
    labels = served.run.labels

    @app.post("/api/predict", response_model=PredictResponse, responses=problems(400, 413, 415))
    async def predict(
        file: UploadFile = File(..., description="an image file (max 10 MB)"),  # noqa: B008
        top_k: int = Query(5, ge=1, description="how many labels to return"),
    ) -> dict[str, Any]:
        async with workers.in_memory:
            data = await read_upload(file)
            try:
                top = min(top_k, len(labels))
                result: dict[str, Any] = await workers.run(served.predict, data, top)
            except BadImageError as err:
                raise unsupported(err, file.filename) from None
        return result

    @app.post("/api/convolve", response_model=ConvolveResponse, responses=problems(400, 413, 415))
    async def convolve_route(
        file: UploadFile = File(..., description="an image file (max 10 MB)"),  # noqa: B008
        kernel: str = Form(
            "sobel-x",
            description="a kernel name or 9 numbers, row by row",
            # checked by resolve_kernel, whose 422 says what is wrong in words
            json_schema_extra={"pattern": KERNEL_PATTERN},
        ),
        stride: int = Form(1, ge=min(STRIDES), le=max(STRIDES)),
        padding: Padding = Form("same"),  # noqa: B008
        pool: bool = Form(False),
    ) -> dict[str, Any]:
        try:
            resolve_kernel(kernel)
        except ValueError as err:
            raise invalid("kernel", err, kernel) from None
        async with workers.in_memory:
            data = await read_upload(file)
            try:
                image = await workers.run(playground_image, data)
                result: dict[str, Any] = await workers.run(
                    convolve, image, kernel, stride, padding, pool
                )
            except BadImageError as err:
                raise unsupported(err, file.filename) from None
            except ValueError as err:  # e.g. an image smaller than the window
                raise invalid("file", err, file.filename) from None
        return result
