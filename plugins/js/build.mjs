// Builds one JavaScript plugin into a component:
//   node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm
// Every optional WASI feature (stdio, random, clocks, http, fetch-event) is
// disabled, so the component imports only its world's runwarden
// interfaces. A plugin that needs HTTP builds against `http-source` or
// `http-tool` and would enable "http" here.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";

const [source, wit, world, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm");
  process.exit(2);
}
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve(wit),
  worldName: world,
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
