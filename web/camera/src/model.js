// The edge model in the browser: LiteRT.js on WebAssembly (XNNPACK), the model file and its
// card fetched from the server that served this page, and the card's preprocessing
// (shared/runtime/preprocess.py): resize mode, colour, mean and std.
import { loadLiteRt, loadAndCompile, Tensor } from "@litertjs/core";

// The smallest module using a v128 instruction: WebAssembly.validate says whether this
// browser runs WebAssembly SIMD, which LiteRT.js's kernels need.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0,
  253, 15, 253, 98, 11,
]);

export function hasWasmSimd() {
  return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
}

export async function sha256Hex(bytes) {
  if (!crypto.subtle) return null; // only in a secure context (HTTPS or localhost)
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class EdgeModel {
  static async load(wasmDir, modelUrl, cardUrl) {
    await loadLiteRt(wasmDir);
    const [modelResponse, cardResponse] = await Promise.all([fetch(modelUrl), fetch(cardUrl)]);
    if (!modelResponse.ok) throw new Error(`model ${modelUrl}: HTTP ${modelResponse.status}`);
    if (!cardResponse.ok) throw new Error(`model card ${cardUrl}: HTTP ${cardResponse.status}`);
    const bytes = new Uint8Array(await modelResponse.arrayBuffer());
    const card = await cardResponse.json();
    const digest = await sha256Hex(bytes);
    if (digest !== null && card.sha256 && digest !== card.sha256) {
      throw new Error(`model ${modelUrl} has sha256 ${digest}, its card says ${card.sha256}`);
    }
    return EdgeModel.fromBytes(bytes, card, digest ?? card.sha256 ?? "");
  }

  static async fromBytes(bytes, card, sha256) {
    try {
      const compiled = await loadAndCompile(bytes, { accelerator: "wasm" });
      return new EdgeModel(compiled, card, sha256);
    } catch (exc) {
      // LiteRT.js's tensors are float32, int32 or uint8: an int8-input model cannot run here.
      const hint = /not supported|int8/i.test(exc.message)
        ? " LiteRT.js runs float32 and uint8 tensors: serve a float-input model (the _fp32 file)."
        : "";
      throw new Error(`model ${card.name} cannot run in this page: ${exc.message}${hint}`);
    }
  }

  constructor(compiled, card, sha256) {
    if (card.task && card.task !== "classification") {
      throw new Error(`model ${card.name} is a ${card.task} model; the camera page runs classifiers`);
    }
    const input = compiled.getInputDetails()[0];
    if (input.dtype !== "float32") {
      throw new Error(`model ${card.name} takes ${input.dtype} input; the camera page needs a float32-input model (the _fp32 file)`);
    }
    const shape = Array.from(input.shape);
    const nhwc = shape[3] === 1 || shape[3] === 3;
    this.compiled = compiled;
    this.card = card;
    this.labels = card.labels;
    this.shape = shape;
    this.height = nhwc ? shape[1] : shape[2];
    this.width = nhwc ? shape[2] : shape[3];
    this.channels = nhwc ? shape[3] : shape[1];
    this.nhwc = nhwc;
    this.ref = { name: card.name, version: card.version, sha256 };
    const prep = card.preprocess ?? {};
    this.prep = { resize: prep.resize ?? "stretch", crop: prep.crop_ratio ?? 0.875,
      color: prep.color ?? "rgb", mean: prep.mean ?? 0, std: prep.std ?? 1 };
  }

  // Draw the video frame onto the model's canvas by the card's resize mode.
  draw(ctx, source, srcWidth, srcHeight) {
    const { width, height } = this;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    if (this.prep.resize === "center_crop") {
      const side = Math.max(1, Math.round(Math.min(srcWidth, srcHeight) * this.prep.crop));
      const sx = (srcWidth - side) / 2;
      const sy = (srcHeight - side) / 2;
      ctx.drawImage(source, sx, sy, side, side, 0, 0, width, height);
    } else if (this.prep.resize === "letterbox") {
      const scale = Math.min(width / srcWidth, height / srcHeight);
      const w = Math.round(srcWidth * scale);
      const h = Math.round(srcHeight * scale);
      ctx.drawImage(source, (width - w) / 2, (height - h) / 2, w, h);
    } else {
      ctx.drawImage(source, 0, 0, width, height);
    }
  }

  tensorFrom(pixels) {
    const { width, height, channels, nhwc } = this;
    const { color, mean, std } = this.prep;
    const data = new Float32Array(width * height * channels);
    const plane = width * height;
    for (let i = 0; i < plane; i += 1) {
      const r = pixels[i * 4];
      const g = pixels[i * 4 + 1];
      const b = pixels[i * 4 + 2];
      let values;
      if (channels === 1 || color === "gray") {
        const y = 0.299 * r + 0.587 * g + 0.114 * b; // OpenCV's BGR2GRAY weights
        values = channels === 1 ? [y] : [y, y, y];
      } else {
        values = color === "bgr" ? [b, g, r] : [r, g, b];
      }
      for (let c = 0; c < channels; c += 1) {
        const v = (values[c] - mean) / std;
        data[nhwc ? i * channels + c : c * plane + i] = v;
      }
    }
    return data;
  }

  async classify(data) {
    const input = new Tensor(data, this.shape);
    const outputs = await this.compiled.run(input);
    input.delete();
    const raw = Float32Array.from(outputs[0].toTypedArray());
    for (const output of outputs) output.delete();
    return this.card.output === "probabilities" ? raw : softmax(raw, this.card.temperature ?? 1);
  }
}

export function softmax(logits, temperature) {
  const scaled = Array.from(logits, (v) => v / temperature);
  const max = Math.max(...scaled);
  const exps = scaled.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return Float32Array.from(exps, (v) => v / sum);
}

export function topK(probabilities, labels, k) {
  return Array.from(probabilities, (score, index) => ({ index, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map(({ index, score }) => ({ index, label: labels[index], score: Math.min(1, Math.max(0, score)) }));
}
