// Image -> model input in the browser, bit for bit as pocketvision.preprocess does it in Python:
//   1. decode, apply EXIF orientation, composite transparency onto white (as PIL's _to_mode),
//   2. RGB -> grayscale with PIL's integer weights (L = (19595 R + 38470 G + 7471 B + 2^15) >> 16),
//   3. resize with PIL's BILINEAR filter (antialiased when shrinking; fixed-point, 22 bits;
//      the pass order of the server's Pillow version),
//   4. scale to [0, 1] and normalise by the run's mean and std, in float32.
// Steps 2-4 follow Pillow's Convert.c and Resample.c exactly, so for a PNG the browser's
// tensor equals the server's; tests/web check that against decode_uint8 and normalize.

const PRECISION_BITS = 22; // Pillow: 32 - 8 (pixel) - 2 (headroom)
const HALF = 2 ** (PRECISION_BITS - 1);
const ONE = 2 ** PRECISION_BITS;

function bilinear(x) {
  x = Math.abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = 1.0 * filterscale; // bilinear support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    const k = new Float64Array(xmax);
    for (let x = 0; x < xmax; x++) {
      const w = bilinear((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v) {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / ONE);
}

function horizontalPass(src, w, rows, first, outW, horiz) {
  const out = new Uint8Array(outW * rows);
  for (let yy = 0; yy < rows; yy++) {
    const row = (yy + first) * w;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = horiz.bounds[xx * 2];
      const xmax = horiz.bounds[xx * 2 + 1];
      const base = xx * horiz.ksize;
      let acc = HALF;
      for (let x = 0; x < xmax; x++) acc += src[row + x + xmin] * horiz.kk[base + x];
      out[yy * outW + xx] = clip8(acc);
    }
  }
  return out;
}

function verticalPass(src, width, outH, bounds, vert) {
  const out = new Uint8Array(width * outH);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2];
    const ymax = bounds[yy * 2 + 1];
    const base = yy * vert.ksize;
    for (let xx = 0; xx < width; xx++) {
      let acc = HALF;
      for (let y = 0; y < ymax; y++) acc += src[(y + ymin) * width + xx] * vert.kk[base + y];
      out[yy * width + xx] = clip8(acc);
    }
  }
  return out;
}

// Resize one uint8 plane (w x h) to (outW x outH) with Pillow's two passes. The order matters
// for the last bit: Pillow < 13 always runs the horizontal pass first; Pillow >= 13 runs the
// vertical pass first when the height shrinks by more than twice as many pixels as the width
// (ImagingResampleInner). `pillowMajor` is the server's Pillow major version (/api/model).
export function resizePlane(src, w, h, outW, outH, pillowMajor = 13) {
  if (w === outW && h === outH) return Uint8Array.from(src);
  const needH = outW !== w;
  const needV = outH !== h;
  const horiz = coefficients(w, outW);
  const vert = coefficients(h, outH);
  const horizontalFirst = pillowMajor < 13 || !(h - outH > 0 && h - outH > (w - outW) * 2);
  if (!horizontalFirst) {
    const tall = needV ? verticalPass(src, w, outH, vert.bounds, vert) : src;
    return needH ? horizontalPass(tall, w, outH, 0, outW, horiz) : tall;
  }
  if (!needH) return verticalPass(src, w, outH, vert.bounds, vert);
  // only the source rows the vertical pass reads
  const first = vert.bounds[0];
  const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
  const wide = horizontalPass(src, w, last - first, first, outW, horiz);
  if (!needV) return wide;
  const shifted = Int32Array.from(vert.bounds);
  for (let i = 0; i < outH; i++) shifted[i * 2] -= first;
  return verticalPass(wide, outW, outH, shifted, vert);
}

// RGBA ImageData (already composited onto white) -> C planes of uint8, as PIL's convert().
export function toPlanes(rgba, channels) {
  const n = rgba.length / 4;
  if (channels === 1) {
    const gray = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const r = rgba[i * 4];
      const g = rgba[i * 4 + 1];
      const b = rgba[i * 4 + 2];
      gray[i] = Math.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536);
    }
    return [gray];
  }
  const planes = [new Uint8Array(n), new Uint8Array(n), new Uint8Array(n)];
  for (let i = 0; i < n; i++) {
    planes[0][i] = rgba[i * 4];
    planes[1][i] = rgba[i * 4 + 1];
    planes[2][i] = rgba[i * 4 + 2];
  }
  return planes;
}

// ImageData -> {uint8: [C planes at H x W], input: Float32Array (C*H*W), shape: [1, C, H, W]}.
// `pillowMajor`: the server's Pillow major version, which fixes the resize pass order.
export function preprocessImageData(imageData, inputSize, mean, std, pillowMajor = 13) {
  const [c, h, w] = inputSize;
  const planes = toPlanes(imageData.data, c).map((p) =>
    resizePlane(p, imageData.width, imageData.height, w, h, pillowMajor),
  );
  const input = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    const m = Math.fround(mean[ch]);
    const s = Math.fround(std[ch]);
    const plane = planes[ch];
    for (let i = 0; i < h * w; i++) {
      // numpy: float32(u8) / 255.0 -> float32; minus float32 mean; divided by float32 std
      const scaled = Math.fround(plane[i] / 255.0);
      input[ch * h * w + i] = Math.fround(Math.fround(scaled - m) / s);
    }
  }
  return { uint8: planes, input, shape: [1, c, h, w] };
}

// Any drawable (ImageBitmap, canvas, video frame) -> ImageData composited onto white.
export function drawableToImageData(source, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(source, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height);
}

// A File/Blob -> ImageData at its natural size, EXIF orientation applied, no colour management
// (Pillow applies none either).
export async function blobToImageData(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  try {
    return drawableToImageData(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}
