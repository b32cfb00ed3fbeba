"""The page in a real headless Chromium (Debian's package) driven by Playwright.

Upload and drop an image and read the predictions; draw and see a live prediction; run the
model in the browser (onnxruntime-web, WASM) and check it agrees with the server; apply Sobel
in the playground and check the pixels. Screenshots go to test-artifacts/web/.

The page's Content-Security-Policy forbids eval, so waits use CSS selectors on the data-*
attributes the page sets, never wait_for_function.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from web_support import ARTIFACTS, Server, digit_images, edge_image, png_bytes, post

from pocketvision.preprocess import to_model_input
from pocketvision.rundir import load_run

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("web")]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VENDOR = Path(__file__).resolve().parents[2] / "src/pocketvision/web/static/vendor"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium)")
    if not (VENDOR / "ort.wasm.min.js").exists():
        pytest.fail("onnxruntime-web is not in src/pocketvision/web/static/vendor: make web-assets")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield browser
    browser.close()


class Page:
    """A page on the server, recording every URL it requests and every script error."""

    def __init__(self, browser: Any, server: Server, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 1400})
        self.page = self.context.new_page()
        self.server = server
        self.name = name
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append((r.method, r.url)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(server.url + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)

    def shot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)

    def mode(self, value: str) -> None:
        self.page.check(f'input[name=mode][value="{value}"]')

    def wait_runtime(self) -> None:
        self.page.wait_for_selector("#runtime-status[data-state=ready]", timeout=TIMEOUT_MS)

    def results(self, container: str) -> dict[str, float]:
        """{label: probability} as the page lists them in a result box."""
        rows = self.page.query_selector_all(f"#{container} li")
        return {
            r.get_attribute("data-label"): float(r.get_attribute("data-probability")) for r in rows
        }

    def classify(self, path: Path, wait_for: str) -> None:
        """Upload through the file input and wait until `wait_for` (a selector) matches."""
        self.page.evaluate(
            """() => { for (const id of ['classify-server', 'classify-browser', 'classify-agreement'])
                 { const el = document.getElementById(id); delete el.dataset.top1; delete el.dataset.agree; } }"""
        )
        self.page.set_input_files("#file", str(path))
        self.page.wait_for_selector(wait_for, timeout=TIMEOUT_MS)

    def image_pixels(self, selector: str) -> np.ndarray:
        """The red channel of an <img> at its natural size (the playground shows grayscale)."""
        data = self.page.evaluate(
            """(sel) => { const img = document.querySelector(sel);
                 const c = document.createElement('canvas');
                 c.width = img.naturalWidth; c.height = img.naturalHeight;
                 const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                 const d = ctx.getImageData(0, 0, c.width, c.height).data;
                 const out = []; for (let i = 0; i < d.length; i += 4) out.push(d[i]);
                 return {w: c.width, h: c.height, px: out}; }""",
            selector,
        )
        return np.array(data["px"], np.uint8).reshape(data["h"], data["w"])

    def close(self) -> None:
        hosts = {urllib.parse.urlsplit(u).netloc for _, u in self.requests if u.startswith("http")}
        self.context.close()
        assert self.errors == [], self.errors
        # everything came from this server: no CDN, the page works offline
        assert hosts <= {urllib.parse.urlsplit(self.server.url).netloc}, hosts


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Page]:
    p = Page(browser, server, request.node.name)
    yield p
    p.close()


def _files(tmp_path: Path) -> dict[str, Path]:
    images, _ = digit_images(3)
    odd = np.asarray(Image.fromarray(images[2]).convert("RGB").resize((45, 37)))
    files = {"digit0": images[0], "digit1": images[1], "odd_rgb": odd}
    out = {}
    for name, array in files.items():
        out[name] = tmp_path / f"{name}.png"
        out[name].write_bytes(png_bytes(array))
    return out


def test_upload_and_drop_show_the_servers_predictions(page: Page, tmp_path: Path) -> None:
    files = _files(tmp_path)
    page.classify(files["digit0"], "#classify-server[data-top1]:not([data-top1=''])")
    _status, api = post(page.server.url + "/api/predict", files["digit0"].read_bytes())
    shown = page.results("classify-server")
    assert next(iter(shown)) == api["predictions"][0]["label"]
    assert shown[api["predictions"][0]["label"]] == pytest.approx(
        api["predictions"][0]["probability"]
    )
    assert page.page.get_attribute("#model-view", "src").startswith("data:image/png")
    assert "1x32x32" in page.page.inner_text("#input-stats")
    page.shot("upload")
    # drag and drop a second file onto the drop zone
    data = base64.b64encode(files["digit1"].read_bytes()).decode()
    page.page.evaluate(
        """async (b64) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
             const dt = new DataTransfer(); dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
             delete document.getElementById('classify-server').dataset.top1;
             document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true})); }""",
        data,
    )
    page.page.wait_for_selector(
        "#classify-server[data-top1]:not([data-top1=''])", timeout=TIMEOUT_MS
    )
    _, api = post(page.server.url + "/api/predict", files["digit1"].read_bytes())
    assert next(iter(page.results("classify-server"))) == api["predictions"][0]["label"]


def test_drawing_predicts_while_drawing(page: Page) -> None:
    box = page.page.locator("#draw").bounding_box()
    x0, y0 = box["x"], box["y"]
    mouse = page.page.mouse
    # a "7": the top bar, then the diagonal; the button stays down the whole time
    mouse.move(x0 + 80, y0 + 60)
    mouse.down()
    for i in range(1, 11):
        mouse.move(x0 + 80 + 12 * i, y0 + 60)
    page.page.wait_for_selector("#draw-server[data-top1]:not([data-top1=''])", timeout=TIMEOUT_MS)
    seq_during = int(page.page.get_attribute("#draw-server", "data-seq"))
    assert seq_during >= 1  # a prediction arrived before the stroke ended: live
    for i in range(1, 16):
        mouse.move(x0 + 200 - 6 * i, y0 + 60 + 12 * i)
    mouse.up()
    page.page.wait_for_load_state("networkidle")
    page.page.wait_for_timeout(300)  # the last prediction after mouse-up renders
    assert int(page.page.get_attribute("#draw-server", "data-seq")) > seq_during
    shown = page.results("draw-server")
    assert len(shown) == 5 and sum(shown.values()) <= 1.0 + 1e-6
    # the page shows what the API says for exactly this canvas
    url = page.page.evaluate("() => document.getElementById('draw').toDataURL('image/png')")
    drawing = base64.b64decode(url.split(",", 1)[1])
    _, api = post(page.server.url + "/api/predict", drawing)
    assert next(iter(shown)) == api["predictions"][0]["label"]
    page.shot("draw")


def test_browser_preprocessing_is_bit_exact_with_python(page: Page, server: Server) -> None:
    """preprocess.js (PIL's grayscale weights and bilinear filter in JS) == preprocess.py."""
    import PIL

    prep = load_run(server.run).preprocessing
    rng = np.random.default_rng(0)
    cases = {
        "32x32 gray": digit_images(1)[0][0],
        "8x8 gray (upscaled)": rng.integers(0, 256, (8, 8), dtype=np.uint8),
        "45x37 RGB (both shrink)": rng.integers(0, 256, (37, 45, 3), dtype=np.uint8),
        "300x32 RGB (width only)": rng.integers(0, 256, (32, 300, 3), dtype=np.uint8),
        "61x203 RGB (tall: Pillow 13 resizes vertically first)": rng.integers(
            0, 256, (203, 61, 3), dtype=np.uint8
        ),
        "17x64 gray (tall, width grows)": rng.integers(0, 256, (64, 17), dtype=np.uint8),
        "5x90 gray (wide, height grows)": rng.integers(0, 256, (5, 90), dtype=np.uint8),
    }
    card = {
        "input_size": list(prep.input_size),
        "mean": list(prep.mean),
        "std": list(prep.std),
        "pillow": int(PIL.__version__.split(".")[0]),
    }
    for name, array in cases.items():
        data = png_bytes(array)
        got = page.page.evaluate(
            """async ([b64, card]) => {
                 const pre = await import('/static/preprocess.js');
                 const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                 const img = await pre.blobToImageData(new Blob([bytes], {type: 'image/png'}));
                 const out = pre.preprocessImageData(img, card.input_size, card.mean, card.std, card.pillow);
                 return Array.from(out.input); }""",
            [base64.b64encode(data).decode(), card],
        )
        want = to_model_input(data, prep).ravel()
        np.testing.assert_array_equal(np.array(got, np.float32), want, err_msg=name)


def test_js_resize_equals_pillow_on_random_shapes(page: Page) -> None:
    """resizePlane against Image.resize(BILINEAR) on 80 random sizes, up and down, 1 px too."""
    import PIL

    rng = np.random.default_rng(1)
    cases = []
    for _ in range(80):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 60, 2))
        plane = rng.integers(0, 256, (h, w), dtype=np.uint8)
        want = np.asarray(Image.fromarray(plane).resize((out_w, out_h), Image.Resampling.BILINEAR))
        cases.append(([h, w, out_h, out_w], plane.ravel().tolist(), want))
    got = page.page.evaluate(
        """async ([cases, major]) => {
             const pre = await import('/static/preprocess.js');
             return cases.map(([[h, w, oh, ow], px]) =>
               Array.from(pre.resizePlane(Uint8Array.from(px), w, h, ow, oh, major))); }""",
        [[c[:2] for c in cases], int(PIL.__version__.split(".")[0])],
    )
    for (shape, _, want), out in zip(cases, got, strict=True):
        np.testing.assert_array_equal(np.array(out, np.uint8).reshape(want.shape), want, str(shape))


def test_in_browser_inference_agrees_with_the_server(page: Page, tmp_path: Path) -> None:
    page.wait_runtime()
    assert "onnxruntime-web" in page.page.inner_text("#runtime-status")
    page.mode("both")
    for name, path in _files(tmp_path).items():
        page.classify(path, "#classify-agreement[data-agree]")
        assert page.page.get_attribute("#classify-agreement", "data-agree") == "yes", name
        server, browser = page.results("classify-server"), page.results("classify-browser")
        assert next(iter(server)) == next(iter(browser))
        for label, p in server.items():
            assert browser[label] == pytest.approx(p, abs=1e-5), (name, label)
        text = page.page.inner_text("#classify-agreement")
        assert "latency server" in text and "browser" in text
    page.shot("both")
    # the drawing too: the browser reads the canvas pixels, the server gets its PNG
    box = page.page.locator("#draw").bounding_box()
    page.page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.page.mouse.down()
    for i in range(1, 12):
        page.page.mouse.move(box["x"] + 140, box["y"] + 40 + 18 * i)
    page.page.mouse.up()
    page.page.wait_for_selector("#draw-agreement[data-agree]", timeout=TIMEOUT_MS)
    page.page.wait_for_load_state("networkidle")
    page.page.wait_for_timeout(300)
    assert page.page.get_attribute("#draw-agreement", "data-agree") == "yes"
    server, browser = page.results("draw-server"), page.results("draw-browser")
    for label, p in server.items():
        assert browser[label] == pytest.approx(p, abs=1e-5), label
    # browser only: the prediction appears and no image goes to the server
    page.mode("browser")
    before = len([u for m, u in page.requests if m == "POST"])
    page.classify(_files(tmp_path)["digit1"], "#classify-browser[data-top1]:not([data-top1=''])")
    assert len([u for m, u in page.requests if m == "POST"]) == before
    assert page.page.get_attribute("#classify-server", "data-top1") in ("", None)
    page.shot("browser-only")


def _apply(page: Page, kernel: str) -> np.ndarray:
    page.page.evaluate("() => { delete document.getElementById('pg-output').dataset.state; }")
    if kernel != "custom":
        page.page.select_option("#pg-kernel", kernel)
    page.page.click("#pg-apply")
    page.page.wait_for_selector(
        f"#pg-output[data-state=done][data-kernel={kernel}]", timeout=TIMEOUT_MS
    )
    return page.image_pixels("#pg-output")


def test_playground_sobel_finds_the_edge_it_should(page: Page, tmp_path: Path) -> None:
    from pocketvision.scratch.kernels import SOBEL_Y, apply_kernel, to_uint8

    image = edge_image(64)  # black above, white below: one horizontal edge
    path = tmp_path / "edge.png"
    path.write_bytes(png_bytes(image))
    page.classify(path, "#classify-server[data-top1]:not([data-top1=''])")
    out_y = _apply(page, "sobel-y")
    assert out_y.shape == (64, 64)
    assert out_y[31:33, 2:-2].min() == 255  # the edge lights up across the image
    assert out_y[2:29, 2:-2].max() == 0 and out_y[35:62, 2:-2].max() == 0  # flat areas stay dark
    np.testing.assert_array_equal(out_y, to_uint8(apply_kernel(image, SOBEL_Y), magnitude=True))
    page.shot("sobel-y")
    out_x = _apply(page, "sobel-x")
    assert out_x[:, 2:-2].max() == 0  # no vertical edge inside the image
    page.shot("sobel-x")
    # type a kernel: the identity, stride 2 -> every other pixel of the input
    weights = page.page.query_selector_all("#pg-weights input")
    for i, w in enumerate(weights):
        w.fill("1" if i == 4 else "0")
    page.page.select_option("#pg-stride", "2")
    out_id = _apply(page, "custom")
    np.testing.assert_array_equal(out_id, image[::2, ::2])
    assert "32x32" in page.page.inner_text("#pg-output-caption")


def test_webcam_frame_is_classified(browser: Any, playwright: Any, server: Server) -> None:
    """Chromium's fake camera (a test pattern) stands in for a webcam."""
    fake = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[*ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
    )
    try:
        p = Page(fake, server, "webcam")
        p.page.click("#camera-start")
        p.page.wait_for_selector("#camera-snap:not([disabled])", timeout=TIMEOUT_MS)
        p.page.click("#camera-snap")
        p.page.wait_for_selector(
            "#classify-server[data-top1]:not([data-top1=''])", timeout=TIMEOUT_MS
        )
        assert len(p.results("classify-server")) == 5
        original = p.page.get_attribute("#original", "src")
        assert original.startswith("blob:")
        p.shot("frame")
        p.close()
    finally:
        fake.close()


def test_model_card_shows_the_runs_numbers(page: Page, server: Server) -> None:
    summary = json.loads((server.run / "summary.json").read_text())
    metrics = json.loads((server.run / "metrics.json").read_text())
    text = page.page.inner_text("#card")
    assert "lenet5 (LeNet)" in text and "Gradient-Based Learning" in text
    assert "61,706" in text  # parameters
    assert f"test {100 * summary['test_accuracy']:.2f}%" in text
    # the confusion matrix as the page draws it, cell by cell, equals metrics.json
    rows = page.page.query_selector_all("#card table.confusion tr")[1:]
    shown = [[int(td.inner_text()) for td in row.query_selector_all("td")] for row in rows]
    assert shown == metrics["confusion_matrix"]
    assert page.page.get_attribute("#confusion-png", "href") == "/api/confusion.png"
    page.shot("card")
