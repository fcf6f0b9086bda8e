// The page's outbox: the results and escalations the gateway has not acknowledged yet, kept in
// IndexedDB (one database per site and device), so a closed or crashed tab sends them when the
// page is opened again instead of losing them. Bounded like the link's memory (the oldest goes
// first); where IndexedDB is unavailable (a private window may refuse it) the page runs with the
// memory only and says so.

const STORE = "pending";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class Outbox {
  constructor(site, device) {
    this.name = `edgecascade-outbox-${site}.${device}`;
    this.db = null;
    this.failures = 0; // writes or deletes IndexedDB refused (counted in telemetry)
  }

  // Open the database; [[msgId, topic, payload, qos], ...] oldest first (ids are UUIDv7: time
  // ordered). Null when IndexedDB cannot be used.
  async open() {
    if (typeof indexedDB === "undefined") return null;
    try {
      const opening = indexedDB.open(this.name, 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore(STORE, { keyPath: "id" });
      this.db = await request(opening);
      const rows = await request(this.db.transaction(STORE).objectStore(STORE).getAll());
      rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return rows.map((row) => [row.id, row.topic, new Uint8Array(row.payload), row.qos]);
    } catch {
      this.db = null;
      return null;
    }
  }

  put(msgId, topic, payload, qos) {
    this._write((store) => store.put({ id: msgId, topic, payload, qos }));
  }

  delete(msgId) {
    this._write((store) => store.delete(msgId));
  }

  _write(change) {
    if (this.db === null) return;
    try {
      const tx = this.db.transaction(STORE, "readwrite");
      tx.onerror = () => { this.failures += 1; };
      change(tx.objectStore(STORE));
    } catch {
      this.failures += 1;
    }
  }
}
