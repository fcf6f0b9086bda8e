// The browser camera agent: the device camera (getUserMedia), the edge model (LiteRT.js), results
// and escalations over MQTT over WebSockets, the cloud's verdicts on the page.
// Settings come from the form or from the URL's query (for automation): ws, site, device,
// username, password, gateway, prefix, threshold, fps, telemetry, max_side, quality, model, card.
import {
  decodeFrame, encodeFrame, encodeJson, escalationHeader, parseTopic, replyMessage, resultMessage,
  stateMessage, telemetryMessage, validateId,
} from "./contract.js";
import { EdgeModel, hasWasmSimd, topK } from "./model.js";
import { SiteLink } from "./link.js";
import { Rollout } from "./rollout.js";
import { Stats } from "./stats.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["ws", "site", "device", "username", "password", "gateway", "prefix", "threshold", "fps"];

function fail(kind, text) {
  const box = $("problem");
  box.hidden = false;
  box.dataset.kind = kind;
  box.textContent = text;
  document.body.dataset.state = "failed";
}

function log(text) {
  const line = document.createElement("li");
  line.textContent = `${new Date().toISOString().slice(11, 19)} ${text}`;
  $("log").prepend(line);
  while ($("log").children.length > 50) $("log").lastChild.remove();
  Stats.logs.push(line.textContent);
  if (Stats.logs.length > 200) Stats.logs.shift();
}

export function readConfig(form, query) {
  const value = (name, fallback) => (query.get(name) ?? form[name]?.value ?? "") || fallback;
  const number = (name, fallback, low, high) => {
    const v = Number(value(name, String(fallback)));
    if (!Number.isFinite(v) || v < low || v > high) throw new Error(`${name} ${JSON.stringify(value(name, ""))} is not a number from ${low} to ${high}`);
    return v;
  };
  const url = value("ws", "");
  if (!/^wss?:\/\//.test(url)) throw new Error(`ws ${JSON.stringify(url)} is not a ws:// or wss:// URL of the broker's websockets listener`);
  const gateway = value("gateway", "");
  return {
    url,
    site: validateId(value("site", ""), "site id"),
    device: validateId(value("device", ""), "device id"),
    username: value("username", ""),
    password: value("password", ""),
    gateway: gateway ? validateId(gateway, "gateway id") : null,
    prefix: validateId(value("prefix", "ec"), "topic prefix"),
    threshold: number("threshold", 0.6, 0, 1),
    fps: number("fps", 2, 0.1, 30),
    telemetry: number("telemetry", 10, 0.2, 3600),
    confirm: number("confirm", 30, 0.5, 3600),
    maxSide: number("max_side", 640, 16, 4096),
    quality: number("quality", 85, 10, 100) / 100,
    model: value("model", "model.tflite"),
    card: value("card", ""),
  };
}

async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw Object.assign(new Error("This browser offers no camera here: getUserMedia needs HTTPS (or localhost)."), { kind: "camera" });
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (exc) {
    const denied = exc.name === "NotAllowedError" || exc.name === "SecurityError";
    const text = denied
      ? "Camera permission was denied: allow the camera for this page in the browser's site settings, then reload."
      : `No camera could be opened (${exc.name}: ${exc.message}).`;
    throw Object.assign(new Error(text), { kind: "camera" });
  }
}

async function start(config) {
  document.body.dataset.state = "starting";
  $("settings").hidden = true;
  const stream = await openCamera();
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  log("camera open");
  const card = config.card || config.model.replace(/\.tflite$/, ".json");
  const model = await EdgeModel.load(new URL("wasm/", location.href).href, config.model, card);
  log(`model ${model.ref.name} ${model.ref.version} loaded`);
  const agent = new BrowserAgent(config, model, video);
  await agent.start();
  window.edgecascadeCamera = agent; // for the tests and the curious
}

class BrowserAgent {
  constructor(config, model, video) {
    this.config = config;
    this.model = model;
    this.video = video;
    this.session = Date.now();
    this.stats = new Stats();
    this.results = new Map(); // result msg_id -> {label, row}: for the verdicts
    this.modelCanvas = Object.assign(document.createElement("canvas"), { width: model.width, height: model.height });
    this.modelCtx = this.modelCanvas.getContext("2d", { willReadFrequently: true });
    this.frameCanvas = document.createElement("canvas");
    this.frames = 0;
    this.policy = `browser-t${config.threshold}`;
    this.link = new SiteLink(config, (status) => this.state(status), (t, p) => this.onMessage(t, p),
      (status, detail) => this.onStatus(status, detail));
    this.rollout = new Rollout(this, new URL("signing-key.pem", location.href).href);
    this.log = log;
    this.commands = { diagnostics: () => this.diagnostics(), config: () => { throw new Error("the browser camera takes its settings from its page, not remote config"); } };
  }

  state(status) {
    const detail = `browser camera; ${navigator.userAgent}`;
    return stateMessage(status, this.session, this.model.ref, detail);
  }

  async start() {
    await this.link.start();
    if (!this.link.durable) log("this browser keeps no IndexedDB here: unacknowledged results live in memory only, a closed tab loses them");
    else if (this.link.restored) log(`${this.link.restored} unacknowledged result(s) from an earlier page, sent again`);
    document.body.dataset.state = "running";
    setInterval(() => this.telemetry(), this.config.telemetry * 1000);
    this.loop();
  }

  async loop() {
    const interval = 1000 / this.config.fps;
    for (;;) {
      const started = performance.now();
      try {
        await this.step();
      } catch (exc) {
        log(`frame failed: ${exc.message}`);
        this.stats.count("frames.failed");
      }
      await new Promise((r) => setTimeout(r, Math.max(0, interval - (performance.now() - started))));
    }
  }

  async step() {
    const { video, model } = this;
    if (!video.videoWidth) return;
    const t0 = performance.now();
    const frame = { id: `${this.config.device}-${this.session}-${this.frames}`, capturedAt: Date.now() / 1000 };
    this.frames += 1;
    model.draw(this.modelCtx, video, video.videoWidth, video.videoHeight);
    const pixels = this.modelCtx.getImageData(0, 0, model.width, model.height).data;
    const t1 = performance.now();
    const data = model.tensorFrom(pixels);
    const t2 = performance.now();
    const probabilities = await model.classify(data);
    const t3 = performance.now();
    const top = topK(probabilities, model.labels, 3);
    const escalate = top[0].score < this.config.threshold;
    const t4 = performance.now();
    const latency = { capture: t1 - t0, preprocess: t2 - t1, invoke: t3 - t2, postprocess: t4 - t3 };
    for (const [stage, ms] of Object.entries(latency)) this.stats.time(stage, ms);
    this.stats.inferences += 1;
    const result = resultMessage(frame, model.ref, top, latency, escalate, this.policy);
    this.link.send(result.msg_id, this.link.topic("result"), encodeJson(result), 1);
    this.stats.count("results");
    const row = this.show(result);
    this.remember(result, row);
    if (escalate) await this.escalate(result);
  }

  remember(result, row) {
    this.results.set(result.msg_id, { label: result.top[0].label, row });
    if (this.results.size > 1000) this.results.delete(this.results.keys().next().value);
  }

  async escalate(result) {
    const { video } = this;
    const scale = Math.min(1, this.config.maxSide / Math.max(video.videoWidth, video.videoHeight));
    const width = Math.max(1, Math.round(video.videoWidth * scale));
    const height = Math.max(1, Math.round(video.videoHeight * scale));
    Object.assign(this.frameCanvas, { width, height });
    this.frameCanvas.getContext("2d").drawImage(video, 0, 0, width, height);
    const blob = await new Promise((r) => this.frameCanvas.toBlob(r, "image/jpeg", this.config.quality));
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    const reason = `confidence ${result.top[0].score.toFixed(3)} < ${this.config.threshold}`;
    const header = escalationHeader(result, reason, width, height);
    this.link.send(header.msg_id, this.link.topic("escalation"), encodeFrame(header, jpeg), 1);
    this.stats.count("escalations");
  }

  show(result) {
    const top = result.top[0];
    $("label").textContent = `${top.label} ${(top.score * 100).toFixed(0)}%`;
    $("label").dataset.escalated = String(result.escalated);
    const row = document.createElement("tr");
    row.dataset.result = result.msg_id;
    const cells = [result.frame_id, top.label, top.score.toFixed(3), result.escalated ? "escalated" : "", ""];
    for (const text of cells) row.append(Object.assign(document.createElement("td"), { textContent: text }));
    $("results").prepend(row);
    while ($("results").children.length > 30) $("results").lastChild.remove();
    $("counts").textContent = `${this.stats.counters.results ?? 0} results, ${this.stats.counters.escalations ?? 0} escalated, ${this.stats.counters["verdicts.received"] ?? 0} verdicts`;
    return row;
  }

  onStatus(status, detail) {
    $("link").textContent = `${status}: ${detail}`;
    $("link").dataset.status = status;
    if (status === "error") log(`broker: ${detail}`);
  }

  onMessage(wireTopic, payload) {
    const parsed = parseTopic(wireTopic);
    if (parsed?.kind === "model" && parsed.sub === "chunk") {
      const frame = decodeFrame(payload);
      if (frame) this.rollout.chunk(frame[0], frame[1]);
      return;
    }
    let message;
    try {
      message = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      this.stats.count("rejected");
      return;
    }
    if (!parsed || typeof message !== "object" || message === null) return;
    if (parsed.kind === "state" && parsed.device === this.config.gateway) {
      const online = message.status === "online";
      if (online !== this.link.gatewayOnline) log(`site gateway is ${message.status}`);
      this.link.gatewayState(online);
    } else if (parsed.kind === "ack" && Array.isArray(message.msg_ids)) {
      this.link.acknowledged(message.msg_ids);
    } else if (parsed.kind === "verdict") {
      this.verdict(message);
    } else if (parsed.kind === "cmd" && parsed.sub) {
      this.command(parsed.sub, message);
    } else if (parsed.kind === "model" && parsed.sub === "offer") {
      this.rollout.offer(new TextDecoder().decode(payload));
    }
  }

  verdict(message) {
    const entry = this.results.get(message.result_id);
    if (!entry || !Array.isArray(message.top) || !message.top.length) {
      this.stats.count("verdicts.unknown");
      return;
    }
    if (entry.judgedBy === message.escalation_id) {
      this.stats.count("verdicts.duplicate");
      return;
    }
    entry.judgedBy = message.escalation_id;
    const cloud = message.top[0].label;
    const agrees = cloud === entry.label;
    this.stats.count("verdicts.received");
    if (!agrees) this.stats.count("verdicts.corrected");
    const text = agrees ? `cloud agrees: ${cloud}` : `cloud says ${cloud} (edge said ${entry.label})`;
    entry.row.lastChild.textContent = text;
    entry.row.dataset.verdict = agrees ? "agrees" : "corrected";
    $("verdict").textContent = text;
    $("verdict").dataset.agrees = String(agrees);
    log(`verdict on ${message.result_id.slice(-12)}: ${text}`);
  }

  command(name, message) {
    if (typeof message.correlation !== "string") return;
    let reply;
    try {
      const handler = this.commands[name];
      if (!handler) throw new Error(`unknown command '${name}'; known: ${Object.keys(this.commands).sort().join(", ")}`);
      reply = replyMessage(message.correlation, "ok", handler(message.args ?? {}), null);
    } catch (exc) {
      reply = replyMessage(message.correlation, "error", { version: null }, String(exc.message).slice(0, 1024));
    }
    this.link.publish(this.link.topic("reply", name), encodeJson(reply), 1);
    log(`command ${name}: ${reply.status}`);
  }

  // A verified model (the rollout): used from the next frame on; the retained state names it.
  switchModel(model) {
    this.model = model;
    Object.assign(this.modelCanvas, { width: model.width, height: model.height });
    this.link.republishState();
    log(`switched to model ${model.ref.name} ${model.ref.version}`);
  }

  diagnostics() {
    const { password, ...shown } = this.config;
    return { logs: Stats.logs.slice(-100), settings: { ...shown, password: password ? "***" : "" }, config_version: null,
      outbox: { pending: this.link.pending.size, dropped: this.link.dropped, durable: this.link.durable, restored: this.link.restored } };
  }

  telemetry() {
    const message = telemetryMessage(this.stats.telemetry(this.frames, this.model.ref, this.link));
    this.link.publish(this.link.topic("telemetry"), encodeJson(message), 0);
  }
}

function main() {
  const query = new URLSearchParams(location.search);
  const form = $("settings");
  for (const name of FIELDS) if (query.has(name) && form[name]) form[name].value = query.get(name);
  if (!hasWasmSimd()) {
    fail("simd", "This browser does not run WebAssembly SIMD, which the on-device model needs: use a current Chrome, Edge, Firefox or Safari (16.4 or later).");
    return;
  }
  const go = () => {
    let config;
    try {
      config = readConfig(form, query);
    } catch (exc) {
      fail("settings", exc.message);
      return;
    }
    start(config).catch((exc) => fail(exc.kind ?? "start", exc.message));
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); go(); });
  if (query.has("ws") && query.has("site") && query.has("device")) go();
}

main();
