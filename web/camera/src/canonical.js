// The manifest's signed bytes (shared/manifest.py canonical_bytes): the manifest without its
// signature as Python's json.dumps(sort_keys=True, separators=(",", ":")) writes it. Parsed here
// keeping every number's text as it came (JSON.parse would turn 1.0 into 1 and break the
// signature), then written back with sorted keys and Python's ASCII escapes.

class Raw {
  constructor(text) { this.text = text; }
}

export function parseKeepingNumbers(text) {
  let i = 0;
  const ws = () => { while (/\s/.test(text[i])) i += 1; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i += 1;
      const out = new Map();
      ws();
      if (text[i] === "}") { i += 1; return out; }
      for (;;) {
        ws();
        const key = string();
        ws();
        if (text[i] !== ":") throw new Error(`JSON: ':' expected at ${i}`);
        i += 1;
        out.set(key, value());
        ws();
        if (text[i] === ",") { i += 1; continue; }
        if (text[i] === "}") { i += 1; return out; }
        throw new Error(`JSON: ',' or '}' expected at ${i}`);
      }
    }
    if (c === "[") {
      i += 1;
      const out = [];
      ws();
      if (text[i] === "]") { i += 1; return out; }
      for (;;) {
        out.push(value());
        ws();
        if (text[i] === ",") { i += 1; continue; }
        if (text[i] === "]") { i += 1; return out; }
        throw new Error(`JSON: ',' or ']' expected at ${i}`);
      }
    }
    if (c === '"') return string();
    const match = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (!match) throw new Error(`JSON: value expected at ${i}`);
    i += match[0].length;
    return new Raw(match[0]);
  };
  const string = () => {
    const match = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(i));
    if (!match) throw new Error(`JSON: string expected at ${i}`);
    i += match[0].length;
    return JSON.parse(match[0]);
  };
  const out = value();
  ws();
  if (i !== text.length) throw new Error(`JSON: trailing text at ${i}`);
  return out;
}

function pyString(s) {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (code < 0x20 || code > 0x7e) {
      for (let k = 0; k < ch.length; k += 1) out += `\\u${ch.charCodeAt(k).toString(16).padStart(4, "0")}`;
    } else out += ch;
  }
  return `${out}"`;
}

export function canonical(node) {
  if (node instanceof Raw) return node.text;
  if (typeof node === "string") return pyString(node);
  if (Array.isArray(node)) return `[${node.map(canonical).join(",")}]`;
  const keys = [...node.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${keys.map((k) => `${pyString(k)}:${canonical(node.get(k))}`).join(",")}}`;
}

// The manifest's signed bytes, from the raw offer text.
export function signedBytes(offerText) {
  const manifest = parseKeepingNumbers(offerText).get("manifest");
  if (!(manifest instanceof Map)) throw new Error("the offer has no manifest");
  manifest.delete("signature");
  return new TextEncoder().encode(canonical(manifest));
}
