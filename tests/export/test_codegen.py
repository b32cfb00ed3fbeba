"""Generated Swift and Kotlin name what the exported files really contain, carry the run's
preprocessing, and (where kotlinc exists) the Kotlin preprocessing computes what
pocketvision.preprocess computes, pixel for pixel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pocketvision.export.codegen import kotlin
from pocketvision.preprocess import Preprocessing, to_model_input

# one worker builds the shared lenet export (session fixture) under `pytest -n 2 --dist loadgroup`
pytestmark = pytest.mark.xdist_group("export_lenet")


def _floats(text: str) -> list[float]:
    return [float(v.rstrip("f")) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?f?", text)]


def _swift_const(source: str, name: str) -> str:
    match = re.search(rf"static let {name}(?:: \[Float\])? = (.+)", source)
    assert match, name
    return match[1].strip().strip('"')


def _kotlin_const(source: str, name: str) -> str:
    match = re.search(rf"val {name} = (.+)", source)
    assert match, name
    return match[1].strip().strip('"')


def test_swift_names_the_core_ml_model(lenet_export: tuple[Path, list[Any]]) -> None:
    import coremltools as ct

    out, _ = lenet_export
    source = (out / "ios" / "ImageClassifier.swift").read_text()
    spec = ct.utils.load_spec(str(out / "coreml" / "Model.mlpackage"))
    desc = spec.description
    assert _swift_const(source, "modelName") == "Model"
    assert _swift_const(source, "inputName") == desc.input[0].name
    assert _swift_const(source, "labelOutputName") == desc.predictedFeatureName
    assert _swift_const(source, "probabilitiesOutputName") == desc.predictedProbabilitiesName
    assert {o.name for o in desc.output} == {
        desc.predictedFeatureName,
        desc.predictedProbabilitiesName,
    }
    image = desc.input[0].type.imageType
    assert int(_swift_const(source, "inputWidth")) == image.width
    assert int(_swift_const(source, "inputHeight")) == image.height
    assert _swift_const(source, "isGrayscale") == "true"
    prep = json.loads((out / "preprocessing.json").read_text())
    assert _floats(_swift_const(source, "mean")) == pytest.approx(prep["mean"])
    assert _floats(_swift_const(source, "std")) == pytest.approx(prep["std"])
    assert "VNCoreMLRequest" in source and ".scaleFill" in source
    assert "Model.mlpackage" in (out / "ios" / "README.md").read_text()


def test_kotlin_names_the_tflite_model(lenet_export: tuple[Path, list[Any]]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    out, _ = lenet_export
    source = (out / "android" / "ImageClassifier.kt").read_text()
    model_file = _kotlin_const(source, "MODEL_FILE")
    assert (out / "tflite" / model_file).is_file()
    labels_file = _kotlin_const(source, "LABELS_FILE")
    assert (out / labels_file).read_text().splitlines()[0] == "T-shirt/top"
    interpreter = Interpreter(model_path=str(out / "tflite" / model_file))
    signature_key = _kotlin_const(source, "SIGNATURE")
    signature = interpreter.get_signature_list()[signature_key]
    assert signature["inputs"] == [_kotlin_const(source, "INPUT_NAME")]
    assert signature["outputs"] == [_kotlin_const(source, "OUTPUT_NAME")]
    assert interpreter.get_input_details()[0]["name"] == _kotlin_const(source, "INPUT_TENSOR")
    assert interpreter.get_output_details()[0]["name"] == _kotlin_const(source, "OUTPUT_TENSOR")
    prep = json.loads((out / "preprocessing.json").read_text())
    c, h, w = prep["input_size"]
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, h, w, c]  # NHWC
    assert int(_kotlin_const(source, "WIDTH")) == w
    assert int(_kotlin_const(source, "HEIGHT")) == h
    assert int(_kotlin_const(source, "CHANNELS")) == c
    assert _floats(_kotlin_const(source, "MEAN")) == pytest.approx(prep["mean"])
    assert _floats(_kotlin_const(source, "STD")) == pytest.approx(prep["std"])


# Just enough of the Android and LiteRT APIs for kotlinc to type-check the generated class
# (signatures as in the real SDKs); Bitmap holds ARGB pixels like the real one.
STUBS = {
    "android/content/Context.kt": """
package android.content
open class Context { val assets: android.content.res.AssetManager = android.content.res.AssetManager() }
""",
    "android/content/res/AssetManager.kt": """
package android.content.res
class AssetFileDescriptor : java.io.Closeable {
    val fileDescriptor: java.io.FileDescriptor = java.io.FileDescriptor()
    val startOffset: Long = 0
    val declaredLength: Long = 0
    override fun close() {}
}
class AssetManager {
    fun open(name: String): java.io.InputStream = java.io.FileInputStream(name)
    fun openFd(name: String): AssetFileDescriptor = AssetFileDescriptor()
}
""",
    "android/graphics/Bitmap.kt": """
package android.graphics
class Bitmap(val width: Int, val height: Int, private val argb: IntArray) {
    fun getPixels(pixels: IntArray, offset: Int, stride: Int, x: Int, y: Int, width: Int, height: Int) {
        for (row in 0 until height) for (col in 0 until width)
            pixels[offset + row * stride + col] = argb[(y + row) * this.width + x + col]
    }
}
""",
    "org/tensorflow/lite/Interpreter.kt": """
package org.tensorflow.lite
enum class DataType { FLOAT32, INT8, UINT8 }
class Tensor {
    class QuantizationParams(val scale: Float, val zeroPoint: Int)
    fun numBytes(): Int = 0
    fun dataType(): DataType = DataType.FLOAT32
    fun shape(): IntArray = intArrayOf(1, 10)
    fun quantizationParams(): QuantizationParams = QuantizationParams(1f, 0)
}
class Interpreter(model: java.nio.ByteBuffer, options: Options) : AutoCloseable {
    class Options { fun setNumThreads(n: Int): Options = this }
    fun getInputTensorFromSignature(name: String, signature: String): Tensor = Tensor()
    fun getOutputTensorFromSignature(name: String, signature: String): Tensor = Tensor()
    fun runSignature(inputs: Map<String, Any>, outputs: Map<String, Any>, signature: String) {}
    override fun close() {}
}
""",
    "Main.kt": """
import android.graphics.Bitmap
import java.io.File
fun main(args: Array<String>) {
    val lines = File(args[1]).readLines()
    val size = lines[0].split(" ").map { it.toInt() }
    val argb = lines[1].split(" ").map { it.toLong().toInt() }.toIntArray()
    val bitmap = Bitmap(size[0], size[1], argb)
    val out = if (args[0] == "gray") com.test.gray.ImageClassifier.preprocess(bitmap)
              else com.test.rgb.ImageClassifier.preprocess(bitmap)
    println(out.joinToString(" "))
}
""",
}

NAMES = {
    "signature": "serving_default",
    "input": "image",
    "output": "logits",
    "input_tensor": "serving_default_image:0",
    "output_tensor": "StatefulPartitionedCall:0",
}
PREPS = {
    "gray": Preprocessing((1, 28, 28), (0.2860,), (0.3530,)),
    "rgb": Preprocessing((3, 24, 20), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@pytest.fixture(scope="module")
def kotlin_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated classes for a grayscale and an RGB run plus stubs, compiled by kotlinc."""
    if shutil.which("kotlinc") is None or shutil.which("java") is None:
        pytest.skip("kotlinc not installed (Debian: apt-get install kotlin)")
    root = tmp_path_factory.mktemp("kotlin")
    for rel, text in STUBS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for key, prep in PREPS.items():
        source, _ = kotlin.render(
            model="test",
            model_file="model_fp32.tflite",
            names=NAMES,
            input_size=prep.input_size,
            mean=prep.mean,
            std=prep.std,
            num_classes=10,
            package=f"com.test.{key}",
        )
        (root / f"ImageClassifier_{key}.kt").write_text(source)
    sources = [str(p) for p in root.rglob("*.kt")]
    jar = root / "app.jar"
    done = subprocess.run(
        ["kotlinc", *sources, "-include-runtime", "-d", str(jar)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return jar


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "size", "mode"),
    [
        ("gray", (57, 41), "RGBA"),
        ("gray", (20, 13), "RGB"),
        ("rgb", (45, 70), "RGBA"),
        ("rgb", (9, 8), "RGB"),
    ],
)
def test_kotlin_preprocessing_equals_training(
    kotlin_jar: Path, tmp_path: Path, key: str, size: tuple[int, int], mode: str
) -> None:
    """Bitmap -> Kotlin preprocess == image file -> pocketvision.preprocess.to_model_input."""
    rng = np.random.default_rng(len(key) + size[0])
    w, h = size
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if mode == "RGB":
        pixels[..., 3] = 255
    else:  # transparent, opaque and half-transparent pixels
        pixels[..., 3] = rng.choice([0, 37, 128, 255], size=(h, w))
    image = Image.fromarray(pixels if mode == "RGBA" else pixels[..., :3], mode)
    png = tmp_path / "image.png"
    image.save(png)
    a, r, g, b = (pixels[..., i].astype(np.int64) for i in (3, 0, 1, 2))
    argb = (a << 24) | (r << 16) | (g << 8) | b  # what Bitmap.getPixels returns
    listing = tmp_path / "pixels.txt"
    listing.write_text(f"{w} {h}\n" + " ".join(str(int(v)) for v in argb.ravel()) + "\n")
    done = subprocess.run(
        ["java", "-cp", str(kotlin_jar), "MainKt", key, str(listing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    prep = PREPS[key]
    c, out_h, out_w = prep.input_size
    kotlin_input = np.array(done.stdout.split(), dtype=np.float32).reshape(out_h, out_w, c)
    python_input = to_model_input(png, prep).transpose(1, 2, 0)  # CHW -> HWC (NHWC input)
    # same 8-bit pixels, then float32 normalisation in both: equal to float rounding
    np.testing.assert_allclose(kotlin_input, python_input, rtol=0, atol=1e-5)
