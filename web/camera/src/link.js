// MQTT over WebSockets to the site broker, as the Python agent's link does it (edge_agent/wiring.py
// open_link): the retained offline state as the will, the retained online state after every
// CONNACK, then the subscriptions (the gateway's state, our verdicts, acks and commands).
// Results and escalations wait until the gateway acknowledges them (the contract's ack kind), in
// memory and in IndexedDB (outbox.js), and are sent again after a reconnect, or when the page is
// opened again after a closed or crashed tab.
import mqtt from "mqtt";
import { encodeJson, topic } from "./contract.js";
import { Outbox } from "./outbox.js";

const PENDING_LIMIT = 500;

export class SiteLink {
  constructor(config, stateFor, onMessage, onStatus) {
    this.config = config;
    this.stateFor = stateFor;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.pending = new Map(); // msg_id -> [topic, payload, qos]: until the gateway's ack
    this.gatewayOnline = config.gateway === null;
    this.dropped = 0;
    this.sent = 0;
    this.outbox = new Outbox(config.site, config.device);
    this.durable = false; // IndexedDB keeps the pending messages across a closed tab
    this.restored = 0; // pending messages a previous page left, sent by this one
  }

  topic(kind, sub) {
    const { prefix, site, device } = this.config;
    return topic(prefix, site, device, kind, sub);
  }

  async start() {
    const kept = await this.outbox.open();
    this.durable = kept !== null;
    for (const [msgId, wireTopic, payload, qos] of kept ?? []) {
      this.pending.set(msgId, [wireTopic, payload, qos, false]);
      this.restored += 1;
    }
    this.connect();
  }

  connect() {
    const { prefix, site, device, gateway, username, password, url } = this.config;
    const will = this.stateFor("offline");
    this.client = mqtt.connect(url, {
      protocolVersion: 5,
      clientId: `${site}.${device}`,
      username: username || undefined,
      password: password || undefined,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      will: { topic: this.topic("state"), payload: encodeJson(will), qos: 1, retain: true },
    });
    this.client.on("connect", () => {
      this.onStatus("connected", url);
      this.client.publish(this.topic("state"), encodeJson(this.stateFor("online")), { qos: 1, retain: true });
      const filters = [this.topic("verdict"), this.topic("ack"), this.topic("cmd", "+"),
        this.topic("model", "offer"), this.topic("model", "chunk")];
      if (gateway !== null) filters.push(topic(prefix, site, gateway, "state"));
      this.client.subscribe(filters, { qos: 1 }, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos >= 128).map((g) => g.topic);
        if (err || refused.length) this.onStatus("error", `subscription refused: ${err ?? refused.join(", ")}`);
      });
      for (const entry of this.pending.values()) entry[3] = false; // unacknowledged: again
      this.flush();
    });
    setInterval(() => this.resend(), 1000);
    this.client.on("message", (wireTopic, payload) => this.onMessage(wireTopic, payload));
    this.client.on("error", (err) => this.onStatus("error", String(err.message ?? err)));
    this.client.on("offline", () => this.onStatus("offline", url));
    this.client.on("reconnect", () => this.onStatus("reconnecting", url));
  }

  get connected() {
    return Boolean(this.client && this.client.connected);
  }

  // A message the gateway acknowledges: kept until then, sent when the link and gateway are up.
  send(msgId, wireTopic, payload, qos) {
    if (this.pending.size >= PENDING_LIMIT) {
      const oldest = this.pending.keys().next().value;
      this.forget(oldest);
      this.dropped += 1;
    }
    this.pending.set(msgId, [wireTopic, payload, qos, false]);
    this.outbox.put(msgId, wireTopic, payload, qos);
    this.flush();
  }

  forget(msgId) {
    this.pending.delete(msgId);
    this.outbox.delete(msgId);
  }

  // Telemetry and replies: once, now, if connected.
  publish(wireTopic, payload, qos, retain = false) {
    if (this.connected) this.client.publish(wireTopic, payload, { qos, retain });
  }

  flush() {
    if (!this.connected || !this.gatewayOnline) return;
    for (const [msgId, entry] of this.pending) {
      if (entry[3]) continue;
      entry[3] = Date.now();
      const [wireTopic, payload, qos] = entry;
      // Without a gateway nobody acknowledges: the broker's PUBACK is the end of it.
      const done = this.config.gateway === null ? (err) => err || this.forget(msgId) : undefined;
      this.client.publish(wireTopic, payload, { qos }, done);
      this.sent += 1;
    }
  }

  // Sent but not acknowledged within the confirm time: sent again (the gateway de-duplicates).
  resend() {
    const due = Date.now() - this.config.confirm * 1000;
    for (const entry of this.pending.values()) if (entry[3] && entry[3] < due) entry[3] = false;
    this.flush();
  }

  acknowledged(ids) {
    for (const id of ids) if (this.pending.has(id)) this.forget(id);
  }

  gatewayState(online) {
    this.gatewayOnline = online;
    if (online) {
      for (const entry of this.pending.values()) entry[3] = false; // the gateway may have missed them
      this.flush();
    }
  }

  republishState() {
    this.publish(this.topic("state"), encodeJson(this.stateFor("online")), 1, true);
  }
}
