// Copy onnxruntime-web's WASM build from node_modules into ../static/vendor/, which the server
// serves at /static/vendor/ (gitignored: made by `make web-assets`, never committed).
// Only the plain WASM backend: ort.wasm.min.js loads ort-wasm-simd-threaded.{mjs,wasm}.
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "node_modules", "onnxruntime-web", "dist");
const vendor = join(here, "..", "static", "vendor");
const files = ["ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];

rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
for (const name of files) copyFileSync(join(dist, name), join(vendor, name));
const version = JSON.parse(readFileSync(join(here, "node_modules", "onnxruntime-web", "package.json"))).version;
console.log(`onnxruntime-web ${version}: copied ${files.join(", ")} to ${vendor}`);
