/**
 * The cached `token` path loads no network code and no `node:`/npm module (SPEC.md §8: each
 * wakes a layer that costs more than the whole keychain read). Checked on the real module
 * graph: everything `src/main.ts` reaches through static imports, plus the `token` verb
 * module it imports dynamically, and their static imports.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);

interface Dep {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface Module {
  specifier: string;
  dependencies?: Dep[];
}

async function staticClosure(entries: string[]): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", ...entries.map((e) => new URL(e, ROOT).pathname)],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "null",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  const byName = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const walk = (spec: string) => {
    if (seen.has(spec)) return;
    seen.add(spec);
    for (const d of byName.get(spec)?.dependencies ?? []) {
      if (!d.isDynamic && d.code) walk(d.code.specifier);
    }
  };
  for (const e of entries) walk(new URL(e, ROOT).href);
  return seen;
}

Deno.test("startup: the cached token path imports no node:, npm or OAuth module", async () => {
  const main = await staticClosure(["src/main.ts"]);
  const token = await staticClosure(["src/cli/token.ts"]);
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
    token.has(new URL("src/token/get_token.ts", ROOT).href),
    "sanity: the walk found the use case",
  );
});
