/**
 * The cached `token` path loads no network code and no `node:`/npm module (SPEC.md §8: each
 * wakes a layer that costs more than the whole keychain read). Checked on the real module
 * graph: everything `src/main.ts` reaches through static imports, plus the `token` verb
 * module it imports dynamically, and their static imports; and on the bundle that runs
 * (`dist/bundle.ts`): the chunks `main.js` loads at start-up.
 */
import assert from "node:assert/strict";
import { moduleUrl, reachable } from "./fixtures/module_graph.ts";
import { BUNDLE_DIR, staleBundleReason } from "../dist/bundle.ts";

Deno.test("startup: the cached token path imports no node:, npm or OAuth module", async () => {
  const main = await reachable(["src/main.ts"]);
  const token = await reachable(["src/cli/token.ts"]);
  const all = [...main, ...token];
  const offenders = all.filter((s) =>
    s.startsWith("node:") || s.startsWith("npm:") || s.includes("/src/oauth/") ||
    s.includes("/src/lock/") || s.includes("/src/term/") || s.includes("/src/cli/dispatch.ts")
  );
  assert.deepEqual(
    offenders,
    [],
    `statically reachable from the token path: ${offenders.join(", ")}`,
  );
  assert.ok(
    token.has(moduleUrl("src/token/get_token.ts")),
    "sanity: the walk found the use case",
  );
});

/**
 * The source modules a bundle chunk holds, from its linked source map (`sources`, relative to
 * the chunk: `../../src/errors.ts`, npm packages under the Deno cache's `npm/` directory).
 */
async function modulesOf(file: string): Promise<string[]> {
  const map = JSON.parse(await Deno.readTextFile(`${BUNDLE_DIR}/${file}.map`));
  return (map.sources as string[]).map((s) => s.replace(/^(\.\.\/)+/, ""));
}

/** The chunks `dist/bundle/main.js` loads at start-up (its static imports, transitively). */
async function bundleStartup(): Promise<
  { chunks: string[]; modules: string[]; imports: string[] }
> {
  const chunks: string[] = [];
  const modules: string[] = [];
  const imports: string[] = [];
  const walk = async (file: string) => {
    if (chunks.includes(file)) return;
    chunks.push(file);
    modules.push(...await modulesOf(file));
    const text = await Deno.readTextFile(`${BUNDLE_DIR}/${file}`);
    // Minified: `import{a as b}from"./x.js";` and `import"./x.js";`, all at the top.
    for (const m of text.matchAll(/\bimport\s*(?:[\w{}\s,*$]*?\bfrom\s*)?"([^"]+)"/g)) {
      imports.push(m[1]);
      if (m[1].startsWith("./")) await walk(m[1].slice(2));
    }
    for (const m of text.matchAll(/\bexport\s*[{*][^;]*?\bfrom\s*"([^"]+)"/g)) {
      imports.push(m[1]);
      if (m[1].startsWith("./")) await walk(m[1].slice(2));
    }
  };
  await walk("main.js");
  return { chunks, modules, imports };
}

Deno.test("startup: the bundle `token` runs loads no npm package, node: module or OAuth chunk at start-up", async () => {
  const stale = await staleBundleReason();
  assert.equal(stale, null, stale ?? "");
  const { chunks, modules, imports } = await bundleStartup();
  const offenders = [
    ...modules.filter((m) =>
      m.includes("/npm/") || m.includes("registry.npmjs.org") || m.startsWith("src/oauth/") ||
      m.startsWith("src/lock/") || m.startsWith("src/term/") || m === "src/cli/dispatch.ts"
    ),
    ...imports.filter((s) => !s.startsWith("./")),
  ];
  assert.deepEqual(offenders, [], `loaded at start-up by ${chunks.join(", ")}`);
  assert.ok(modules.includes("src/token/get_token.ts"), "sanity: the walk found the use case");
  assert.ok(modules.includes("src/store/dbus/secret_read.ts"), "sanity: and the D-Bus reader");
  assert.ok(chunks.length > 1 && imports.length >= chunks.length - 1, "sanity: imports parsed");
});

Deno.test("startup: the bundle keeps one copy of every module, so errors thrown across a lazy import are the same class", async () => {
  const copies = new Map<string, number>();
  for await (const entry of Deno.readDir(BUNDLE_DIR)) {
    if (!entry.name.endsWith(".js")) continue;
    for (const m of await modulesOf(entry.name)) copies.set(m, (copies.get(m) ?? 0) + 1);
  }
  const twice = [...copies].filter(([, n]) => n > 1).map(([m]) => m);
  assert.deepEqual(twice, []);
  assert.ok(copies.has("src/errors.ts") && copies.has("src/cli/setup.ts"), "sanity");
  assert.ok([...copies.keys()].some((m) => m.includes("oauth4webapi")), "npm code is inlined");
});
