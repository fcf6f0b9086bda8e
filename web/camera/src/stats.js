// What the page counts and times, shaped as the contract's telemetry (TelemetryMessage). A page
// cannot read the machine's CPU or memory: cpu_percent and memory_percent are 0, memory_rss_mb
// is the JavaScript heap where the browser tells it (Chrome), else 0.
const WINDOW = 200;

function percentile(sorted, q) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export class Stats {
  static logs = [];

  constructor() {
    this.started = performance.now();
    this.counters = {};
    this.samples = {};
    this.inferences = 0;
    this.mark = [performance.now(), 0];
  }

  count(name) {
    this.counters[name] = (this.counters[name] ?? 0) + 1;
  }

  time(stage, ms) {
    const list = (this.samples[stage] ??= []);
    list.push(Math.max(0, ms));
    if (list.length > WINDOW) list.shift();
  }

  telemetry(frames, model, link) {
    const now = performance.now();
    const [lastAt, lastFrames] = this.mark;
    this.mark = [now, frames];
    const latency = {};
    for (const [stage, list] of Object.entries(this.samples)) {
      const sorted = [...list].sort((a, b) => a - b);
      latency[stage] = { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99) };
    }
    const invoke = this.samples.invoke ?? [];
    const heap = performance.memory?.usedJSHeapSize ?? 0;
    return {
      cpu_percent: 0,
      memory_percent: 0,
      memory_rss_mb: heap / 1e6,
      temperature_c: null,
      fps: now > lastAt ? ((frames - lastFrames) * 1000) / (now - lastAt) : 0,
      frames,
      latency_ms: latency,
      queues: { "outbox.pending": link.pending.size },
      counters: { ...this.counters, "dropped.pending": link.dropped, sent: link.sent,
        "restored.pending": link.restored, "outbox.failures": link.outbox.failures },
      model,
      accelerator: "litertjs-wasm",
      agent_uptime_s: (now - this.started) / 1000,
      inferences: this.inferences,
      latency_mean_ms: invoke.length ? invoke.reduce((a, b) => a + b, 0) / invoke.length : null,
    };
  }
}
