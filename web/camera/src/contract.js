// The EdgeCascade contract as the browser camera speaks it: topics, message ids, the messages
// the Python agent sends (edge_agent/agent.py, emit.py, escalation.py, commands.py) and the
// binary frame codec of escalations (shared/framecodec.py). docs/contract/ has the JSON Schemas
// every payload here validates against (tests/camera checks them on the wire).

export const VERSION = "v1";
export const SOFTWARE = "edgecascade-camera/0.1.0";
const ID_RE = /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}|\.\.[A-Za-z0-9._-]{1,62})$/;

export function validateId(value, what) {
  if (typeof value !== "string" || !ID_RE.test(value) || value === "." || value === "..") {
    throw new Error(`invalid ${what} ${JSON.stringify(value)}: use 1-64 characters of letters, digits, '.', '_' or '-'`);
  }
  return value;
}

// <prefix>/v1/<site>/<device>/<kind>[/<sub>] (shared/topics.py)
export function topic(prefix, site, device, kind, sub) {
  const levels = [validateId(prefix, "topic prefix"), VERSION, validateId(site, "site id"),
    validateId(device, "device id"), kind];
  if (sub !== undefined) levels.push(sub === "+" ? "+" : validateId(sub, `${kind} name`));
  return levels.join("/");
}

export function parseTopic(text) {
  const parts = text.split("/");
  if (parts.length < 5 || parts.length > 6 || parts[1] !== VERSION) return null;
  return { prefix: parts[0], site: parts[2], device: parts[3], kind: parts[4], sub: parts[5] };
}

// UUIDv7 (shared/ids.py): 48 bits of Unix milliseconds, version 7, a counter, variant, random.
let lastMs = 0;
let counter = 0;
export function newMessageId(now = Date.now()) {
  let ms = Math.floor(now);
  if (ms <= lastMs) {
    ms = lastMs;
    counter += 1;
    if (counter >= 4096) { ms += 1; counter = 0; }
  } else {
    counter = crypto.getRandomValues(new Uint16Array(1))[0] >> 5;
  }
  lastMs = ms;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  for (let i = 5; i >= 0; i -= 1) { bytes[i] = ms % 256; ms = Math.floor(ms / 256); }
  bytes[6] = 0x70 | ((counter >> 8) & 0x0f);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function envelope() {
  return { schema_version: 1, msg_id: newMessageId(), ts: Date.now() / 1000 };
}

export function stateMessage(status, session, model, detail) {
  return {
    ...envelope(), status, session, role: "agent", model,
    capabilities: ["classify", "escalate"], software: SOFTWARE, detail: detail.slice(0, 1024),
  };
}

export function resultMessage(frame, model, top, latency, escalated, policy) {
  return {
    ...envelope(), frame_id: frame.id, captured_at: frame.capturedAt, model, top,
    latency_ms: latency, escalated, ground_truth: null, accelerator: "litertjs-wasm", policy,
  };
}

export function escalationHeader(result, reason, width, height) {
  return {
    ...envelope(), result_id: result.msg_id, frame_id: result.frame_id,
    captured_at: result.captured_at, model: result.model, top: result.top, reason,
    content_type: "image/jpeg", width, height, roi: null, ground_truth: null, audit: false,
  };
}

export function telemetryMessage(fields) {
  return { ...envelope(), ...fields };
}

export function modelAckMessage(rolloutId, version, sha256, status, detail) {
  return { ...envelope(), rollout_id: rolloutId, version, sha256, status, detail };
}

export function replyMessage(correlation, status, data, error) {
  return { ...envelope(), correlation, status, data, error };
}

// A frame-codec payload -> [header, body]; null if it is not one.
export function decodeFrame(payload) {
  if (payload.length < 8 || new TextDecoder().decode(payload.subarray(0, 4)) !== "ECF1") return null;
  const length = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(4, false);
  if (8 + length > payload.length) return null;
  try {
    return [JSON.parse(new TextDecoder().decode(payload.subarray(8, 8 + length))), payload.subarray(8 + length)];
  } catch {
    return null;
  }
}

// b"ECF1" | header length (uint32, big-endian) | header JSON (UTF-8) | body
export function encodeFrame(header, body) {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + head.length + body.length);
  out.set([0x45, 0x43, 0x46, 0x31], 0);
  new DataView(out.buffer).setUint32(4, head.length, false);
  out.set(head, 8);
  out.set(body, 8 + head.length);
  return out;
}

export function encodeJson(message) {
  return new TextEncoder().encode(JSON.stringify(message));
}
