// The pocketvision page: classify (upload, drop, webcam), draw, playground, model card.
// Inference runs on the server (POST /api/predict) or in the browser (onnxruntime-web, WASM,
// on /api/model.onnx), or both at once to compare. Browser preprocessing is preprocess.js,
// which reproduces the server's exactly.
import { blobToImageData, drawableToImageData, preprocessImageData } from "./preprocess.js";

const $ = (id) => document.getElementById(id);
const state = {
  card: null,
  session: null, // onnxruntime-web InferenceSession, once loaded
  sessionError: null,
  lastBlob: null, // the last classified image, for the playground
};
window.pocketvision = state; // for the tests and the curious

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

// ---------- engines ----------

async function predictServer(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename || "image.png");
  const t0 = performance.now();
  const response = await fetch(`/api/predict?top_k=5`, { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  body.roundtrip_ms = performance.now() - t0;
  return body;
}

function softmax(logits) {
  const max = Math.max(...logits);
  const exps = logits.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

async function predictBrowser(imageData) {
  if (!state.session) throw new Error(state.sessionError || "in-browser runtime not loaded yet");
  const card = state.card;
  const t0 = performance.now();
  const pillowMajor = parseInt(card.pillow_version, 10);
  const prep = preprocessImageData(imageData, card.input_size, card.mean, card.std, pillowMajor);
  const t1 = performance.now();
  const tensor = new ort.Tensor("float32", prep.input, prep.shape);
  const outputs = await state.session.run({ image: tensor });
  const t2 = performance.now();
  const probs = softmax(Array.from(outputs.logits.data));
  const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  return {
    predictions: order.slice(0, 5).map(([p, i]) => ({ label: card.labels[i], index: i, probability: p })),
    latency_ms: t2 - t0,
    model_ms: t2 - t1,
    uint8: prep.uint8,
  };
}

async function loadBrowserRuntime(card) {
  const status = $("runtime-status");
  try {
    if (typeof ort === "undefined") {
      throw new Error("onnxruntime-web is not installed on the server (run `make web-assets`)");
    }
    if (!card.onnx) throw new Error(card.onnx_error || "the run has no ONNX export");
    ort.env.wasm.wasmPaths = "/static/vendor/";
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation; one is plenty here
    const t0 = performance.now();
    state.session = await ort.InferenceSession.create("/api/model.onnx", {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    status.textContent = `in-browser runtime: onnxruntime-web ${ort.env.versions?.web || ""} (WASM), model loaded in ${(performance.now() - t0).toFixed(0)} ms`;
    status.dataset.state = "ready";
  } catch (err) {
    state.sessionError = String(err.message || err);
    status.textContent = `in-browser runtime unavailable: ${state.sessionError}`;
    status.dataset.state = "error";
  }
}

// ---------- rendering ----------

function renderResult(container, result, error) {
  const list = container.querySelector("ol");
  const latency = container.querySelector(".latency");
  list.replaceChildren();
  container.dataset.seq = String(Number(container.dataset.seq || 0) + 1);
  if (error) {
    latency.textContent = `error: ${error.message || error}`;
    container.dataset.top1 = "";
    container.dataset.error = String(error.message || error);
    return;
  }
  delete container.dataset.error;
  for (const p of result.predictions) {
    const li = document.createElement("li");
    li.dataset.label = p.label;
    li.dataset.probability = String(p.probability);
    const name = document.createElement("span");
    name.textContent = p.label;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * p.probability).toFixed(1)}%`;
    const pct = document.createElement("span");
    pct.textContent = `${(100 * p.probability).toFixed(1)}%`;
    li.append(name, bar, pct);
    list.append(li);
  }
  container.dataset.top1 = result.predictions[0].label;
  const extra = result.roundtrip_ms !== undefined ? `, round trip ${result.roundtrip_ms.toFixed(1)} ms` : "";
  latency.textContent = `latency ${result.latency_ms.toFixed(1)} ms (model ${result.model_ms.toFixed(1)} ms${extra})`;
}

function clearResult(container) {
  container.querySelector("ol").replaceChildren();
  container.querySelector(".latency").textContent = "";
  container.dataset.top1 = "";
}

function renderAgreement(el, server, browser) {
  if (!server || !browser) {
    el.textContent = "";
    delete el.dataset.agree;
    return;
  }
  const s = server.predictions[0];
  const b = browser.predictions[0];
  const same = s.label === b.label;
  el.dataset.agree = same ? "yes" : "no";
  const diff = Math.abs(s.probability - (browser.predictions.find((p) => p.label === s.label)?.probability ?? 0));
  el.textContent = `${same ? "top-1 agrees" : "top-1 differs"}: server ${s.label}, browser ${b.label} ` +
    `(|Δp| ${diff.toExponential(1)}); latency server ${server.latency_ms.toFixed(1)} ms, ` +
    `browser ${browser.latency_ms.toFixed(1)} ms`;
}

// uint8 planes at the model's size -> a data URL, for the browser-only "model's view"
function planesToDataURL(planes, w, h) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const r = planes[0][i];
    img.data[i * 4] = r;
    img.data[i * 4 + 1] = planes.length === 3 ? planes[1][i] : r;
    img.data[i * 4 + 2] = planes.length === 3 ? planes[2][i] : r;
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL("image/png");
}

// Run the chosen engine(s) on one image; `getImageData` is only called when the browser runs.
async function runEngines(blob, getImageData, targets) {
  const m = mode();
  const jobs = [];
  let server = null;
  let browser = null;
  if (m === "server" || m === "both") {
    jobs.push(
      predictServer(blob, blob.name)
        .then((r) => { server = r; renderResult(targets.server, r); return r; })
        .catch((e) => renderResult(targets.server, null, e)),
    );
  } else {
    clearResult(targets.server);
  }
  if (m === "browser" || m === "both") {
    jobs.push(
      getImageData()
        .then(predictBrowser)
        .then((r) => { browser = r; renderResult(targets.browser, r); return r; })
        .catch((e) => renderResult(targets.browser, null, e)),
    );
  } else {
    clearResult(targets.browser);
  }
  await Promise.all(jobs);
  renderAgreement(targets.agreement, server, browser);
  return { server, browser };
}

// ---------- classify: upload, drop, webcam ----------

async function classifyBlob(blob) {
  $("classify-error").textContent = "";
  state.lastBlob = blob;
  const original = $("original");
  if (original.src.startsWith("blob:")) URL.revokeObjectURL(original.src);
  original.src = URL.createObjectURL(blob);
  const { server, browser } = await runEngines(blob, () => blobToImageData(blob), {
    server: $("classify-server"),
    browser: $("classify-browser"),
    agreement: $("classify-agreement"),
  });
  const card = state.card;
  if (server) {
    $("model-view").src = server.model_input;
    const s = server.input_stats;
    $("input-stats").textContent = `${s.shape.join("x")}, normalised to [${s.min.toFixed(2)}, ${s.max.toFixed(2)}]`;
  } else if (browser) {
    $("model-view").src = planesToDataURL(browser.uint8, card.input_size[2], card.input_size[1]);
    $("input-stats").textContent = `${card.input_size.join("x")} (computed in the browser)`;
  } else {
    $("classify-error").textContent = $("classify-server").dataset.error || $("classify-browser").dataset.error || "";
  }
}

function setupClassify() {
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) classifyBlob(file);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) classifyBlob(file);
  });

  const video = $("video");
  let liveTimer = null;
  const snap = () => new Promise((resolve) => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((b) => resolve(new File([b], "webcam.png", { type: "image/png" })), "image/png");
  });
  $("camera-start").addEventListener("click", async () => {
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser offers no webcam here (it needs https or localhost)");
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
      video.hidden = false;
      await video.play();
      $("camera-snap").disabled = false;
      $("camera-live").disabled = false;
    } catch (err) {
      $("classify-error").textContent = `webcam: ${err.message || err}`;
    }
  });
  $("camera-snap").addEventListener("click", async () => classifyBlob(await snap()));
  $("camera-live").addEventListener("change", (e) => {
    clearInterval(liveTimer);
    if (e.target.checked) {
      let busy = false;
      liveTimer = setInterval(async () => {
        if (busy) return;
        busy = true;
        try { await classifyBlob(await snap()); } finally { busy = false; }
      }, 600);
    }
  });
}

// ---------- draw ----------

function setupDraw() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  let drawing = false;
  let last = null;
  let pending = false;
  let running = false;
  const targets = { server: $("draw-server"), browser: $("draw-browser"), agreement: $("draw-agreement") };

  async function predictDrawing() {
    // at most one prediction in flight; strokes drawn meanwhile trigger one more after it
    if (running) { pending = true; return; }
    running = true;
    try {
      do {
        pending = false;
        const blob = await new Promise((r) => canvas.toBlob(r, "image/png"));
        const file = new File([blob], "drawing.png", { type: "image/png" });
        await runEngines(file, async () => ctx.getImageData(0, 0, canvas.width, canvas.height), targets);
      } while (pending);
    } finally {
      running = false;
    }
  }
  state.predictDrawing = predictDrawing;

  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    last = point(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = Number($("brush").value);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
    predictDrawing(); // live: predicts as you draw
  });
  const end = () => {
    if (drawing) predictDrawing();
    drawing = false;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", () => {
    clear();
    for (const t of [targets.server, targets.browser]) clearResult(t);
    renderAgreement(targets.agreement, null, null);
  });
}

// ---------- playground ----------

async function setupPlayground() {
  const response = await fetch("/api/kernels");
  const { kernels } = await response.json();
  const select = $("pg-kernel");
  for (const k of kernels) select.add(new Option(k.name, k.name));
  select.add(new Option("custom (type below)", "custom"));
  const grid = $("pg-weights");
  const inputs = [];
  for (let i = 0; i < 9; i++) {
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.value = "0";
    input.setAttribute("aria-label", `weight ${Math.floor(i / 3) + 1},${(i % 3) + 1}`);
    input.addEventListener("input", () => { select.value = "custom"; $("pg-meaning").textContent = "custom 3x3 kernel"; });
    grid.append(input);
    inputs.push(input);
  }
  const show = () => {
    const k = kernels.find((x) => x.name === select.value);
    if (!k) return;
    k.weights.flat().forEach((w, i) => { inputs[i].value = String(Math.round(w * 10000) / 10000); });
    $("pg-meaning").textContent = k.meaning;
  };
  select.addEventListener("change", show);
  select.value = "sobel-x";
  show();

  $("pg-apply").addEventListener("click", async () => {
    $("pg-error").textContent = "";
    const output = $("pg-output");
    let blob = $("pg-source").value === "upload" ? state.lastBlob : null;
    if (!blob) blob = await new Promise((r) => $("draw").toBlob(r, "image/png"));
    const form = new FormData();
    form.append("file", blob, blob.name || "image.png");
    const named = kernels.find((x) => x.name === select.value);
    form.append("kernel", named ? named.name : inputs.map((x) => x.value || "0").join(","));
    form.append("stride", $("pg-stride").value);
    form.append("padding", $("pg-padding").value);
    form.append("pool", $("pg-pool").checked ? "true" : "false");
    const r = await fetch("/api/convolve", { method: "POST", body: form });
    const body = await r.json();
    output.dataset.seq = String(Number(output.dataset.seq || 0) + 1);
    if (!r.ok) {
      $("pg-error").textContent = body.detail ? String(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : `HTTP ${r.status}`;
      output.dataset.state = "error";
      return;
    }
    $("pg-input").src = body.input;
    output.src = body.output;
    output.dataset.kernel = body.kernel;
    output.dataset.state = "done";
    $("pg-input-caption").textContent = `input ${body.input_shape.join("x")} (grayscale)`;
    $("pg-output-caption").textContent = `${body.kernel}, stride ${body.stride}, ${body.padding}` +
      `${body.pool ? ", 2x2 max pool" : ""}: ${body.output_shape.join("x")}; response ` +
      `[${body.response_min.toFixed(1)}, ${body.response_max.toFixed(1)}]`;
  });
}

// ---------- model card ----------

function fmtInt(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}
function fmtPct(x) {
  return x === null || x === undefined ? "–" : `${(100 * x).toFixed(2)}%`;
}
function fmtBytes(n) {
  return n === null || n === undefined ? "–" : `${(n / 1024).toFixed(1)} KiB`;
}

function renderCard(card) {
  const root = $("card");
  const table = document.createElement("table");
  const t = card.training || {};
  const arxiv = card.arxiv ? ` (arXiv ${card.arxiv})` : "";
  const rows = [
    ["model", `${card.model} (${card.family})`],
    ["paper", `${card.authors}, “${card.paper}”, ${card.year}${arxiv}`],
    ["reproduces", card.table],
    ["parameters", `${fmtInt(card.params)} (paper, ${card.published.num_classes} classes at ${card.published.input_size.join("x")}: ${fmtInt(card.published.params)})`],
    ["MACs", `${fmtInt(card.macs)} at ${card.input_size.join("x")} (paper: ${fmtInt(card.published.macs)} at ${card.published.input_size.join("x")})`],
    ["input", `${card.input_size.join("x")} ${card.color_mode === "L" ? "grayscale" : "RGB"}, mean ${card.mean.map((v) => v.toFixed(4)).join(", ")}, std ${card.std.map((v) => v.toFixed(4)).join(", ")}`],
    ["classes", `${card.labels.length}: ${card.labels.join(", ")}`],
    ["files", `checkpoint ${fmtBytes(card.files.checkpoint_bytes)}, ONNX ${fmtBytes(card.files.onnx_bytes)}`],
    ["trained on", `${t.data ?? "–"}: ${fmtInt(t.num_train)} train, ${fmtInt(t.num_val)} val, ${fmtInt(t.num_test)} test images, ${t.epochs ?? "–"} epochs`],
    ["accuracy", `val ${fmtPct(t.best_val_accuracy)} (best epoch ${t.best_epoch ?? "–"}), test ${fmtPct(t.test_accuracy)}`],
  ];
  if (card.evaluation) {
    rows.push(["evaluated", `${card.evaluation.data}, ${card.evaluation.split} split: accuracy ${fmtPct(card.evaluation.accuracy)}`]);
  }
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = k;
    tr.append(th);
    tr.insertCell().textContent = v;
  }
  root.replaceChildren(table);
  const cm = card.evaluation?.confusion_matrix;
  if (cm) {
    const h = document.createElement("h3");
    h.textContent = "confusion matrix (rows: true class, columns: predicted)";
    const m = document.createElement("table");
    m.className = "confusion";
    const head = m.insertRow();
    head.append(document.createElement("th"));
    for (const label of card.labels) {
      const th = document.createElement("th");
      th.textContent = label;
      head.append(th);
    }
    cm.forEach((row, i) => {
      const tr = m.insertRow();
      const th = document.createElement("th");
      th.textContent = card.labels[i];
      tr.append(th);
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((v, j) => {
        const td = tr.insertCell();
        td.textContent = String(v);
        const alpha = v / total;
        td.style.background = i === j ? `rgba(11,138,75,${alpha})` : `rgba(180,35,24,${Math.min(1, 3 * alpha)})`;
      });
    });
    root.append(h, m);
  } else {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = "No confusion matrix yet: run `pocketvision evaluate RUN` and restart the server.";
    root.append(p);
  }
  if (card.confusion_png) {
    const p = document.createElement("p");
    const a = document.createElement("a");
    a.href = "/api/confusion.png";
    a.id = "confusion-png";
    a.textContent = "confusion_matrix.png (as `pocketvision evaluate` drew it)";
    p.append(a);
    root.append(p);
  }
}

// ---------- start ----------

async function main() {
  const response = await fetch("/api/model");
  const card = await response.json();
  state.card = card;
  $("model-name").textContent = `· ${card.model} · run ${card.run}`;
  document.title = `pocketvision · ${card.model}`;
  renderCard(card);
  setupClassify();
  setupDraw();
  state.runtimeReady = loadBrowserRuntime(card);
  await setupPlayground();
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  document.body.dataset.ready = "error";
  $("classify-error").textContent = `page failed to start: ${err.message || err}`;
});
