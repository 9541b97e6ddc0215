/**
 * The house as an import graph (issue 13 point 11), read from the source text of every module
 * in `src/` and `ffi/` (tests excluded): static imports, `import type`, re-exports and dynamic
 * `import()`, since each is an edge of the structure drawing even when it costs nothing at run
 * time.
 *
 * - `ffi/` is the floor: it imports nothing outside `ffi/` (no `src/`, no npm, no `node:`).
 * - `src/config/` does not lean on the layers above it (store, token, cli, oauth, lock).
 * - No module imports itself back through a cycle; in particular the verbs and
 *   `src/cli/dispatch.ts`, which imports every verb, are not in one.
 */
import assert from "node:assert/strict";
import { SCHEMA_NAME } from "../ffi/linux/libsecret.ts";
import { SECRET_SCHEMA_NAME } from "../src/store/store.ts";

const ROOT = new URL("..", import.meta.url);

async function modules(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(new URL(rel, ROOT))) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Every specifier a module names: `from "x"`, `import "x"`, `import("x")`. */
function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const found = [
    ...code.matchAll(/\bfrom\s+["']([^"']+)["']/g),
    ...code.matchAll(/^\s*import\s+["']([^"']+)["']/gm),
    ...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]);
  return [...new Set(found)];
}

/** The graph: module path (relative to the repository) → what it imports (paths or bare names). */
async function graph(): Promise<Map<string, string[]>> {
  const g = new Map<string, string[]>();
  for (const file of [...await modules("src"), ...await modules("ffi")]) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    g.set(
      file,
      specifiers(text).map((s) =>
        s.startsWith(".") ? new URL(s, new URL(file, ROOT)).href.slice(ROOT.href.length) : s
      ),
    );
  }
  return g;
}

/** Strongly connected components with more than one module (or a self-import): the cycles. */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

Deno.test("import graph: the scan sees the edges it must (sanity)", async () => {
  const g = await graph();
  assert.ok(g.get("src/cli/dispatch.ts")?.includes("src/cli/login.ts"), "dynamic import seen");
  assert.ok(g.get("src/cli/login.ts")?.includes("src/cli/verb.ts"), "import type seen");
  assert.ok(g.get("src/errors.ts")?.includes("ffi/errors.ts"), "re-export seen");
  assert.ok(g.get("src/cli/dispatch.ts")?.includes("node:util"), "bare specifier kept");
});

Deno.test("import graph: ffi/ imports nothing outside ffi/", async () => {
  const g = await graph();
  const offenders = [...g].filter(([m]) => m.startsWith("ffi/"))
    .flatMap(([m, deps]) => deps.filter((d) => !d.startsWith("ffi/")).map((d) => `${m} → ${d}`));
  assert.deepEqual(offenders, []);
  assert.ok([...g.keys()].filter((m) => m.startsWith("ffi/")).length >= 6, "sanity: ffi/ found");
});

Deno.test("import graph: src/config/ does not import the layers above it", async () => {
  const g = await graph();
  const above = /^src\/(store|token|cli|oauth|lock|term|claude)\//;
  const offenders = [...g].filter(([m]) => m.startsWith("src/config/"))
    .flatMap(([m, deps]) => deps.filter((d) => above.test(d)).map((d) => `${m} → ${d}`));
  assert.deepEqual(offenders, []);
});

Deno.test("import graph: no cycle, none through src/cli/dispatch.ts", async () => {
  const found = cycles(await graph());
  assert.ok(
    !found.some((c) => c.includes("src/cli/dispatch.ts")),
    `dispatch.ts is in a cycle: ${JSON.stringify(found)}`,
  );
  assert.deepEqual(found, [], "import cycles");
  // the check itself finds a circle when there is one
  const planted = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]]]);
  assert.deepEqual(cycles(planted), [["a.ts", "b.ts", "c.ts"]]);
});

Deno.test("import graph: libsecret's schema name, spelled in ffi/, is the store's", () => {
  assert.equal(SCHEMA_NAME, SECRET_SCHEMA_NAME);
});
