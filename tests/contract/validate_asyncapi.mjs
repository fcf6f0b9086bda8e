// Parse an AsyncAPI document with the AsyncAPI project's own parser and print its diagnostics
// as JSON lines; exit 1 when any is an error. Usage: node validate_asyncapi.mjs FILE
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ASYNCAPI_PARSER_DIR + "/");
const { Parser } = require("@asyncapi/parser");
const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === 0) errors += 1;
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
console.log(JSON.stringify({ parsed: document !== undefined, errors }));
process.exit(errors === 0 && document !== undefined ? 0 : 1);
