// Receiving a model, as the Python agent does (edge_agent/rollout.py, offers.py): a signed offer,
// its manifest checked (ed25519 signature over the canonical bytes, not expired, not a replay of
// an older sequence), the chunks requested and gathered, the file's size and sha256 checked, the
// model compiled and its golden images classified (the smoke test), then switched to. Every step
// is acknowledged on model/ack; any failure is acknowledged as "failed" with the reason and the
// running model keeps serving. The highest accepted sequence is kept in localStorage.
import { encodeJson, envelope, modelAckMessage } from "./contract.js";
import { signedBytes } from "./canonical.js";
import { EdgeModel, sha256Hex } from "./model.js";

const CHUNK_TIMEOUT_MS = 5000;
const MAX_ROUNDS = 20;

function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

async function importKey(pem) {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  return crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
}

export class Rollout {
  constructor(agent, keyUrl) {
    this.agent = agent;
    this.keyUrl = keyUrl;
    this.queue = Promise.resolve();
    this.download = null;
    const { prefix, site, device } = agent.config;
    this.ledgerKey = `edgecascade-offers:${prefix}/${site}/${device}`;
  }

  offer(text) {
    this.queue = this.queue.then(() => this.apply(text)).catch(() => {});
  }

  chunk(header, body) {
    const d = this.download;
    if (!d || header.sha256 !== d.manifest.sha256 || !Number.isInteger(header.index)) return;
    if (header.index >= d.total || d.chunks.has(header.index)) return;
    d.chunks.set(header.index, body);
    d.progress?.();
  }

  ack(offer, status, detail = "") {
    const m = offer.manifest;
    const message = modelAckMessage(offer.rollout_id, m.version, m.sha256, status, detail.slice(0, 1024));
    // Published directly, like the agent's chunk requests: the gateway does not acknowledge acks.
    this.agent.link.publish(this.agent.link.topic("model", "ack"), encodeJson(message), 1);
  }

  async apply(text) {
    let offer;
    try {
      offer = JSON.parse(text);
    } catch {
      return;
    }
    const m = offer?.manifest;
    if (typeof offer?.rollout_id !== "string" || !m?.version || !m?.sha256) return;
    try {
      await this.check(text, m);
      if (this.agent.model.ref.sha256 === m.sha256) {
        this.ack(offer, "applied", "already active");
        return;
      }
      this.ack(offer, "downloading");
      const content = await this.fetch(m);
      const model = await this.smokeTest(m, content);
      this.ack(offer, "verified");
      this.agent.switchModel(model);
      this.ack(offer, "applied");
    } catch (exc) {
      this.agent.log(`model ${m.name} ${m.version} refused: ${exc.message}`);
      this.ack(offer, "failed", exc.message);
    } finally {
      this.download = null;
    }
  }

  async check(text, m) {
    if (!m.signature) throw new Error(`manifest of ${m.name} ${m.version} is not signed`);
    const response = await fetch(this.keyUrl);
    if (!response.ok) throw new Error(`no model signing key (${this.keyUrl}: HTTP ${response.status}): refusing to install models`);
    const key = await importKey(await response.text());
    const ok = await crypto.subtle.verify("Ed25519", key, fromHex(m.signature), signedBytes(text));
    if (!ok) throw new Error(`manifest of ${m.name} ${m.version} has a bad signature`);
    const now = Date.now() / 1000;
    if (m.expires_at != null && now > m.expires_at) {
      throw new Error(`offer of ${m.name} ${m.version} expired at ${m.expires_at.toFixed(0)}; the device clock says ${now.toFixed(0)}`);
    }
    const ledger = JSON.parse(localStorage.getItem(this.ledgerKey) ?? '{"sequence":0,"sha256":""}');
    const sequence = m.sequence ?? 0;
    if (sequence < ledger.sequence || (sequence === 0 && ledger.sequence > 0)) {
      throw new Error(`offer of ${m.name} ${m.version} has sequence ${sequence}, below ${ledger.sequence} already accepted: a replayed old offer`);
    }
    if (sequence && sequence === ledger.sequence && m.sha256 !== ledger.sha256) {
      throw new Error(`offer of ${m.name} ${m.version} reuses sequence ${sequence} of another model`);
    }
    if (sequence > ledger.sequence) {
      localStorage.setItem(this.ledgerKey, JSON.stringify({ sequence, sha256: m.sha256 }));
    }
  }

  async fetch(m) {
    const total = Math.max(1, Math.ceil(m.size_bytes / m.chunk_size));
    const d = { manifest: m, total, chunks: new Map(), progress: null };
    this.download = d;
    for (let round = 0; round < MAX_ROUNDS && d.chunks.size < total; round += 1) {
      const missing = [];
      for (let i = 0; i < total && missing.length < 4096; i += 1) if (!d.chunks.has(i)) missing.push(i);
      const request = { ...envelope(), sha256: m.sha256, indexes: missing };
      this.agent.link.publish(this.agent.link.topic("model", "request"), encodeJson(request), 1);
      const before = d.chunks.size;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, CHUNK_TIMEOUT_MS);
        d.progress = () => { if (d.chunks.size >= total) { clearTimeout(timer); resolve(); } };
      });
      if (d.chunks.size === before && round > 2) break;
    }
    if (d.chunks.size < total) throw new Error(`download stalled: ${d.chunks.size} of ${total} chunks`);
    const content = new Uint8Array(m.size_bytes);
    let offset = 0;
    for (let i = 0; i < total; i += 1) {
      const chunk = d.chunks.get(i);
      if (offset + chunk.length > content.length) throw new Error(`model is larger than the manifest's ${m.size_bytes} bytes`);
      content.set(chunk, offset);
      offset += chunk.length;
    }
    if (offset !== m.size_bytes) throw new Error(`model is ${offset} bytes, manifest says ${m.size_bytes}`);
    const digest = await sha256Hex(content);
    if (digest !== null && digest !== m.sha256) {
      throw new Error(`model sha256 ${digest.slice(0, 16)}... != manifest ${m.sha256.slice(0, 16)}...`);
    }
    return content;
  }

  async smokeTest(m, content) {
    const card = { ...m.card, name: m.name, version: m.version, labels: m.labels, sha256: m.sha256, temperature: m.temperature };
    let model;
    try {
      model = await EdgeModel.fromBytes(content, card, m.sha256);
    } catch (exc) {
      throw new Error(`model does not load: ${exc.message}`);
    }
    for (const [i, golden] of (m.golden ?? []).entries()) {
      const png = Uint8Array.from(atob(golden.image_png_b64), (c) => c.charCodeAt(0));
      let bitmap;
      try {
        bitmap = await createImageBitmap(new Blob([png], { type: "image/png" }));
      } catch {
        throw new Error(`smoke test ${i}: golden image is not a PNG`);
      }
      const canvas = Object.assign(document.createElement("canvas"), { width: model.width, height: model.height });
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      model.draw(ctx, bitmap, bitmap.width, bitmap.height);
      const pixels = ctx.getImageData(0, 0, model.width, model.height).data;
      const probabilities = await model.classify(model.tensorFrom(pixels));
      let index = 0;
      for (let k = 1; k < probabilities.length; k += 1) if (probabilities[k] > probabilities[index]) index = k;
      const score = probabilities[index];
      if (index !== golden.top1_index || Math.abs(score - golden.top1_score) > golden.tolerance) {
        throw new Error(`smoke test ${i} failed: top-1 ${index} (${score.toFixed(3)}), expected ${golden.top1_index} (${golden.top1_score.toFixed(3)} +- ${golden.tolerance})`);
      }
    }
    return model;
  }
}
