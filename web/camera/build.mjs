// Builds the camera page into dist/ (or the directory given as the first argument): the page,
// its stylesheet, one ES module bundle (esbuild) and the two LiteRT.js WebAssembly builds the
// loader picks from (relaxed SIMD, or plain SIMD: "compat"). Nothing is fetched at run time
// from anywhere but the server that serves dist/.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));
const tmp = `${out}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(join(tmp, "wasm"), { recursive: true });
try {
await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: false,
  legalComments: "linked",
  outfile: join(tmp, "camera.js"),
  logLevel: "warning",
});
for (const file of ["index.html", "camera.css"]) copyFileSync(join(here, file), join(tmp, file));
const wasm = join(here, "node_modules", "@litertjs", "core", "wasm");
for (const name of ["litert_wasm_internal", "litert_wasm_compat_internal"]) {
  for (const ext of [".js", ".wasm"]) copyFileSync(join(wasm, name + ext), join(tmp, "wasm", name + ext));
}
} catch (error) {
  rmSync(tmp, { recursive: true, force: true });
  throw error;
}
// Replace the old build in one step: a server reading dist/ never sees half a build.
rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);
console.log(`camera page built in ${out}`);
